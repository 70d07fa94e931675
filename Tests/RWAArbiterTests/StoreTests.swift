// Goal: the store keeps exactly what was committed, survives a reopen, and `verify` catches an
// edited byte in any column of any table, or in the file itself.
import Foundation
import GRDB
import RWACrypto
import RWALedger
import RWAWire
import XCTest

@testable import RWAStore

final class StoreTests: XCTestCase {
    /// A chain of a few blocks touching every kind of state row.
    func makeChain() throws -> (ChainFixture, Ledger) {
        let fixture = try ChainFixture()
        let store = try fixture.createStore()
        var ledger = Ledger(genesis: fixture.genesis)
        _ = ledger.takeStateChanges()
        let alice = try SigningKeyPair(seed: [UInt8](repeating: 10, count: 32))
        let bob = try SigningKeyPair(seed: [UInt8](repeating: 11, count: 32))
        var time = fixture.genesis.timeMilliseconds
        func next() -> UInt64 {
            time += 1000
            return time
        }
        try commitBlock(
            &ledger, store,
            try fixture.onboard(alice.publicKey, identity: 1) + fixture.onboard(bob.publicKey, identity: 2),
            arbiter: fixture.arbiter, time: next())
        try commitBlock(
            &ledger, store,
            [
                try fixture.sign(fixture.issuer, .mint(token: 0, to: alice.publicKey, amount: 1_000_000)),
                try fixture.sign(fixture.regulator, .registerResource(fixture.licence(owner: alice.publicKey))),
            ], arbiter: fixture.arbiter, time: next())
        try commitBlock(
            &ledger, store,
            [
                try fixture.sign(alice, .transfer(token: 0, to: bob.publicKey, amount: 250_000)),
                try fixture.sign(alice, .transfer(token: 1, to: bob.publicKey, amount: 7_000_000)),
                try fixture.sign(
                    fixture.regulator, .freezePartial(token: 1, account: bob.publicKey, amount: 1_000_000)),
            ], arbiter: fixture.arbiter, time: next())
        return (fixture, ledger)
    }

    func testReopenRecoversExactlyTheLastCommittedBlock() throws {
        let (fixture, ledger) = try makeChain()
        let reopened = try LedgerStore.open(path: fixture.databasePath).loadLedger()
        XCTAssertEqual(reopened.height, 3)
        XCTAssertEqual(reopened.tipHash, ledger.tipHash)
        XCTAssertEqual(reopened.state.allRows(), ledger.state.allRows())
        let bob = try SigningKeyPair(seed: [UInt8](repeating: 11, count: 32)).publicKey
        XCTAssertEqual(reopened.state.holding(1, bob), Holding(balance: 7_000_000, frozenAmount: 1_000_000))
        XCTAssertEqual(reopened.state.holderCount(of: 1), 2, "derived per-identity balances are rebuilt")
        let report = try ChainVerifier.verify(try LedgerStore.open(path: fixture.databasePath, readonly: true))
        XCTAssertEqual(report.height, 3)
        XCTAssertEqual(report.transactions, 9)
        XCTAssertEqual(report.tipHash, ledger.tipHash)
    }

    /// The store names its layout's version; another version (or none) is refused on open with a
    /// message, never misread.
    func testAStoreOfAnotherLayoutVersionIsRefused() throws {
        let fixture = try ChainFixture()
        _ = try fixture.createStore()
        XCTAssertNoThrow(try LedgerStore.open(path: fixture.databasePath, readonly: true))
        let queue = try DatabaseQueue(path: fixture.databasePath)
        try queue.write { db in try db.execute(sql: "UPDATE schema SET version = 3") }
        XCTAssertThrowsError(try LedgerStore.open(path: fixture.databasePath, readonly: true)) { error in
            XCTAssertTrue("\(error)".contains("layout version 3; this rwanet reads version 2"), "\(error)")
        }
        try queue.write { db in try db.execute(sql: "DELETE FROM schema") }
        XCTAssertThrowsError(try LedgerStore.open(path: fixture.databasePath, readonly: true)) { error in
            XCTAssertTrue("\(error)".contains("no layout version"), "\(error)")
        }
        try queue.close()
    }

    /// A store of layout version 1 (transactions keyed by their hash) is refused read-only and
    /// upgraded in place when opened for writing: same rows, the schema `create` makes (which
    /// `verify` checks, with the whole chain), and transactions found by their hash.
    func testAVersion1StoreIsUpgradedWhenOpenedForWriting() throws {
        let (fixture, ledger) = try makeChain()
        let queue = try DatabaseQueue(path: fixture.databasePath)
        let rowsSQL = "SELECT height, idx, hash, bytes, created_id FROM transactions ORDER BY height, idx"
        let rows = try queue.read { db in try Row.fetchAll(db, sql: rowsSQL) }
        XCTAssertEqual(rows.count, 9)
        try queue.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE old (
                        hash BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL,
                        bytes BLOB NOT NULL, created_id INTEGER NOT NULL, UNIQUE (height, idx)) WITHOUT ROWID;
                    INSERT INTO old SELECT hash, height, idx, bytes, created_id FROM transactions;
                    DROP TABLE transactions;
                    ALTER TABLE old RENAME TO transactions;
                    UPDATE schema SET version = 1;
                    """)
        }
        try queue.close()
        XCTAssertThrowsError(try LedgerStore.open(path: fixture.databasePath, readonly: true)) { error in
            XCTAssertTrue("\(error)".contains("layout version 1; open it once for writing"), "\(error)")
        }
        let store = try LedgerStore.open(path: fixture.databasePath)
        let upgraded = try DatabaseQueue(path: fixture.databasePath)
        XCTAssertEqual(try upgraded.read { db in try Row.fetchAll(db, sql: rowsSQL) }, rows)
        XCTAssertEqual(try upgraded.read { db in try Int.fetchAll(db, sql: "SELECT version FROM schema") }, [2])
        try upgraded.close()
        let report = try ChainVerifier.verify(try LedgerStore.open(path: fixture.databasePath, readonly: true))
        XCTAssertEqual(report.tipHash, ledger.tipHash)
        let hash = try Digest32(bytes: [UInt8](rows[4]["hash"] as Data))
        XCTAssertEqual(try store.transaction(hash: hash)?.height, UInt64(rows[4]["height"] as Int64))
    }

    /// A row SQLite refuses in the middle of a block (here a trigger stands in for a full or
    /// failing disk) fails the commit with SQLite's message, and nothing of the block is
    /// written: not its header, not its other rows, not its state.
    func testARowRefusedMidBlockFailsTheCommitAndWritesNothing() throws {
        let (fixture, ledger) = try makeChain()
        let queue = try DatabaseQueue(path: fixture.databasePath)
        try queue.write { db in
            try db.execute(
                sql: """
                    CREATE TRIGGER refuse AFTER INSERT ON transactions WHEN NEW.idx = 1
                    BEGIN SELECT RAISE(ABORT, 'the disk is full'); END
                    """)
        }
        func contents() throws -> [[Row]] {
            try queue.read { db in
                try ["blocks", "transactions", "state"].map { try Row.fetchAll(db, sql: "SELECT * FROM \($0)") }
            }
        }
        let before = try contents()
        var next = ledger
        let bob = try SigningKeyPair(seed: [UInt8](repeating: 11, count: 32))
        for amount in [1, 2] as [UInt128] {
            let transfer = try fixture.sign(bob, .transfer(token: 0, to: fixture.issuer.publicKey, amount: amount))
            guard case .success = next.apply(try transfer.verified(chainID: next.chainID), timeMilliseconds: 10_000)
            else { return XCTFail("the transfer of \(amount) was refused") }
        }
        let block = next.sealBlock(arbiter: fixture.arbiter)
        let store = try LedgerStore.open(path: fixture.databasePath)
        XCTAssertThrowsError(try store.commit(block, changes: next.takeStateChanges())) { error in
            XCTAssertTrue("\(error)".contains("the disk is full"), "\(error)")
        }
        XCTAssertEqual(try contents(), before)
        try queue.close()
    }

    /// A lookup by hash goes through the index of the hash's prefix, not a scan of every
    /// transaction ever committed.
    func testALookupByHashUsesTheIndex() throws {
        let (fixture, _) = try makeChain()
        let queue = try DatabaseQueue(path: fixture.databasePath)
        defer { try? queue.close() }
        let plan = try queue.read { db in
            try Row.fetchAll(
                db,
                sql: "EXPLAIN QUERY PLAN " + LedgerStore.transactionByHashSQL,
                arguments: [Data(repeating: 7, count: 32)]
            ).map { $0["detail"] as String }
        }
        XCTAssertTrue(plan.contains { $0.contains("USING INDEX transactions_by_hash") }, "\(plan)")
    }

    func testCreateRefusesAnExistingDatabase() throws {
        let fixture = try ChainFixture()
        _ = try fixture.createStore()
        XCTAssertThrowsError(try fixture.createStore()) { error in
            XCTAssertTrue("\(error)".contains("never overwritten"), "\(error)")
        }
    }

    /// Every column of every table, one byte changed through SQL: `verify` must fail each time,
    /// naming what is wrong, and pass again once the byte is restored.
    func testVerifyDetectsAnEditedByteInEveryColumn() throws {
        let (fixture, _) = try makeChain()
        let targets: [(table: String, column: String, rowid: String)] = [
            ("chain", "genesis", "id = 1"),
            ("blocks", "header", "height = 2"),
            ("blocks", "hash", "height = 3"),
            ("blocks", "height", "height = 2"),
            ("transactions", "bytes", "height = 3 AND idx = 1"),
            ("transactions", "hash", "height = 2 AND idx = 0"),
            ("transactions", "created_id", "height = 1 AND idx = 0"),
            ("transactions", "idx", "height = 3 AND idx = 2"),
            ("transactions", "height", "height = 3 AND idx = 0"),
            ("state", "value", "key = (SELECT key FROM state WHERE substr(key, 1, 1) = x'04' LIMIT 1)"),
            ("state", "value", "key = (SELECT key FROM state WHERE substr(key, 1, 1) = x'05' LIMIT 1)"),
            ("state", "key", "key = (SELECT key FROM state WHERE substr(key, 1, 1) = x'01' LIMIT 1)"),
        ]
        for target in targets {
            let queue = try DatabaseQueue(path: fixture.databasePath)
            let original = try queue.read { db in
                try DatabaseValue.fetchOne(
                    db, sql: "SELECT \(target.column) FROM \(target.table) WHERE \(target.rowid)")
            }
            let edited: DatabaseValue
            switch original?.storage {
            case .blob(let data)?:
                var bytes = [UInt8](data)
                bytes[bytes.count / 2] ^= 0x01
                edited = Data(bytes).databaseValue
            case .int64(let value)?:
                edited = (value ^ 0x40).databaseValue  // far from any other row's value
            default:
                XCTFail("no value at \(target)")
                continue
            }
            try queue.write { db in
                try db.execute(
                    sql: "UPDATE \(target.table) SET \(target.column) = ? WHERE \(target.rowid)", arguments: [edited])
            }
            let store = try LedgerStore.open(path: fixture.databasePath, readonly: true)
            XCTAssertThrowsError(try ChainVerifier.verify(store), "edit of \(target.table).\(target.column) undetected")
            // Restore through the edited value, so the row is found again, and check verify passes.
            let restoreWhere =
                target.column == "height" || target.column == "idx" || target.column == "key"
                ? "\(target.column) = ?" : target.rowid
            try queue.write { db in
                if restoreWhere.hasSuffix("?") {
                    try db.execute(
                        sql: "UPDATE \(target.table) SET \(target.column) = ? WHERE \(restoreWhere)",
                        arguments: [original!, edited])
                } else {
                    try db.execute(
                        sql: "UPDATE \(target.table) SET \(target.column) = ? WHERE \(target.rowid)",
                        arguments: [original!])
                }
            }
            try queue.close()
            XCTAssertNoThrow(
                try ChainVerifier.verify(try LedgerStore.open(path: fixture.databasePath, readonly: true)),
                "restoring \(target.table).\(target.column)")
        }
    }

    func testVerifyDetectsADeletedOrAddedRow() throws {
        let (fixture, _) = try makeChain()
        let queue = try DatabaseQueue(path: fixture.databasePath)
        try queue.write { db in
            try db.execute(sql: "INSERT INTO state (key, value) VALUES (x'0200000000000000ff', x'00')")
        }
        XCTAssertThrowsError(try ChainVerifier.verify(try LedgerStore.open(path: fixture.databasePath, readonly: true)))
        try queue.write { db in
            try db.execute(sql: "DELETE FROM state WHERE key = x'0200000000000000ff'")
            try db.execute(sql: "DELETE FROM transactions WHERE height = 3 AND idx = 2")
        }
        XCTAssertThrowsError(try ChainVerifier.verify(try LedgerStore.open(path: fixture.databasePath, readonly: true)))
    }

    /// Changes replay cannot see: a blob stored as text (same bytes, but lookups by blob miss it)
    /// and a trigger added to the schema. Both fail `verify`, and neither crashes it.
    func testVerifyDetectsTypeChangesAndSchemaEdits() throws {
        let (fixture, _) = try makeChain()
        let edits = [
            ("UPDATE transactions SET hash = CAST(hash AS TEXT) WHERE height = 2", "wrong type"),
            ("UPDATE transactions SET created_id = 'x' WHERE height = 1 AND idx = 0", "wrong type"),
            ("UPDATE state SET key = CAST(key AS TEXT) WHERE key = x'00'", "wrong type"),
            ("CREATE TRIGGER sneaky AFTER INSERT ON blocks BEGIN DELETE FROM state; END", "schema"),
            ("CREATE INDEX extra ON state (value)", "schema"),
        ]
        for (sql, expected) in edits {
            let queue = try DatabaseQueue(path: fixture.databasePath)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            }
            let before = try Data(contentsOf: URL(fileURLWithPath: fixture.databasePath))
            try queue.write { db in try db.execute(sql: sql) }
            try queue.close()
            XCTAssertThrowsError(
                try ChainVerifier.verify(try LedgerStore.open(path: fixture.databasePath, readonly: true)), sql
            ) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(sql): \(error)")
            }
            // Put the file back as it was before this edit.
            try? FileManager.default.removeItem(atPath: fixture.databasePath + "-wal")
            try? FileManager.default.removeItem(atPath: fixture.databasePath + "-shm")
            try before.write(to: URL(fileURLWithPath: fixture.databasePath))
            XCTAssertNoThrow(
                try ChainVerifier.verify(try LedgerStore.open(path: fixture.databasePath, readonly: true)), sql)
        }
    }

    /// Flip one bit in each page of the file that holds data: whatever it hits (a record, a
    /// page header, a pointer), `verify` must not pass.
    func testVerifyDetectsFlippedBitsInTheFile() throws {
        let (fixture, _) = try makeChain()
        // Fold the WAL into the main file so the whole chain lives there.
        let queue = try DatabaseQueue(path: fixture.databasePath)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try queue.close()
        let url = URL(fileURLWithPath: fixture.databasePath)
        let pristine = try Data(contentsOf: url)
        let pageSize = 4096
        var detected = 0
        var tried = 0
        for page in 1..<(pristine.count / pageSize) {  // page 0 is the file header
            var bytes = [UInt8](pristine)
            let base = page * pageSize
            // The last used byte of the page: cell content grows from the end of a b-tree page.
            guard let offset = (base..<base + pageSize).last(where: { bytes[$0] != 0 }) else { continue }
            bytes[offset] ^= 0x10
            try Data(bytes).write(to: url)
            tried += 1
            if (try? ChainVerifier.verify(try LedgerStore.open(path: fixture.databasePath, readonly: true))) == nil {
                detected += 1
            }
        }
        try pristine.write(to: url)
        XCTAssertGreaterThan(tried, 3)
        XCTAssertEqual(detected, tried, "every flipped page was detected")
        XCTAssertNoThrow(try ChainVerifier.verify(try LedgerStore.open(path: fixture.databasePath, readonly: true)))
    }
}
