/// Why a pool operation is refused. The cases and their order follow Uniswap v2's revert reasons,
/// so a failure reads the same as it would on chain.
public enum MarketError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An amount in of zero (`INSUFFICIENT_INPUT_AMOUNT`).
    case insufficientInputAmount
    /// An amount out of zero (`INSUFFICIENT_OUTPUT_AMOUNT`).
    case insufficientOutputAmount
    /// An empty pool, or an amount out not below the reserve (`INSUFFICIENT_LIQUIDITY`).
    case insufficientLiquidity
    /// A deposit too small to mint a share (`INSUFFICIENT_LIQUIDITY_MINTED`).
    case insufficientLiquidityMinted
    /// A withdrawal too small to return both tokens (`INSUFFICIENT_LIQUIDITY_BURNED`).
    case insufficientLiquidityBurned
    /// A swap that would lower the fee-adjusted product of reserves (`K`).
    case productDecreased
    /// A reserve above 2^112 - 1 (`OVERFLOW`): the price accumulators assume it.
    case reserveOverflow
    /// Burning more shares than exist.
    case sharesAboveSupply

    public var description: String {
        switch self {
        case .insufficientInputAmount: return "amount in must be above zero"
        case .insufficientOutputAmount: return "amount out must be above zero"
        case .insufficientLiquidity:
            return "not enough liquidity: the pool is empty or the amount out is not below its reserve"
        case .insufficientLiquidityMinted: return "deposit too small to mint a liquidity share"
        case .insufficientLiquidityBurned: return "withdrawal too small to return both tokens"
        case .productDecreased: return "the swap would lower the product of the reserves after the fee"
        case .reserveOverflow: return "a reserve would exceed 2^112 - 1 base units"
        case .sharesAboveSupply: return "more shares burned than exist"
        }
    }
}

/// The pure formulas of a constant-product market with exactly Uniswap v2's integer semantics:
/// a 0.3% fee taken from the input, every division rounding against the trader.
public enum ConstantProduct {
    public static let feeNumerator: UInt128 = 997
    public static let feeDenominator: UInt128 = 1000
    /// Shares locked forever by the first deposit, so the share price can never be driven to a
    /// value where one share is worth more than can be deposited.
    public static let minimumLiquidity: UInt128 = 1000
    /// Reserves fit 112 bits, as in v2, so that a price in UQ112x112 fits 224 bits.
    public static let reserveMax: UInt128 = (1 << 112) - 1

    /// The amount of B worth `amountA` at the pool's current price, without fee (`quote`).
    public static func quote(amountA: UInt128, reserveA: UInt128, reserveB: UInt128) throws(MarketError) -> UInt128 {
        guard amountA > 0 else { throw .insufficientInputAmount }
        guard reserveA > 0, reserveB > 0 else { throw .insufficientLiquidity }
        // amountA * reserveB / reserveA < 2^128 whenever amountA <= reserveA's scale; check anyway.
        let (quotient, _) = UInt256.product(amountA, reserveB).quotientAndRemainder(dividingBy: reserveA)
        guard let result = quotient.uint128 else { throw .reserveOverflow }
        return result
    }

    /// The most a trader gets for exactly `amountIn` (`getAmountOut`).
    public static func amountOut(amountIn: UInt128, reserveIn: UInt128, reserveOut: UInt128) throws(MarketError)
        -> UInt128
    {
        guard amountIn > 0 else { throw .insufficientInputAmount }
        guard reserveIn > 0, reserveOut > 0 else { throw .insufficientLiquidity }
        guard amountIn <= reserveMax, reserveIn <= reserveMax - amountIn, reserveOut <= reserveMax else {
            throw .reserveOverflow
        }
        let amountInWithFee = amountIn * feeNumerator  // < 2^122
        let numerator = UInt256.product(amountInWithFee, reserveOut)
        let denominator = reserveIn * feeDenominator + amountInWithFee  // < 2^123
        return numerator.quotientAndRemainder(dividingBy: denominator).quotient.low  // < reserveOut
    }

    /// The least a trader must pay to get exactly `amountOut` (`getAmountIn`, with its `+ 1`).
    public static func amountIn(amountOut: UInt128, reserveIn: UInt128, reserveOut: UInt128) throws(MarketError)
        -> UInt128
    {
        guard amountOut > 0 else { throw .insufficientOutputAmount }
        guard reserveIn > 0, reserveOut > 0, amountOut < reserveOut else { throw .insufficientLiquidity }
        guard reserveIn <= reserveMax, reserveOut <= reserveMax else { throw .reserveOverflow }
        let numerator = UInt256.product(reserveIn, amountOut).multiplied(by: feeDenominator)!  // < 2^234
        let denominator = (reserveOut - amountOut) * feeNumerator
        guard let quotient = numerator.quotientAndRemainder(dividingBy: denominator).quotient.uint128,
            quotient < reserveMax
        else { throw .reserveOverflow }
        return quotient + 1
    }

    /// The integer square root, rounded down (v2's `Math.sqrt`, computed by Newton's method from above).
    public static func squareRoot(_ value: UInt256) -> UInt128 {
        guard value != .zero else { return 0 }
        precondition(value.bitWidth <= 252, "square roots are taken of products of two reserves (< 2^224)")
        // 2^ceil(bits/2) >= sqrt(value); with at most 252 bits no step overflows 128 bits.
        var estimate = UInt128(1) << UInt128((value.bitWidth + 1) / 2)
        while true {
            let next = (estimate + value.quotientAndRemainder(dividingBy: estimate).quotient.low) / 2
            if next >= estimate { return estimate }
            estimate = next
        }
    }
}
