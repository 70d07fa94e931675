// Goal: the arbiter's block policy, pure and on virtual time: a block closes at its size or at
// its delay after its first submission, whichever comes first; rejections are answered with the
// block that follows them, in arrival order; a batch of rejections alone closes without a block;
// draining closes what is pending; the block's time is the wall time its first submission saw.
import RWACrypto
import RWAWire
import XCTest

@testable import RWALedger

final class BlockSequencerTests: XCTestCase {
    let millisecond: UInt64 = 1_000_000

    func mints(_ chain: inout Chain, count: Int) throws -> [Transaction] {
        try (0..<count).map { offset in
            try Transaction(
                signedBy: chain.issuer, chainID: chain.genesis.chainID, sequence: UInt64(offset),
                operation: .mint(token: 0, to: chain.alice.publicKey, amount: 1))
        }
    }

    func submit(
        _ sequencer: inout BlockSequencer<Int>, _ transaction: Transaction, reply: Int, now: UInt64,
        time: UInt64 = Chain.genesisTime + 1_000
    ) {
        let checked = Result { () throws(Rejection) in try transaction.verified(chainID: sequencer.ledger.chainID) }
        sequencer.submit(checked, bytes: transaction.encoded, reply: reply, now: now, timeMilliseconds: time)
    }

    func testBlocksCloseAtTheirSizeOrTheirDelay() throws {
        var chain = try Chain()
        let transactions = try mints(&chain, count: 25)
        var sequencer = BlockSequencer<Int>(
            ledger: chain.ledger, arbiter: chain.arbiter, maxTransactions: 10, maxDelayNanoseconds: 400 * millisecond)
        var sealed: [BlockSequencer<Int>.Sealed] = []
        var now: UInt64 = 0
        for (number, transaction) in transactions.enumerated() {
            if sequencer.isFull, let block = sequencer.sealIfDue(now: now) { sealed.append(block) }
            submit(&sequencer, transaction, reply: number, now: now)
            now += millisecond
        }
        if let block = sequencer.sealIfDue(now: now) { sealed.append(block) }
        XCTAssertEqual(sealed.map { $0.block?.transactions.count }, [10, 10], "two full blocks at once")
        // The last five wait for their delay: 400 ms after the first of them arrived (at 20 ms).
        XCTAssertEqual(sequencer.nextDeadline, 420 * millisecond)
        XCTAssertNil(sequencer.sealIfDue(now: 419 * millisecond))
        let last = try XCTUnwrap(sequencer.sealIfDue(now: 420 * millisecond))
        XCTAssertEqual(last.block?.transactions.count, 5)
        XCTAssertEqual(last.block?.header.height, 3)
        XCTAssertEqual((sealed + [last]).flatMap { $0.outcomes.map(\.reply) }, Array(0..<25), "answers in order")
        XCTAssertNil(sequencer.nextDeadline)
        XCTAssertNil(sequencer.sealIfDue(now: 10_000 * millisecond), "nothing pending")
    }

    func testRejectionsAreAnsweredWithTheNextBlockAndAloneWithoutOne() throws {
        var chain = try Chain()
        let transactions = try mints(&chain, count: 2)
        var sequencer = BlockSequencer<Int>(
            ledger: chain.ledger, arbiter: chain.arbiter, maxTransactions: 10, maxDelayNanoseconds: 5 * millisecond)
        // A transaction that skips a sequence number, then a good one, then the skipped one's twin.
        submit(&sequencer, transactions[1], reply: 1, now: 0)
        submit(&sequencer, transactions[0], reply: 2, now: 0)
        var tampered = transactions[1]
        tampered.operation = .mint(token: 0, to: chain.bob.publicKey, amount: 1)
        submit(&sequencer, tampered, reply: 3, now: 0)
        let sealed = try XCTUnwrap(sequencer.sealIfDue(now: 5 * millisecond))
        XCTAssertEqual(sealed.block?.transactions.map(\.hash), [transactions[0].hash])
        XCTAssertEqual(sealed.outcomes.map(\.reply), [1, 2, 3])
        XCTAssertEqual(sealed.outcomes.map { (try? $0.result.get()) ?? -1 }, [-1, 0, -1])
        let codes = sealed.outcomes.compactMap { outcome -> ErrorCode? in
            guard case .failure(let rejection) = outcome.result else { return nil }
            return rejection.code
        }
        XCTAssertEqual(codes, [.sequenceAhead, .invalidSignature])
        XCTAssertEqual(sealed.outcomes[2].hash, Blake2b.hash256(tampered.encoded), "a rejection names the bytes' hash")
        // Rejections alone: answered at the delay, with no block.
        submit(&sequencer, transactions[0], reply: 4, now: 10 * millisecond)
        let alone = try XCTUnwrap(sequencer.sealIfDue(now: 15 * millisecond))
        XCTAssertNil(alone.block)
        XCTAssertEqual(alone.outcomes.map(\.reply), [4])
        XCTAssertEqual(sequencer.ledger.height, 1)
    }

    func testDrainingClosesWhatIsPendingAndTheBlockTakesItsFirstSubmissionsTime() throws {
        var chain = try Chain()
        let transactions = try mints(&chain, count: 2)
        var sequencer = BlockSequencer<Int>(
            ledger: chain.ledger, arbiter: chain.arbiter, maxTransactions: 10, maxDelayNanoseconds: 5_000 * millisecond)
        submit(&sequencer, transactions[0], reply: 0, now: 0, time: Chain.genesisTime + 7_000)
        submit(&sequencer, transactions[1], reply: 1, now: millisecond, time: Chain.genesisTime + 9_000)
        XCTAssertNil(sequencer.sealIfDue(now: 2 * millisecond), "neither full nor due")
        let drained = try XCTUnwrap(sequencer.sealIfDue(now: 2 * millisecond, draining: true))
        XCTAssertEqual(drained.block?.transactions.count, 2)
        XCTAssertEqual(drained.block?.header.timeMilliseconds, Chain.genesisTime + 7_000)
        XCTAssertFalse(drained.changes.isEmpty, "the block's state changes go to the store with it")
    }
}
