// Goal: purchase mode with real processes. `rwa-arbiter run` and `rwa-amm run` on loopback; the
// regulator opens a licence's pool and its owner seeds it through the CLI; then 20 traders, half
// over TCP and half over UDP, each send their orders one after another, all twenty at once, some
// with limits or deadlines that must fail. Afterwards every fill the exchange reported is checked,
// to the base unit and to its block and position, against a replay of the committed orders
// through `RWAMarket` alone that honours deadlines by the block's time; every refusal must be one
// the replay justifies; every balance is checked against the fills, and the chain against
// `rwa-arbiter verify`.
import Foundation
import NIOCore
import NIOPosix
import RWACrypto
import RWALedger
import RWAMarket
import RWANode
import RWATestSupport
import RWAWire
import XCTest

final class AMMProcess: ToolProcess {
    init(_ arguments: [String]) throws { try super.init(tool: "rwa-amm", arguments) }

    static func run(_ arguments: [String], timeout: TimeInterval = 60) throws -> Outcome {
        try run(tool: "rwa-amm", arguments, timeout: timeout)
    }

    static func json(_ result: Outcome) throws -> [String: Any] {
        XCTAssertEqual(result.status, 0, result.errors.joined(separator: "\n"))
        return try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(result.output.joined().utf8)) as? [String: Any],
            result.output.joined())
    }
}

final class ExchangeProcessTests: XCTestCase {
    static let traderCount = 20
    static let ordersPerTrader = 12
    static let seedLicence: UInt128 = 40_000_000
    static let seedStablecoin: UInt128 = 4_000_000_000

    /// One order a trader sent and what the exchange said.
    struct Sent: Sendable {
        var transaction: Transaction
        var fill: OrderFill?
        var rejection: Rejection?
        /// Wall-clock milliseconds when the answer arrived: a deadline refusal must be before it.
        var answeredAt: UInt64 = 0
    }

    /// How many orders are awaiting their answer, and the most there ever were at once.
    actor InFlight {
        var now = 0
        var most = 0
        func begin() {
            now += 1
            most = max(most, now)
        }
        func end() { now -= 1 }
    }

    static var wallClockMilliseconds: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    /// What the ledger answers a swap against `pool` with the trader's `balance` of what it pays
    /// at block time `time`, in the ledger's order of checks (Pools.swift): the deadline, the pool's
    /// math and the signed limit, then the balance. nil: it fills.
    static func judge(_ operation: LedgerOperation, pool: Pool, balance: UInt128, time: UInt64) -> ErrorCode? {
        var pool = pool
        let paid: UInt128
        do {
            switch operation {
            case .swapExactIn(_, let side, let amountIn, let minimumOut, let deadline):
                if time > deadline { return .deadlinePassed }
                _ = try pool.swap(exactIn: amountIn, side.direction, minimumOut: minimumOut, timestampSeconds: 0)
                paid = amountIn
            case .swapExactOut(_, let side, let amountOut, let maximumIn, let deadline):
                if time > deadline { return .deadlinePassed }
                paid = try pool.swap(exactOut: amountOut, side.direction, maximumIn: maximumIn, timestampSeconds: 0)
            default:
                return .unexpectedMessage
            }
        } catch SwapError.limitExceeded {
            return .priceLimit
        } catch {
            return .insufficientLiquidity
        }
        return paid > balance ? .insufficientBalance : nil
    }

    func testTwentyTradersThroughTheExchangeFillExactlyAsTheMarketMathReplays() async throws {
        try await withTimeout(300, "testTwentyTradersThroughTheExchangeFillExactlyAsTheMarketMathReplays") { [self] in
            let scratch = try Scratch()
            let dir = scratch.directory.appendingPathComponent("chain").path
            XCTAssertEqual(try ArbiterProcess.run(["init", "--dir", dir]).status, 0)
            let arbiter = try ArbiterProcess(["run", "--dir", dir, "--port", "0", "--no-udp"])
            defer { arbiter.stop() }
            _ = try arbiter.requireLine("the chain line")
            let arbiterPort = try arbiter.requireListening("tcp").port
            let genesis = try Genesis(
                decoding: [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/genesis.bin"))))
            let chainID = genesis.chainID
            let group = MultiThreadedEventLoopGroup.singleton

            // Identities, the licence, stablecoin and slices for everyone, pipelined in-process.
            let regulator = try KeyFile.read(from: "\(dir)/regulator.key")
            let issuer = try KeyFile.read(from: "\(dir)/stablecoin-issuer.key")
            let owner = try scratch.key("owner")
            let traders = try (0..<Self.traderCount).map { try scratch.key("trader\($0)") }
            let outsider = try scratch.key("outsider")  // a wallet in a country the licence does not allow
            let admin = try await ArbiterClient.connect(
                host: "127.0.0.1", port: arbiterPort, identity: regulator, chainID: chainID, arbiter: genesis.arbiter,
                group: group)
            var sequences: [AccountID: UInt64] = [:]
            func signed(_ signer: SigningKeyPair, _ operation: LedgerOperation) throws -> Transaction {
                let sequence = sequences[signer.publicKey, default: 0]
                sequences[signer.publicKey] = sequence + 1
                return try Transaction(signedBy: signer, chainID: chainID, sequence: sequence, operation: operation)
            }
            var setup: [Transaction] = []
            for (index, wallet) in ([owner] + traders + [outsider]).enumerated() {
                let country: CountryCode = wallet.path == outsider.path ? 250 : 826
                setup.append(try signed(regulator, .registerIdentity(account: wallet.pair.publicKey, country: country)))
                setup.append(try signed(regulator, .addClaim(identity: UInt64(index + 1), topic: ClaimTopic.kyc)))
            }
            setup.append(
                try signed(
                    regulator,
                    .registerResource(
                        ResourceRegistration(
                            kind: .radioSpectrum, owner: owner.pair.publicKey, name: "n78 Leeds", metadata: "",
                            valuation: 5_000_000_000,
                            spectrum: SpectrumLicence(
                                centreHz: 3_500_000_000, widthHz: 10_000_000, country: 826, region: "Leeds",
                                validFrom: 1_767_225_600, validUntil: 1_924_992_000),
                            compliance: ComplianceRules(allowedCountries: [826, 372])))))
            for wallet in [owner] + traders + [outsider] {
                setup.append(try signed(issuer, .mint(token: 0, to: wallet.pair.publicKey, amount: 10_000_000_000)))
            }
            for trader in traders {
                setup.append(try signed(owner.pair, .transfer(token: 1, to: trader.pair.publicKey, amount: 2_000_000)))
            }
            for future in setup.map({ admin.submitPipelined($0) }) {
                let receipt = try await future.get()
                XCTAssertGreaterThan(receipt.height, 0)
            }

            // The pool, opened and seeded through the CLI.
            let address = ["--dir", dir, "--arbiter", "127.0.0.1:\(arbiterPort)"]
            let created = try AMMProcess.json(
                try AMMProcess.run(
                    ["pool", "create", "--key", "\(dir)/regulator.key"] + address + [
                        "--token", "1", "--country", "826", "--json",
                    ]))
            XCTAssertEqual(created["share_token"] as? String, "\(PoolRecord.shareToken(for: 1))")
            let exchange = try AMMProcess(
                ["run"] + address + [
                    "--key", scratch.directory.appendingPathComponent("amm.key").path, "--port", "0",
                    "--udp-port", "0",
                ])
            defer { exchange.stop() }
            let following = try exchange.requireLine("the `following` line")
            XCTAssertTrue(following.hasPrefix("following "), following)
            let tcpListening = try exchange.requireListening("tcp")
            let udpPort = try exchange.requireListening("udp").port
            let tcpPort = tcpListening.port
            let exchangeKey = try SigningPublicKey(
                bytes: try XCTUnwrap([UInt8](hex: tcpListening.publicKey), tcpListening.publicKey))
            let at = address + ["--amm", "127.0.0.1:\(tcpPort)"]
            let seeded = try AMMProcess.json(
                try AMMProcess.run(
                    ["add-liquidity", "--key", owner.path] + at + [
                        "--token", "1", "--licence", "\(Self.seedLicence)", "--stablecoin", "\(Self.seedStablecoin)",
                        "--json",
                    ]))
            XCTAssertEqual(seeded["licence"] as? String, "\(Self.seedLicence)")
            let quoted = try AMMProcess.json(
                try AMMProcess.run(
                    ["quote"] + at + ["--token", "1", "--side", "buy", "--amount-in", "1000000", "--json"]))
            XCTAssertEqual(
                quoted["amount_out"] as? String,
                "\(try ConstantProduct.amountOut(amountIn: 1_000_000, reserveIn: Self.seedStablecoin, reserveOut: Self.seedLicence))"
            )
            // Compliance holds through the exchange: the outsider's buy is refused, and the CLI says why.
            let refused = try AMMProcess.run(
                ["swap", "--key", outsider.path] + at + [
                    "--token", "1", "--side", "buy", "--amount-in", "1000", "--json",
                ])
            XCTAssertEqual(refused.status, 1)
            XCTAssertTrue(refused.output.joined().contains("country_not_allowed"), refused.output.joined())

            // Twenty traders at once, each with its own session, orders one after another.
            let inFlight = InFlight()
            let sent = try await withThrowingTaskGroup(of: [Sent].self) { tasks in
                for (number, trader) in traders.enumerated() {
                    tasks.addTask {
                        let client = try await ExchangeClient.connect(
                            host: "127.0.0.1", port: number % 2 == 0 ? tcpPort : udpPort,
                            transport: number % 2 == 0 ? .tcp : .udp, identity: trader.pair, chainID: chainID,
                            exchange: exchangeKey, group: group)
                        var random = SplitMix(seed: UInt64(number) &* 7919 &+ 1)
                        var sequence: UInt64 = 0
                        var orders: [Sent] = []
                        for step in 0..<Self.ordersPerTrader {
                            let side: TradeSide = random.next() % 2 == 0 ? .buy : .sell
                            let exactOut = random.next() % 2 == 0
                            let amount = UInt128(random.next() % (side == .buy ? 20_000_000 : 150_000)) + 1
                            let impossible = random.next() % 6 == 0
                            let deadline = step == 3 ? UInt64(1) : Self.wallClockMilliseconds + 60_000
                            let operation: LedgerOperation =
                                exactOut
                                ? .swapExactOut(
                                    token: 1, side: side, amountOut: side == .buy ? amount / 200 + 1 : amount * 50,
                                    maximumIn: impossible ? 1 : .max, deadlineMilliseconds: deadline)
                                : .swapExactIn(
                                    token: 1, side: side, amountIn: amount, minimumOut: impossible ? .max : 0,
                                    deadlineMilliseconds: deadline)
                            let transaction = try Transaction(
                                signedBy: trader.pair, chainID: chainID, sequence: sequence, operation: operation)
                            await inFlight.begin()
                            do {
                                let fill = try await client.submit(transaction)
                                orders.append(
                                    Sent(transaction: transaction, fill: fill, answeredAt: Self.wallClockMilliseconds))
                                sequence += 1
                            } catch let rejection as Rejection {
                                orders.append(
                                    Sent(
                                        transaction: transaction, rejection: rejection,
                                        answeredAt: Self.wallClockMilliseconds))
                            }
                            await inFlight.end()
                        }
                        await client.close()
                        return orders
                    }
                }
                var all: [Sent] = []
                for try await orders in tasks { all += orders }
                return all
            }
            XCTAssertEqual(sent.count, Self.traderCount * Self.ordersPerTrader)
            let mostInFlight = await inFlight.most
            XCTAssertGreaterThan(mostInFlight, Self.traderCount / 2, "orders from many traders were in flight together")
            let fills = sent.filter { $0.fill != nil }
            let rejections = sent.compactMap(\.rejection)
            XCTAssertGreaterThan(fills.count, Self.traderCount * Self.ordersPerTrader / 2, "\(rejections.prefix(5))")
            XCTAssertTrue(rejections.contains { $0.code == .deadlinePassed }, "\(rejections.map(\.code.name))")
            XCTAssertTrue(rejections.contains { $0.code == .priceLimit }, "\(rejections.map(\.code.name))")

            // The chain, block by block, replayed through the market math alone.
            let height = try await admin.status().height
            var committed:
                [(
                    hash: Digest32, height: UInt64, index: UInt32, time: UInt64, operation: LedgerOperation,
                    signer: AccountID
                )] = []
            var blocksSeen: UInt64 = 0
            for try await block in admin.subscribe(from: 1) {
                for (index, transaction) in block.transactions.enumerated() {
                    let decoded = try Transaction(decoding: transaction.bytes)
                    committed.append(
                        (
                            transaction.hash, block.header.height, UInt32(index), block.header.timeMilliseconds,
                            decoded.operation,
                            decoded.signer
                        ))
                }
                blocksSeen = block.header.height
                if blocksSeen == height { break }
            }
            var pool = Pool()
            var delta: [AccountID: (licence: Int128, stablecoin: Int128)] = [:]
            let reported = Dictionary(
                fills.map { ($0.transaction.hash, $0.fill) }, uniquingKeysWith: { first, _ in first }
            )
            .compactMapValues { $0 }
            XCTAssertEqual(reported.count, fills.count, "one fill per order")
            var replayedSwaps = 0
            // The pool after each committed swap, with its position, to judge the refusals below.
            var poolAfter: [(position: Int, pool: Pool)] = []
            var position: [Digest32: Int] = [:]
            for (offset, entry) in committed.enumerated() {
                position[entry.hash] = offset
                switch entry.operation {
                case .addLiquidity(_, let licence, let stablecoin, _, _, _):
                    XCTAssertEqual(pool.totalShares, 0, "only the seeding deposit")
                    _ = try pool.deposit(amount0: licence, amount1: stablecoin, timestampSeconds: 0)
                    poolAfter.append((offset, pool))
                case .swapExactIn(_, let side, _, _, let deadline), .swapExactOut(_, let side, _, _, let deadline):
                    XCTAssertLessThanOrEqual(entry.time, deadline, "a swap filled after its deadline")
                    let (paid, received): (UInt128, UInt128)
                    if case .swapExactIn(_, _, let amountIn, let minimumOut, _) = entry.operation {
                        paid = amountIn
                        received = try pool.swap(
                            exactIn: amountIn, side.direction, minimumOut: minimumOut, timestampSeconds: 0)
                    } else if case .swapExactOut(_, _, let amountOut, let maximumIn, _) = entry.operation {
                        received = amountOut
                        paid = try pool.swap(
                            exactOut: amountOut, side.direction, maximumIn: maximumIn, timestampSeconds: 0)
                    } else {
                        return XCTFail("not a swap")
                    }
                    let fill = try XCTUnwrap(reported[entry.hash], "a committed swap the exchange did not report")
                    XCTAssertEqual(side == .buy ? fill.stablecoin : fill.licence, paid)
                    XCTAssertEqual(side == .buy ? fill.licence : fill.stablecoin, received)
                    XCTAssertEqual([fill.height, UInt64(fill.index)], [entry.height, UInt64(entry.index)])
                    record(&delta, entry.signer, side, paid: paid, received: received)
                    replayedSwaps += 1
                    poolAfter.append((offset, pool))
                default:
                    break
                }
            }
            XCTAssertEqual(replayedSwaps, fills.count, "every reported fill is a committed swap, and only those")

            // Every refusal must be one the replay justifies. A trader waits for each answer before
            // sending its next order, so a refused order was judged against the pool as it stood
            // somewhere between the trader's previous committed order and its next one, with the
            // trader's balances as its own fills left them (nobody else pays it during the trading).
            for trader in traders {
                let orders = sent.filter { $0.transaction.signer == trader.pair.publicKey }
                var balances: (licence: Int128, stablecoin: Int128) = (2_000_000, 10_000_000_000)
                var lastCommitted = try XCTUnwrap(poolAfter.first?.position, "the seeding deposit is in the chain")
                for (number, order) in orders.enumerated() {
                    let side: TradeSide
                    switch order.transaction.operation {
                    case .swapExactIn(_, let s, _, _, _), .swapExactOut(_, let s, _, _, _): side = s
                    default: return XCTFail("only swaps were sent")
                    }
                    if let fill = order.fill {
                        lastCommitted = try XCTUnwrap(position[order.transaction.hash])
                        let (licence, stablecoin) = (Int128(fill.licence), Int128(fill.stablecoin))
                        balances =
                            side == .buy
                            ? (balances.licence + licence, balances.stablecoin - stablecoin)
                            : (balances.licence - licence, balances.stablecoin + stablecoin)
                        continue
                    }
                    let rejection = try XCTUnwrap(order.rejection)
                    let nextCommitted =
                        orders[(number + 1)...].lazy.compactMap { $0.fill == nil ? nil : position[$0.transaction.hash] }
                        .first ?? committed.count
                    let candidates =
                        poolAfter.filter { $0.position > lastCommitted && $0.position < nextCommitted }
                        + (poolAfter.last { $0.position <= lastCommitted }.map { [$0] } ?? [])
                    let paysLicence = side == .sell
                    let balance = UInt128(clamping: paysLicence ? balances.licence : balances.stablecoin)
                    // The block that refused it had a time at or before the answer's arrival.
                    let verdicts = candidates.map {
                        Self.judge(order.transaction.operation, pool: $0.pool, balance: balance, time: order.answeredAt)
                    }
                    XCTAssertTrue(
                        verdicts.contains(rejection.code),
                        "refused with \(rejection.code.name) (\(rejection.reason)), but the replay gives \(verdicts.map { $0?.name ?? "a fill" })"
                    )
                }
            }
            // The ledger's reserves and every trader's balances agree with the replay.
            guard case .pool(let record)? = try await admin.record(.pool(1)) else { return XCTFail("no pool") }
            XCTAssertEqual([record.licenceReserve, record.stablecoinReserve], [pool.reserve0, pool.reserve1])
            for trader in traders {
                let change = delta[trader.pair.publicKey, default: (0, 0)]
                let licence = try await admin.holding(token: 1, account: trader.pair.publicKey).balance
                let stablecoin = try await admin.holding(token: 0, account: trader.pair.publicKey).balance
                XCTAssertEqual(Int128(licence), 2_000_000 + change.licence)
                XCTAssertEqual(Int128(stablecoin), 10_000_000_000 + change.stablecoin)
            }
            // Market data from the exchange matches too, and the trades it lists are the last ones.
            let trader = try await ExchangeClient.connect(
                host: "127.0.0.1", port: tcpPort, identity: owner.pair, chainID: chainID, exchange: exchangeKey,
                group: group)
            let market = try await trader.market(token: 1, twapSeconds: 3600, sizes: [1_000_000])
            XCTAssertEqual([market.licenceReserve, market.stablecoinReserve], [pool.reserve0, pool.reserve1])
            XCTAssertEqual(
                market.depth.first?.sellProceeds,
                try ConstantProduct.amountOut(amountIn: 1_000_000, reserveIn: pool.reserve0, reserveOut: pool.reserve1))
            let trades = try await trader.trades(token: 1)
            let lastSwaps = committed.filter { $0.operation.name.hasPrefix("swap") }.suffix(trades.count).reversed()
            XCTAssertEqual(trades.map(\.hash), lastSwaps.map(\.hash))
            // An order sent again gets its original fill, and is not counted in flight.
            let first = try XCTUnwrap(fills.first, "some orders filled")
            let again = try await trader.submit(first.transaction)
            XCTAssertEqual(again, first.fill)
            let settled = try await trader.quote(token: 1, side: .sell, exactOutput: false, amount: 1_000)
            XCTAssertEqual(settled.ordersInFlight, 0)
            XCTAssertEqual(settled.confirmed, settled.expected)
            do {
                _ = try await trader.quote(token: 9, side: .buy, exactOutput: false, amount: 1)
                XCTFail("a quote for a pool that does not exist")
            } catch let rejection as Rejection {
                XCTAssertEqual(rejection.code, .unknownPool)
            }
            await trader.close()
            await admin.close()

            // The rest of the trader's command line: market data, trades, an exact-output swap, and the
            // owner taking part of the liquidity out, each checked against the replayed pool.
            let price = try AMMProcess.json(
                try AMMProcess.run(["price"] + at + ["--token", "1", "--depth", "1000000", "--json"]))
            XCTAssertEqual(price["licence_reserve"] as? String, "\(pool.reserve0)")
            let listed = try AMMProcess.json(try AMMProcess.run(["trades"] + at + ["--token", "1", "--json"]))
            XCTAssertEqual((listed["trades"] as? [[String: Any]])?.count, trades.count)
            let cost = try ConstantProduct.amountIn(
                amountOut: 5_000, reserveIn: pool.reserve1, reserveOut: pool.reserve0)
            let bought = try AMMProcess.json(
                try AMMProcess.run(
                    ["swap", "--key", traders[0].path] + at + [
                        "--token", "1", "--side", "buy", "--amount-out", "5000", "--max-in", "\(cost)", "--json",
                    ]))
            XCTAssertEqual(bought["amount_in"] as? String, "\(cost)")
            XCTAssertEqual(bought["amount_out"] as? String, "5000")
            _ = try pool.swap(exactOut: 5_000, .oneForZero, maximumIn: cost, timestampSeconds: 0)
            let removed = try AMMProcess.json(
                try AMMProcess.run(
                    ["remove-liquidity", "--key", owner.path] + at + ["--token", "1", "--shares", "1000000", "--json"]))
            let (licenceOut, stablecoinOut) = try pool.withdraw(shares: 1_000_000, timestampSeconds: 0)
            XCTAssertEqual(removed["licence"] as? String, "\(licenceOut)")
            XCTAssertEqual(removed["stablecoin"] as? String, "\(stablecoinOut)")

            exchange.stop()
            arbiter.stop()
            let verified = try ArbiterProcess.run(["verify", "--dir", dir])
            XCTAssertEqual(verified.status, 0, verified.output.joined() + verified.errors.joined())
            let inspected = try AMMProcess.json(
                try ArbiterProcess.run(["inspect", "pool", "--dir", dir, "1", "--json"]))
            XCTAssertEqual(inspected["licence_reserve"] as? String, "\(pool.reserve0)")
            XCTAssertEqual(inspected["stablecoin_reserve"] as? String, "\(pool.reserve1)")
        }
    }

    private func record(
        _ delta: inout [AccountID: (licence: Int128, stablecoin: Int128)], _ trader: AccountID, _ side: TradeSide,
        paid: UInt128, received: UInt128
    ) {
        var change = delta[trader, default: (0, 0)]
        if side == .buy {
            change.stablecoin -= Int128(paid)
            change.licence += Int128(received)
        } else {
            change.licence -= Int128(paid)
            change.stablecoin += Int128(received)
        }
        delta[trader] = change
    }
}
