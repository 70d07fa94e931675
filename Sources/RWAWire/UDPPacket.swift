import NIOCore

/// UDP datagrams (proto/README.md, "UDP packets"). One datagram carries at most one frame:
///
/// - `handshake` (0x01): `u8 kind | frame`, plaintext; only `hello`, `hello_reply`,
///   `hello_finish` and `error` travel this way.
/// - `data` (0x02): `u8 kind | u64 packet number | sealed(u64 ack next | u64 selective acks |
///   u64 sequence | frame)`.
/// - `ack` (0x03): `u8 kind | u64 packet number | sealed(u64 ack next | u64 selective acks)`.
/// - `cookie` (0x04): `u8 kind | cookie[16]`, a responder under load answering a `hello`
///   without keeping any state.
/// - `cookie handshake` (0x05): `u8 kind | cookie[16] | frame`, a `hello` sent again with the
///   cookie, which proves the initiator receives at its address.
///
/// The associated data of the seal is the 9-byte header; the packet number is the AEAD counter.
public enum UDPPacketKind: UInt8, Sendable {
    case handshake = 0x01
    case data = 0x02
    case ack = 0x03
    case cookie = 0x04
    case cookieHandshake = 0x05
}

extension WireLimits {
    /// A UDP cookie's length (proto/README.md, "UDP cookies").
    public static let udpCookieBytes = 16
}

/// The cumulative and selective acknowledgement carried by every sealed UDP packet: every sequence
/// number below `ackNext` has arrived, and bit `i` of `selectiveAcks` says `ackNext + 1 + i` has.
public struct Acknowledgement: Equatable, Sendable {
    public var ackNext: UInt64
    public var selectiveAcks: UInt64

    public init(ackNext: UInt64, selectiveAcks: UInt64) {
        self.ackNext = ackNext
        self.selectiveAcks = selectiveAcks
    }
}

/// The plaintext inside a sealed UDP packet.
public struct UDPSealedContent: Equatable, Sendable {
    public var acknowledgement: Acknowledgement
    /// The frame's reliable sequence number and bytes (`u16 type | body`); nil in an ack packet.
    public var sequencedFrame: (sequence: UInt64, frame: ByteBuffer)?

    public init(acknowledgement: Acknowledgement, sequencedFrame: (sequence: UInt64, frame: ByteBuffer)?) {
        self.acknowledgement = acknowledgement
        self.sequencedFrame = sequencedFrame
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.acknowledgement == b.acknowledgement && a.sequencedFrame?.sequence == b.sequencedFrame?.sequence
            && a.sequencedFrame?.frame == b.sequencedFrame?.frame
    }

    public var kind: UDPPacketKind { sequencedFrame == nil ? .ack : .data }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(acknowledgement.ackNext, endianness: .big)
        buffer.writeInteger(acknowledgement.selectiveAcks, endianness: .big)
        if let (sequence, frame) = sequencedFrame {
            buffer.writeInteger(sequence, endianness: .big)
            buffer.writeImmutableBuffer(frame)
        }
    }

    public static func decode(kind: UDPPacketKind, plaintext: ByteBuffer) throws(WireError) -> UDPSealedContent {
        var reader = plaintext
        let ack = Acknowledgement(
            ackNext: try reader.readInteger(field: "udp.ack_next"),
            selectiveAcks: try reader.readInteger(field: "udp.selective_acks"))
        switch kind {
        case .ack:
            guard reader.readableBytes == 0 else {
                throw .trailingBytes(message: "udp ack", count: reader.readableBytes)
            }
            return UDPSealedContent(acknowledgement: ack, sequencedFrame: nil)
        case .data:
            let sequence: UInt64 = try reader.readInteger(field: "udp.sequence")
            guard reader.readableBytes >= 2 else {
                throw .truncated(field: "frame type", needed: 2, available: reader.readableBytes)
            }
            return UDPSealedContent(acknowledgement: ack, sequencedFrame: (sequence, reader))
        case .handshake, .cookie, .cookieHandshake:
            preconditionFailure("\(kind) packets are not sealed")
        }
    }

    /// Header of a sealed packet: the AEAD's associated data.
    public static func header(kind: UDPPacketKind, packetNumber: UInt64) -> [UInt8] {
        var header: [UInt8] = [kind.rawValue]
        for shift in stride(from: 56, through: 0, by: -8) {
            header.append(UInt8(truncatingIfNeeded: packetNumber >> UInt64(shift)))
        }
        return header
    }
}
