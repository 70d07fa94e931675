/// Error codes carried by `error` and `warning` frames. Ranges are reserved per layer, like the
/// message types (proto/README.md, "Error codes"); numbers are stable and never reused.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    // 0x0001–0x00FF: session layer.
    public static let malformedFrame = ErrorCode(rawValue: 0x0001)
    public static let frameTooLarge = ErrorCode(rawValue: 0x0002)
    public static let unknownRequiredMessage = ErrorCode(rawValue: 0x0003)
    public static let badSignature = ErrorCode(rawValue: 0x0004)
    public static let decryptionFailed = ErrorCode(rawValue: 0x0005)
    public static let unexpectedMessage = ErrorCode(rawValue: 0x0006)
    public static let unsupportedVersion = ErrorCode(rawValue: 0x0007)
    public static let unknownRequiredFeature = ErrorCode(rawValue: 0x0008)
    public static let wrongChain = ErrorCode(rawValue: 0x0009)
    public static let unexpectedPeer = ErrorCode(rawValue: 0x000A)
    public static let handshakeTimeout = ErrorCode(rawValue: 0x000B)
    public static let idleTimeout = ErrorCode(rawValue: 0x000C)
    public static let overloaded = ErrorCode(rawValue: 0x000D)
    public static let deliveryFailed = ErrorCode(rawValue: 0x000E)
    /// Not a failure: the sender ends the session normally.
    public static let closed = ErrorCode(rawValue: 0x000F)
    // 0x0100–0x01FF: ledger rejections (arbiter issue). 0x0200–0x02FF: lease channel.
    // 0x0300–0x03FF: exchange. 0x8000–0xFFFF: private use.

    public var name: String {
        switch self {
        case .malformedFrame: return "malformed_frame"
        case .frameTooLarge: return "frame_too_large"
        case .unknownRequiredMessage: return "unknown_required_message"
        case .badSignature: return "bad_signature"
        case .decryptionFailed: return "decryption_failed"
        case .unexpectedMessage: return "unexpected_message"
        case .unsupportedVersion: return "unsupported_version"
        case .unknownRequiredFeature: return "unknown_required_feature"
        case .wrongChain: return "wrong_chain"
        case .unexpectedPeer: return "unexpected_peer"
        case .handshakeTimeout: return "handshake_timeout"
        case .idleTimeout: return "idle_timeout"
        case .overloaded: return "overloaded"
        case .deliveryFailed: return "delivery_failed"
        case .closed: return "closed"
        default:
            let digits = String(rawValue, radix: 16)
            return "code_0x" + String(repeating: "0", count: 4 - digits.count) + digits
        }
    }

    public var description: String { name }
}
