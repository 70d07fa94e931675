import RWACrypto

/// A message's `u16` type number. Even types are required: a peer that does not know one closes
/// the session. Odd types are optional: a peer that does not know one ignores it (BOLT 1's rule).
public struct MessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let hello = MessageType(rawValue: 0x0010)
    public static let helloReply = MessageType(rawValue: 0x0012)
    public static let helloFinish = MessageType(rawValue: 0x0014)
    public static let error = MessageType(rawValue: 0x0020)
    public static let warning = MessageType(rawValue: 0x0021)
    public static let ping = MessageType(rawValue: 0x0022)
    public static let pong = MessageType(rawValue: 0x0023)
    public static let signedNote = MessageType(rawValue: 0x0030)

    public var isRequired: Bool { rawValue % 2 == 0 }

    public var family: MessageFamily { MessageFamily(type: self) }

    public var description: String { "0x" + String(rawValue, radix: 16) }

    /// The spec's name of the type (`lease_update`), or its number in hex for one we do not know:
    /// what logs and metrics label frames with.
    public var name: String { Self.names[rawValue] ?? description }

    /// Every type proto/README.md defines, by its heading there (a test reads the headings).
    public static let names: [UInt16: String] = [
        0x0010: "hello",
        0x0012: "hello_reply",
        0x0014: "hello_finish",
        0x0020: "error",
        0x0021: "warning",
        0x0022: "ping",
        0x0023: "pong",
        0x0030: "signed_note",
        0x0100: "submit_transaction",
        0x0102: "get_state",
        0x0104: "get_block",
        0x0106: "get_transaction",
        0x0108: "subscribe_blocks",
        0x010A: "get_status",
        0x0200: "transaction_receipt",
        0x0202: "transaction_rejected",
        0x0204: "state_answer",
        0x0206: "block_answer",
        0x0208: "transaction_answer",
        0x020A: "status_answer",
        0x020C: "request_failed",
        0x0300: "block_committed",
        0x0302: "transaction_committed",
        0x0600: "exchange_quote",
        0x0602: "exchange_get_market",
        0x0604: "exchange_get_trades",
        0x0606: "exchange_submit_order",
        0x0700: "exchange_quote_answer",
        0x0702: "exchange_market_answer",
        0x0704: "exchange_trades_answer",
        0x0706: "exchange_order_filled",
        0x0708: "exchange_order_rejected",
        0x070A: "exchange_failed",
        0x0400: "lease_open_request",
        0x0402: "lease_open_accept",
        0x0404: "lease_open_refused",
        0x0410: "lease_update",
        0x0412: "lease_countersign",
        0x0414: "lease_update_refused",
        0x0416: "lease_reestablish",
        0x0418: "lease_latest_state",
        0x0420: "lease_get_offers",
        0x0422: "lease_offers",
    ]
}

/// The reserved ranges of type numbers (proto/README.md, "Message type ranges"). Families from
/// `arbiterRequest` on share one envelope: their body starts with a `u64` request id that a
/// response echoes (0 for unsolicited events).
public enum MessageFamily: Equatable, Sendable {
    /// 0x0000–0x00FF: handshake, errors, keepalive, notes.
    case session
    /// 0x0100–0x01FF: transactions and queries sent to the arbiter.
    case arbiterRequest
    /// 0x0200–0x02FF: the arbiter's receipts, rejections and query answers.
    case arbiterResponse
    /// 0x0300–0x03FF: events pushed to subscribers (blocks, channel and pool events).
    case arbiterEvent
    /// 0x0400–0x05FF: lease channel proposals, countersignatures, closes.
    case leaseChannel
    /// 0x0600–0x07FF: exchange quotes, market data, orders and fills.
    case exchange
    /// 0x0800–0x7FFF: unassigned; future families are allocated here.
    case unassigned
    /// 0x8000–0xFFFF: private and experimental use, never allocated by the specification.
    case privateUse

    public init(type: MessageType) {
        switch type.rawValue {
        case 0x0000...0x00FF: self = .session
        case 0x0100...0x01FF: self = .arbiterRequest
        case 0x0200...0x02FF: self = .arbiterResponse
        case 0x0300...0x03FF: self = .arbiterEvent
        case 0x0400...0x05FF: self = .leaseChannel
        case 0x0600...0x07FF: self = .exchange
        case 0x0800...0x7FFF: self = .unassigned
        default: self = .privateUse
        }
    }

    /// Whether bodies of this family start with the `u64` request id envelope.
    public var hasRequestEnvelope: Bool {
        switch self {
        case .arbiterRequest, .arbiterResponse, .arbiterEvent, .leaseChannel, .exchange: return true
        case .session, .unassigned, .privateUse: return false
        }
    }
}

/// Well-known chain ids. A real chain's id is the hash of its genesis (arbiter issue); until an
/// arbiter exists, peers that are not given one use the development network's.
public enum ChainIDs {
    /// BLAKE2b-256 of the ASCII bytes `rwanet-devnet`.
    public static let devnet = Blake2b.hash256(Array("rwanet-devnet".utf8))
}
