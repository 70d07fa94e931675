import RWACrypto
import RWAMarket
import RWATestSupport
import RWAWire
import XCTest

@testable import RWALedger

/// A chain with alice's licence (token 1) in a pool opened by the regulator, and traders funded
/// with the stablecoin.
struct PoolChain {
    static let token: TokenID = 1
    static let far: UInt64 = .max
    var chain: Chain
    var pool: PoolRecord { chain.ledger.state.pools[Self.token]! }

    init(rules: ComplianceRules = ComplianceRules(), seedLiquidity: Bool = true) throws {
        chain = try Chain()
        chain.register(chain.alice)
        chain.register(chain.bob)
        chain.register(chain.carol, country: Chain.france)
        chain.registerLicence(owner: chain.alice, rules: rules)
        chain.fund(chain.alice, 10_000_000_000)
        chain.fund(chain.bob, 10_000_000_000)
        chain.fund(chain.carol, 10_000_000_000)
        let shareToken = chain.expectApplied(
            chain.regulator, .createPool(token: Self.token, country: Chain.unitedStates))
        XCTAssertEqual(shareToken, PoolRecord.shareToken(for: Self.token))
        if seedLiquidity {
            // 40 slices against 4,000,000,000 stablecoin units: 100 stablecoin units per licence unit.
            chain.expectApplied(
                chain.alice,
                .addLiquidity(
                    token: Self.token, licenceDesired: 40 * Chain.slice, stablecoinDesired: 4_000_000_000,
                    licenceMinimum: 0, stablecoinMinimum: 0, deadlineMilliseconds: Self.far))
        }
    }

    func balance(_ token: TokenID, _ wallet: SigningKeyPair) -> UInt128 { chain.holding(token, wallet).balance }
    func poolBalance(_ token: TokenID) -> UInt128 { chain.ledger.state.holding(token, pool.account).balance }
}

final class PoolTests: XCTestCase {
    func testCreatePoolGivesThePoolAVerifiedIdentityAndAShareToken() throws {
        var chain = try Chain()
        chain.register(chain.alice)
        chain.registerLicence(owner: chain.alice)
        // Only an agent of the token who is a trusted claim issuer opens its market.
        chain.expectRejected(.notAuthorized, chain.alice, .createPool(token: 1, country: Chain.unitedStates))
        chain.expectRejected(.unknownToken, chain.regulator, .createPool(token: 7, country: Chain.unitedStates))
        chain.expectRejected(.notAuthorized, chain.regulator, .createPool(token: 0, country: Chain.unitedStates))
        chain.expectRejected(.invalidOperation, chain.regulator, .createPool(token: 1, country: 0))
        let share = chain.expectApplied(chain.regulator, .createPool(token: 1, country: Chain.unitedStates))
        chain.expectRejected(.alreadyRegistered, chain.regulator, .createPool(token: 1, country: Chain.unitedStates))

        let pool = try XCTUnwrap(chain.ledger.state.pools[1])
        XCTAssertEqual(pool.account, PoolRecord.account(for: 1, chainID: chain.genesis.chainID))
        XCTAssertEqual(pool.shareToken, share)
        XCTAssertEqual(share, 1 | (1 << 63))
        let identityID = try XCTUnwrap(chain.ledger.state.accounts[pool.account]?.identity)
        let identity = try XCTUnwrap(chain.ledger.state.identities[identityID])
        XCTAssertEqual(identity.country, Chain.unitedStates)
        XCTAssertTrue(identity.hasClaims([ClaimTopic.kyc]))
        let shareToken = try XCTUnwrap(chain.ledger.state.tokens[share])
        XCTAssertEqual(shareToken.kind, .poolShare)
        XCTAssertTrue(shareToken.agents.isEmpty)
        XCTAssertNil(shareToken.compliance)
        // The pool's record round-trips through its stored row.
        let restored = try LedgerState(rows: chain.ledger.state.allRows())
        XCTAssertEqual(restored.pools, chain.ledger.state.pools)
        XCTAssertEqual(restored.poolAccounts, chain.ledger.state.poolAccounts)
    }

    func testStablecoinSentToThePoolsAddressBeforehandCannotBlockThePool() throws {
        var chain = try Chain()
        chain.register(chain.alice)
        chain.registerLicence(owner: chain.alice)
        chain.fund(chain.bob, 500)
        let address = PoolRecord.account(for: 1, chainID: chain.genesis.chainID)
        chain.expectApplied(chain.bob, .transfer(token: 0, to: address, amount: 500))
        chain.expectApplied(chain.regulator, .createPool(token: 1, country: Chain.unitedStates))
        XCTAssertNotNil(chain.ledger.state.accounts[address]?.identity)
        XCTAssertEqual(chain.ledger.state.holding(0, address).balance, 500, "it stays, outside the reserves")
        XCTAssertEqual(chain.ledger.state.pools[1]?.stablecoinReserve, 0)
        // Once the pool exists nothing more is sent there but through the pool.
        chain.fund(chain.bob, 1)
        chain.expectRejected(.invalidOperation, chain.bob, .transfer(token: 0, to: address, amount: 1))
    }

    func testAPoolInADeniedCountryIsRefused() throws {
        var chain = try Chain()
        chain.register(chain.alice)
        chain.registerLicence(owner: chain.alice, rules: ComplianceRules(deniedCountries: [Chain.france]))
        chain.expectRejected(.countryNotAllowed, chain.regulator, .createPool(token: 1, country: Chain.france))
    }

    func testFirstDepositLocksTheMinimumLiquidityInThePool() throws {
        let market = try PoolChain()
        let shares = ConstantProduct.squareRoot(UInt256.product(40 * Chain.slice, 4_000_000_000)) - 1000
        XCTAssertEqual(market.balance(market.pool.shareToken, market.chain.alice), shares)
        XCTAssertEqual(market.poolBalance(market.pool.shareToken), 1000)
        XCTAssertEqual(market.pool.market.totalShares, shares + 1000)
        XCTAssertEqual(market.chain.ledger.state.tokens[market.pool.shareToken]?.totalSupply, shares + 1000)
        XCTAssertEqual(market.poolBalance(PoolChain.token), 40 * Chain.slice)
        XCTAssertEqual(market.poolBalance(Chain.stablecoin), 4_000_000_000)
        XCTAssertEqual(market.balance(PoolChain.token, market.chain.alice), 60 * Chain.slice)
    }

    func testSwapsMatchTheMarketMathAndMoveBothLegs() throws {
        var market = try PoolChain()
        var mirror = market.pool.market
        let bob = market.chain.bob
        // Buy licence tokens with exactly 1,000,000 stablecoin units.
        let expectedOut = try mirror.swap(exactIn: 1_000_000, .oneForZero, timestampSeconds: 0)
        market.chain.expectApplied(
            bob,
            .swapExactIn(token: 1, side: .buy, amountIn: 1_000_000, minimumOut: expectedOut, deadlineMilliseconds: .max)
        )
        XCTAssertEqual(market.chain.lastFill?.amountOut, expectedOut)
        XCTAssertEqual(market.chain.lastFill?.amountIn, 1_000_000)
        XCTAssertEqual(market.balance(1, bob), expectedOut)
        XCTAssertEqual(market.balance(0, bob), 10_000_000_000 - 1_000_000)
        // Sell exactly 500 licence units back for what the pool asks.
        let expectedIn = try mirror.swap(exactOut: 40_000, .zeroForOne, timestampSeconds: 0)
        market.chain.expectApplied(
            bob,
            .swapExactOut(token: 1, side: .sell, amountOut: 40_000, maximumIn: expectedIn, deadlineMilliseconds: .max))
        XCTAssertEqual(market.chain.lastFill?.amountIn, expectedIn)
        XCTAssertEqual(market.balance(1, bob), expectedOut - expectedIn)
        XCTAssertEqual(market.pool.licenceReserve, mirror.reserve0)
        XCTAssertEqual(market.pool.stablecoinReserve, mirror.reserve1)
        XCTAssertEqual(market.poolBalance(1), mirror.reserve0)
        XCTAssertEqual(market.poolBalance(0), mirror.reserve1)
        // A plain transfer clears the fill.
        market.chain.expectApplied(bob, .transfer(token: 0, to: market.chain.alice.publicKey, amount: 1))
        XCTAssertNil(market.chain.lastFill)
    }

    func testAFailedLimitDeadlineFundsOrComplianceCheckChangesNothing() throws {
        var market = try PoolChain(rules: ComplianceRules(deniedCountries: [Chain.france]))
        let bob = market.chain.bob
        let quote = try ConstantProduct.amountOut(
            amountIn: 1_000_000, reserveIn: market.pool.stablecoinReserve, reserveOut: market.pool.licenceReserve)
        let cost = try ConstantProduct.amountIn(
            amountOut: quote, reserveIn: market.pool.stablecoinReserve, reserveOut: market.pool.licenceReserve)
        market.chain.expectRejected(
            .priceLimit, bob,
            .swapExactIn(token: 1, side: .buy, amountIn: 1_000_000, minimumOut: quote + 1, deadlineMilliseconds: .max))
        market.chain.expectRejected(
            .priceLimit, bob,
            .swapExactOut(token: 1, side: .buy, amountOut: quote, maximumIn: cost - 1, deadlineMilliseconds: .max))
        market.chain.clock = Chain.genesisTime + 10_000
        market.chain.ledger.sealBlock(arbiter: market.chain.arbiter)  // the next block opens at the new clock
        market.chain.expectRejected(
            .deadlinePassed, bob,
            .swapExactIn(
                token: 1, side: .buy, amountIn: 1_000_000, minimumOut: 0,
                deadlineMilliseconds: Chain.genesisTime + 9_999))
        market.chain.expectApplied(
            bob,
            .swapExactIn(
                token: 1, side: .buy, amountIn: 1_000, minimumOut: 0, deadlineMilliseconds: Chain.genesisTime + 10_000))
        // Bob cannot pay more than he holds.
        market.chain.expectRejected(
            .insufficientBalance, bob,
            .swapExactIn(token: 1, side: .buy, amountIn: 10_000_000_001, minimumOut: 0, deadlineMilliseconds: .max))
        // Carol (France) holds stablecoin but may not receive the licence token.
        market.chain.expectRejected(
            .countryNotAllowed, market.chain.carol,
            .swapExactIn(token: 1, side: .buy, amountIn: 1_000_000, minimumOut: 0, deadlineMilliseconds: .max))
        // A paused or frozen licence halts the market.
        market.chain.expectApplied(
            market.chain.regulator, .setFrozen(token: 1, account: market.pool.account, frozen: true))
        market.chain.expectRejected(
            .accountFrozen, bob,
            .swapExactIn(token: 1, side: .buy, amountIn: 1_000, minimumOut: 0, deadlineMilliseconds: .max))
        market.chain.expectApplied(
            market.chain.regulator, .setFrozen(token: 1, account: market.pool.account, frozen: false))
        market.chain.expectApplied(market.chain.regulator, .setPaused(token: 1, paused: true))
        market.chain.expectRejected(
            .tokenPaused, market.chain.alice,
            .addLiquidity(
                token: 1, licenceDesired: Chain.slice, stablecoinDesired: 100_000_000, licenceMinimum: 0,
                stablecoinMinimum: 0, deadlineMilliseconds: .max))
        market.chain.expectApplied(market.chain.regulator, .setPaused(token: 1, paused: false))
        // No liquidity for an output at or above the reserve; no such pool; zero amounts.
        market.chain.expectRejected(
            .insufficientLiquidity, bob,
            .swapExactOut(
                token: 1, side: .buy, amountOut: market.pool.licenceReserve, maximumIn: .max, deadlineMilliseconds: .max
            ))
        market.chain.expectRejected(
            .unknownPool, bob,
            .swapExactIn(token: 2, side: .buy, amountIn: 1, minimumOut: 0, deadlineMilliseconds: .max))
        market.chain.expectRejected(
            .zeroAmount, bob, .swapExactIn(token: 1, side: .buy, amountIn: 0, minimumOut: 0, deadlineMilliseconds: .max)
        )
    }

    func testNothingButPoolOperationsMovesThePoolsTokens() throws {
        var market = try PoolChain()
        let account = market.pool.account
        let chain = market.chain
        market.chain.expectRejected(.invalidOperation, chain.bob, .transfer(token: 0, to: account, amount: 1))
        market.chain.expectRejected(.invalidOperation, chain.issuer, .mint(token: 0, to: account, amount: 1))
        market.chain.expectRejected(
            .invalidOperation, chain.regulator,
            .forcedTransfer(token: 1, from: account, to: chain.bob.publicKey, amount: 1))
        market.chain.expectRejected(.invalidOperation, chain.regulator, .burn(token: 1, from: account, amount: 1))
        market.chain.expectRejected(
            .invalidOperation, chain.regulator,
            .recoverWallet(token: 1, lost: account, replacement: chain.bob.publicKey))
        // Share tokens have no agents: nobody mints them outside the pool.
        market.chain.expectRejected(
            .notAuthorized, chain.regulator, .mint(token: market.pool.shareToken, to: chain.bob.publicKey, amount: 1))
    }

    func testAddingAtThePriceAndRemovingIsProRata() throws {
        var market = try PoolChain()
        let bob = market.chain.bob
        // Bob offers 10 slices and up to 2,000,000,000 units: the router takes 1,000,000,000.
        market.chain.expectApplied(market.chain.alice, .transfer(token: 1, to: bob.publicKey, amount: 10 * Chain.slice))
        let before = market.pool.market
        market.chain.expectRejected(
            .priceLimit, bob,
            .addLiquidity(
                token: 1, licenceDesired: 10 * Chain.slice, stablecoinDesired: 2_000_000_000, licenceMinimum: 0,
                stablecoinMinimum: 1_000_000_001, deadlineMilliseconds: .max))
        market.chain.expectApplied(
            bob,
            .addLiquidity(
                token: 1, licenceDesired: 10 * Chain.slice, stablecoinDesired: 2_000_000_000, licenceMinimum: 0,
                stablecoinMinimum: 0, deadlineMilliseconds: .max))
        let fill = try XCTUnwrap(market.chain.lastFill)
        XCTAssertEqual(fill.licence, 10 * Chain.slice)
        XCTAssertEqual(fill.stablecoin, 1_000_000_000)
        XCTAssertEqual(fill.shares, 10 * Chain.slice * before.totalShares / before.reserve0)
        XCTAssertEqual(market.balance(market.pool.shareToken, bob), fill.shares)
        // Withdrawing returns the pro-rata part, rounded down: never more than was put in.
        market.chain.expectRejected(
            .insufficientBalance, bob,
            .removeLiquidity(
                token: 1, shares: fill.shares + 1, licenceMinimum: 0, stablecoinMinimum: 0, deadlineMilliseconds: .max)
        )
        market.chain.expectApplied(
            bob,
            .removeLiquidity(
                token: 1, shares: fill.shares, licenceMinimum: 0, stablecoinMinimum: 0, deadlineMilliseconds: .max))
        let back = try XCTUnwrap(market.chain.lastFill)
        XCTAssertLessThanOrEqual(back.licence, fill.licence)
        XCTAssertLessThanOrEqual(back.stablecoin, fill.stablecoin)
        XCTAssertEqual(market.balance(market.pool.shareToken, bob), 0)
        XCTAssertEqual(market.pool.licenceReserve, market.poolBalance(1))
        XCTAssertEqual(market.pool.stablecoinReserve, market.poolBalance(0))
    }

    func testPoolBlocksReplayToTheSameStateAndFills() throws {
        var market = try PoolChain()
        market.chain.clock = Chain.genesisTime + 1_000
        let first = market.chain.ledger.sealBlock(arbiter: market.chain.arbiter)
        market.chain.clock = Chain.genesisTime + 61_000
        market.chain.expectApplied(
            market.chain.bob,
            .swapExactIn(
                token: 1, side: .buy, amountIn: 5_000_000, minimumOut: 0,
                deadlineMilliseconds: Chain.genesisTime + 61_000)
        )
        let second = market.chain.ledger.sealBlock(arbiter: market.chain.arbiter)
        XCTAssertEqual(second.header.timeMilliseconds, Chain.genesisTime + 61_000)
        let (replayed, error) = replayFresh(market.chain.genesis, [first, second])
        XCTAssertNil(error)
        XCTAssertEqual(replayed.state.allRows(), market.chain.ledger.state.allRows())
        // The accumulator advanced over the minute the first price held.
        XCTAssertNotEqual(market.pool.market.price0Cumulative, .zero)
        XCTAssertEqual(market.pool.market.lastTimestampSeconds, UInt32((Chain.genesisTime + 61_000) / 1000))
    }
}

/// Thousands of random pool operations by many accounts, checking after every one that the
/// tokens are conserved, the pool holds exactly its reserves, swaps never lower the product of
/// the reserves, and no operation raises the liquidity behind a share except by fees.
final class LedgerPoolInvariantTests: XCTestCase {
    func testRandomOperationsKeepTheInvariants() throws {
        var market = try PoolChain()
        var traders = [market.chain.alice, market.chain.bob]
        for seed in 20..<26 {
            let wallet = try deterministicKey(UInt8(seed))
            market.chain.register(wallet)
            market.chain.fund(wallet, 10_000_000_000)
            market.chain.expectApplied(
                market.chain.alice, .transfer(token: 1, to: wallet.publicKey, amount: 5 * Chain.slice))
            traders.append(wallet)
        }
        let share = market.pool.shareToken
        let tokens: [TokenID] = [0, 1, share]
        func total(_ token: TokenID) -> UInt128 {
            market.chain.ledger.state.holdings.filter {
                if case .holding(let t, _) = $0.key { return t == token } else { return false }
            }.values.reduce(0) { $0 + $1.balance }
        }
        let supplies = tokens.map { market.chain.ledger.state.tokens[$0]!.totalSupply }
        XCTAssertEqual(tokens.map(total), supplies)

        let seed = testSeed()
        var random = SplitMix(seed: seed)
        var applied = [0, 0, 0, 0]
        var rejected = 0
        for step in 0..<3_000 {
            let trader = traders[Int(random.next() % UInt64(traders.count))]
            let before = market.pool.market
            let kind = Int(random.next() % 10)
            let operation: LedgerOperation
            switch kind {
            case 0..<3:
                let side: TradeSide = random.next() % 2 == 0 ? .buy : .sell
                let amount = UInt128(random.next() % (side == .buy ? 200_000_000 : 2_000_000)) + 1
                operation = .swapExactIn(
                    token: 1, side: side, amountIn: amount, minimumOut: 0, deadlineMilliseconds: .max)
            case 3..<6:
                let side: TradeSide = random.next() % 2 == 0 ? .buy : .sell
                let amount = UInt128(random.next() % (side == .buy ? 2_000_000 : 200_000_000)) + 1
                operation = .swapExactOut(
                    token: 1, side: side, amountOut: amount, maximumIn: .max, deadlineMilliseconds: .max)
            case 6..<8:
                operation = .addLiquidity(
                    token: 1, licenceDesired: UInt128(random.next() % 3_000_000) + 1,
                    stablecoinDesired: UInt128(random.next() % 300_000_000) + 1, licenceMinimum: 0,
                    stablecoinMinimum: 0,
                    deadlineMilliseconds: .max)
            default:
                let held = market.chain.holding(share, trader).balance
                operation = .removeLiquidity(
                    token: 1, shares: held == 0 ? 1 : UInt128(random.next()) % held + 1, licenceMinimum: 0,
                    stablecoinMinimum: 0, deadlineMilliseconds: .max)
            }
            let rowsBefore = market.chain.ledger.state.allRows()
            switch market.chain.submit(trader, operation) {
            case .failure:
                rejected += 1
                XCTAssertEqual(market.chain.ledger.state.allRows(), rowsBefore, "step \(step): a rejection wrote")
                continue
            case .success:
                applied[min(kind / 3, 3)] += 1
            }
            let after = market.pool.market
            // Conservation: every token's balances sum to its supply, which pool operations do not change
            // (share tokens are minted and burned with the pool's total).
            XCTAssertEqual(Array(tokens.map(total).prefix(2)), Array(supplies.prefix(2)), "step \(step)")
            XCTAssertEqual(total(share), after.totalShares, "step \(step)")
            XCTAssertEqual(market.chain.ledger.state.tokens[share]!.totalSupply, after.totalShares)
            XCTAssertEqual(market.poolBalance(1), after.reserve0, "step \(step)")
            XCTAssertEqual(market.poolBalance(0), after.reserve1, "step \(step)")
            let productBefore = UInt256.product(before.reserve0, before.reserve1)
            let productAfter = UInt256.product(after.reserve0, after.reserve1)
            if kind < 6 {
                XCTAssertGreaterThanOrEqual(productAfter, productBefore, "step \(step): a swap lowered k")
                XCTAssertEqual(after.totalShares, before.totalShares)
            }
            // k / shares^2 never falls: a share's claim grows by fees only, and deposits and
            // withdrawals round in the pool's favour. Compared exactly: k' * s^2 >= k * s'^2.
            let kBefore = productBefore.uint128!
            let kAfter = productAfter.uint128!  // reserves stay below 2^64 here
            let left = UInt256.product(kAfter, before.totalShares * before.totalShares)
            let right = UInt256.product(kBefore, after.totalShares * after.totalShares)
            XCTAssertGreaterThanOrEqual(left, right, "step \(step): \(operation.name) diluted the shares")
            if kind >= 6 {
                // ... and only swaps (their fees) raise it: a deposit or withdrawal adds at most the
                // rounding left in the pool (under a unit of each reserve and of a share).
                let perShareBefore = Double(kBefore).squareRoot() / Double(before.totalShares)
                let perShareAfter = Double(kAfter).squareRoot() / Double(after.totalShares)
                let rounding =
                    1 / Double(min(after.reserve0, after.reserve1)) + 1 / Double(after.totalShares) + 1e-12
                XCTAssertLessThanOrEqual(
                    perShareAfter, perShareBefore * (1 + rounding),
                    "step \(step): \(operation.name) gave a share more than fees earned")
            }
        }
        XCTAssertGreaterThan(
            applied.reduce(0, +), 2_000, "most operations should apply: \(applied), \(rejected) rejected")
        XCTAssertTrue(applied.allSatisfy { $0 > 100 }, "every kind should apply many times: \(applied)")

        // Everyone withdraws: what each gets back is at most a share of the pool, and the shares
        // locked at the first deposit keep the pool from emptying.
        for trader in traders {
            let held = market.chain.holding(share, trader).balance
            guard held > 0 else { continue }
            let pool = market.pool.market
            market.chain.expectApplied(
                trader,
                .removeLiquidity(
                    token: 1, shares: held, licenceMinimum: 0, stablecoinMinimum: 0, deadlineMilliseconds: .max))
            let fill = try XCTUnwrap(market.chain.lastFill)
            XCTAssertLessThanOrEqual(
                UInt256.product(fill.licence, pool.totalShares), UInt256.product(held, pool.reserve0))
            XCTAssertLessThanOrEqual(
                UInt256.product(fill.stablecoin, pool.totalShares), UInt256.product(held, pool.reserve1))
        }
        XCTAssertEqual(market.pool.market.totalShares, ConstantProduct.minimumLiquidity)
        XCTAssertGreaterThan(market.pool.licenceReserve, 0)
        XCTAssertGreaterThan(market.pool.stablecoinReserve, 0)
    }
}
