import NIOCore
import RWACrypto

extension MessageType {
    public static let submitTransaction = MessageType(rawValue: 0x0100)
    public static let getState = MessageType(rawValue: 0x0102)
    public static let getBlock = MessageType(rawValue: 0x0104)
    public static let getTransaction = MessageType(rawValue: 0x0106)
    public static let subscribeBlocks = MessageType(rawValue: 0x0108)
    public static let getStatus = MessageType(rawValue: 0x010A)
    public static let transactionReceipt = MessageType(rawValue: 0x0200)
    public static let transactionRejected = MessageType(rawValue: 0x0202)
    public static let stateAnswer = MessageType(rawValue: 0x0204)
    public static let blockAnswer = MessageType(rawValue: 0x0206)
    public static let transactionAnswer = MessageType(rawValue: 0x0208)
    public static let statusAnswer = MessageType(rawValue: 0x020A)
    public static let requestFailed = MessageType(rawValue: 0x020C)
    public static let blockCommitted = MessageType(rawValue: 0x0300)
    public static let transactionCommitted = MessageType(rawValue: 0x0302)
}

extension WireLimits {
    /// A transaction, a block header or a state key travels as opaque bytes whose layout
    /// proto/README.md gives ("Transactions", "Blocks", "State records"). Each bound keeps a
    /// message inside one UDP frame.
    public static let ledgerTransactionBytesMax = 1024
    public static let stateKeyBytesMax = 48
    public static let stateValueBytesMax = 1024
    public static let blockHeaderBytesMax = 256
}

/// The messages between peers and the arbiter (proto/README.md, "Arbiter messages"). Every body
/// starts with the `u64` request id the answer echoes; pushed events carry 0. Transactions,
/// headers and state records are carried as bytes and decoded by `RWALedger`, which owns their
/// layout; this module checks only their length.
public enum ArbiterMessage: Equatable, Sendable {
    case submitTransaction(requestID: UInt64, transaction: [UInt8])
    case getState(requestID: UInt64, key: [UInt8])
    case getBlock(requestID: UInt64, height: UInt64)
    case getTransaction(requestID: UInt64, hash: Digest32)
    /// Pushes every block from `fromHeight` on: first the stored ones, then each as it commits.
    case subscribeBlocks(requestID: UInt64, fromHeight: UInt64)
    case getStatus(requestID: UInt64)
    case transactionReceipt(requestID: UInt64, hash: Digest32, height: UInt64, index: UInt32, createdID: UInt64)
    case transactionRejected(requestID: UInt64, hash: Digest32, code: ErrorCode, reason: String)
    case stateAnswer(requestID: UInt64, key: [UInt8], value: [UInt8]?)
    case blockAnswer(requestID: UInt64, header: [UInt8]?)
    case transactionAnswer(requestID: UInt64, found: CommittedTransactionInfo?)
    case statusAnswer(
        requestID: UInt64, chainID: Digest32, height: UInt64, tipHash: Digest32, tipTimeMilliseconds: UInt64)
    case requestFailed(requestID: UInt64, code: ErrorCode, reason: String)
    case blockCommitted(header: [UInt8])
    /// Follows its `block_committed`, one per transaction, in index order.
    case transactionCommitted(CommittedTransactionInfo)

    public var type: MessageType {
        switch self {
        case .submitTransaction: return .submitTransaction
        case .getState: return .getState
        case .getBlock: return .getBlock
        case .getTransaction: return .getTransaction
        case .subscribeBlocks: return .subscribeBlocks
        case .getStatus: return .getStatus
        case .transactionReceipt: return .transactionReceipt
        case .transactionRejected: return .transactionRejected
        case .stateAnswer: return .stateAnswer
        case .blockAnswer: return .blockAnswer
        case .transactionAnswer: return .transactionAnswer
        case .statusAnswer: return .statusAnswer
        case .requestFailed: return .requestFailed
        case .blockCommitted: return .blockCommitted
        case .transactionCommitted: return .transactionCommitted
        }
    }

    /// The request id an answer echoes (0 for events).
    public var requestID: UInt64 {
        switch self {
        case .submitTransaction(let id, _), .getState(let id, _), .getBlock(let id, _), .getTransaction(let id, _),
            .subscribeBlocks(let id, _), .getStatus(let id), .transactionReceipt(let id, _, _, _, _),
            .transactionRejected(let id, _, _, _), .stateAnswer(let id, _, _), .blockAnswer(let id, _),
            .transactionAnswer(let id, _), .statusAnswer(let id, _, _, _, _), .requestFailed(let id, _, _):
            return id
        case .blockCommitted, .transactionCommitted:
            return 0
        }
    }

    static func decode(type: MessageType, body: inout ByteBuffer) throws(WireError) -> ArbiterMessage? {
        let name = "\(type)"
        func requestID() throws(WireError) -> UInt64 { try body.readInteger(field: "\(name).request_id") }
        func reason() throws(WireError) -> String {
            try body.readText(field: "\(name).reason", maximum: WireLimits.errorTextBytesMax)
        }
        func eventID() throws(WireError) {
            let id: UInt64 = try body.readInteger(field: "\(name).request_id")
            guard id == 0 else { throw .invalidValue(field: "\(name).request_id", reason: "an event carries 0") }
        }
        switch type {
        case .submitTransaction:
            return .submitTransaction(
                requestID: try requestID(),
                transaction: try body.readVariableBytes(
                    field: "\(name).transaction", maximum: WireLimits.ledgerTransactionBytesMax))
        case .getState:
            return .getState(
                requestID: try requestID(),
                key: try body.readVariableBytes(field: "\(name).key", maximum: WireLimits.stateKeyBytesMax))
        case .getBlock:
            return .getBlock(requestID: try requestID(), height: try body.readInteger(field: "\(name).height"))
        case .getTransaction:
            return .getTransaction(requestID: try requestID(), hash: try body.readDigest(field: "\(name).hash"))
        case .subscribeBlocks:
            return .subscribeBlocks(
                requestID: try requestID(), fromHeight: try body.readInteger(field: "\(name).from_height"))
        case .getStatus:
            return .getStatus(requestID: try requestID())
        case .transactionReceipt:
            return .transactionReceipt(
                requestID: try requestID(), hash: try body.readDigest(field: "\(name).hash"),
                height: try body.readInteger(field: "\(name).height"),
                index: try body.readInteger(field: "\(name).index"),
                createdID: try body.readInteger(field: "\(name).created_id"))
        case .transactionRejected:
            return .transactionRejected(
                requestID: try requestID(), hash: try body.readDigest(field: "\(name).hash"),
                code: ErrorCode(rawValue: try body.readInteger(field: "\(name).code")), reason: try reason())
        case .stateAnswer:
            let id = try requestID()
            let key = try body.readVariableBytes(field: "\(name).key", maximum: WireLimits.stateKeyBytesMax)
            let found = try body.readBool(field: "\(name).found")
            let value =
                found ? try body.readVariableBytes(field: "\(name).value", maximum: WireLimits.stateValueBytesMax) : nil
            return .stateAnswer(requestID: id, key: key, value: value)
        case .blockAnswer:
            let id = try requestID()
            let found = try body.readBool(field: "\(name).found")
            let header =
                found
                ? try body.readVariableBytes(field: "\(name).header", maximum: WireLimits.blockHeaderBytesMax) : nil
            return .blockAnswer(requestID: id, header: header)
        case .transactionAnswer:
            let id = try requestID()
            let found = try body.readBool(field: "\(name).found")
            return .transactionAnswer(requestID: id, found: found ? try CommittedTransactionInfo(decoding: &body) : nil)
        case .statusAnswer:
            return .statusAnswer(
                requestID: try requestID(), chainID: try body.readDigest(field: "\(name).chain_id"),
                height: try body.readInteger(field: "\(name).height"),
                tipHash: try body.readDigest(field: "\(name).tip_hash"),
                tipTimeMilliseconds: try body.readInteger(field: "\(name).tip_time"))
        case .requestFailed:
            return .requestFailed(
                requestID: try requestID(), code: ErrorCode(rawValue: try body.readInteger(field: "\(name).code")),
                reason: try reason())
        case .blockCommitted:
            try eventID()
            return .blockCommitted(
                header: try body.readVariableBytes(field: "\(name).header", maximum: WireLimits.blockHeaderBytesMax))
        case .transactionCommitted:
            try eventID()
            return .transactionCommitted(try CommittedTransactionInfo(decoding: &body))
        default:
            return nil
        }
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(requestID, endianness: .big)
        switch self {
        case .submitTransaction(_, let transaction):
            buffer.writeVariableBytes(transaction, maximum: WireLimits.ledgerTransactionBytesMax)
        case .getState(_, let key):
            buffer.writeVariableBytes(key, maximum: WireLimits.stateKeyBytesMax)
        case .getBlock(_, let height):
            buffer.writeInteger(height, endianness: .big)
        case .getTransaction(_, let hash):
            buffer.writeDigest(hash)
        case .subscribeBlocks(_, let fromHeight):
            buffer.writeInteger(fromHeight, endianness: .big)
        case .getStatus:
            break
        case .transactionReceipt(_, let hash, let height, let index, let createdID):
            buffer.writeDigest(hash)
            buffer.writeInteger(height, endianness: .big)
            buffer.writeInteger(index, endianness: .big)
            buffer.writeInteger(createdID, endianness: .big)
        case .transactionRejected(_, let hash, let code, let reason):
            buffer.writeDigest(hash)
            buffer.writeInteger(code.rawValue, endianness: .big)
            buffer.writeText(ErrorReport(code: code, text: reason).text, maximum: WireLimits.errorTextBytesMax)
        case .stateAnswer(_, let key, let value):
            buffer.writeVariableBytes(key, maximum: WireLimits.stateKeyBytesMax)
            buffer.writeBool(value != nil)
            if let value { buffer.writeVariableBytes(value, maximum: WireLimits.stateValueBytesMax) }
        case .blockAnswer(_, let header):
            buffer.writeBool(header != nil)
            if let header { buffer.writeVariableBytes(header, maximum: WireLimits.blockHeaderBytesMax) }
        case .transactionAnswer(_, let found):
            buffer.writeBool(found != nil)
            found?.encode(into: &buffer)
        case .statusAnswer(_, let chainID, let height, let tipHash, let tipTimeMilliseconds):
            buffer.writeDigest(chainID)
            buffer.writeInteger(height, endianness: .big)
            buffer.writeDigest(tipHash)
            buffer.writeInteger(tipTimeMilliseconds, endianness: .big)
        case .requestFailed(_, let code, let reason):
            buffer.writeInteger(code.rawValue, endianness: .big)
            buffer.writeText(ErrorReport(code: code, text: reason).text, maximum: WireLimits.errorTextBytesMax)
        case .blockCommitted(let header):
            buffer.writeVariableBytes(header, maximum: WireLimits.blockHeaderBytesMax)
        case .transactionCommitted(let info):
            info.encode(into: &buffer)
        }
    }
}

/// Where a committed transaction sits and what it produced, with its bytes.
public struct CommittedTransactionInfo: Equatable, Sendable {
    public var height: UInt64
    public var index: UInt32
    public var createdID: UInt64
    public var transaction: [UInt8]

    public init(height: UInt64, index: UInt32, createdID: UInt64, transaction: [UInt8]) {
        self.height = height
        self.index = index
        self.createdID = createdID
        self.transaction = transaction
    }

    init(decoding body: inout ByteBuffer) throws(WireError) {
        height = try body.readInteger(field: "committed.height")
        index = try body.readInteger(field: "committed.index")
        createdID = try body.readInteger(field: "committed.created_id")
        transaction = try body.readVariableBytes(
            field: "committed.transaction", maximum: WireLimits.ledgerTransactionBytesMax)
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(height, endianness: .big)
        buffer.writeInteger(index, endianness: .big)
        buffer.writeInteger(createdID, endianness: .big)
        buffer.writeVariableBytes(transaction, maximum: WireLimits.ledgerTransactionBytesMax)
    }
}
