// Goal: the arbiter's core releases no answer before the block it depends on is reported
// durable, releases answers in submission order (rejections too, even those sealed without a
// block), answers a transaction sent again with its first receipt, and stops sealing while too
// many blocks wait for the disk. All on virtual time, with no store and no threads.
import RWAArbiter
import RWACrypto
import RWAWire
import XCTest

@testable import RWALedger

final class ArbiterCoreTests: XCTestCase {
    let millisecond: UInt64 = 1_000_000
    typealias Core = ArbiterCore<Int>

    func mints(_ chain: Chain, count: Int, from first: Int = 0) throws -> [Transaction] {
        try (first..<first + count).map { offset in
            try Transaction(
                signedBy: chain.issuer, chainID: chain.genesis.chainID, sequence: UInt64(offset),
                operation: .mint(token: 0, to: chain.alice.publicKey, amount: 1))
        }
    }

    func submit(_ core: inout Core, _ transaction: Transaction, reply: Int, now: UInt64) -> [Core.Action] {
        let checked = Result { () throws(Rejection) in try transaction.verified(chainID: core.ledger.chainID) }
        return core.submit(
            checked, bytes: transaction.encoded, reply: reply, now: now, timeMilliseconds: Chain.genesisTime + 1_000)
    }

    /// The replies answered by `actions`, in order, and the heights they were asked to persist.
    func summary(_ actions: [Core.Action]) -> (answered: [Int], persisted: [UInt64], published: [UInt64]) {
        var summary: ([Int], [UInt64], [UInt64]) = ([], [], [])
        for action in actions {
            switch action {
            case .persist(let block, _): summary.1.append(block.header.height)
            case .answer(let reply, _): summary.0.append(reply)
            case .answerFromChain(let reply, _, _): summary.0.append(reply)
            case .publish(let height): summary.2.append(height)
            }
        }
        return summary
    }

    func testAnswersWaitForTheirBlockToBeDurableAndLeaveInOrder() throws {
        let chain = try Chain()
        let transactions = try mints(chain, count: 5)
        var core = Core(
            ledger: chain.ledger, arbiter: chain.arbiter, maxTransactions: 2, maxDelayNanoseconds: 10 * millisecond)
        var actions: [Core.Action] = []
        for (number, transaction) in transactions.prefix(4).enumerated() {
            actions += submit(&core, transaction, reply: number, now: 0)
        }
        // A rejection (sequence 7 is ahead) sealed alone, without a block, behind blocks 1 and 2.
        let ahead = try Transaction(
            signedBy: chain.issuer, chainID: chain.genesis.chainID, sequence: 7,
            operation: .mint(token: 0, to: chain.alice.publicKey, amount: 1))
        actions += submit(&core, ahead, reply: 4, now: 1 * millisecond)
        actions += core.tick(now: 11 * millisecond)
        XCTAssertEqual(summary(actions).persisted, [1, 2], "both full blocks go to the disk at once")
        XCTAssertEqual(summary(actions).answered, [], "nothing is answered before its block is durable")
        XCTAssertEqual(core.unansweredCount, 5)

        // Block 2 reported first (a shell may report the latest only): everything up to it leaves.
        let released = core.persisted(height: 2, now: 12 * millisecond)
        XCTAssertEqual(summary(released).answered, [0, 1, 2, 3, 4], "in submission order, the rejection last")
        XCTAssertEqual(summary(released).published, [2])
        guard case .answer(_, .receipt(_, let height, let index, _)) = released[2] else {
            return XCTFail("reply 2 should be a receipt: \(released[2])")
        }
        XCTAssertEqual([height, UInt64(index)], [2, 0])
        guard case .answer(_, .rejected(_, let rejection)) = released[4] else {
            return XCTFail("reply 4 should be a rejection: \(released[4])")
        }
        XCTAssertEqual(rejection.code, .sequenceAhead)
        XCTAssertEqual(core.unansweredCount, 0)
        XCTAssertEqual(core.persisted(height: 2, now: 13 * millisecond).count, 0, "a repeated report changes nothing")
    }

    func testARejectionBehindAnUndurableBlockWaitsForIt() throws {
        let chain = try Chain()
        let transactions = try mints(chain, count: 1)
        var core = Core(
            ledger: chain.ledger, arbiter: chain.arbiter, maxTransactions: 10, maxDelayNanoseconds: 5 * millisecond)
        var actions = submit(&core, transactions[0], reply: 0, now: 0)
        actions += core.tick(now: 5 * millisecond)
        XCTAssertEqual(summary(actions).persisted, [1])
        // Sent again while block 1 is on its way to the disk: sealed without a block.
        actions = submit(&core, transactions[0], reply: 1, now: 6 * millisecond)
        actions += core.tick(now: 11 * millisecond)
        XCTAssertEqual(summary(actions).answered, [], "the second answer may not overtake the first")
        let released = core.persisted(height: 1, now: 12 * millisecond)
        XCTAssertEqual(summary(released).answered, [0, 1])
        // The copy is answered from the chain, which now holds block 1.
        guard case .answerFromChain(1, let hash, let otherwise) = released[1] else {
            return XCTFail("the copy should be looked up in the chain: \(released[1])")
        }
        XCTAssertEqual(hash, transactions[0].hash)
        XCTAssertEqual(otherwise.code, .sequenceReused)
    }

    func testACopyInTheSameBlockGetsTheOriginalsReceipt() throws {
        let chain = try Chain()
        let transactions = try mints(chain, count: 1)
        var core = Core(
            ledger: chain.ledger, arbiter: chain.arbiter, maxTransactions: 10, maxDelayNanoseconds: 5 * millisecond)
        _ = submit(&core, transactions[0], reply: 0, now: 0)
        _ = submit(&core, transactions[0], reply: 1, now: 0)
        XCTAssertEqual(summary(core.tick(now: 5 * millisecond)).persisted, [1])
        let released = core.persisted(height: 1, now: 6 * millisecond)
        let answers = released.compactMap { action -> Core.Answer? in
            if case .answer(_, let answer) = action { return answer }
            return nil
        }
        XCTAssertEqual(answers.count, 2)
        XCTAssertEqual(answers[0], answers[1], "the copy is answered with the original's receipt")
    }

    func testSealingStopsWhileTooManyBlocksWaitForTheDisk() throws {
        let chain = try Chain()
        let transactions = try mints(chain, count: 4)
        var core = Core(
            ledger: chain.ledger, arbiter: chain.arbiter, maxTransactions: 1, maxDelayNanoseconds: 5 * millisecond,
            maxBlocksAwaitingPersistence: 2)
        var persisted: [UInt64] = []
        var number = 0
        while core.acceptsSubmissions && number < transactions.count {
            persisted += summary(submit(&core, transactions[number], reply: number, now: 0)).persisted
            number += 1
        }
        XCTAssertEqual(persisted, [1, 2])
        XCTAssertEqual(number, 3, "the third fills a block that cannot be sealed yet")
        XCTAssertFalse(core.acceptsSubmissions)
        XCTAssertEqual(core.blocksAwaitingPersistence, 2)
        let after = summary(core.persisted(height: 1, now: 1 * millisecond))
        XCTAssertEqual(after.answered, [0])
        XCTAssertEqual(after.persisted, [3], "room on the disk seals the waiting block")
        XCTAssertTrue(core.acceptsSubmissions)
    }
}
