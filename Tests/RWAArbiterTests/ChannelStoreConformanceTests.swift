// Goal: the peer store's contract, which the lessor and lessee daemons rely on to never lose a
// countersigned state, holds for both implementations (the SQLite `PeerStore` and
// `InMemoryChannelStore`): channels and states read back as written, in order; a state that is
// not newer, or of an unknown channel, is refused and changes nothing; the SQLite file survives
// reopening and refuses a layout version it does not know.
import Foundation
import GRDB
import RWAChannel
import RWACrypto
import RWAStore
import RWATestSupport
import RWAWire
import XCTest

final class ChannelStoreConformanceTests: XCTestCase {
    let lessor = try! SigningKeyPair(seed: [UInt8](repeating: 31, count: 32))
    let lessee = try! SigningKeyPair(seed: [UInt8](repeating: 32, count: 32))

    func terms(_ nonce: UInt64) -> LeaseTerms {
        LeaseTerms(
            chainID: Blake2b.hash256([9]), lessor: lessor.publicKey, lessee: lessee.publicKey, licence: 1,
            firstSlice: 0, sliceCount: 1, startSeconds: 3_600_000, hours: 2, periodSeconds: 3_600,
            ratePerSliceHour: 100, deposit: 200, paymentIncrement: 50, challengePeriodMilliseconds: 1_000, nonce: nonce)
    }

    func channel(_ nonce: UInt64, role: LeaseRole = .lessee) -> StoredChannel {
        let t = terms(nonce)
        return StoredChannel(
            role: role, terms: t, lessorSignature: lessor.sign(t.encoded, domain: t.signatureDomain),
            lesseeSignature: lessee.sign(t.encoded, domain: t.signatureDomain))
    }

    func state(_ terms: LeaseTerms, nonce: UInt64, paid: UInt128) -> CoSignedState {
        let s = ChannelState(
            channelID: terms.channelID, nonce: nonce, paid: paid,
            paidThroughSeconds: terms.paidThroughSeconds(paid: paid),
            final: false)
        return CoSignedState(
            state: s, lessorSignature: s.signed(by: lessor, chainID: terms.chainID),
            lesseeSignature: s.signed(by: lessee, chainID: terms.chainID))
    }

    func checkContract(_ store: any ChannelStore, _ name: String) throws {
        XCTAssertEqual(try store.channels(), [], name)
        let first = channel(1)
        let second = channel(2, role: .lessor)
        try store.save(first)
        try store.save(second)
        XCTAssertEqual(try store.channels(), [first, second], "\(name): in the order they were saved")
        var opened = first
        opened.status = .open
        opened.openHeight = 7
        try store.save(opened)
        XCTAssertEqual(try store.channels(), [opened, second], "\(name): a save replaces the record in place")

        XCTAssertNil(try store.latestState(of: first.channelID), name)
        try store.saveState(state(first.terms, nonce: 1, paid: 50))
        try store.saveState(state(first.terms, nonce: 3, paid: 150))
        XCTAssertEqual(try store.latestState(of: first.channelID), state(first.terms, nonce: 3, paid: 150), name)
        for stale in [state(first.terms, nonce: 3, paid: 150), state(first.terms, nonce: 2, paid: 100)] {
            XCTAssertThrowsError(try store.saveState(stale), "\(name): a state not newer is refused")
        }
        XCTAssertThrowsError(try store.saveState(state(terms(9), nonce: 1, paid: 50)), "\(name): unknown channel")
        XCTAssertEqual(try store.latestState(of: first.channelID)?.state.nonce, 3, "\(name): unchanged by refusals")
        XCTAssertNil(try store.latestState(of: terms(9).channelID), name)

        // Only a channel never opened is forgotten (a refused open); an open one never is.
        XCTAssertThrowsError(try store.forget(first.channelID), "\(name): an open channel is kept")
        XCTAssertThrowsError(try store.forget(terms(9).channelID), "\(name): an unknown channel")
        XCTAssertEqual(try store.channels(), [opened, second], "\(name): unchanged by refusals")
        try store.forget(second.channelID)
        XCTAssertEqual(try store.channels(), [opened], "\(name): the accepted channel is gone")
    }

    func testBothStoresKeepTheContract() throws {
        try checkContract(InMemoryChannelStore(), "memory")
        let scratch = try Scratch()
        let path = scratch.directory.appendingPathComponent("peer.sqlite").path
        try checkContract(try PeerStore.open(path: path), "sqlite")
        // Reopened: everything is still there.
        let reopened = try PeerStore.open(path: path)
        XCTAssertEqual(try reopened.channels().map(\.status), [.open])
        XCTAssertEqual(try reopened.latestState(of: channel(1).channelID)?.state.nonce, 3)
    }

    func testAnotherLayoutVersionIsRefused() throws {
        let scratch = try Scratch()
        let path = scratch.directory.appendingPathComponent("peer.sqlite").path
        _ = try PeerStore.open(path: path)
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: "UPDATE schema SET version = 2") }
        XCTAssertThrowsError(try PeerStore.open(path: path)) { error in
            XCTAssertTrue("\(error)".contains("layout version 2"), "\(error)")
        }
    }
}
