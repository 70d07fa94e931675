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
    // 0x0100–0x01FF: ledger rejections (proto/README.md, "Rejection codes"), carried by
    // `transaction_rejected` and `request_failed`, never by a session-closing `error` frame.
    public static let malformedTransaction = ErrorCode(rawValue: 0x0101)
    public static let wrongChainID = ErrorCode(rawValue: 0x0102)
    public static let invalidSignature = ErrorCode(rawValue: 0x0103)
    public static let unknownAccount = ErrorCode(rawValue: 0x0104)
    public static let sequenceReused = ErrorCode(rawValue: 0x0105)
    public static let sequenceAhead = ErrorCode(rawValue: 0x0106)
    public static let insufficientBalance = ErrorCode(rawValue: 0x0107)
    public static let notAuthorized = ErrorCode(rawValue: 0x0108)
    public static let tokenPaused = ErrorCode(rawValue: 0x0109)
    public static let accountFrozen = ErrorCode(rawValue: 0x010A)
    public static let receiverNotVerified = ErrorCode(rawValue: 0x010B)
    public static let countryNotAllowed = ErrorCode(rawValue: 0x010C)
    public static let balanceLimitExceeded = ErrorCode(rawValue: 0x010D)
    public static let holderLimitExceeded = ErrorCode(rawValue: 0x010E)
    public static let unknownToken = ErrorCode(rawValue: 0x010F)
    public static let unknownIdentity = ErrorCode(rawValue: 0x0110)
    public static let zeroAmount = ErrorCode(rawValue: 0x0111)
    public static let supplyExceeded = ErrorCode(rawValue: 0x0112)
    public static let invalidResource = ErrorCode(rawValue: 0x0113)
    public static let alreadyRegistered = ErrorCode(rawValue: 0x0114)
    public static let invalidOperation = ErrorCode(rawValue: 0x0115)
    public static let identityMismatch = ErrorCode(rawValue: 0x0116)
    /// Not a ledger rule: the arbiter's queue is full; the same transaction may be sent again.
    public static let arbiterBusy = ErrorCode(rawValue: 0x0117)
    /// A query the arbiter cannot answer as asked (an unknown key kind, for example).
    public static let badQuery = ErrorCode(rawValue: 0x0118)
    /// Pool operations (purchase mode).
    public static let unknownPool = ErrorCode(rawValue: 0x0119)
    public static let deadlinePassed = ErrorCode(rawValue: 0x011A)
    public static let priceLimit = ErrorCode(rawValue: 0x011B)
    public static let insufficientLiquidity = ErrorCode(rawValue: 0x011C)
    // 0x0200–0x02FF: lease channel. 0x0300–0x03FF: exchange. 0x8000–0xFFFF: private use.
    /// The exchange was sent a transaction that is not an order (`add_liquidity`,
    /// `remove_liquidity`, `swap_exact_in` or `swap_exact_out`).
    public static let notAnOrder = ErrorCode(rawValue: 0x0301)
    /// The exchange cannot reach the arbiter, or the order's outcome is unknown to it.
    public static let exchangeUnavailable = ErrorCode(rawValue: 0x0302)

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
        case .malformedTransaction: return "malformed_transaction"
        case .wrongChainID: return "wrong_chain_id"
        case .invalidSignature: return "invalid_signature"
        case .unknownAccount: return "unknown_account"
        case .sequenceReused: return "sequence_reused"
        case .sequenceAhead: return "sequence_ahead"
        case .insufficientBalance: return "insufficient_balance"
        case .notAuthorized: return "not_authorized"
        case .tokenPaused: return "token_paused"
        case .accountFrozen: return "account_frozen"
        case .receiverNotVerified: return "receiver_not_verified"
        case .countryNotAllowed: return "country_not_allowed"
        case .balanceLimitExceeded: return "balance_limit_exceeded"
        case .holderLimitExceeded: return "holder_limit_exceeded"
        case .unknownToken: return "unknown_token"
        case .unknownIdentity: return "unknown_identity"
        case .zeroAmount: return "zero_amount"
        case .supplyExceeded: return "supply_exceeded"
        case .invalidResource: return "invalid_resource"
        case .alreadyRegistered: return "already_registered"
        case .invalidOperation: return "invalid_operation"
        case .identityMismatch: return "identity_mismatch"
        case .arbiterBusy: return "arbiter_busy"
        case .badQuery: return "bad_query"
        case .unknownPool: return "unknown_pool"
        case .deadlinePassed: return "deadline_passed"
        case .priceLimit: return "price_limit"
        case .insufficientLiquidity: return "insufficient_liquidity"
        case .notAnOrder: return "not_an_order"
        case .exchangeUnavailable: return "exchange_unavailable"
        default:
            let digits = String(rawValue, radix: 16)
            return "code_0x" + String(repeating: "0", count: 4 - digits.count) + digits
        }
    }

    public var description: String { name }
}
