// Goal: one contract, two stores. The SQLite `LedgerStore` and the `InMemoryChainStore` the
// simulation uses run the same suite: genesis and its rows, blocks committed and read back in
// ranges, transactions located, state rows written, replaced and deleted and listed in byte
// order, a block that does not follow the tip refused with nothing written, and the ledger
// loaded back equal to the one that wrote. (go-perun's persistrestorertest is the model.)
import Foundation
import RWACrypto
import RWALedger
import RWAStore
import RWAWire
import XCTest

final class ChainStoreConformanceTests: XCTestCase {
    /// Each implementation, made empty for `fixture`'s genesis.
    func implementations(_ fixture: ChainFixture) throws -> [(name: String, store: any ChainStore)] {
        var ledger = Ledger(genesis: fixture.genesis)
        let rows = ledger.takeStateChanges().compactMap { change in
            change.row.map { StateRow(key: change.key.bytes, value: $0) }
        }
        return [
            ("sqlite", try fixture.createStore()),
            ("memory", InMemoryChainStore(genesis: fixture.genesis, genesisRows: rows)),
        ]
    }

    func testBothStoresKeepTheSameContract() throws {
        for name in ["sqlite", "memory"] {
            let fixture = try ChainFixture()
            let store = try XCTUnwrap(try implementations(fixture).first { $0.name == name }?.store)
            try conformance(store, fixture: fixture, name: name)
        }
    }

    func conformance(_ store: any ChainStore, fixture: ChainFixture, name: String) throws {
        XCTAssertEqual(try store.genesis(), fixture.genesis, name)
        XCTAssertNil(try store.tip(), name)
        XCTAssertEqual(try store.blocks(from: 1, limit: 10), [], name)
        var ledger = try store.loadLedger()
        XCTAssertEqual(ledger.height, 0, name)

        // Three blocks: identities, a licence, stablecoin moving; rows inserted and replaced.
        let alice = SigningKeyPair.generate()
        let bob = SigningKeyPair.generate()
        var written: [Block] = []
        let batches: [[Transaction]] = [
            try fixture.onboard(alice.publicKey, identity: 1) + fixture.onboard(bob.publicKey, identity: 2),
            [
                try fixture.sign(fixture.regulator, .registerResource(fixture.licence(owner: alice.publicKey))),
                try fixture.sign(fixture.issuer, .mint(token: 0, to: alice.publicKey, amount: 1_000)),
            ],
            [try fixture.sign(alice, .transfer(token: 0, to: bob.publicKey, amount: 400))],
        ]
        for (offset, batch) in batches.enumerated() {
            written.append(
                try commitBlock(
                    &ledger, store, batch, arbiter: fixture.arbiter,
                    time: fixture.genesis.timeMilliseconds + UInt64(offset + 1)))
        }
        XCTAssertEqual(try store.tip(), written.last?.header, name)
        XCTAssertEqual(try store.header(height: 2), written[1].header, name)
        XCTAssertNil(try store.header(height: 4), name)
        XCTAssertNil(try store.header(height: .max), name)
        XCTAssertEqual(try store.blocks(from: 1, limit: 10), written, name)
        XCTAssertEqual(try store.blocks(from: 2, limit: 1), [written[1]], name)
        XCTAssertEqual(try store.blocks(from: 4, limit: 10), [], name)
        let transfer = try XCTUnwrap(written.last?.transactions.first)
        let located = try XCTUnwrap(try store.transaction(hash: transfer.hash), name)
        XCTAssertEqual([located.height, UInt64(located.index)], [3, 0], name)
        XCTAssertEqual(located.transaction, transfer, name)
        XCTAssertNil(try store.transaction(hash: Blake2b.hash256([1, 2, 3])), name)

        // The state: every row the ledger holds, in byte order, prefixes, single rows.
        let rows = ledger.state.allRows()
        XCTAssertEqual(try store.stateRows(prefix: [], limit: .max), rows, name)
        let holdings = rows.filter { $0.key.first == 0x04 }
        XCTAssertEqual(try store.stateRows(prefix: [0x04], limit: .max), holdings, name)
        XCTAssertEqual(try store.stateRows(prefix: [0x04], limit: 1), Array(holdings.prefix(1)), name)
        let first = try XCTUnwrap(holdings.first)
        XCTAssertEqual(try store.stateRow(key: first.key), first.value, name)
        XCTAssertNil(try store.stateRow(key: [0x7f]), name)

        // A block that does not follow the tip: refused, and nothing of it is written.
        var stray = ledger
        _ = stray.apply(
            try fixture.sign(bob, .transfer(token: 0, to: alice.publicKey, amount: 1)).verified(
                chainID: fixture.chainID), timeMilliseconds: fixture.genesis.timeMilliseconds + 10)
        let next = stray.sealBlock(arbiter: fixture.arbiter)
        var skipping = next
        skipping.header.height = 5
        XCTAssertThrowsError(try store.commit(skipping, changes: stray.takeStateChanges()), name)
        XCTAssertThrowsError(try store.commit(written[2], changes: []), "\(name): a height stored already")
        XCTAssertEqual(try store.tip(), written.last?.header, "\(name): nothing written")
        XCTAssertEqual(try store.stateRows(prefix: [], limit: .max), rows, "\(name): no row changed")

        // A row deleted by a block disappears.
        let key = StateKey.holding(0, alice.publicKey)
        try store.commit(next, changes: [(key, nil)])
        XCTAssertNil(try store.stateRow(key: key.bytes), name)
        XCTAssertEqual(try store.tip()?.height, 4, name)

        // What a restarted node loads: the ledger as the last commit left it.
        let reloaded = try store.loadLedger()
        XCTAssertEqual(reloaded.height, 4, name)
        XCTAssertEqual(reloaded.tipHash, next.header.hash, name)
        XCTAssertEqual(reloaded.state.allRows(), try store.stateRows(prefix: [], limit: .max), name)
    }
}
