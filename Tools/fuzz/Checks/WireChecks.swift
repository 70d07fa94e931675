import NIOCore
import RWAWire

/// The codecs of `proto/`: TCP records, UDP packet contents and every message. Whatever decodes
/// re-encodes to the same bytes (one canonical encoding); whatever fails, fails with a typed
/// `WireError` (typed throws make anything else a compile error), never a trap.
public enum WireChecks {
    public static func check(_ bytes: [UInt8]) {
        checkFrame(bytes)
        checkRecords(bytes)
        checkUDPContent(bytes)
    }

    /// One frame: decoded, it re-encodes to exactly its bytes.
    static func checkFrame(_ bytes: [UInt8]) {
        guard let message = try? Message.decode(frame: ByteBuffer(bytes: bytes)) else { return }
        // An unknown odd type is skipped, not kept: it has nothing to re-encode.
        if case .ignored = message { return }
        guard message.frameBytes() == bytes else {
            violated("\(message.type) decoded from \(bytes.count) bytes re-encodes to other bytes")
        }
    }

    /// A TCP byte stream: records come off whole, each no longer than its limit, and the reader
    /// never moves past what arrived.
    static func checkRecords(_ bytes: [UInt8]) {
        var stream = ByteBuffer(bytes: bytes)
        while true {
            let before = stream.readableBytes
            guard let payload = try? TCPRecord.readPayload(&stream) else { return }
            guard payload.readableBytes <= WireLimits.tcpRecordBytesMax,
                before - stream.readableBytes == TCPRecord.lengthPrefixBytes + payload.readableBytes
            else { violated("a record's payload disagrees with its length prefix") }
            checkFrame(Array(payload.readableBytesView))
        }
    }

    /// The sealed content of a UDP packet (acknowledgement, then a sequenced frame for data).
    static func checkUDPContent(_ bytes: [UInt8]) {
        // Handshake packets are not sealed: the transport never asks for their content.
        guard let first = bytes.first, let kind = UDPPacketKind(rawValue: first), kind == .data || kind == .ack else {
            return
        }
        let plaintext = ByteBuffer(bytes: bytes.dropFirst())
        guard let content = try? UDPSealedContent.decode(kind: kind, plaintext: plaintext) else { return }
        guard content.kind == kind else { violated("a \(kind) packet decoded as \(content.kind)") }
        var encoded = ByteBuffer()
        content.encode(into: &encoded)
        guard Array(encoded.readableBytesView) == Array(bytes.dropFirst()) else {
            violated("a \(kind) packet's content re-encodes to other bytes")
        }
    }
}
