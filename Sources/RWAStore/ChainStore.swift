import Foundation
import RWACrypto
import RWALedger
import RWAWire

/// What the arbiter keeps durably: the genesis, the committed blocks with their transactions, and
/// the state after the last block. Two implementations pass one conformance suite
/// (`ChainStoreConformanceTests`): `LedgerStore`, the SQLite file, and `InMemoryChainStore`, for
/// tests and the simulation, whose contents outlive a simulated crash of the node holding it.
public protocol ChainStore: AnyObject, Sendable {
    func genesis() throws -> Genesis
    /// The last committed block's header; nil before the first block.
    func tip() throws -> BlockHeader?
    func header(height: UInt64) throws -> BlockHeader?
    /// Blocks `from`, `from + 1`, … up to `limit` of them, with their transactions, in order.
    func blocks(from height: UInt64, limit: Int) throws -> [Block]
    func transaction(hash: Digest32) throws -> StoredTransaction?
    func stateRow(key: [UInt8]) throws -> [UInt8]?
    /// The state rows whose keys start with `prefix`, in the keys' byte order.
    func stateRows(prefix: [UInt8], limit: Int) throws -> [StateRow]
    /// Writes the next block (its height must follow the tip's) and every state row it changed,
    /// all or nothing. When this returns, the block survives a crash.
    func commit(_ block: Block, changes: [(key: StateKey, row: [UInt8]?)]) throws
}

extension ChainStore {
    /// The ledger as of the last committed block.
    public func loadLedger() throws -> Ledger {
        try Ledger(genesis: try genesis(), tip: try tip(), rows: try stateRows(prefix: [], limit: .max))
    }
}

/// A committed transaction and where it is.
public struct StoredTransaction: Sendable {
    public var transaction: CommittedTransaction
    public var height: UInt64
    public var index: UInt32

    public init(transaction: CommittedTransaction, height: UInt64, index: UInt32) {
        self.transaction = transaction
        self.height = height
        self.index = index
    }
}

/// A `ChainStore` in memory: the same contract as the SQLite file, without the disk.
public final class InMemoryChainStore: ChainStore, @unchecked Sendable {
    private let lock = NSLock()
    private let storedGenesis: Genesis
    private var headers: [BlockHeader] = []
    private var transactions: [[CommittedTransaction]] = []
    private var locations: [Digest32: (height: UInt64, index: UInt32)] = [:]
    private var state: [[UInt8]: [UInt8]] = [:]

    public init(genesis: Genesis, genesisRows: [StateRow]) {
        storedGenesis = genesis
        for row in genesisRows { state[row.key] = row.value }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    public func genesis() throws -> Genesis { storedGenesis }

    public func tip() throws -> BlockHeader? { locked { headers.last } }

    public func header(height: UInt64) throws -> BlockHeader? {
        locked { height >= 1 && height <= UInt64(headers.count) ? headers[Int(height - 1)] : nil }
    }

    public func blocks(from height: UInt64, limit: Int) throws -> [Block] {
        locked {
            guard limit > 0, height <= UInt64(headers.count) else { return [] }
            let first = Int(max(height, 1) - 1)
            let last = min(headers.count, first + limit)
            return (first..<last).map { Block(header: headers[$0], transactions: transactions[$0]) }
        }
    }

    public func transaction(hash: Digest32) throws -> StoredTransaction? {
        locked {
            guard let (height, index) = locations[hash] else { return nil }
            return StoredTransaction(
                transaction: transactions[Int(height - 1)][Int(index)], height: height, index: index)
        }
    }

    public func stateRow(key: [UInt8]) throws -> [UInt8]? { locked { state[key] } }

    public func stateRows(prefix: [UInt8], limit: Int) throws -> [StateRow] {
        locked {
            state.filter { $0.key.starts(with: prefix) }.map { StateRow(key: $0.key, value: $0.value) }
                .sorted { $0.key.lexicographicallyPrecedes($1.key) }.prefix(limit).map { $0 }
        }
    }

    public func commit(_ block: Block, changes: [(key: StateKey, row: [UInt8]?)]) throws {
        try locked {
            guard block.header.height == UInt64(headers.count) + 1 else {
                throw StoreError("block \(block.header.height) does not follow the tip at \(headers.count)")
            }
            if let repeated = block.transactions.first(where: { locations[$0.hash] != nil }) {
                throw StoreError("transaction \(repeated.hash) is already stored")
            }
            headers.append(block.header)
            transactions.append(block.transactions)
            for (index, transaction) in block.transactions.enumerated() {
                locations[transaction.hash] = (block.header.height, UInt32(index))
            }
            for change in changes { state[change.key.bytes] = change.row }
        }
    }
}
