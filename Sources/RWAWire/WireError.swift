/// A peer's bytes that do not follow `proto/README.md`. Every case names the field and the rule, so
/// the error frame sent back and the log line say exactly what was wrong.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the field needs.
    case truncated(field: String, needed: Int, available: Int)
    /// Bytes left over after the last field of a message.
    case trailingBytes(message: String, count: Int)
    /// A length prefix above the field's declared maximum.
    case lengthAboveMaximum(field: String, length: Int, maximum: Int)
    /// A value with another encoding than its one canonical form.
    case nonCanonical(field: String, reason: String)
    /// A value that is well formed but not allowed (bad UTF-8, for example).
    case invalidValue(field: String, reason: String)
    /// An even (required) message type this implementation does not know.
    case unknownRequiredType(UInt16)
    /// A record whose length prefix is above the limit: refused before any allocation.
    case recordTooLarge(length: Int, maximum: Int)
    /// A record too short to hold a message type.
    case recordTooShort(length: Int)

    public var description: String {
        switch self {
        case .truncated(let field, let needed, let available):
            return "truncated \(field): needs \(needed) bytes, \(available) available"
        case .trailingBytes(let message, let count):
            return "\(count) trailing bytes after \(message)"
        case .lengthAboveMaximum(let field, let length, let maximum):
            return "\(field) length \(length) is above its maximum \(maximum)"
        case .nonCanonical(let field, let reason):
            return "non-canonical \(field): \(reason)"
        case .invalidValue(let field, let reason):
            return "invalid \(field): \(reason)"
        case .unknownRequiredType(let type):
            return "unknown required (even) message type 0x\(String(type, radix: 16))"
        case .recordTooLarge(let length, let maximum):
            return "record length \(length) is above the limit \(maximum)"
        case .recordTooShort(let length):
            return "record length \(length) is too short for a message type"
        }
    }

    /// The error code this failure is reported with in an `error` frame (proto/README.md, "Error codes").
    public var code: ErrorCode {
        switch self {
        case .recordTooLarge: return .frameTooLarge
        case .unknownRequiredType: return .unknownRequiredMessage
        case .truncated, .trailingBytes, .lengthAboveMaximum, .nonCanonical, .invalidValue, .recordTooShort:
            return .malformedFrame
        }
    }
}
