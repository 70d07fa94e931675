/// A constant-product pool of two tokens with Uniswap v2's accounting (`UniswapV2Pair`), as a
/// pure value: liquidity shares, swaps checked by the fee-adjusted product of reserves, and
/// cumulative prices for time-weighted averages. Time comes in as a timestamp in seconds; the
/// ledger that owns the pool moves the tokens and calls these only with what it received.
public struct Pool: Hashable, Sendable {
    public private(set) var reserve0: UInt128 = 0
    public private(set) var reserve1: UInt128 = 0
    /// All shares, including the `minimumLiquidity` locked by the first deposit.
    public private(set) var totalShares: UInt128 = 0
    /// Sum over time of price0 = reserve1 / reserve0 in UQ112x112, times seconds (wrapping, as on chain).
    public private(set) var price0Cumulative: UInt256 = .zero
    /// Sum over time of price1 = reserve0 / reserve1 in UQ112x112, times seconds (wrapping).
    public private(set) var price1Cumulative: UInt256 = .zero
    public private(set) var lastTimestampSeconds: UInt32 = 0

    public init() {}

    /// A pool as stored by the ledger that owns it.
    public init(
        reserve0: UInt128, reserve1: UInt128, totalShares: UInt128, price0Cumulative: UInt256,
        price1Cumulative: UInt256, lastTimestampSeconds: UInt32
    ) {
        self.reserve0 = reserve0
        self.reserve1 = reserve1
        self.totalShares = totalShares
        self.price0Cumulative = price0Cumulative
        self.price1Cumulative = price1Cumulative
        self.lastTimestampSeconds = lastTimestampSeconds
    }

    /// The cumulative prices as they would read at `timestamp`, without writing (v2's
    /// `currentCumulativePrices`): what a TWAP reading between blocks needs.
    public func cumulativePrices(at timestamp: UInt32) -> (price0: UInt256, price1: UInt256) {
        let elapsed = timestamp &- lastTimestampSeconds
        guard elapsed > 0, reserve0 != 0, reserve1 != 0 else { return (price0Cumulative, price1Cumulative) }
        return (
            price0Cumulative
                &+ Self.price(numerator: reserve1, denominator: reserve0).wrappingMultiplied(by: UInt128(elapsed)),
            price1Cumulative
                &+ Self.price(numerator: reserve0, denominator: reserve1).wrappingMultiplied(by: UInt128(elapsed))
        )
    }

    /// Adds `amount0` and `amount1` to the reserves and returns the shares minted for them
    /// (`mint`). The first deposit mints `sqrt(amount0 * amount1)` shares and locks
    /// `minimumLiquidity` of them; later ones mint in proportion to the smaller of the two ratios,
    /// so depositing off-price donates the excess to the pool.
    public mutating func deposit(amount0: UInt128, amount1: UInt128, timestampSeconds timestamp: UInt32)
        throws(MarketError) -> UInt128
    {
        let (balance0, overflow0) = reserve0.addingReportingOverflow(amount0)
        let (balance1, overflow1) = reserve1.addingReportingOverflow(amount1)
        guard !overflow0, !overflow1, balance0 <= ConstantProduct.reserveMax, balance1 <= ConstantProduct.reserveMax
        else {
            throw .reserveOverflow
        }
        let shares: UInt128
        var locked: UInt128 = 0
        if totalShares == 0 {
            let root = ConstantProduct.squareRoot(UInt256.product(amount0, amount1))
            guard root > ConstantProduct.minimumLiquidity else { throw .insufficientLiquidityMinted }
            shares = root - ConstantProduct.minimumLiquidity
            locked = ConstantProduct.minimumLiquidity
        } else {
            let by0 = UInt256.product(amount0, totalShares).quotientAndRemainder(dividingBy: reserve0).quotient
            let by1 = UInt256.product(amount1, totalShares).quotientAndRemainder(dividingBy: reserve1).quotient
            guard let smaller = min(by0, by1).uint128 else { throw .reserveOverflow }
            shares = smaller
        }
        guard shares > 0 else { throw .insufficientLiquidityMinted }
        totalShares += shares + locked
        update(balance0: balance0, balance1: balance1, timestamp: timestamp)
        return shares
    }

    /// Adds `amount1` to the stablecoin reserve without minting shares, as tokens sent to a v2
    /// pair and then `sync`ed do: every share is worth more. The ledger gives a pool its share of
    /// a licence's rent this way, so liquidity providers receive it when they withdraw.
    public mutating func donate(amount1: UInt128, timestampSeconds timestamp: UInt32) throws(MarketError) {
        let (balance1, overflow) = reserve1.addingReportingOverflow(amount1)
        guard !overflow, balance1 <= ConstantProduct.reserveMax else { throw .reserveOverflow }
        update(balance0: reserve0, balance1: balance1, timestamp: timestamp)
    }

    /// Burns `shares` and returns their pro-rata part of both reserves, rounded down (`burn`).
    public mutating func withdraw(shares: UInt128, timestampSeconds timestamp: UInt32) throws(MarketError) -> (
        amount0: UInt128, amount1: UInt128
    ) {
        guard shares <= totalShares else { throw .sharesAboveSupply }
        guard totalShares > 0 else { throw .insufficientLiquidityBurned }
        let amount0 = UInt256.product(shares, reserve0).quotientAndRemainder(dividingBy: totalShares).quotient.low
        let amount1 = UInt256.product(shares, reserve1).quotientAndRemainder(dividingBy: totalShares).quotient.low
        guard amount0 > 0, amount1 > 0 else { throw .insufficientLiquidityBurned }
        totalShares -= shares
        update(balance0: reserve0 - amount0, balance1: reserve1 - amount1, timestamp: timestamp)
        return (amount0, amount1)
    }

    /// The general swap (`swap`): the pool has received `amount0In` and `amount1In` and pays out
    /// `amount0Out` and `amount1Out`; it accepts only if the product of the balances, each less
    /// 0.3% of its input, is at least the product of the reserves before. Nothing changes on refusal.
    public mutating func swap(
        amount0In: UInt128, amount1In: UInt128, amount0Out: UInt128, amount1Out: UInt128,
        timestampSeconds timestamp: UInt32
    ) throws(MarketError) {
        guard amount0Out > 0 || amount1Out > 0 else { throw .insufficientOutputAmount }
        guard amount0Out < reserve0, amount1Out < reserve1 else { throw .insufficientLiquidity }
        guard amount0In > 0 || amount1In > 0 else { throw .insufficientInputAmount }
        let (gross0, overflow0) = reserve0.addingReportingOverflow(amount0In)
        let (gross1, overflow1) = reserve1.addingReportingOverflow(amount1In)
        guard !overflow0, !overflow1 else { throw .reserveOverflow }
        let balance0 = gross0 - amount0Out
        let balance1 = gross1 - amount1Out
        guard balance0 <= ConstantProduct.reserveMax, balance1 <= ConstantProduct.reserveMax else {
            throw .reserveOverflow
        }
        // balance * 1000 - amountIn * 3 (never negative: balance >= amountIn); < 2^122.
        let adjusted0 =
            balance0 * ConstantProduct.feeDenominator - amount0In
            * (ConstantProduct.feeDenominator - ConstantProduct.feeNumerator)
        let adjusted1 =
            balance1 * ConstantProduct.feeDenominator - amount1In
            * (ConstantProduct.feeDenominator - ConstantProduct.feeNumerator)
        let after = UInt256.product(adjusted0, adjusted1)
        let before = UInt256.product(reserve0, reserve1).multiplied(
            by: ConstantProduct.feeDenominator * ConstantProduct.feeDenominator)!
        guard after >= before else { throw .productDecreased }
        update(balance0: balance0, balance1: balance1, timestamp: timestamp)
    }

    /// Which token a trader gives.
    public enum Direction: Sendable {
        case zeroForOne
        case oneForZero
    }

    /// Swaps exactly `amountIn` for at least `minimumOut`; returns the amount out (the router's
    /// `swapExactTokensForTokens` on one pool).
    public mutating func swap(
        exactIn amountIn: UInt128, _ direction: Direction, minimumOut: UInt128 = 0,
        timestampSeconds timestamp: UInt32
    ) throws(SwapError) -> UInt128 {
        let (reserveIn, reserveOut) = direction == .zeroForOne ? (reserve0, reserve1) : (reserve1, reserve0)
        let amountOut: UInt128
        do {
            amountOut = try ConstantProduct.amountOut(amountIn: amountIn, reserveIn: reserveIn, reserveOut: reserveOut)
        } catch {
            throw .market(error)
        }
        guard amountOut >= minimumOut else { throw .limitExceeded(required: minimumOut, actual: amountOut) }
        try execute(amountIn: amountIn, amountOut: amountOut, direction, timestamp: timestamp)
        return amountOut
    }

    /// Swaps at most `maximumIn` for exactly `amountOut`; returns the amount in (the router's
    /// `swapTokensForExactTokens` on one pool).
    public mutating func swap(
        exactOut amountOut: UInt128, _ direction: Direction, maximumIn: UInt128 = .max,
        timestampSeconds timestamp: UInt32
    ) throws(SwapError) -> UInt128 {
        let (reserveIn, reserveOut) = direction == .zeroForOne ? (reserve0, reserve1) : (reserve1, reserve0)
        let amountIn: UInt128
        do {
            amountIn = try ConstantProduct.amountIn(amountOut: amountOut, reserveIn: reserveIn, reserveOut: reserveOut)
        } catch {
            throw .market(error)
        }
        guard amountIn <= maximumIn else { throw .limitExceeded(required: maximumIn, actual: amountIn) }
        try execute(amountIn: amountIn, amountOut: amountOut, direction, timestamp: timestamp)
        return amountIn
    }

    private mutating func execute(amountIn: UInt128, amountOut: UInt128, _ direction: Direction, timestamp: UInt32)
        throws(SwapError)
    {
        do {
            switch direction {
            case .zeroForOne:
                try swap(
                    amount0In: amountIn, amount1In: 0, amount0Out: 0, amount1Out: amountOut, timestampSeconds: timestamp
                )
            case .oneForZero:
                try swap(
                    amount0In: 0, amount1In: amountIn, amount0Out: amountOut, amount1Out: 0, timestampSeconds: timestamp
                )
            }
        } catch {
            throw .market(error)
        }
    }

    /// v2's `_update`: accumulate the prices of the reserves that held since the last update,
    /// then take the new balances as reserves. Timestamps wrap modulo 2^32 as on chain.
    private mutating func update(balance0: UInt128, balance1: UInt128, timestamp: UInt32) {
        let elapsed = timestamp &- lastTimestampSeconds
        if elapsed > 0 && reserve0 != 0 && reserve1 != 0 {
            price0Cumulative =
                price0Cumulative
                &+ Self.price(numerator: reserve1, denominator: reserve0).wrappingMultiplied(by: UInt128(elapsed))
            price1Cumulative =
                price1Cumulative
                &+ Self.price(numerator: reserve0, denominator: reserve1).wrappingMultiplied(by: UInt128(elapsed))
        }
        reserve0 = balance0
        reserve1 = balance1
        lastTimestampSeconds = timestamp
    }

    /// `numerator / denominator` in UQ112x112 (112 fractional bits).
    public static func price(numerator: UInt128, denominator: UInt128) -> UInt256 {
        UInt256(numerator).shiftedLeft(by: 112).quotientAndRemainder(dividingBy: denominator).quotient
    }

    /// The time-weighted average price between two readings of a cumulative price, in UQ112x112.
    public static func averagePrice(from start: UInt256, to end: UInt256, seconds: UInt32) -> UInt256 {
        precondition(seconds > 0, "an average needs a non-empty window")
        return (end &- start).quotientAndRemainder(dividingBy: UInt128(seconds)).quotient
    }

    /// The time-weighted average of price 0 (UQ112x112) over the `window` seconds before `now`,
    /// from `history`: the pool after each change, oldest first, `now` at or after the last. The window starts at the latest
    /// state at or before its start, or at the first if the pool is younger; nil if no time has
    /// passed. Also returns the seconds actually covered.
    public static func averagePrice0(history: [Pool], now: UInt32, window: UInt32) -> (
        price: UInt256, seconds: UInt32
    )? {
        guard window > 0, let first = history.first, let current = history.last else { return nil }
        let start = now >= window ? now - window : 0
        let reading = history.last { $0.lastTimestampSeconds <= start } ?? first
        let from = max(start, reading.lastTimestampSeconds)
        guard now > from else { return nil }
        let average = averagePrice(
            from: reading.cumulativePrices(at: from).price0, to: current.cumulativePrices(at: now).price0,
            seconds: now - from)
        return (average, now - from)
    }

    /// A UQ112x112 price as a `Double`, for display only.
    public static func approximate(_ price: UInt256) -> Double {
        (Double(price.high) * 0x1p128 + Double(price.low)) / 0x1p112
    }
}

/// Why a router-style swap is refused.
public enum SwapError: Error, Equatable, Sendable, CustomStringConvertible {
    case market(MarketError)
    /// The trader's limit (minimum out or maximum in) would be broken.
    case limitExceeded(required: UInt128, actual: UInt128)

    public var description: String {
        switch self {
        case .market(let error): return error.description
        case .limitExceeded(let required, let actual):
            return "price limit: needed \(required), the pool gives \(actual)"
        }
    }
}
