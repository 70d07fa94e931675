// Goal: RWAMarket reproduces Uniswap v2's integer results exactly, including 18-decimal amounts
// whose products exceed 128 bits, refuses every bad input with its typed error and changes
// nothing, and keeps v2's invariants under thousands of random operations.
// Method: the values of v2-core's UniswapV2Pair.spec.ts and v2-periphery's router tests, large
// cases cross-checked with Python integers, and a seeded random walk.
import RWAMarket
import RWATestSupport
import XCTest

let e18: UInt128 = 1_000_000_000_000_000_000

final class UniswapV2ValuesTests: XCTestCase {
    /// UniswapV2Pair.spec.ts `swapTestCases`: (amount in, reserve 0, reserve 1, largest amount out), in units of 1e18.
    static let swapCases: [(UInt128, UInt128, UInt128, UInt128)] = [
        (1, 5, 10, 1_662_497_915_624_478_906),
        (1, 10, 5, 453_305_446_940_074_565),
        (2, 5, 10, 2_851_015_155_847_869_602),
        (2, 10, 5, 831_248_957_812_239_453),
        (1, 10, 10, 906_610_893_880_149_131),
        (1, 100, 100, 987_158_034_397_061_298),
        (1, 1000, 1000, 996_006_981_039_903_216),
    ]

    func testSwapCasesGiveTheLargestOutputTheProductAllows() throws {
        for (swap, token0, token1, expected) in Self.swapCases {
            XCTAssertEqual(
                try ConstantProduct.amountOut(amountIn: swap * e18, reserveIn: token0 * e18, reserveOut: token1 * e18),
                expected)
            var pool = Pool()
            _ = try pool.deposit(amount0: token0 * e18, amount1: token1 * e18, timestampSeconds: 0)
            let before = pool
            XCTAssertThrowsError(
                try pool.swap(
                    amount0In: swap * e18, amount1In: 0, amount0Out: 0, amount1Out: expected + 1, timestampSeconds: 1)
            ) {
                XCTAssertEqual($0 as? MarketError, .productDecreased)
            }
            XCTAssertEqual(pool, before, "a refused swap changes nothing")
            try pool.swap(amount0In: swap * e18, amount1In: 0, amount0Out: 0, amount1Out: expected, timestampSeconds: 1)
            XCTAssertEqual(pool.reserve0, (token0 + swap) * e18)
            XCTAssertEqual(pool.reserve1, token1 * e18 - expected)
        }
    }

    /// UniswapV2Pair.spec.ts `optimisticTestCases` (flash swaps paid back in the same token):
    /// (amount out, reserve 0, reserve 1, amount in).
    func testOptimisticCases() throws {
        let cases: [(UInt128, UInt128, UInt128, UInt128)] = [
            (997_000_000_000_000_000, 5 * e18, 10 * e18, 1 * e18),
            (997_000_000_000_000_000, 10 * e18, 5 * e18, 1 * e18),
            (997_000_000_000_000_000, 5 * e18, 5 * e18, 1 * e18),
            (1 * e18, 5 * e18, 5 * e18, 1_003_009_027_081_243_732),
        ]
        for (out, token0, token1, amountIn) in cases {
            var pool = Pool()
            _ = try pool.deposit(amount0: token0, amount1: token1, timestampSeconds: 0)
            XCTAssertThrowsError(
                try pool.swap(
                    amount0In: amountIn, amount1In: 0, amount0Out: out + 1, amount1Out: 0, timestampSeconds: 1))
            XCTAssertNoThrow(
                try pool.swap(amount0In: amountIn, amount1In: 0, amount0Out: out, amount1Out: 0, timestampSeconds: 1))
        }
    }

    /// UniswapV2Pair.spec.ts `mint` and `burn`.
    func testMintLocksMinimumLiquidityAndBurnReturnsProRata() throws {
        var pool = Pool()
        XCTAssertEqual(try pool.deposit(amount0: 1 * e18, amount1: 4 * e18, timestampSeconds: 0), 2 * e18 - 1000)
        XCTAssertEqual(pool.totalShares, 2 * e18)

        var burnPool = Pool()
        let shares = try burnPool.deposit(amount0: 3 * e18, amount1: 3 * e18, timestampSeconds: 0)
        XCTAssertEqual(shares, 3 * e18 - 1000)
        let (amount0, amount1) = try burnPool.withdraw(shares: shares, timestampSeconds: 1)
        XCTAssertEqual(amount0, 3 * e18 - 1000)
        XCTAssertEqual(amount1, 3 * e18 - 1000)
        XCTAssertEqual(burnPool.reserve0, 1000, "the locked minimum stays")
        XCTAssertEqual(burnPool.totalShares, 1000)
    }

    /// UniswapV2Router02 spec: quote, getAmountOut, getAmountIn and their reverts.
    func testRouterLibraryValuesAndErrors() {
        XCTAssertEqual(try ConstantProduct.quote(amountA: 1, reserveA: 100, reserveB: 200), 2)
        XCTAssertEqual(try ConstantProduct.quote(amountA: 2, reserveA: 200, reserveB: 100), 1)
        XCTAssertThrowsError(try ConstantProduct.quote(amountA: 0, reserveA: 100, reserveB: 200)) {
            XCTAssertEqual($0 as? MarketError, .insufficientInputAmount)
        }
        XCTAssertThrowsError(try ConstantProduct.quote(amountA: 1, reserveA: 0, reserveB: 200)) {
            XCTAssertEqual($0 as? MarketError, .insufficientLiquidity)
        }

        XCTAssertEqual(try ConstantProduct.amountOut(amountIn: 2, reserveIn: 100, reserveOut: 100), 1)
        XCTAssertThrowsError(try ConstantProduct.amountOut(amountIn: 0, reserveIn: 100, reserveOut: 100)) {
            XCTAssertEqual($0 as? MarketError, .insufficientInputAmount)
        }
        XCTAssertThrowsError(try ConstantProduct.amountOut(amountIn: 2, reserveIn: 0, reserveOut: 100)) {
            XCTAssertEqual($0 as? MarketError, .insufficientLiquidity)
        }

        XCTAssertEqual(try ConstantProduct.amountIn(amountOut: 1, reserveIn: 100, reserveOut: 100), 2)
        XCTAssertThrowsError(try ConstantProduct.amountIn(amountOut: 0, reserveIn: 100, reserveOut: 100)) {
            XCTAssertEqual($0 as? MarketError, .insufficientOutputAmount)
        }
        XCTAssertThrowsError(try ConstantProduct.amountIn(amountOut: 1, reserveIn: 0, reserveOut: 100)) {
            XCTAssertEqual($0 as? MarketError, .insufficientLiquidity)
        }
        XCTAssertThrowsError(
            try ConstantProduct.amountIn(amountOut: 100, reserveIn: 100, reserveOut: 100),
            "output not below the reserve"
        ) {
            XCTAssertEqual($0 as? MarketError, .insufficientLiquidity)
        }
    }

    /// 18-decimal reserves around 10^30 base units: every product exceeds 128 bits (values from Python integers).
    func testLargeEighteenDecimalAmounts() throws {
        let reserveIn: UInt128 = 1_000_000_000_000 * e18
        let reserveOut: UInt128 = 500_000_000_000 * e18
        XCTAssertEqual(
            try ConstantProduct.amountOut(amountIn: 1_000_000_000 * e18, reserveIn: reserveIn, reserveOut: reserveOut),
            498_003_490_519_951_608_246_578_161)
        XCTAssertEqual(
            try ConstantProduct.amountIn(amountOut: 1_000_000_000 * e18, reserveIn: reserveIn, reserveOut: reserveOut),
            2_010_038_130_423_334_130_648_458_402)
        XCTAssertEqual(
            try ConstantProduct.amountOut(
                amountIn: 12_345_678_901_234_567_890_123, reserveIn: 3_000_000_000_000_000 * e18,
                reserveOut: 5_000_000_000_000_000 * e18), 20_514_403_107_467_272_163_782)
        // v2 keeps reserves in 112 bits: 7 * 10^33 base units is above that, and refused.
        XCTAssertThrowsError(
            try ConstantProduct.amountOut(
                amountIn: 1, reserveIn: 3_000_000_000_000_000 * e18, reserveOut: 7_000_000_000_000_000 * e18)
        ) {
            XCTAssertEqual($0 as? MarketError, .reserveOverflow)
        }
        XCTAssertThrowsError(
            try ConstantProduct.amountOut(amountIn: 1, reserveIn: ConstantProduct.reserveMax, reserveOut: 1)
        ) {
            XCTAssertEqual($0 as? MarketError, .reserveOverflow)
        }
        var pool = Pool()
        XCTAssertThrowsError(try pool.deposit(amount0: ConstantProduct.reserveMax + 1, amount1: 1, timestampSeconds: 0))
        {
            XCTAssertEqual($0 as? MarketError, .reserveOverflow)
        }
        XCTAssertEqual(pool, Pool())
    }

    func testSquareRootAndWideArithmetic() {
        XCTAssertEqual(ConstantProduct.squareRoot(.zero), 0)
        XCTAssertEqual(ConstantProduct.squareRoot(UInt256(3)), 1)
        XCTAssertEqual(ConstantProduct.squareRoot(UInt256(4)), 2)
        XCTAssertEqual(ConstantProduct.squareRoot(UInt256.product(4 * e18, 1 * e18)), 2 * e18)
        let big = UInt256.product(ConstantProduct.reserveMax, ConstantProduct.reserveMax)
        XCTAssertEqual(ConstantProduct.squareRoot(big), ConstantProduct.reserveMax)
        XCTAssertEqual(ConstantProduct.squareRoot(big &- UInt256(1)), ConstantProduct.reserveMax - 1)
        XCTAssertEqual(
            UInt256.product(e18 * e18, e18).description, "1000000000000000000000000000000000000000000000000000000")
        XCTAssertNil(UInt256(high: 1 << 127, low: 0).multiplied(by: 2))
    }

    func testTimeWeightedAveragePrice() throws {
        var pool = Pool()
        _ = try pool.deposit(amount0: 1 * e18, amount1: 4 * e18, timestampSeconds: 100)
        XCTAssertEqual(pool.price0Cumulative, .zero, "nothing accumulates before reserves exist")
        _ = try pool.swap(exactIn: 1, .zeroForOne, timestampSeconds: 110)  // a tiny trade to record 10 s at 4.0
        XCTAssertEqual(pool.price0Cumulative, Pool.price(numerator: 4, denominator: 1).wrappingMultiplied(by: 10))
        let checkpoint = pool.price0Cumulative
        _ = try pool.swap(exactIn: 1 * e18, .zeroForOne, timestampSeconds: 120)  // price now ~1.0 (2 vs ~2.0017)
        _ = try pool.swap(exactIn: 1_000, .zeroForOne, timestampSeconds: 130)
        let average = Pool.averagePrice(from: checkpoint, to: pool.price0Cumulative, seconds: 20)
        // 10 s near 4.0 then 10 s near 1.0: the average is near 2.5.
        XCTAssertEqual(Pool.approximate(average), 2.5, accuracy: 0.01)
    }
}

final class PoolLimitTests: XCTestCase {
    func testTraderLimitsAndAtomicity() throws {
        var pool = Pool()
        _ = try pool.deposit(amount0: 5 * e18, amount1: 10 * e18, timestampSeconds: 0)
        let before = pool
        XCTAssertThrowsError(
            try pool.swap(exactIn: 1 * e18, .zeroForOne, minimumOut: 1_662_497_915_624_478_907, timestampSeconds: 1)
        ) {
            XCTAssertEqual(
                $0 as? SwapError, .limitExceeded(required: 1_662_497_915_624_478_907, actual: 1_662_497_915_624_478_906)
            )
        }
        XCTAssertThrowsError(try pool.swap(exactOut: 10 * e18, .zeroForOne, timestampSeconds: 1)) {
            XCTAssertEqual($0 as? SwapError, .market(.insufficientLiquidity))
        }
        XCTAssertThrowsError(try pool.swap(exactOut: 1 * e18, .oneForZero, maximumIn: 2 * e18, timestampSeconds: 1))
        XCTAssertEqual(pool, before, "refused swaps change nothing")
        XCTAssertEqual(
            try pool.swap(exactIn: 1 * e18, .zeroForOne, minimumOut: 1_662_497_915_624_478_906, timestampSeconds: 1),
            1_662_497_915_624_478_906)
        XCTAssertThrowsError(try pool.withdraw(shares: pool.totalShares + 1, timestampSeconds: 2)) {
            XCTAssertEqual($0 as? MarketError, .sharesAboveSupply)
        }
    }
}

/// A random walk of swaps both ways, deposits and withdrawals by several traders, from a fresh
/// printed seed each run. Every kind of operation must succeed often, so a pool that refused
/// everything could not pass.
final class PoolInvariantTests: XCTestCase {
    func testInvariantsHoldOverThousandsOfOperations() throws {
        let base = testSeed()
        for offset: UInt64 in 0..<5 {
            let seed = base &+ offset
            var rng = SplitMix(seed: seed)
            var succeeded = [0, 0, 0, 0]
            var pool = Pool()
            let traders = 8
            var balance0 = [UInt128](repeating: 1_000 * e18, count: traders)
            var balance1 = [UInt128](repeating: 1_000 * e18, count: traders)
            var shares = [UInt128](repeating: 0, count: traders)
            let supply0 = balance0.reduce(0, +)
            let supply1 = balance1.reduce(0, +)
            shares[0] = try pool.deposit(amount0: 100 * e18, amount1: 300 * e18, timestampSeconds: 0)
            balance0[0] -= 100 * e18
            balance1[0] -= 300 * e18
            for step in 1...3_000 {
                let who = Int.random(in: 0..<traders, using: &rng)
                let timestamp = UInt32(step)
                let productBefore = UInt256.product(pool.reserve0, pool.reserve1)
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<4:
                    let amount = UInt128.random(in: 1...(balance0[who] / 10 + 1), using: &rng)
                    guard amount <= balance0[who],
                        let out = try? pool.swap(exactIn: amount, .zeroForOne, timestampSeconds: timestamp)
                    else { continue }
                    balance0[who] -= amount
                    balance1[who] += out
                    succeeded[0] += 1
                    XCTAssertGreaterThanOrEqual(
                        UInt256.product(pool.reserve0, pool.reserve1), productBefore, "seed \(seed) step \(step)")
                case 4..<8:
                    let wanted = UInt128.random(in: 1...(pool.reserve0 / 20 + 1), using: &rng)
                    guard
                        let paid = try? pool.swap(
                            exactOut: wanted, .oneForZero, maximumIn: balance1[who], timestampSeconds: timestamp)
                    else { continue }
                    balance1[who] -= paid
                    balance0[who] += wanted
                    succeeded[1] += 1
                    XCTAssertGreaterThanOrEqual(
                        UInt256.product(pool.reserve0, pool.reserve1), productBefore, "seed \(seed) step \(step)")
                case 8:
                    let amount0 = UInt128.random(in: 1...(balance0[who] / 20 + 1), using: &rng)
                    guard amount0 <= balance0[who],
                        let amount1 = try? ConstantProduct.quote(
                            amountA: amount0, reserveA: pool.reserve0, reserveB: pool.reserve1),
                        amount1 <= balance1[who],
                        let minted = try? pool.deposit(amount0: amount0, amount1: amount1, timestampSeconds: timestamp)
                    else { continue }
                    balance0[who] -= amount0
                    balance1[who] -= amount1
                    shares[who] += minted
                    succeeded[2] += 1
                default:
                    guard shares[who] > 0 else { continue }
                    let burned = UInt128.random(in: 1...shares[who], using: &rng)
                    guard let (amount0, amount1) = try? pool.withdraw(shares: burned, timestampSeconds: timestamp)
                    else {
                        continue
                    }
                    shares[who] -= burned
                    balance0[who] += amount0
                    balance1[who] += amount1
                    succeeded[3] += 1
                }
                // Conservation: every base unit is with a trader or in the pool.
                XCTAssertEqual(balance0.reduce(0, +) + pool.reserve0, supply0, "seed \(seed) step \(step)")
                XCTAssertEqual(balance1.reduce(0, +) + pool.reserve1, supply1, "seed \(seed) step \(step)")
                XCTAssertEqual(
                    shares.reduce(0, +) + ConstantProduct.minimumLiquidity, pool.totalShares,
                    "seed \(seed) step \(step)")
            }
            // Out of 3,000 steps, about 1,200 of each swap kind and 300 of each liquidity kind.
            XCTAssertTrue(
                succeeded.allSatisfy { $0 > 50 }, "seed \(seed): swaps in, out, deposits, withdrawals: \(succeeded)")
            // Shares never redeem for more than the pool holds: withdrawing everything leaves the
            // locked minimum's part, and the dust v2 refuses to burn (a withdrawal that would round
            // one side to zero), which must then really be that small.
            var dust: UInt128 = 0
            for who in 0..<traders where shares[who] > 0 {
                do {
                    let (amount0, amount1) = try pool.withdraw(shares: shares[who], timestampSeconds: 5_000)
                    balance0[who] += amount0
                    balance1[who] += amount1
                } catch .insufficientLiquidityBurned {
                    let smaller = min(pool.reserve0, pool.reserve1)
                    XCTAssertLessThan(
                        UInt256.product(shares[who], smaller), UInt256(pool.totalShares),
                        "seed \(seed): \(shares[who]) shares refused although they redeem for a base unit of each")
                    dust += shares[who]
                } catch {
                    XCTFail("seed \(seed): withdrawing \(shares[who]) shares: \(error)")
                }
            }
            XCTAssertEqual(pool.totalShares, ConstantProduct.minimumLiquidity + dust, "seed \(seed)")
            XCTAssertGreaterThan(pool.reserve0, 0)
            XCTAssertGreaterThan(pool.reserve1, 0)
        }
    }
}

final class AveragePriceTests: XCTestCase {
    /// Price 2 from t=0 to t=100, then whatever the swap leaves until t=200: a 150-second window
    /// ending at 200 averages 50 s of the first price and 100 s of the second.
    func testTheAverageWeighsEachPriceByHowLongItHeld() throws {
        var pool = Pool()
        _ = try pool.deposit(amount0: 1_000_000, amount1: 2_000_000, timestampSeconds: 0)
        let opened = pool
        _ = try pool.swap(exactIn: 100_000, .zeroForOne, timestampSeconds: 100)
        let history = [opened, pool]
        let first = Pool.price(numerator: 2_000_000, denominator: 1_000_000)
        let second = Pool.price(numerator: pool.reserve1, denominator: pool.reserve0)
        let expected = (first.wrappingMultiplied(by: 50) &+ second.wrappingMultiplied(by: 100))
            .quotientAndRemainder(dividingBy: 150).quotient
        let average = try XCTUnwrap(Pool.averagePrice0(history: history, now: 200, window: 150))
        XCTAssertEqual(average.seconds, 150)
        XCTAssertEqual(average.price, expected)
        // A window longer than the pool's life covers it from its first state; one ending at a
        // price that held throughout is that price; none when no time has passed.
        XCTAssertEqual(Pool.averagePrice0(history: history, now: 200, window: 10_000)?.seconds, 200)
        XCTAssertEqual(Pool.averagePrice0(history: history, now: 200, window: 50)?.price, second)
        XCTAssertEqual(Pool.averagePrice0(history: [opened], now: 80, window: 30)?.price, first)
        XCTAssertNil(Pool.averagePrice0(history: [opened], now: 0, window: 60))
        XCTAssertNil(Pool.averagePrice0(history: [], now: 200, window: 60))
    }
}
