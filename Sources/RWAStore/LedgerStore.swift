import Foundation
import GRDB
import GRDBSQLite
import RWACrypto
import RWALedger
import RWAWire

/// A failure of the store: the database is missing, unreadable, or says something the chain's
/// rules forbid. Messages name the file and what was wrong with it.
public struct StoreError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The arbiter's durable state in one SQLite file (WAL, `synchronous = FULL`). A block, its
/// transactions and every state row it changed are written in one SQLite transaction, so after a
/// crash the file holds exactly the blocks whose commit returned (proto/README.md, "Store layout").
///
/// Tables: `chain` (the genesis), `blocks` (header per height), `transactions` (bytes and result
/// per hash, with height and index), `state` (key → record, the state after the last block).
public final class LedgerStore: ChainStore {
    public let path: String
    private let pool: DatabasePool

    private init(path: String, pool: DatabasePool) {
        self.path = path
        self.pool = pool
    }

    private static func configuration(readonly: Bool) -> Configuration {
        var configuration = Configuration()
        configuration.readonly = readonly
        configuration.prepareDatabase { db in
            // FULL: a committed transaction survives power loss, not only a process crash.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        return configuration
    }

    /// Creates the database for a new chain; refuses to touch an existing file.
    public static func create(path: String, genesis: Genesis, genesisRows: [StateRow]) throws -> LedgerStore {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw StoreError("\(path) exists; a chain's database is never overwritten")
        }
        let pool = try DatabasePool(path: path, configuration: configuration(readonly: false))
        try pool.write { db in
            try db.execute(sql: schemaSQL)
            try db.execute(sql: "INSERT INTO schema (version) VALUES (?)", arguments: [layoutVersion])
            try db.execute(sql: "INSERT INTO chain (id, genesis) VALUES (1, ?)", arguments: [Data(genesis.encoded)])
            for row in genesisRows {
                try db.execute(
                    sql: "INSERT INTO state (key, value) VALUES (?, ?)", arguments: [Data(row.key), Data(row.value)])
            }
        }
        return LedgerStore(path: path, pool: pool)
    }

    /// The version of the layout below, stored in the `schema` table: a store written by another
    /// layout is refused with a message instead of being misread.
    public static let layoutVersion = 2

    /// Version 2 appends transactions in commit order (a rowid table) and finds them by hash
    /// through an index of the hash's first 8 bytes. Version 1 kept them in a table keyed by the
    /// whole hash: every insert landed on a random page, so a block of 1,000 wrote about 1,600
    /// pages to the WAL once the chain held 60,000 transactions; version 2 writes about 320, for a
    /// third of SQLite's CPU. `bench-arbiter` showed the old layout as the store's main cost.
    static let schemaSQL = """
        CREATE TABLE schema (version INTEGER NOT NULL);
        CREATE TABLE chain (id INTEGER PRIMARY KEY CHECK (id = 1), genesis BLOB NOT NULL);
        CREATE TABLE blocks (height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL);
        \(transactionsSQL)
        CREATE TABLE state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
        """

    private static let transactionsSQL = """
        CREATE TABLE transactions (
            height INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
            bytes BLOB NOT NULL, created_id INTEGER NOT NULL);
        CREATE UNIQUE INDEX transactions_by_block ON transactions (height, idx);
        CREATE INDEX transactions_by_hash ON transactions (substr(hash, 1, 8));
        """

    /// Rewrites a version 1 store as version 2, in one transaction: the rows are the same.
    private static func upgradeFromVersion1(_ db: Database) throws {
        try db.execute(sql: "ALTER TABLE transactions RENAME TO transactions_version_1")
        try db.execute(sql: transactionsSQL)
        try db.execute(
            sql: """
                INSERT INTO transactions (height, idx, hash, bytes, created_id)
                SELECT height, idx, hash, bytes, created_id FROM transactions_version_1 ORDER BY height, idx
                """)
        try db.execute(sql: "DROP TABLE transactions_version_1")
        try db.execute(sql: "UPDATE schema SET version = 2")
    }

    private static func schema(_ db: Database) throws -> [String] {
        try Row.fetchAll(db, sql: "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").map {
            "\($0["type"] as String? ?? "") \($0["name"] as String? ?? "") \($0["tbl_name"] as String? ?? "") "
                + "\($0["sql"] as String? ?? "")"
        }
    }

    /// The schema `create` makes, read back from a database made in memory the same way.
    private static func expectedSchema() throws -> [String] {
        let memory = try DatabaseQueue()
        return try memory.write { db in
            try db.execute(sql: schemaSQL)
            return try schema(db)
        }
    }

    /// Opens an existing chain database.
    public static func open(path: String, readonly: Bool = false) throws -> LedgerStore {
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError("no chain database at \(path) (create one with `rwa-arbiter init`)")
        }
        let pool = try DatabasePool(path: path, configuration: configuration(readonly: readonly))
        let (hasChain, storedVersions) = try pool.read { db in
            (
                try db.tableExists("chain"),
                try db.tableExists("schema") ? try Int.fetchAll(db, sql: "SELECT version FROM schema") : []
            )
        }
        guard hasChain else { throw StoreError("\(path) is not an rwanet chain database") }
        var versions = storedVersions
        if versions == [1] {
            guard !readonly else {
                throw StoreError(
                    "\(path) has layout version 1; open it once for writing (`rwa-arbiter run`) to upgrade it to \(layoutVersion)"
                )
            }
            try pool.write { db in try upgradeFromVersion1(db) }
            versions = [layoutVersion]
        }
        guard versions == [layoutVersion] else {
            let found =
                versions.isEmpty
                ? "no layout version" : "layout version \(versions.map(String.init).joined(separator: ", "))"
            throw StoreError("\(path) has \(found); this rwanet reads version \(layoutVersion) only")
        }
        return LedgerStore(path: path, pool: pool)
    }

    public func genesis() throws -> Genesis {
        let bytes = try pool.read { db in try Data.fetchOne(db, sql: "SELECT genesis FROM chain WHERE id = 1") }
        guard let bytes else { throw StoreError("\(path) has no genesis") }
        return try Genesis(decoding: [UInt8](bytes))
    }

    /// Writes a block and the state rows it changed in one durable transaction. When this
    /// returns, the block survives a crash; only then may its receipts be sent.
    public func commit(_ block: Block, changes: [(key: StateKey, row: [UInt8]?)]) throws {
        try pool.write { db in
            let tipHeight = try Int64.fetchOne(db, sql: "SELECT max(height) FROM blocks") ?? 0
            guard Int64(exactly: block.header.height) == tipHeight + 1 else {
                throw StoreError("block \(block.header.height) does not follow the tip at \(tipHeight)")
            }
            try db.cachedStatement(sql: "INSERT INTO blocks (height, hash, header) VALUES (?, ?, ?)").execute(
                arguments: [
                    Int64(block.header.height), Data(block.header.hash.bytes), Data(block.header.encoded),
                ])
            let insertTransaction = try db.cachedStatement(
                sql: "INSERT INTO transactions (hash, height, idx, bytes, created_id) VALUES (?, ?, ?, ?, ?)")
            for (index, transaction) in block.transactions.enumerated() {
                try Self.execute(
                    insertTransaction,
                    [
                        .blob(transaction.hash.bytes), .integer(Int64(block.header.height)), .integer(Int64(index)),
                        .blob(transaction.bytes), .integer(Int64(bitPattern: transaction.createdID)),
                    ], in: db)
            }
            let upsert = try db.cachedStatement(
                sql:
                    "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            )
            let delete = try db.cachedStatement(sql: "DELETE FROM state WHERE key = ?")
            for change in changes {
                if let row = change.row {
                    try Self.execute(upsert, [.blob(change.key.bytes), .blob(row)], in: db)
                } else {
                    try Self.execute(delete, [.blob(change.key.bytes)], in: db)
                }
            }
        }
    }

    private enum RawValue {
        case integer(Int64)
        case blob([UInt8])
    }

    /// Runs `statement` once with `values` bound straight from our buffers. A block's thousands
    /// of rows went through GRDB's arguments before, which copy every blob into a `Data` and box
    /// every value: about a third of the store's CPU in `bench-arbiter`'s profile.
    private static func execute(_ statement: Statement, _ values: [RawValue], in db: Database) throws {
        let raw = statement.sqliteStatement
        // Blobs are bound without a copy (SQLITE_STATIC), so each stays bound only inside its
        // buffer's scope: bind the next value from within, and step, reset and clear every
        // binding at the innermost, before any scope ends.
        func bind(from index: Int) -> String? {
            guard index < values.count else {
                let code = sqlite3_step(raw)
                let failure =
                    code == SQLITE_DONE
                    ? nil : "SQLite code \(code): \(String(cString: sqlite3_errmsg(db.sqliteConnection)))"
                sqlite3_reset(raw)
                sqlite3_clear_bindings(raw)
                return failure
            }
            let column = CInt(index + 1)
            switch values[index] {
            case .integer(let value):
                sqlite3_bind_int64(raw, column, value)
                return bind(from: index + 1)
            case .blob(let bytes):
                return bytes.withUnsafeBytes { buffer in
                    if let base = buffer.baseAddress {
                        sqlite3_bind_blob(raw, column, base, CInt(buffer.count), nil)
                    } else {
                        sqlite3_bind_zeroblob(raw, column, 0)
                    }
                    return bind(from: index + 1)
                }
            }
        }
        if let failure = bind(from: 0) { throw StoreError("cannot write a row (\(failure))") }
    }

    public func tip() throws -> BlockHeader? {
        let bytes = try pool.read { db in
            try Data.fetchOne(db, sql: "SELECT header FROM blocks ORDER BY height DESC LIMIT 1")
        }
        return try bytes.map { try BlockHeader(decoding: [UInt8]($0)) }
    }

    public func header(height: UInt64) throws -> BlockHeader? {
        guard let height = Int64(exactly: height) else { return nil }  // no block can be that high
        let bytes = try pool.read { db in
            try Data.fetchOne(db, sql: "SELECT header FROM blocks WHERE height = ?", arguments: [height])
        }
        return try bytes.map { try BlockHeader(decoding: [UInt8]($0)) }
    }

    /// Blocks `from`, `from + 1`, … up to `limit` of them, with their transactions, in order.
    public func blocks(from height: UInt64, limit: Int) throws -> [Block] {
        guard let height = Int64(exactly: height) else { return [] }
        return try pool.read { db in
            let headers = try Data.fetchAll(
                db, sql: "SELECT header FROM blocks WHERE height >= ? ORDER BY height LIMIT ?",
                arguments: [height, limit])
            var blocks: [Block] = []
            for bytes in headers {
                let header = try BlockHeader(decoding: [UInt8](bytes))
                let rows = try Row.fetchAll(
                    db, sql: "SELECT bytes, created_id FROM transactions WHERE height = ? ORDER BY idx",
                    arguments: [Int64(header.height)])
                let transactions = rows.map { row in
                    CommittedTransaction(
                        bytes: [UInt8](row["bytes"] as Data), createdID: UInt64(bitPattern: row["created_id"] as Int64))
                }
                blocks.append(Block(header: header, transactions: transactions))
            }
            return blocks
        }
    }

    public typealias Located = StoredTransaction

    /// Through the index of the hash's first 8 bytes (the expression must match the index's).
    static let transactionByHashSQL = """
        SELECT bytes, created_id, height, idx FROM transactions
        WHERE substr(hash, 1, 8) = substr(?1, 1, 8) AND hash = ?1
        """

    public func transaction(hash: Digest32) throws -> Located? {
        try pool.read { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: Self.transactionByHashSQL, arguments: [Data(hash.bytes)])
            else { return nil }
            return Located(
                transaction: CommittedTransaction(
                    bytes: [UInt8](row["bytes"] as Data), createdID: UInt64(bitPattern: row["created_id"] as Int64)),
                height: UInt64(row["height"] as Int64), index: UInt32(row["idx"] as Int64))
        }
    }

    public func stateRow(key: [UInt8]) throws -> [UInt8]? {
        try pool.read { db in
            try Data.fetchOne(db, sql: "SELECT value FROM state WHERE key = ?", arguments: [Data(key)]).map {
                [UInt8]($0)
            }
        }
    }

    /// Rows whose key starts with `prefix` (all accounts, all resources, …), in key order.
    public func stateRows(prefix: [UInt8], limit: Int = .max) throws -> [StateRow] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT key, value FROM state WHERE substr(key, 1, ?) = ? ORDER BY key LIMIT ?",
                arguments: [prefix.count, Data(prefix), limit]
            ).map { StateRow(key: [UInt8]($0["key"] as Data), value: [UInt8]($0["value"] as Data)) }
        }
    }

    public func allStateRows() throws -> [StateRow] { try stateRows(prefix: []) }

    /// Facts about the file that only the store can see, for `verify`: SQLite's own page
    /// checks, and transactions stored outside any block.
    public func structuralProblems(tipHeight: UInt64) throws -> [String] {
        let expectedSchema = try Self.expectedSchema()
        return try pool.read { db in
            var problems = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { $0 != "ok" }
            if try Self.schema(db) != expectedSchema {
                problems.append(
                    "the schema differs from the one `init` creates (a table, index or trigger was changed)")
            }
            // Every value must have its column's type: a blob turned into text compares unequal
            // in lookups but decodes to the same bytes, so the replay alone would not see it.
            let typeChecks = [
                ("schema", "typeof(version) != 'integer'"),
                ("chain", "typeof(genesis) != 'blob'"),
                ("blocks", "typeof(height) != 'integer' OR typeof(hash) != 'blob' OR typeof(header) != 'blob'"),
                (
                    "transactions",
                    "typeof(hash) != 'blob' OR typeof(height) != 'integer' OR typeof(idx) != 'integer' "
                        + "OR typeof(bytes) != 'blob' OR typeof(created_id) != 'integer'"
                ),
                ("state", "typeof(key) != 'blob' OR typeof(value) != 'blob'"),
            ]
            for (table, condition) in typeChecks {
                let wrong = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table) WHERE \(condition)") ?? 0
                if wrong > 0 { problems.append("\(wrong) rows of \(table) hold a value of the wrong type") }
            }
            guard problems.isEmpty else { return problems }
            let strays =
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM transactions WHERE height < 1 OR height > ?",
                    arguments: [Int64(tipHeight)]) ?? 0
            if strays > 0 { problems.append("\(strays) transactions lie outside blocks 1 ... \(tipHeight)") }
            let blockCount = try Int.fetchOne(db, sql: "SELECT count(*) FROM blocks") ?? 0
            if UInt64(blockCount) != tipHeight {
                problems.append("\(blockCount) blocks stored for a tip at \(tipHeight)")
            }
            return problems
        }
    }

    /// The stored hash column of each block, to compare with the hash of its header.
    public func storedBlockHash(height: UInt64) throws -> Digest32? {
        try pool.read { db in
            try Data.fetchOne(db, sql: "SELECT hash FROM blocks WHERE height = ?", arguments: [Int64(height)]).map {
                try Digest32(bytes: [UInt8]($0))
            }
        }
    }

    /// The stored hash column of each transaction of a block, in index order.
    public func storedTransactionHashes(height: UInt64) throws -> [(index: Int, hash: [UInt8])] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT idx, hash FROM transactions WHERE height = ? ORDER BY idx", arguments: [Int64(height)]
            ).map { (Int($0["idx"] as Int64), [UInt8]($0["hash"] as Data)) }
        }
    }
}
