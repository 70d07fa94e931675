// Tools/bench/amm: swaps per second end to end (trader → exchange → arbiter → fill reported back
// to the trader) through the real services on loopback TCP, and the exchange's quote latency.
// Build and run in release:
//
//     swift run -c release bench-amm [swaps, default 20000]
//
// The chain is prepared before the clock starts: 200 verified traders holding the stablecoin and
// licence tokens, and a seeded pool. Orders are signed before the clock starts too, so the figure
// is the exchange's and arbiter's, not the traders' signing. Traders alternate buys and sells,
// pipelining up to RWANET_BENCH_WINDOW orders each over RWANET_BENCH_CLIENTS sessions.
// The last line is one JSON object (README, "Benchmarks").
import Foundation
import NIOCore
import NIOPosix
import RWACrypto
import RWALedger
import RWANode
import RWASession
import RWAStore
import RWAWire

let swapCount = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 20_000 : 20_000
let traderCount = 200
let clientCount = Int(ProcessInfo.processInfo.environment["RWANET_BENCH_CLIENTS"] ?? "4")!
let window = Int(ProcessInfo.processInfo.environment["RWANET_BENCH_WINDOW"] ?? "512")!
let quoteCount = 5_000
let group = MultiThreadedEventLoopGroup.singleton
func key(_ index: Int) -> SigningKeyPair {
    try! SigningKeyPair(
        seed: [UInt8](repeating: 0, count: 28) + withUnsafeBytes(of: UInt32(index).bigEndian, Array.init))
}
let arbiterKey = key(1)
let regulator = key(2)
let issuer = key(3)
let traders = (0..<traderCount).map { key(100 + $0) }
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rwanet-bench-amm-\(getpid())")
try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: scratch) }

/// Block 1: the traders' identities, the licence (owned by trader 0), its pool, stablecoin for
/// everyone and slices for every trader; block 2: trader 0 seeds the pool.
func preparedChain() throws -> (LedgerStore, Genesis, [AccountID: UInt64]) {
    let genesis = Genesis(
        networkName: "bench-amm", timeMilliseconds: 0, arbiter: arbiterKey.publicKey,
        claimIssuers: [regulator.publicKey],
        stablecoinIssuer: issuer.publicKey)
    var ledger = Ledger(genesis: genesis)
    let rows = ledger.takeStateChanges().compactMap { change in
        change.row.map { StateRow(key: change.key.bytes, value: $0) }
    }
    let store = try LedgerStore.create(
        path: scratch.appendingPathComponent("chain.sqlite").path, genesis: genesis, genesisRows: rows)
    var sequences: [AccountID: UInt64] = [:]
    func apply(_ signer: SigningKeyPair, _ operation: LedgerOperation) throws {
        let sequence = sequences[signer.publicKey, default: 0]
        let transaction = try Transaction(
            signedBy: signer, chainID: genesis.chainID, sequence: sequence, operation: operation)
        if case .failure(let rejection) = ledger.apply(
            try transaction.verified(chainID: genesis.chainID), timeMilliseconds: 1_000)
        {
            fatalError("set-up: \(operation.name) refused: \(rejection)")
        }
        sequences[signer.publicKey] = sequence + 1
    }
    for (index, trader) in traders.enumerated() {
        try apply(regulator, .registerIdentity(account: trader.publicKey, country: 826))
        try apply(regulator, .addClaim(identity: UInt64(index + 1), topic: ClaimTopic.kyc))
    }
    try apply(
        regulator,
        .registerResource(
            ResourceRegistration(
                kind: .radioSpectrum, owner: traders[0].publicKey, name: "bench", metadata: "", valuation: 1,
                spectrum: SpectrumLicence(
                    centreHz: 3_500_000_000, widthHz: 10_000_000, country: 826, region: "bench", validFrom: 0,
                    validUntil: 4_000_000_000),
                compliance: ComplianceRules())))
    try apply(regulator, .createPool(token: 1, country: 826))
    for trader in traders {
        try apply(issuer, .mint(token: 0, to: trader.publicKey, amount: 1_000_000_000_000))
        if trader.publicKey != traders[0].publicKey {
            try apply(traders[0], .transfer(token: 1, to: trader.publicKey, amount: 200_000))
        }
    }
    try store.commit(ledger.sealBlock(arbiter: arbiterKey), changes: ledger.takeStateChanges())
    try apply(
        traders[0],
        .addLiquidity(
            token: 1, licenceDesired: 50_000_000, stablecoinDesired: 500_000_000_000, licenceMinimum: 0,
            stablecoinMinimum: 0, deadlineMilliseconds: .max))
    try store.commit(ledger.sealBlock(arbiter: arbiterKey), changes: ledger.takeStateChanges())
    return (store, genesis, sequences)
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

let (store, genesis, sequences) = try preparedChain()
let service = try ArbiterService(store: store, arbiterKey: arbiterKey)
service.start()
var arbiterConfiguration = try SessionConfiguration(
    handshake: HandshakeConfiguration(identity: arbiterKey, chainID: genesis.chainID))
arbiterConfiguration.keyLog = nil
arbiterConfiguration.inboxCapacity = 4096
let arbiterListener = try await TransportKind.tcp.listen(
    host: "127.0.0.1", port: 0, configuration: arbiterConfiguration, group: group)
Task { for await session in arbiterListener.sessions { service.serve(session) } }

let exchangeKey = key(4)
let exchange = ExchangeService(
    genesis: genesis,
    arbiter: try await ArbiterClient.connect(
        host: "127.0.0.1", port: arbiterListener.port, identity: exchangeKey, chainID: genesis.chainID,
        arbiter: arbiterKey.publicKey, group: group))
try await exchange.start()
var exchangeConfiguration = try SessionConfiguration(
    handshake: HandshakeConfiguration(identity: exchangeKey, chainID: genesis.chainID))
exchangeConfiguration.keyLog = nil
exchangeConfiguration.inboxCapacity = 4096
let exchangeListener = try await TransportKind.tcp.listen(
    host: "127.0.0.1", port: 0, configuration: exchangeConfiguration, group: group)
Task { for await session in exchangeListener.sessions { exchange.serve(session) } }
print("chain ready at height \(exchange.height): \(traderCount) traders, pool seeded")

// Orders, signed before the clock starts: round-robin over traders, alternating buys and sells
// of about the same value so the price stays put; each trader's orders all on one client.
var orders: [[Transaction]] = Array(repeating: [], count: clientCount)
var next = Dictionary(uniqueKeysWithValues: traders.map { ($0.publicKey, sequences[$0.publicKey, default: 0]) })
for index in 0..<swapCount {
    let traderIndex = index % traderCount
    let trader = traders[traderIndex]
    let sequence = next[trader.publicKey]!
    next[trader.publicKey] = sequence + 1
    let operation: LedgerOperation =
        (index / traderCount) % 2 == 0
        ? .swapExactIn(token: 1, side: .buy, amountIn: 100_000_000, minimumOut: 0, deadlineMilliseconds: .max)
        : .swapExactIn(token: 1, side: .sell, amountIn: 10_000, minimumOut: 0, deadlineMilliseconds: .max)
    orders[traderIndex % clientCount].append(
        try Transaction(signedBy: trader, chainID: genesis.chainID, sequence: sequence, operation: operation))
}

let clients = try await (0..<clientCount).asyncMap { _ in
    try await ExchangeClient.connect(
        host: "127.0.0.1", port: exchangeListener.port, identity: .generate(), chainID: genesis.chainID,
        exchange: exchangeKey.publicKey, group: group)
}
let start = ContinuousClock.now
let filled = try await withThrowingTaskGroup(of: Int.self) { tasks in
    for (client, list) in zip(clients, orders) {
        tasks.addTask {
            // At most `window` orders unanswered per client.
            var done = 0
            var inFlight: [EventLoopFuture<OrderFill>] = []
            for transaction in list {
                if inFlight.count == window {
                    _ = try await inFlight.removeFirst().get()
                    done += 1
                }
                inFlight.append(client.submitPipelined(transaction))
            }
            for future in inFlight {
                _ = try await future.get()
                done += 1
            }
            return done
        }
    }
    var total = 0
    for try await done in tasks { total += done }
    return total
}
let elapsed = (ContinuousClock.now - start) / .seconds(1)
precondition(filled == swapCount)
let swapsPerSecond = Double(swapCount) / elapsed
print(String(format: "%d swaps filled end to end in %.2f s: %.0f swaps/s", swapCount, elapsed, swapsPerSecond))

// Quote latency on the settled exchange, one at a time over one session: first as a trader on
// the session's event loop sees it (no thread hop on the client's side), then from an async task.
let quoter = clients[0]
let onLoop = try await quoter.session.eventLoop.flatSubmit { () -> EventLoopFuture<[Double]> in
    let promise = quoter.session.eventLoop.makePromise(of: [Double].self)
    var latencies: [Double] = []
    latencies.reserveCapacity(quoteCount)
    func ask(_ index: Int) {
        guard index < quoteCount else { return promise.succeed(latencies) }
        let begin = NIODeadline.now()
        quoter.quotePipelined(
            token: 1, side: index % 2 == 0 ? .buy : .sell, exactOutput: index % 3 == 0, amount: 10_000
        )
        .whenComplete { result in
            guard case .success(let quote) = result, quote.confirmed != nil else {
                return promise.fail(result.failureOrNil ?? CancellationError())
            }
            latencies.append(Double((NIODeadline.now() - begin).nanoseconds) / 1_000)
            ask(index + 1)
        }
    }
    ask(0)
    return promise.futureResult
}.get().sorted()
var fromTask: [Double] = []
for index in 0..<quoteCount {
    let begin = ContinuousClock.now
    let quote = try await quoter.quote(
        token: 1, side: index % 2 == 0 ? .buy : .sell, exactOutput: index % 3 == 0, amount: 10_000)
    fromTask.append((ContinuousClock.now - begin) / .microseconds(1))
    precondition(quote.confirmed != nil)
}
fromTask.sort()
let (p50, p99) = (percentile(onLoop, 0.5), percentile(onLoop, 0.99))
print(String(format: "quote latency over %d quotes on the event loop: p50 %.1f µs, p99 %.1f µs", quoteCount, p50, p99))
print(
    String(
        format: "quote latency over %d quotes from an async task: p50 %.1f µs, p99 %.1f µs", quoteCount,
        percentile(fromTask, 0.5), percentile(fromTask, 0.99)))
for client in clients { await client.close() }
await service.shutdown()
print(
    String(
        format: #"{"bench":"amm","swaps_per_s":%.0f,"quote_p50_us":%.1f,"quote_p99_us":%.1f}"#, swapsPerSecond, p50,
        p99))

extension Result {
    var failureOrNil: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
