import Foundation
import NIOConcurrencyHelpers
import NIOPosix
import RWACrypto
import RWALeaseDaemon
import RWALedger
import RWAMarket
import RWANode
import RWAWire

/// Honest traffic run alongside an attack: it must all complete, and the balances it leaves must
/// be exactly what it did.
protocol LegitimateTraffic: Sendable {
    /// What one unit of it is ("transfers", "swaps"), for the summary.
    var unit: String { get }
    /// Stops it and checks the balances; `problem` says what went wrong, if anything did.
    func finish() async -> (count: Int, problem: String?)
}

/// Runs `body` over and over until stopped, counting the rounds; the first error ends it.
private final class Loop: @unchecked Sendable {
    private let stopped = NIOLockedValueBox(false)
    private var task: Task<Int, Error>!

    init(_ body: @escaping @Sendable () async throws -> Void) {
        let stopped = stopped
        task = Task {
            var count = 0
            while !stopped.withLockedValue({ $0 }) {
                try await body()
                count += 1
            }
            return count
        }
    }

    func stop() async throws -> Int {
        stopped.withLockedValue { $0 = true }
        return try await task.value
    }
}

/// The regulator's client, two fresh accounts it verified, and the issuer's key: what every
/// kind of legitimate traffic starts from.
private func verifiedAccounts(
    host: String, arbiterPort: Int, genesis: Genesis, dir: String
) async throws -> (
    client: ArbiterClient, regulator: SigningKeyPair, issuer: SigningKeyPair, SigningKeyPair, SigningKeyPair
) {
    let regulator = try KeyFile.read(from: "\(dir)/regulator.key")
    let issuer = try KeyFile.read(from: "\(dir)/stablecoin-issuer.key")
    let client = try await ArbiterClient.connect(
        host: host, port: arbiterPort, identity: regulator, chainID: genesis.chainID, arbiter: genesis.arbiter,
        group: MultiThreadedEventLoopGroup.singleton)
    let first = SigningKeyPair.generate()
    let second = SigningKeyPair.generate()
    for key in [first, second] {
        let identity = try await client.sign(.registerIdentity(account: key.publicKey, country: 840), with: regulator)
        _ = try await client.sign(.addClaim(identity: identity.createdID, topic: ClaimTopic.kyc), with: regulator)
    }
    return (client, regulator, issuer, first, second)
}

/// For an arbiter with its chain directory: two fresh accounts, verified and funded by the
/// regulator and the issuer, transfer one unit at a time all through the attack; their balances
/// must come out exact.
final class LegitimateTransfers: LegitimateTraffic, @unchecked Sendable {
    let unit = "transfers"
    static let funds: UInt128 = 1_000_000
    private let client: ArbiterClient
    private let from: SigningKeyPair
    private let to: SigningKeyPair
    private let loop: Loop

    private init(client: ArbiterClient, from: SigningKeyPair, to: SigningKeyPair) {
        self.client = client
        self.from = from
        self.to = to
        loop = Loop { _ = try await client.sign(.transfer(token: 0, to: to.publicKey, amount: 1), with: from) }
    }

    static func start(host: String, port: Int, genesis: Genesis, dir: String) async throws -> LegitimateTransfers {
        let (client, _, issuer, from, to) = try await verifiedAccounts(
            host: host, arbiterPort: port, genesis: genesis, dir: dir)
        _ = try await client.sign(.mint(token: 0, to: from.publicKey, amount: funds), with: issuer)
        return LegitimateTransfers(client: client, from: from, to: to)
    }

    func finish() async -> (count: Int, problem: String?) {
        let count: Int
        do { count = try await loop.stop() } catch {
            return (0, "a legitimate transfer failed: \(error)")
        }
        do {
            let sent = try await client.holding(token: 0, account: from.publicKey).balance
            let received = try await client.holding(token: 0, account: to.publicKey).balance
            await client.close()
            if sent != Self.funds - UInt128(count) || received != UInt128(count) {
                return (count, "after \(count) transfers the balances are \(sent) and \(received)")
            }
            return (count, nil)
        } catch {
            return (count, "the balances could not be read: \(error)")
        }
    }
}

/// For an exchange, given its arbiter and chain directory: a fresh licence with a pool of 40
/// slices against 4,000,000, and a verified trader who buys and sells through the exchange in
/// turn all through the attack. Nobody else trades on that pool (forged orders never reach it),
/// so every fill must be exactly the constant-product amount from the reserves the trader
/// tracks, and its balances at the end exactly the sum of its fills.
final class LegitimateSwaps: LegitimateTraffic, @unchecked Sendable {
    let unit = "swaps"
    static let funds: UInt128 = 1_000_000
    private let admin: ArbiterClient
    private let exchange: ExchangeClient
    private let trader: SigningKeyPair
    private let licence: TokenID
    /// The pool's reserves and the trader's holdings as the fills say, and the next sequence.
    private struct Book {
        var licenceReserve: UInt128
        var stablecoinReserve: UInt128
        var licenceHeld: UInt128 = 0
        var stablecoinHeld: UInt128 = LegitimateSwaps.funds
        var sequence: UInt64 = 0
        var buyNext = true
    }
    private let book: NIOLockedValueBox<Book>
    private let loop: Loop

    private init(
        admin: ArbiterClient, exchange: ExchangeClient, trader: SigningKeyPair, licence: TokenID, chainID: Digest32,
        reserves: (licence: UInt128, stablecoin: UInt128)
    ) {
        self.admin = admin
        self.exchange = exchange
        self.trader = trader
        self.licence = licence
        let book = NIOLockedValueBox(Book(licenceReserve: reserves.licence, stablecoinReserve: reserves.stablecoin))
        self.book = book
        loop = Loop { try await Self.swapOnce(exchange, trader, licence, chainID, book) }
    }

    /// One swap, buying 10,000 of stablecoin's worth or selling back half the slices held.
    private static func swapOnce(
        _ exchange: ExchangeClient, _ trader: SigningKeyPair, _ licence: TokenID, _ chainID: Digest32,
        _ book: NIOLockedValueBox<Book>
    ) async throws {
        let now = book.withLockedValue { $0 }
        let buying = now.buyNext || now.licenceHeld < 2
        let amountIn: UInt128 = buying ? 10_000 : now.licenceHeld / 2
        let expected =
            buying
            ? try ConstantProduct.amountOut(
                amountIn: amountIn, reserveIn: now.stablecoinReserve, reserveOut: now.licenceReserve)
            : try ConstantProduct.amountOut(
                amountIn: amountIn, reserveIn: now.licenceReserve, reserveOut: now.stablecoinReserve)
        let deadline = UInt64(Date().timeIntervalSince1970 * 1000) + 60_000
        let order = try Transaction(
            signedBy: trader, chainID: chainID, sequence: now.sequence,
            operation: .swapExactIn(
                token: licence, side: buying ? .buy : .sell, amountIn: amountIn, minimumOut: expected,
                deadlineMilliseconds: deadline))
        let fill = try await exchange.submit(order)
        let (paid, received) = buying ? (fill.stablecoin, fill.licence) : (fill.licence, fill.stablecoin)
        guard paid == amountIn, received == expected else {
            throw FillMismatch(
                description:
                    "a \(buying ? "buy" : "sell") of \(amountIn) filled \(paid) for \(received), not \(amountIn) for \(expected)"
            )
        }
        book.withLockedValue { book in
            book.sequence += 1
            book.buyNext = !buying
            if buying {
                book.stablecoinReserve += amountIn
                book.licenceReserve -= expected
                book.stablecoinHeld -= amountIn
                book.licenceHeld += expected
            } else {
                book.licenceReserve += amountIn
                book.stablecoinReserve -= expected
                book.licenceHeld -= amountIn
                book.stablecoinHeld += expected
            }
        }
    }

    struct FillMismatch: Error, CustomStringConvertible {
        let description: String
    }

    static func start(
        host: String, port: Int, arbiterPort: Int, genesis: Genesis, dir: String
    ) async throws -> LegitimateSwaps {
        let (admin, regulator, issuer, owner, trader) = try await verifiedAccounts(
            host: host, arbiterPort: arbiterPort, genesis: genesis, dir: dir)
        let licence = try await admin.sign(
            .registerResource(
                ResourceRegistration(
                    kind: .radioSpectrum, owner: owner.publicKey, name: "rwa-fuzz", valuation: 1_000_000,
                    spectrum: SpectrumLicence(
                        centreHz: 3_600_000_000, widthHz: 10_000_000, country: 840, region: "fuzz",
                        validFrom: 1_700_000_000, validUntil: 4_000_000_000),
                    compliance: ComplianceRules())), with: regulator
        ).createdID
        _ = try await admin.sign(.mint(token: 0, to: owner.publicKey, amount: 4_000_000), with: issuer)
        _ = try await admin.sign(.mint(token: 0, to: trader.publicKey, amount: funds), with: issuer)
        _ = try await admin.sign(.createPool(token: licence, country: 840), with: regulator)
        let far = UInt64(Date().timeIntervalSince1970 + 3_600) * 1000
        _ = try await admin.sign(
            .addLiquidity(
                token: licence, licenceDesired: 40_000_000, stablecoinDesired: 4_000_000, licenceMinimum: 40_000_000,
                stablecoinMinimum: 4_000_000, deadlineMilliseconds: far), with: owner)
        let exchange = try await ExchangeClient.connect(
            host: host, port: port, identity: trader, chainID: genesis.chainID,
            group: MultiThreadedEventLoopGroup.singleton)
        return LegitimateSwaps(
            admin: admin, exchange: exchange, trader: trader, licence: licence, chainID: genesis.chainID,
            reserves: (40_000_000, 4_000_000))
    }

    func finish() async -> (count: Int, problem: String?) {
        let count: Int
        do { count = try await loop.stop() } catch {
            return (0, "a legitimate swap failed: \(error)")
        }
        let expected = book.withLockedValue { $0 }
        do {
            let stablecoin = try await admin.holding(token: 0, account: trader.publicKey).balance
            let slices = try await admin.holding(token: licence, account: trader.publicKey).balance
            await exchange.close()
            await admin.close()
            if stablecoin != expected.stablecoinHeld || slices != expected.licenceHeld {
                return (
                    count,
                    "after \(count) swaps the trader holds \(stablecoin) and \(slices) slice units, "
                        + "not \(expected.stablecoinHeld) and \(expected.licenceHeld)"
                )
            }
            return (count, nil)
        } catch {
            return (count, "the balances could not be read: \(error)")
        }
    }
}

/// For a lessor, given a lessee daemon that can lease from it (`--lessee-control`, the lessee
/// verified and funded on the chain) and the arbiter: the lessee opens a channel on the
/// lessor's first offer, pays one base unit at a time all through the attack through its control
/// socket, and closes cooperatively at the end. The lease starts two periods ahead, so the
/// lessee's own pay-ahead stays out of it: the closed channel must have been paid exactly the
/// acknowledged payments, and the lessee's balance on the chain must have fallen by exactly that.
final class LegitimateLease: LegitimateTraffic, @unchecked Sendable {
    let unit = "payments"
    private let control: String
    private let arbiter: ArbiterClient
    private let lessee: SigningPublicKey
    private let channel: String
    private let balanceBefore: UInt128
    private let deposit: UInt128
    /// The payments both sides acknowledged, and the paid amount the last one came back with.
    private let paid = NIOLockedValueBox((count: 0, lastPaid: UInt128(0)))
    private let loop: Loop

    private init(
        control: String, arbiter: ArbiterClient, lessee: SigningPublicKey, channel: String, balanceBefore: UInt128,
        deposit: UInt128
    ) {
        self.control = control
        self.arbiter = arbiter
        self.lessee = lessee
        self.channel = channel
        self.balanceBefore = balanceBefore
        self.deposit = deposit
        let paid = paid
        loop = Loop {
            guard paid.withLockedValue({ UInt128($0.count) }) < deposit else {
                try await Task.sleep(for: .milliseconds(100))  // the deposit is spent: nothing more to pay
                return
            }
            let answer = try controlRequest(control, ["command": "pay", "channel": channel, "amount": "1"])
            guard let state = answer["state"] as? [String: Any], let text = state["paid"] as? String,
                let nowPaid = UInt128(text)
            else { throw FuzzError("a payment's answer has no state: \(answer)") }
            try paid.withLockedValue {
                guard nowPaid == $0.lastPaid + 1 else {
                    throw FuzzError("a payment of 1 after \($0.lastPaid) came back as \(nowPaid) paid")
                }
                $0.count += 1
                $0.lastPaid = nowPaid
            }
        }
    }

    static func start(
        host: String, port: Int, arbiterPort: Int, genesis: Genesis, control: String
    ) async throws -> LegitimateLease {
        // The lessor's key, from a handshake with it.
        let probe = try RawSession(host: host, port: port, identity: .generate(), chainID: genesis.chainID)
        let lessor = probe.peerIdentity
        probe.close()
        let address = ["lessor": "\(host):\(port)", "lessor_key": "\(lessor)"]
        let offers =
            try controlRequest(control, ["command": "offers"].merging(address) { $1 })["offers"] as? [[String: Any]]
        guard let offer = offers?.first, let licence = offer["licence"] as? Int,
            let first = offer["first_slice"] as? Int,
            let rateText = offer["rate_per_slice_hour"] as? String, let rate = UInt128(rateText),
            let maxHours = offer["max_hours"] as? Int
        else { throw FuzzError("the lessor offers nothing to lease: \(offers ?? [])") }
        let period = UInt64(genesis.periodSeconds)
        let start = (UInt64(Date().timeIntervalSince1970) / period + 2) * period
        let hours = min(maxHours, 100)
        let deposit = rate * 2 * UInt128(hours)
        let opened = try controlRequest(
            control,
            [
                "command": "open", "licence": "\(licence)", "first_slice": "\(first)", "slice_count": "2",
                "start_seconds": "\(start)", "hours": "\(hours)", "rate": "offer", "deposit": "\(deposit)",
                "increment": "\(rate * 2)", "challenge_ms": "60000",
                "nonce": "\(UInt64.random(in: 1...UInt64.max))",
            ].merging(address) { $1 })
        guard let channel = opened["channel"] as? String,
            let status = try controlRequest(control, ["command": "status", "channel": channel])["channel"]
                as? [String: Any],
            let lesseeText = status["lessee"] as? String, let lesseeBytes = [UInt8](hex: lesseeText)
        else { throw FuzzError("the open's answer names no channel: \(opened)") }
        let lessee = try SigningPublicKey(bytes: lesseeBytes)
        let arbiter = try await ArbiterClient.connect(
            host: host, port: arbiterPort, identity: .generate(), chainID: genesis.chainID, arbiter: genesis.arbiter,
            group: MultiThreadedEventLoopGroup.singleton)
        // After the open: the deposit has left the balance, and comes back less what was paid.
        let balance = try await arbiter.holding(token: 0, account: lessee).balance + deposit
        return LegitimateLease(
            control: control, arbiter: arbiter, lessee: lessee, channel: channel, balanceBefore: balance,
            deposit: deposit)
    }

    func finish() async -> (count: Int, problem: String?) {
        let count: Int
        do { count = try await loop.stop() } catch {
            return (paid.withLockedValue { $0.count }, "a legitimate payment failed: \(error)")
        }
        let expected = UInt128(count)
        do {
            let final =
                try controlRequest(control, ["command": "close", "channel": channel])["state"]
                as? [String: Any]
            guard final?["paid"] as? String == "\(expected)" else {
                return (count, "after \(count) payments of 1 the channel closed with \(final ?? [:])")
            }
            // The lessee closes on the chain: wait (at most 30 s) for its balance to come back.
            let deadline = Date().addingTimeInterval(30)
            var balance: UInt128 = 0
            while Date() < deadline {
                balance = try await arbiter.holding(token: 0, account: lessee).balance
                if balance == balanceBefore - expected { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            await arbiter.close()
            if balance != balanceBefore - expected {
                return (
                    count,
                    "after \(count) payments of 1 the lessee holds \(balance), not \(balanceBefore - expected)"
                )
            }
            return (count, nil)
        } catch {
            return (count, "the lease could not be closed or read: \(error)")
        }
    }
}
