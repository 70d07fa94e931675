import NIOCore
import RWACrypto
import RWAWire

/// Seals and opens the records of an established TCP session (proto/README.md, "TCP records").
/// Each direction counts its records from zero and uses the count as the nonce, so a replayed,
/// reordered, dropped or forged record fails authentication: TCP delivers in order, so the only
/// acceptable record is the next one.
public struct RecordCipher: Sendable {
    private let sendKey: AEADKey
    private let receiveKey: AEADKey
    public private(set) var sendCounter: UInt64 = 0
    public private(set) var receiveCounter: UInt64 = 0

    public init(_ session: EstablishedSession) {
        sendKey = session.sendKey
        receiveKey = session.receiveKey
    }

    /// Writes `u32 length | sealed frame` for `message`.
    public mutating func sealRecord(_ message: Message, into output: inout ByteBuffer) throws(SessionError) {
        var frame = ByteBuffer()
        message.encodeFrame(into: &frame)
        try sealRecord(frame: frame, into: &output)
    }

    public mutating func sealRecord(frame: ByteBuffer, into output: inout ByteBuffer) throws(SessionError) {
        guard frame.readableBytes <= WireLimits.frameBytesMax else {
            throw SessionError(
                .frameTooLarge, "frame of \(frame.readableBytes) bytes is above \(WireLimits.frameBytesMax)")
        }
        let length = UInt32(frame.readableBytes + WireLimits.aeadTagBytes)
        output.writeInteger(length, endianness: .big)
        let associatedData = withUnsafeBytes(of: length.bigEndian) { Array($0) }
        let counter = sendCounter
        sendCounter += 1
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: Int(length)) { out in
            frame.withUnsafeReadableBytes { plaintext in
                associatedData.withUnsafeBytes {
                    sendKey.seal(plaintext: plaintext, associatedData: $0, counter: counter, into: out)
                }
            }
            return Int(length)
        }
    }

    /// Opens one record payload (everything after the length prefix) into its frame.
    public mutating func openRecord(_ payload: ByteBuffer) throws(SessionError) -> ByteBuffer {
        let length = UInt32(payload.readableBytes)
        guard payload.readableBytes >= WireLimits.aeadTagBytes + 2 else {
            throw SessionError(
                .malformedFrame, "sealed record of \(payload.readableBytes) bytes is shorter than a tag and a type")
        }
        var frame = ByteBufferAllocator().buffer(capacity: payload.readableBytes - WireLimits.aeadTagBytes)
        let counter = receiveCounter
        var failed = false
        frame.writeWithUnsafeMutableBytes(minimumWritableBytes: payload.readableBytes - WireLimits.aeadTagBytes) {
            out in
            payload.withUnsafeReadableBytes { ciphertext in
                withUnsafeBytes(of: length.bigEndian) { adBytes in
                    do {
                        try receiveKey.open(
                            ciphertext: ciphertext, associatedData: adBytes, counter: counter, into: out)
                    } catch {
                        failed = true
                    }
                }
            }
            return failed ? 0 : payload.readableBytes - WireLimits.aeadTagBytes
        }
        guard !failed else {
            throw SessionError(
                .decryptionFailed, "record \(counter) failed authentication (forged, corrupted, replayed or reordered)")
        }
        receiveCounter += 1
        return frame
    }
}

/// Which UDP packet numbers have been seen: a sliding window like IPsec's and WireGuard's, so a
/// duplicated or replayed datagram is dropped, and one older than the window is refused.
public struct ReplayWindow: Sendable {
    public static let widthPackets: UInt64 = 64
    private var highest: UInt64 = 0
    private var seen: UInt64 = 0  // bit i: packet number highest - i has been seen
    private var any = false

    public init() {}

    public enum Verdict: Equatable, Sendable { case fresh, duplicate, tooOld }

    /// Checks without recording: a packet is recorded only after it authenticates.
    public func check(_ packetNumber: UInt64) -> Verdict {
        guard any, packetNumber <= highest else { return .fresh }
        let age = highest - packetNumber
        if age >= Self.widthPackets { return .tooOld }
        return seen & (1 << age) != 0 ? .duplicate : .fresh
    }

    public mutating func record(_ packetNumber: UInt64) {
        guard any else {
            any = true
            highest = packetNumber
            seen = 1
            return
        }
        if packetNumber > highest {
            let shift = packetNumber - highest
            seen = shift >= Self.widthPackets ? 0 : seen << shift
            seen |= 1
            highest = packetNumber
        } else {
            seen |= 1 << (highest - packetNumber)
        }
    }
}
