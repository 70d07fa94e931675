import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RWACrypto
import RWALedger
import RWAMarket
import RWASession
import RWAWire

/// The exchange peer (`rwa-amm run`): it follows the chain through the arbiter's block
/// subscription, replaying every block into its own `Ledger` (trusting the arbiter's signed
/// headers, not re-verifying each signature), and so knows every pool's confirmed reserves,
/// price history and trades. It answers quotes and market data from that replica and relays
/// traders' signed orders to the arbiter, reporting each order's fill once the block that holds
/// it is durable and replayed, or the arbiter's rejection.
///
/// The exchange holds no one's keys: an order is a transaction its trader signed, with the
/// trader's own limit and deadline, so the exchange can neither change nor front-run its terms.
public final class ExchangeService: Sendable {
    public let chainID: Digest32
    private let arbiter: ArbiterClient
    private let book: NIOLockedValueBox<Book>
    private let outboxes = NIOLockedValueBox<[ObjectIdentifier: PacedOutbox]>([:])
    private let logger: Logger

    /// Trades kept per pool for `get_trades`, and committed pool operations remembered for
    /// orders whose receipt arrives after the block was replayed.
    static let tradesKept = 1_000
    static let outcomesKept = 100_000
    static let observationsKept = 10_000

    typealias FillWaiter = @Sendable (Result<OrderFill, Rejection>) -> Void

    struct Book {
        var ledger: Ledger
        var trades: [TokenID: [TradeRecord]] = [:]
        /// Each pool as it stood after every block that changed it: its accumulators and reserves
        /// give the cumulative price at any later time, for time-weighted averages.
        var observations: [TokenID: [Pool]] = [:]
        var outcomes: [Digest32: OrderFill] = [:]
        var outcomeOrder: [Digest32] = []
        var waiting: [Digest32: [FillWaiter]] = [:]
        /// Orders sent to the arbiter and not yet committed or rejected, by submission number.
        var inFlight: [Digest32: (number: UInt64, operation: LedgerOperation)] = [:]
        var nextOrderNumber: UInt64 = 0
        var failure: String?
    }

    /// `arbiter` is a session with the arbiter, which the exchange uses for submissions and for
    /// its one block subscription.
    public init(genesis: Genesis, arbiter: ArbiterClient, logger: Logger = Logger(label: "rwanet.exchange")) {
        precondition(genesis.chainID == arbiter.chainID)
        self.chainID = genesis.chainID
        self.arbiter = arbiter
        self.book = NIOLockedValueBox(Book(ledger: Ledger(genesis: genesis)))
        self.logger = logger
    }

    /// The height of the last block replayed.
    public var height: UInt64 { book.withLockedValue { $0.ledger.height } }

    /// Follows the chain from the first block. Returns once the replica has reached the height
    /// the arbiter reported at the call, so nothing is quoted from a stale state; following goes
    /// on in the background until the session ends.
    public func start() async throws {
        let target = try await arbiter.status().height
        let blocks = arbiter.subscribe(from: 1)
        let caughtUp = AsyncStream<Void>.makeStream()
        Task { [self] in
            var signalled = false
            do {
                for try await block in blocks {
                    try follow(block)
                    if !signalled && block.header.height >= target {
                        signalled = true
                        caughtUp.continuation.finish()
                    }
                }
                fail("the arbiter ended the block subscription")
            } catch {
                fail("\(error)")
            }
            caughtUp.continuation.finish()
        }
        if target == 0 { caughtUp.continuation.finish() }
        for await _ in caughtUp.stream {}
        if let failure = book.withLockedValue({ $0.failure }) { throw ExchangeFailure(failure) }
    }

    private func fail(_ reason: String) {
        logger.error("stopped following the chain", metadata: ["reason": "\(reason)"])
        let waiters = book.withLockedValue { book -> [FillWaiter] in
            book.failure = reason
            defer { book.waiting.removeAll() }
            return book.waiting.values.flatMap { $0 }
        }
        for waiter in waiters {
            waiter(.failure(Rejection(.exchangeUnavailable, "the exchange lost the chain: \(reason)")))
        }
    }

    /// Replays one block and settles the orders it holds.
    private func follow(_ block: Block) throws {
        var settled: [(FillWaiter, OrderFill)] = []
        try book.withLockedValue { book in
            let height = block.header.height
            var fills: [(index: Int, operation: UInt8, fill: PoolFill)] = []
            try book.ledger.follow(block) { index, transaction, fill in
                if let fill { fills.append((index, transaction.operation.tag, fill)) }
            }
            for (index, operation, fill) in fills {
                let committed = block.transactions[index]
                let outcome = OrderFill(
                    hash: committed.hash, height: height, index: UInt32(index), operation: operation,
                    licence: fill.licence, stablecoin: fill.stablecoin, shares: fill.shares)
                book.outcomes[committed.hash] = outcome
                book.outcomeOrder.append(committed.hash)
                book.inFlight[committed.hash] = nil
                for waiter in book.waiting.removeValue(forKey: committed.hash) ?? [] {
                    settled.append((waiter, outcome))
                }
                if case .swap(let side) = fill.kind {
                    book.trades[fill.token, default: []].append(
                        TradeRecord(
                            height: height, index: UInt32(index), hash: committed.hash, trader: fill.trader,
                            side: side.rawValue, amountIn: fill.amountIn, amountOut: fill.amountOut))
                    if book.trades[fill.token]!.count > 2 * Self.tradesKept {
                        book.trades[fill.token]!.removeFirst(Self.tradesKept)
                    }
                }
            }
            // Every transaction of a block shares its time, so one reading per block and pool,
            // after the block, is the whole price history.
            for token in Set(fills.map(\.fill.token)) {
                let observation = book.ledger.state.pools[token]!.market
                var observations = book.observations[token, default: []]
                if observations.last?.lastTimestamp == observation.lastTimestamp {
                    observations[observations.count - 1] = observation
                } else {
                    observations.append(observation)
                    if observations.count > 2 * Self.observationsKept {
                        observations.removeFirst(Self.observationsKept)
                    }
                }
                book.observations[token] = observations
            }
            if book.outcomeOrder.count > 2 * Self.outcomesKept {
                for hash in book.outcomeOrder.prefix(Self.outcomesKept) { book.outcomes[hash] = nil }
                book.outcomeOrder.removeFirst(Self.outcomesKept)
            }
        }
        for (waiter, fill) in settled { waiter(.success(fill)) }
    }

    /// Answers `session` until it closes.
    public func serve(_ session: PeerSession) {
        let outbox = PacedOutbox(session: session)
        outboxes.withLockedValue { $0[ObjectIdentifier(session)] = outbox }
        session.eventLoop.execute { [self] in
            session.inbox.consumeOnEventLoop { event in
                switch event {
                case .message(.exchange(let message)):
                    self.handle(message, from: session)
                case .message(let other):
                    session.beginClose(
                        reporting: SessionError(.unexpectedMessage, "\(other.type) is not a message for the exchange"))
                case .finished:
                    self.outboxes.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(session)) }
                }
            }
        }
    }

    private func reply(_ session: PeerSession, _ message: ExchangeMessage) {
        @Sendable func send() {
            outboxes.withLockedValue { $0[ObjectIdentifier(session)] }?.send([.exchange(message)])
        }
        if session.eventLoop.inEventLoop { send() } else { session.eventLoop.execute(send) }
    }

    private func handle(_ message: ExchangeMessage, from session: PeerSession) {
        switch message {
        case .quote(let id, let token, let side, let exactOutput, let amount):
            reply(session, quote(id, token: token, side: TradeSide(rawValue: side)!, exactOutput: exactOutput, amount))
        case .getMarket(let id, let token, let twapSeconds, let sizes):
            reply(session, market(id, token: token, twapSeconds: twapSeconds, sizes: sizes))
        case .getTrades(let id, let token, let limit):
            let trades = book.withLockedValue { $0.trades[token, default: []].suffix(Int(limit)) }
            reply(session, .tradesAnswer(requestID: id, trades: Array(trades.reversed())))
        case .submitOrder(let id, let bytes):
            submit(bytes) { [self] result in
                switch result {
                case .success(let fill): reply(session, .orderFilled(requestID: id, fill: fill))
                case .failure(let rejection):
                    reply(
                        session,
                        .orderRejected(
                            requestID: id, hash: Blake2b.hash256(bytes), code: rejection.code, reason: rejection.reason)
                    )
                }
            }
        case .quoteAnswer, .marketAnswer, .tradesAnswer, .orderFilled, .orderRejected, .failed:
            session.beginClose(
                reporting: SessionError(.unexpectedMessage, "\(message.type) is not a request to the exchange"))
        }
    }

    // MARK: Quotes and market data (from the replica)

    private func quote(_ id: UInt64, token: TokenID, side: TradeSide, exactOutput: Bool, _ amount: UInt128)
        -> ExchangeMessage
    {
        book.withLockedValue { book in
            guard let pool = book.ledger.state.pools[token] else {
                return .failed(requestID: id, code: .unknownPool, reason: "no pool for token \(token)")
            }
            func swap(_ market: Pool) -> SwapAmounts? {
                var market = market
                let direction = side.direction
                if exactOutput {
                    guard let paid = try? market.swap(exactOut: amount, direction, timestamp: market.lastTimestamp)
                    else { return nil }
                    return SwapAmounts(amountIn: paid, amountOut: amount)
                }
                guard let received = try? market.swap(exactIn: amount, direction, timestamp: market.lastTimestamp)
                else { return nil }
                return SwapAmounts(amountIn: amount, amountOut: received)
            }
            // The orders in flight for this pool, applied in the order they were sent, as the
            // arbiter will most likely order them; those that would fail are skipped.
            var expected = pool.market
            let orders = book.inFlight.values.filter { $0.operation.poolToken == token }.sorted {
                $0.number < $1.number
            }
            for order in orders { Self.apply(order.operation, to: &expected) }
            return .quoteAnswer(
                requestID: id, height: book.ledger.height, confirmed: swap(pool.market), expected: swap(expected),
                ordersInFlight: UInt32(orders.count))
        }
    }

    /// A swap order's effect on a pool, if it would fill (liquidity orders leave the price as it is).
    private static func apply(_ operation: LedgerOperation, to market: inout Pool) {
        let timestamp = market.lastTimestamp
        switch operation {
        case .swapExactIn(_, let side, let amountIn, let minimumOut, _):
            _ = try? market.swap(exactIn: amountIn, side.direction, minimumOut: minimumOut, timestamp: timestamp)
        case .swapExactOut(_, let side, let amountOut, let maximumIn, _):
            _ = try? market.swap(exactOut: amountOut, side.direction, maximumIn: maximumIn, timestamp: timestamp)
        case .transfer, .mint, .burn, .setFrozen, .freezePartial, .unfreezePartial, .forcedTransfer, .recoverWallet,
            .setPaused, .setCompliance, .registerIdentity, .linkWallet, .addClaim, .revokeClaim, .registerResource,
            .createPool, .addLiquidity, .removeLiquidity:
            break
        }
    }

    private func market(_ id: UInt64, token: TokenID, twapSeconds: UInt32, sizes: [UInt128]) -> ExchangeMessage {
        book.withLockedValue { book in
            guard let pool = book.ledger.state.pools[token] else {
                return .failed(requestID: id, code: .unknownPool, reason: "no pool for token \(token)")
            }
            let market = pool.market
            let depth = sizes.map { size in
                DepthLevel(
                    size: size,
                    buyCost: (try? ConstantProduct.amountIn(
                        amountOut: size, reserveIn: market.reserve1, reserveOut: market.reserve0)) ?? 0,
                    sellProceeds: (try? ConstantProduct.amountOut(
                        amountIn: size, reserveIn: market.reserve0, reserveOut: market.reserve1)) ?? 0)
            }
            // The window ends at the last block's time.
            let twap = Pool.averagePrice0(
                history: book.observations[token, default: []],
                now: UInt32(truncatingIfNeeded: book.ledger.tipTime / 1000), window: twapSeconds)
            return .marketAnswer(
                requestID: id,
                market: MarketData(
                    height: book.ledger.height, time: book.ledger.tipTime, licenceReserve: market.reserve0,
                    stablecoinReserve: market.reserve1, totalShares: market.totalShares,
                    twapSeconds: twap?.seconds ?? 0,
                    twap: twap?.price, depth: depth))
        }
    }

    // MARK: Orders

    /// Relays a signed order to the arbiter; `completion` gets its fill once the block holding it
    /// has been replayed here, or the arbiter's rejection.
    func submit(_ bytes: [UInt8], completion: @escaping FillWaiter) {
        let transaction: Transaction
        do {
            transaction = try Transaction(decoding: bytes)
        } catch {
            completion(.failure(Rejection(.malformedTransaction, "\(error)")))
            return
        }
        switch transaction.operation {
        case .addLiquidity, .removeLiquidity, .swapExactIn, .swapExactOut: break
        case .transfer, .mint, .burn, .setFrozen, .freezePartial, .unfreezePartial, .forcedTransfer, .recoverWallet,
            .setPaused, .setCompliance, .registerIdentity, .linkWallet, .addClaim, .revokeClaim, .registerResource,
            .createPool:
            completion(
                .failure(
                    Rejection(.notAnOrder, "\(transaction.operation.name) is not an order; send it to the arbiter")))
            return
        }
        let hash = Blake2b.hash256(bytes)
        // An order sent again after its fill is answered from memory, not counted in flight.
        let early = book.withLockedValue { book -> Result<OrderFill, Rejection>? in
            if let fill = book.outcomes[hash] { return .success(fill) }
            if let failure = book.failure {
                return .failure(Rejection(.exchangeUnavailable, "the exchange lost the chain: \(failure)"))
            }
            book.inFlight[hash] = (book.nextOrderNumber, transaction.operation)
            book.nextOrderNumber += 1
            return nil
        }
        if let early {
            completion(early)
            return
        }
        arbiter.submitPipelined(transaction).whenComplete { [self] result in
            switch result {
            case .success(let receipt):
                // Committed: the fill is known once the subscription delivers its block (which
                // may already have happened).
                let known = book.withLockedValue { book -> Result<OrderFill, Rejection>? in
                    if let fill = book.outcomes[hash] { return .success(fill) }
                    if let failure = book.failure {
                        book.inFlight[hash] = nil
                        return .failure(
                            Rejection(.exchangeUnavailable, "committed, but the exchange lost the chain: \(failure)"))
                    }
                    if receipt.height <= book.ledger.height {
                        // A receipt for an order replayed so long ago its fill is forgotten.
                        book.inFlight[hash] = nil
                        return .failure(
                            Rejection(
                                .exchangeUnavailable,
                                "committed in block \(receipt.height) at index \(receipt.index), too long ago for the "
                                    + "exchange to remember its fill; read the block"))
                    }
                    book.waiting[hash, default: []].append(completion)
                    return nil
                }
                if let known { completion(known) }
            case .failure(let error):
                book.withLockedValue { _ = $0.inFlight.removeValue(forKey: hash) }
                completion(
                    .failure(
                        error as? Rejection
                            ?? Rejection(.exchangeUnavailable, "the arbiter did not take the order: \(error)")))
            }
        }
    }
}

public struct ExchangeFailure: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
