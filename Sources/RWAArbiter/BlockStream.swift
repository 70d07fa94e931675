import RWALedger
import RWAWire

/// A subscriber's side of the block stream, pure: it puts `block_committed` and the
/// `transaction_committed` messages that follow it back together into blocks, and refuses a
/// stream that breaks the order `proto/` gives (a transaction outside its block, a block cut short).
public struct BlockStreamAssembler: Sendable {
    private var partial: (header: BlockHeader, transactions: [CommittedTransaction])?

    public init() {}

    /// Takes the next event of the stream; returns the block it completes, if any.
    public mutating func take(_ message: ArbiterMessage) throws(WireError) -> Block? {
        switch message {
        case .blockCommitted(let headerBytes):
            if let unfinished = partial {
                throw .invalidValue(
                    field: "block_committed", reason: "block \(unfinished.header.height) ended before its transactions")
            }
            partial = (try BlockHeader(decoding: headerBytes), [])
        case .transactionCommitted(let info):
            guard let current = partial, info.height == current.header.height,
                Int(info.index) == current.transactions.count
            else {
                throw .invalidValue(field: "transaction_committed", reason: "transaction outside its block")
            }
            partial?.transactions.append(CommittedTransaction(bytes: info.transaction, createdID: info.createdID))
        case .submitTransaction, .getState, .getBlock, .getTransaction, .subscribeBlocks, .getStatus,
            .transactionReceipt, .transactionRejected, .stateAnswer, .blockAnswer, .transactionAnswer, .statusAnswer,
            .requestFailed:
            throw .invalidValue(field: "\(message.type)", reason: "not an event of the block stream")
        }
        guard let complete = partial, complete.transactions.count == Int(complete.header.transactionCount) else {
            return nil
        }
        partial = nil
        return Block(header: complete.header, transactions: complete.transactions)
    }
}
