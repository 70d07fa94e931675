// Tools/bench/arbiter: committed transactions per second through the real arbiter service
// (TCP on loopback, parallel signature checks, one durable SQLite commit per block) at block
// sizes 10, 100 and 1,000, and submit-to-receipt latency at the default block rules; against
// the bound of Ed25519 verification on every core. Build and run in release:
//
//     swift run -c release bench-arbiter [transactions per block size, default 60000]
//
// Stablecoin transfers are signed by 1,000 accounts before the clock starts, so the figure is
// the arbiter's, not the clients' signing. The last line is one JSON object (README, "Benchmarks").
import Dispatch
import Foundation
import NIOCore
import NIOPosix
import RWACrypto
import RWALedger
import RWANode
import RWASession
import RWAStore
import RWAWire

let transactionCount = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 60_000 : 60_000
let accountCount = 1_000
let clientCount = Int(ProcessInfo.processInfo.environment["RWANET_BENCH_CLIENTS"] ?? "4")!
let window = Int(ProcessInfo.processInfo.environment["RWANET_BENCH_WINDOW"] ?? "1024")!  // unanswered per client
let cores = ProcessInfo.processInfo.activeProcessorCount
let group = MultiThreadedEventLoopGroup.singleton
let arbiter = try SigningKeyPair(seed: [UInt8](repeating: 1, count: 32))
let issuer = try SigningKeyPair(seed: [UInt8](repeating: 3, count: 32))
let regulator = try SigningKeyPair(seed: [UInt8](repeating: 2, count: 32))
let accounts = (0..<accountCount).map { index in
    try! SigningKeyPair(
        seed: [UInt8](repeating: 0, count: 28) + withUnsafeBytes(of: UInt32(index + 1).bigEndian, Array.init))
}
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rwanet-bench-arbiter-\(getpid())")
try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: scratch) }

/// Ed25519 verifications per second with every core busy: the most any arbiter that checks each
/// signature could commit.
func verificationBound(perCore: Int = 20_000) -> Double {
    let key = SigningKeyPair.generate()
    let domain = SignatureDomain(tag: Transaction.signatureTag, chainID: ChainIDs.devnet)
    let payload = [UInt8](repeating: 7, count: 137)
    let signature = key.sign(payload, domain: domain)
    let start = ContinuousClock.now
    DispatchQueue.concurrentPerform(iterations: cores) { _ in
        for _ in 0..<perCore { precondition(key.publicKey.isValidSignature(signature, for: payload, domain: domain)) }
    }
    return Double(perCore * cores) / ((ContinuousClock.now - start) / .seconds(1))
}

/// A new chain in the scratch folder whose 1,000 accounts hold stablecoin (block 1), and the
/// ledger as of that block.
func fundedChain(_ name: String) throws -> (Ledger, LedgerStore, Genesis) {
    let genesis = Genesis(
        networkName: name, timeMilliseconds: 0, arbiter: arbiter.publicKey, claimIssuers: [regulator.publicKey],
        stablecoinIssuer: issuer.publicKey)
    var ledger = Ledger(genesis: genesis)
    let rows = ledger.takeStateChanges().compactMap { change in
        change.row.map { StateRow(key: change.key.bytes, value: $0) }
    }
    let store = try LedgerStore.create(
        path: scratch.appendingPathComponent("\(name).sqlite").path, genesis: genesis, genesisRows: rows)
    for (sequence, account) in accounts.enumerated() {
        let mint = try Transaction(
            signedBy: issuer, chainID: genesis.chainID, sequence: UInt64(sequence),
            operation: .mint(token: 0, to: account.publicKey, amount: 1_000_000_000))
        guard case .success = ledger.apply(try mint.verified(chainID: genesis.chainID), timeMilliseconds: 1) else {
            fatalError("mint")
        }
    }
    try store.commit(ledger.sealBlock(arbiter: arbiter), changes: ledger.takeStateChanges())
    return (ledger, store, genesis)
}

/// A new chain whose 1,000 accounts hold stablecoin, served on a free TCP port.
func startChain(_ name: String, rules: BlockRules) async throws -> (ArbiterService, SessionListener, Genesis) {
    let (_, store, genesis) = try fundedChain(name)
    let service = try ArbiterService(store: store, arbiterKey: arbiter, rules: rules)
    service.start()
    var configuration = try SessionConfiguration(
        handshake: HandshakeConfiguration(identity: arbiter, chainID: genesis.chainID))
    configuration.keyLog = nil
    configuration.inboxCapacity = 4096
    let listener = try await TransportKind.tcp.listen(
        host: "127.0.0.1", port: 0, configuration: configuration, group: group)
    Task { for await session in listener.sessions { service.serve(session) } }
    return (service, listener, genesis)
}

func connect(_ listener: SessionListener, _ genesis: Genesis) async throws -> ArbiterClient {
    try await ArbiterClient.connect(
        host: "127.0.0.1", port: listener.port, identity: .generate(), chainID: genesis.chainID,
        arbiter: arbiter.publicKey, group: group)
}

/// Transfers in round-robin over the accounts (sequence numbers 0, 1, … per account), split
/// into one ordered list per client, each account's transactions all on one client.
func signTransfers(_ count: Int, chainID: Digest32, clients: Int = clientCount, firstRound: Int = 0) throws
    -> [[Transaction]]
{
    var perClient = [[Transaction]](repeating: [], count: clients)
    for index in 0..<count {
        let sender = index % accountCount
        let transaction = try Transaction(
            signedBy: accounts[sender], chainID: chainID, sequence: UInt64(firstRound + index / accountCount),
            operation: .transfer(token: 0, to: accounts[(sender + 1) % accountCount].publicKey, amount: 1))
        perClient[sender % clients].append(transaction)
    }
    return perClient
}

/// Sends every client's list with up to `window` unanswered, and waits for every receipt. The
/// driving runs on each client's event loop (a receipt's callback sends the next), so the clients
/// cost only their protocol work, not a task switch per transaction.
func drive(_ clients: [ArbiterClient], _ lists: [[Transaction]], window: Int) async throws -> [Double] {
    var futures: [EventLoopFuture<[Double]>] = []
    for (client, list) in zip(clients, lists) {
        let eventLoop = client.session.eventLoop
        let done = eventLoop.makePromise(of: [Double].self)
        if list.isEmpty { done.succeed([]) }
        eventLoop.execute {
            final class Progress {
                var next = 0
                var answered = 0
                var latencies: [Double] = []
            }
            let progress = NIOLoopBoundBox(Progress(), eventLoop: eventLoop)
            @Sendable func send() {
                let state = progress.value
                guard state.next < list.count else { return }
                let transaction = list[state.next]
                state.next += 1
                let sent = ContinuousClock.now
                client.submitPipelined(transaction).whenComplete { result in
                    let state = progress.value
                    switch result {
                    case .failure(let error): done.fail(error)
                    case .success:
                        state.latencies.append((ContinuousClock.now - sent) / .milliseconds(1))
                        state.answered += 1
                        if state.answered == list.count { done.succeed(state.latencies) } else { send() }
                    }
                }
            }
            for _ in 0..<min(window, list.count) { send() }
        }
        futures.append(done.futureResult)
    }
    var latencies: [Double] = []
    for future in futures { latencies += try await future.get() }
    return latencies
}

/// CPU seconds used by the whole process so far (all threads, user and system).
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// What one transaction costs at each stage on one core, without the network: where the
/// end-to-end figure's time goes.
func stageCosts() throws {
    var (ledger, store, genesis) = try fundedChain("stages")
    let encoded = try signTransfers(4_000, chainID: genesis.chainID).flatMap { $0 }.map(\.encoded)
    func microseconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        return (ContinuousClock.now - start) / .microseconds(1) / Double(encoded.count)
    }
    var verified: [VerifiedTransaction] = []
    let decode = try microseconds { for bytes in encoded { _ = try Transaction(decoding: bytes) } }
    let verify = try microseconds {
        verified = try encoded.map { try Transaction(decoding: $0).verified(chainID: genesis.chainID) }
    }
    let apply = microseconds { for transaction in verified { _ = ledger.apply(transaction, timeMilliseconds: 2) } }
    var block: Block!
    let seal = microseconds { block = ledger.sealBlock(arbiter: arbiter) }
    let changes = ledger.takeStateChanges()
    let commit = try microseconds { try store.commit(block, changes: changes) }
    print(
        String(
            format:
                "  per transaction on one core: decode %.1f µs, decode+verify %.1f µs, apply %.1f µs, seal %.1f µs, commit %.1f µs",
            decode, verify, apply, seal, commit))
}

if ProcessInfo.processInfo.environment["RWANET_BENCH_STAGES"] != nil { try stageCosts() }

print("bench-arbiter: \(transactionCount) transfers per block size, \(accountCount) accounts, \(cores) cores")
var perSecond: [Int: Double] = [:]
var bounds: [Double] = []
// RWANET_BENCH_SIZES=1000 (comma-separated) runs only those sizes, for profiling one of them.
let sizes =
    ProcessInfo.processInfo.environment["RWANET_BENCH_SIZES"].map { $0.split(separator: ",").compactMap { Int($0) } }
    ?? [10, 100, 1_000]
/// This machine's speed drifts by up to 1.5x from one minute to the next, so each size runs in
/// slices, each between two measurements of the bound, and is compared with their mean. Blocks
/// of 1,000 run in five such interleaved measurements, and their median is the ratio judged.
var ratios: [Double] = []
for size in sizes {
    let slices = size == 1_000 ? 5 : 3
    let (service, listener, genesis) = try await startChain(
        "size-\(size)", rules: BlockRules(maxTransactions: size, maxDelay: .milliseconds(50)))
    var clients: [ArbiterClient] = []
    for _ in 0..<clientCount { clients.append(try await connect(listener, genesis)) }
    let perSlice = transactionCount / slices / accountCount * accountCount
    let sliceLists = try (0..<slices).map { slice in
        try signTransfers(perSlice, chainID: genesis.chainID, firstRound: slice * perSlice / accountCount)
    }
    let heightBefore = service.height
    var elapsed = 0.0
    var cpu = 0.0
    var sliceRatios: [Double] = []
    var before = verificationBound()
    for lists in sliceLists {
        let start = ContinuousClock.now
        let cpuBefore = processCPUSeconds()
        _ = try await drive(clients, lists, window: window)
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        cpu += processCPUSeconds() - cpuBefore
        elapsed += seconds
        let after = verificationBound()
        bounds += [before, after]
        sliceRatios.append(Double(perSlice) / seconds / ((before + after) / 2))
        before = after
    }
    perSecond[size] = Double(perSlice * slices) / elapsed
    if size == 1_000 { ratios = sliceRatios }
    print(
        String(
            format:
                "  block size %5d: %8.0f committed tx/s (%d blocks, %.2f s, %.2f cores busy; %@ of the adjacent bounds)",
            size, perSecond[size]!, Int(service.height - heightBefore), elapsed, cpu / elapsed,
            sliceRatios.map { String(format: "%.0f%%", $0 * 100) }.joined(separator: ", ")))
    for client in clients { await client.close() }
    await listener.close()
    await service.shutdown()
}

// Latency at the default rules, under a steady load: 8 clients, each with 4 unanswered.
let (service, listener, genesis) = try await startChain("latency", rules: .standard)
var clients: [ArbiterClient] = []
for _ in 0..<8 { clients.append(try await connect(listener, genesis)) }
let latencyLists = try signTransfers(min(transactionCount, 8_000), chainID: genesis.chainID, clients: 8)
let latencies = try await drive(clients, latencyLists, window: 4)
for client in clients { await client.close() }
await listener.close()
await service.shutdown()

let bound = bounds.reduce(0, +) / Double(bounds.count)
let ratio = ratios.isEmpty ? 0 : ratios.sorted()[ratios.count / 2]  // the median of the five
let p50 = percentile(latencies, 0.5)
let p99 = percentile(latencies, 0.99)
print(String(format: "  latency at the default rules (1000 tx or 10 ms): p50 %.2f ms, p99 %.2f ms", p50, p99))
print(
    String(
        format:
            "  Ed25519 verification on %d cores: %.0f/s (mean of %d runs, %.0f to %.0f); block size 1000 reaches %.0f%% of the bound (median)",
        cores, bound, bounds.count, bounds.min() ?? 0, bounds.max() ?? 0, ratio * 100))
print(
    "  blocks of 1000 against their adjacent bounds: \(ratios.map { String(format: "%.3f", $0) }), median \(String(format: "%.3f", ratio))"
)
print(
    #"{"bench":"arbiter","tx_per_s":{"10":\#(Int(perSecond[10] ?? 0)),"100":\#(Int(perSecond[100] ?? 0)),"1000":\#(Int(perSecond[1_000] ?? 0))},"p50_ms":\#(String(format: "%.3f", p50)),"p99_ms":\#(String(format: "%.3f", p99)),"verify_bound_per_s":\#(Int(bound)),"ratio":\#(String(format: "%.3f", ratio)),"ratio_runs":[\#(ratios.map { String(format: "%.3f", $0) }.joined(separator: ","))]}"#
)
