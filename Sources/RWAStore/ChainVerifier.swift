import RWACrypto
import RWALedger
import RWAWire

/// `rwa-arbiter verify`: replays a chain database from its genesis and checks every stored byte
/// against what the replay says it must be: each block's hash, signature, parent and
/// transactions root; each transaction's hash, signature and result; and, at the end, every
/// state row. Signatures of a batch of blocks are checked in parallel.
public enum ChainVerifier {
    public struct Report: Sendable, Equatable {
        public var height: UInt64
        public var transactions: Int
        public var stateRows: Int
        public var tipHash: Digest32
    }

    public static func verify(_ store: LedgerStore, batchBlocks: Int = 64) throws -> Report {
        let genesis = try store.genesis()
        var ledger = Ledger(genesis: genesis)
        _ = ledger.takeStateChanges()
        let tipHeight = try store.tip()?.height ?? 0
        let problems = try store.structuralProblems(tipHeight: tipHeight)
        guard problems.isEmpty else { throw StoreError("database structure: " + problems.joined(separator: "; ")) }
        var transactionCount = 0
        var next: UInt64 = 1
        while next <= tipHeight {
            let blocks = try store.blocks(from: next, limit: batchBlocks)
            guard !blocks.isEmpty else { throw StoreError("block \(next) is missing") }
            let all = blocks.flatMap(\.transactions)
            let results = Transaction.verify(batch: all.map(\.bytes), chainID: ledger.chainID)
            var offset = 0
            for block in blocks {
                let height = block.header.height
                guard height == next else { throw StoreError("block \(next) is missing (found \(height))") }
                guard try store.storedBlockHash(height: height) == block.header.hash else {
                    throw StoreError("block \(height): stored hash differs from the hash of its header")
                }
                let stored = try store.storedTransactionHashes(height: height)
                guard stored.count == block.transactions.count else {
                    throw StoreError("block \(height): \(stored.count) transactions stored")
                }
                for (position, entry) in stored.enumerated() {
                    guard entry.index == position, entry.hash == block.transactions[position].hash.bytes else {
                        throw StoreError(
                            "block \(height): transaction \(position) is stored under another hash or index")
                    }
                }
                var verified: [VerifiedTransaction] = []
                for (index, result) in results[offset..<offset + block.transactions.count].enumerated() {
                    switch result {
                    case .success(let transaction): verified.append(transaction)
                    case .failure(let error): throw StoreError("block \(height): transaction \(index): \(error)")
                    }
                }
                offset += block.transactions.count
                do {
                    try ledger.replay(block, verified: verified)
                } catch {
                    throw StoreError("\(error)")
                }
                transactionCount += block.transactions.count
                next += 1
            }
            _ = ledger.takeStateChanges()
        }
        let replayed = ledger.state.allRows()
        let stored = try store.allStateRows()
        if replayed != stored {
            let replayedByKey = Dictionary(uniqueKeysWithValues: replayed.map { ($0.key, $0.value) })
            let storedByKey = Dictionary(stored.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
            let keys = Set(replayedByKey.keys).union(storedByKey.keys).sorted { $0.lexicographicallyPrecedes($1) }
            for key in keys where replayedByKey[key] != storedByKey[key] {
                let name = (try? StateKey(bytes: key).description) ?? "unreadable key \(key.hexString)"
                throw StoreError(
                    "state row \(name): stored \(storedByKey[key]?.hexString ?? "nothing"), "
                        + "replay gives \(replayedByKey[key]?.hexString ?? "nothing")")
            }
            throw StoreError("state rows differ in order or number from the replay")
        }
        return Report(
            height: tipHeight, transactions: transactionCount, stateRows: stored.count, tipHash: ledger.tipHash)
    }
}
