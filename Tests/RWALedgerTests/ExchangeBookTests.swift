// Goal: the exchange's book, pure, on blocks sealed by a real ledger: it admits orders and counts
// them in flight, quotes with and without them, settles each waiter with its fill when the block
// holding its order is replayed (or at once when the block came first), answers an order sent
// again from memory, refuses what is not an order, lists trades newest first, and once it has
// lost the chain answers every waiter, and every later order, with that failure.
import RWACrypto
import RWAExchange
import RWAMarket
import RWAWire
import XCTest

@testable import RWALedger

final class ExchangeBookTests: XCTestCase {
    /// Seals what the chain has pending into its next block.
    func seal(_ market: inout PoolChain) -> Block {
        let block = market.chain.ledger.sealBlock(arbiter: market.chain.arbiter)
        _ = market.chain.ledger.takeStateChanges()
        return block
    }

    func testOrdersAreRelayedQuotedSettledAndRemembered() throws {
        var market = try PoolChain()
        var book = ExchangeBook<String>(genesis: market.chain.genesis)
        XCTAssertTrue(try book.follow(seal(&market)).isEmpty, "the seeding deposit had no waiter")
        let bob = market.chain.bob
        let order = try market.chain.sign(
            bob, .swapExactIn(token: 1, side: .buy, amountIn: 1_000_000, minimumOut: 0, deadlineMilliseconds: .max))

        guard case .relay(let relayed, let hash) = book.admit(order.encoded) else { return XCTFail("not relayed") }
        XCTAssertEqual(relayed, order)
        XCTAssertEqual(hash, order.hash)
        XCTAssertEqual(book.ordersInFlight, 1)
        guard
            case .quoteAnswer(_, _, let confirmed?, let expected?, let inFlight) =
                book.quote(1, token: 1, side: .buy, exactOutput: false, amount: 1_000_000)
        else { return XCTFail("no quote") }
        XCTAssertEqual(inFlight, 1)
        XCTAssertLessThan(expected.amountOut, confirmed.amountOut, "the order in flight moves the expected price")

        // The arbiter commits it in block 2, and says so before the block reaches the book.
        XCTAssertNil(book.committed(hash, height: 2, index: 0, waiter: "bob"), "waits for its block")
        XCTAssertNoThrow(try market.chain.submit(order).get(), "the ledger applies the order")
        let fill = try XCTUnwrap(market.chain.lastFill)
        let settled = try book.follow(seal(&market))
        XCTAssertEqual(settled.map(\.0), ["bob"])
        XCTAssertEqual(settled.first?.1.height, 2)
        XCTAssertEqual(settled.first?.1.index, 0)
        XCTAssertEqual(settled.first?.1.licence, fill.licence)
        XCTAssertEqual(settled.first?.1.stablecoin, fill.stablecoin)
        XCTAssertEqual(book.ordersInFlight, 0)

        // Sent again: answered from memory, not relayed or counted again.
        guard case .answer(.success(let remembered)) = book.admit(order.encoded) else {
            return XCTFail("a filled order sent again must be answered from memory")
        }
        XCTAssertEqual(remembered, settled.first?.1)
        XCTAssertEqual(book.ordersInFlight, 0)
        // A receipt that arrives after its block: answered at once.
        XCTAssertEqual(book.committed(hash, height: 2, index: 0, waiter: "late"), .success(remembered))
        // Trades, newest first.
        XCTAssertEqual(book.trades(token: 1, limit: 10).map(\.hash), [order.hash])
    }

    func testWhatIsNotAnOrderIsRefusedAndALostChainAnswersEveryone() throws {
        var market = try PoolChain()
        var book = ExchangeBook<String>(genesis: market.chain.genesis)
        _ = try book.follow(seal(&market))
        let transfer = try market.chain.sign(
            market.chain.bob, .transfer(token: 0, to: market.chain.alice.publicKey, amount: 1))
        guard case .answer(.failure(let refused)) = book.admit(transfer.encoded) else { return XCTFail() }
        XCTAssertEqual(refused.code, .notAnOrder)
        guard case .answer(.failure(let malformed)) = book.admit([0x01, 0x02]) else { return XCTFail() }
        XCTAssertEqual(malformed.code, .malformedTransaction)
        guard
            case .quoteAnswer? = Optional(book.quote(1, token: 1, side: .sell, exactOutput: true, amount: 1)),
            case .failed(_, let code, _) = book.quote(2, token: 9, side: .buy, exactOutput: false, amount: 1)
        else { return XCTFail() }
        XCTAssertEqual(code, .unknownPool)

        let order = try market.chain.sign(
            market.chain.bob,
            .swapExactIn(token: 1, side: .buy, amountIn: 1_000, minimumOut: 0, deadlineMilliseconds: .max))
        guard case .relay(_, let hash) = book.admit(order.encoded) else { return XCTFail() }
        XCTAssertNil(book.committed(hash, height: 5, index: 0, waiter: "bob"))
        let answered = book.fail("the arbiter ended the block subscription")
        XCTAssertEqual(answered.map(\.0), ["bob"])
        XCTAssertEqual(answered.first?.1.code, .exchangeUnavailable)
        guard case .answer(.failure(let later)) = book.admit(order.encoded) else { return XCTFail() }
        XCTAssertEqual(later.code, .exchangeUnavailable)
    }
}
