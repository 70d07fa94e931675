import RWACrypto
import RWALedger
import RWAMarket
import RWAWire

/// The exchange's book, pure: a replica of the ledger that follows committed blocks, the pools'
/// trades and price history, and the orders relayed to the arbiter, each with whoever waits for
/// its fill (`Waiter`, the shell's handle on a reply). It answers quotes and market data, admits
/// orders (an order sent again is answered from memory), and says which waiters each block
/// settles. It does no I/O: the shell relays admitted orders and carries the answers out.
public struct ExchangeBook<Waiter> {
    /// How much history is kept: trades per pool for `get_trades`, fills of committed orders for
    /// late receipts and resent orders, and pool observations for time-weighted prices.
    public struct Retention: Sendable {
        public var tradesPerPool = 1_000
        public var fills = 100_000
        public var observationsPerPool = 10_000

        public init() {}
    }

    /// What becomes of a submitted order.
    public enum Admission {
        /// Answered at once: not an order, malformed, already filled, or the book has failed.
        case answer(Result<OrderFill, Rejection>)
        /// New: relay it to the arbiter, then report its outcome with `committed` or `refused`.
        case relay(Transaction, hash: Digest32)
    }

    public private(set) var ledger: Ledger
    public let retention: Retention
    /// Why the book stopped following the chain, once it has.
    public private(set) var failure: String?
    private var trades: [TokenID: [TradeRecord]] = [:]
    /// Each pool as it stood after every block that changed it: its accumulators and reserves
    /// give the cumulative price at any later time, for time-weighted averages.
    private var observations: [TokenID: [Pool]] = [:]
    private var fills: [Digest32: OrderFill] = [:]
    private var fillOrder: [Digest32] = []
    private var waiting: [Digest32: [Waiter]] = [:]
    /// Orders relayed and not yet committed or refused, by relay number.
    private var inFlight: [Digest32: (number: UInt64, operation: LedgerOperation)] = [:]
    private var nextOrderNumber: UInt64 = 0

    public init(genesis: Genesis, retention: Retention = Retention()) {
        self.ledger = Ledger(genesis: genesis)
        self.retention = retention
    }

    /// Replays one committed block; returns the waiters its orders settle, with their fills.
    public mutating func follow(_ block: Block) throws(ReplayError) -> [(Waiter, OrderFill)] {
        let height = block.header.height
        var applied: [(index: Int, operation: UInt8, fill: PoolFill)] = []
        try ledger.follow(block) { index, transaction, fill in
            if let fill { applied.append((index, transaction.operation.tag, fill)) }
        }
        var settled: [(Waiter, OrderFill)] = []
        for (index, operation, fill) in applied {
            let committed = block.transactions[index]
            let outcome = OrderFill(
                hash: committed.hash, height: height, index: UInt32(index), operation: operation,
                licence: fill.licence, stablecoin: fill.stablecoin, shares: fill.shares)
            fills[committed.hash] = outcome
            fillOrder.append(committed.hash)
            inFlight[committed.hash] = nil
            for waiter in waiting.removeValue(forKey: committed.hash) ?? [] { settled.append((waiter, outcome)) }
            if case .swap(let side) = fill.kind {
                trades[fill.token, default: []].append(
                    TradeRecord(
                        height: height, index: UInt32(index), hash: committed.hash, trader: fill.trader,
                        side: side.rawValue, amountIn: fill.amountIn, amountOut: fill.amountOut))
                if trades[fill.token, default: []].count > 2 * retention.tradesPerPool {
                    trades[fill.token]?.removeFirst(retention.tradesPerPool)
                }
            }
        }
        // Every transaction of a block shares its time, so one reading per block and pool,
        // after the block, is the whole price history.
        for token in Set(applied.map(\.fill.token)) {
            guard let observation = ledger.state.pools[token]?.market else { continue }
            // In place: a copy taken out of the dictionary would copy the whole history to append.
            Self.record(observation, in: &observations[token, default: []], keeping: retention.observationsPerPool)
        }
        if fillOrder.count > 2 * retention.fills {
            for hash in fillOrder.prefix(retention.fills) { fills[hash] = nil }
            fillOrder.removeFirst(retention.fills)
        }
        return settled
    }

    /// Stops following the chain: every order waiting is answered with the failure, and so is
    /// every later one.
    public mutating func fail(_ reason: String) -> [(Waiter, Rejection)] {
        failure = reason
        defer { waiting.removeAll() }
        let rejection = Rejection(.exchangeUnavailable, "the exchange lost the chain: \(reason)")
        return waiting.values.flatMap { $0 }.map { ($0, rejection) }
    }

    // MARK: Quotes and market data

    /// A quote against the confirmed reserves, and against them after the orders in flight for
    /// this pool, applied in the order they were relayed (as the arbiter will most likely order
    /// them; those that would fail are skipped).
    public func quote(_ requestID: UInt64, token: TokenID, side: TradeSide, exactOutput: Bool, amount: UInt128)
        -> ExchangeMessage
    {
        guard let pool = ledger.state.pools[token] else {
            return .failed(requestID: requestID, code: .unknownPool, reason: "no pool for token \(token)")
        }
        func swap(_ market: Pool) -> SwapAmounts? {
            var market = market
            if exactOutput {
                guard
                    let paid = try? market.swap(
                        exactOut: amount, side.direction, timestampSeconds: market.lastTimestampSeconds)
                else { return nil }
                return SwapAmounts(amountIn: paid, amountOut: amount)
            }
            guard
                let received = try? market.swap(
                    exactIn: amount, side.direction, timestampSeconds: market.lastTimestampSeconds)
            else { return nil }
            return SwapAmounts(amountIn: amount, amountOut: received)
        }
        var expected = pool.market
        let orders = inFlight.values.filter { $0.operation.poolToken == token }.sorted { $0.number < $1.number }
        for order in orders { Self.apply(order.operation, to: &expected) }
        return .quoteAnswer(
            requestID: requestID, height: ledger.height, confirmed: swap(pool.market), expected: swap(expected),
            ordersInFlight: UInt32(orders.count))
    }

    /// A swap order's effect on a pool, if it would fill (liquidity orders leave the price as it is).
    private static func apply(_ operation: LedgerOperation, to market: inout Pool) {
        let timestamp = market.lastTimestampSeconds
        switch operation {
        case .swapExactIn(_, let side, let amountIn, let minimumOut, _):
            _ = try? market.swap(exactIn: amountIn, side.direction, minimumOut: minimumOut, timestampSeconds: timestamp)
        case .swapExactOut(_, let side, let amountOut, let maximumIn, _):
            _ = try? market.swap(exactOut: amountOut, side.direction, maximumIn: maximumIn, timestampSeconds: timestamp)
        case .transfer, .mint, .burn, .setFrozen, .freezePartial, .unfreezePartial, .forcedTransfer, .recoverWallet,
            .setPaused, .setCompliance, .registerIdentity, .linkWallet, .addClaim, .revokeClaim, .registerResource,
            .createPool, .addLiquidity, .removeLiquidity, .openChannel, .closeChannel, .registerState, .challenge,
            .settleChannel, .claimRent:
            break
        }
    }

    /// Reserves, spot depth for `sizes`, and the time-weighted price over `twapSeconds` ending at
    /// the last block's time.
    public func market(_ requestID: UInt64, token: TokenID, twapSeconds: UInt32, sizes: [UInt128]) -> ExchangeMessage {
        guard let pool = ledger.state.pools[token] else {
            return .failed(requestID: requestID, code: .unknownPool, reason: "no pool for token \(token)")
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
        let twap = Pool.averagePrice0(
            history: observations[token, default: []],
            now: UInt32(truncatingIfNeeded: ledger.tipTimeMilliseconds / 1000),
            window: twapSeconds)
        return .marketAnswer(
            requestID: requestID,
            market: MarketData(
                height: ledger.height, timeMilliseconds: ledger.tipTimeMilliseconds, licenceReserve: market.reserve0,
                stablecoinReserve: market.reserve1, totalShares: market.totalShares, twapSeconds: twap?.seconds ?? 0,
                twap: twap?.price, depth: depth))
    }

    /// The last `limit` trades of a pool, newest first.
    public func trades(token: TokenID, limit: Int) -> [TradeRecord] {
        Array(trades[token, default: []].suffix(limit).reversed())
    }

    // MARK: Orders

    /// Admits a signed order: a pool transaction not seen before is to be relayed and counts in
    /// flight; anything else is answered at once.
    public mutating func admit(_ bytes: [UInt8]) -> Admission {
        let transaction: Transaction
        do {
            transaction = try Transaction(decoding: bytes)
        } catch {
            return .answer(.failure(Rejection(.malformedTransaction, "\(error)")))
        }
        switch transaction.operation {
        case .addLiquidity, .removeLiquidity, .swapExactIn, .swapExactOut: break
        case .transfer, .mint, .burn, .setFrozen, .freezePartial, .unfreezePartial, .forcedTransfer, .recoverWallet,
            .setPaused, .setCompliance, .registerIdentity, .linkWallet, .addClaim, .revokeClaim, .registerResource,
            .createPool, .openChannel, .closeChannel, .registerState, .challenge, .settleChannel, .claimRent:
            return .answer(
                .failure(
                    Rejection(.notAnOrder, "\(transaction.operation.name) is not an order; send it to the arbiter")))
        }
        let hash = Blake2b.hash256(bytes)
        // An order sent again after its fill is answered from memory, not counted in flight.
        if let fill = fills[hash] { return .answer(.success(fill)) }
        if let failure {
            return .answer(.failure(Rejection(.exchangeUnavailable, "the exchange lost the chain: \(failure)")))
        }
        inFlight[hash] = (nextOrderNumber, transaction.operation)
        nextOrderNumber += 1
        return .relay(transaction, hash: hash)
    }

    /// The arbiter committed a relayed order at `height`: its fill if that block has been replayed
    /// already, a failure, or nil when `waiter` now waits for the block.
    public mutating func committed(_ hash: Digest32, height: UInt64, index: UInt32, waiter: Waiter) -> Result<
        OrderFill, Rejection
    >? {
        if let fill = fills[hash] { return .success(fill) }
        if let failure {
            inFlight[hash] = nil
            return .failure(Rejection(.exchangeUnavailable, "committed, but the exchange lost the chain: \(failure)"))
        }
        if height <= ledger.height {
            // A receipt for an order replayed so long ago its fill is forgotten.
            inFlight[hash] = nil
            return .failure(
                Rejection(
                    .exchangeUnavailable,
                    "committed in block \(height) at index \(index), too long ago for the exchange to remember its "
                        + "fill; read the block"))
        }
        waiting[hash, default: []].append(waiter)
        return nil
    }

    /// The arbiter refused a relayed order (or could not be reached): it is no longer in flight.
    public mutating func refused(_ hash: Digest32) {
        inFlight[hash] = nil
    }

    /// Orders relayed and not yet committed or refused.
    public var ordersInFlight: Int { inFlight.count }
}

extension ExchangeBook: Sendable where Waiter: Sendable {}
extension ExchangeBook.Admission: Sendable where Waiter: Sendable {}

extension ExchangeBook {
    /// One reading per block: a reading at the same time replaces the last one. The history keeps
    /// between `keeping` and twice as many readings, trimmed a block of `keeping` at a time.
    fileprivate static func record(
        _ observation: Pool, in history: inout [Pool], keeping: Int
    ) {
        if history.last?.lastTimestampSeconds == observation.lastTimestampSeconds {
            history[history.count - 1] = observation
        } else {
            history.append(observation)
            if history.count > 2 * keeping { history.removeFirst(keeping) }
        }
    }
}
