/// Every bound of the wire protocol, in one place (proto/README.md, "Limits").
public enum WireLimits {
    /// A frame (`u16 type | body`) at most 64 KiB: big enough for any message we define, small
    /// enough that a hostile length prefix cannot make a peer allocate much.
    public static let frameBytesMax = 65_536
    /// The TCP record length field counts the frame plus, after the handshake, the AEAD tag.
    public static let tcpRecordBytesMax = frameBytesMax + aeadTagBytes
    /// One UDP datagram, at most 1200 bytes so it passes the IPv6 minimum MTU (1280) unfragmented.
    public static let udpDatagramBytesMax = 1200
    /// `u8 kind | u64 packet number`.
    public static let udpHeaderBytes = 9
    /// `u64 ack next | u64 selective acks | u64 sequence` ahead of the frame in a data packet.
    public static let udpReliabilityBytes = 24
    public static let aeadTagBytes = 16
    /// The largest frame one UDP data packet carries; UDP does not fragment frames.
    public static let udpFrameBytesMax = udpDatagramBytesMax - udpHeaderBytes - udpReliabilityBytes - aeadTagBytes
    public static let featureBytesMax = 32
    public static let errorTextBytesMax = 1024
    /// The largest frame before the handshake completes (an `error` with its longest text; a
    /// `hello_reply` is far smaller): a TCP record announcing more before then is refused at
    /// once, so an unauthenticated connection never makes a peer buffer a 64 KiB record.
    public static let handshakeFrameBytesMax = 6 + errorTextBytesMax
    public static let noteBodyBytesMax = 1000
    public static let pingPaddingBytesMax = 1024
}
