import NIOCore

/// TCP records (proto/README.md, "TCP records"): `u32 length | payload`. Before the handshake
/// completes the payload is a plaintext frame; after, it is the frame sealed with the session's
/// AEAD (ciphertext and 16-byte tag), the length prefix being the associated data.
public enum TCPRecord {
    public static let lengthPrefixBytes = 4

    /// The payload length announced at the reader index, checked against `maximum` before anything
    /// is allocated; nil while fewer than four bytes have arrived.
    public static func peekPayloadLength(_ buffer: ByteBuffer, maximum: Int = WireLimits.tcpRecordBytesMax)
        throws(WireError) -> Int?
    {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return nil
        }
        guard length <= maximum else { throw .recordTooLarge(length: Int(length), maximum: maximum) }
        guard length >= 2 else { throw .recordTooShort(length: Int(length)) }
        return Int(length)
    }

    /// Takes one whole record's payload off `buffer`, or nil if it has not fully arrived.
    public static func readPayload(_ buffer: inout ByteBuffer, maximum: Int = WireLimits.tcpRecordBytesMax)
        throws(WireError) -> ByteBuffer?
    {
        guard let length = try peekPayloadLength(buffer, maximum: maximum),
            buffer.readableBytes >= lengthPrefixBytes + length
        else { return nil }
        buffer.moveReaderIndex(forwardBy: lengthPrefixBytes)
        return buffer.readSlice(length: length)!
    }
}
