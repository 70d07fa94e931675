// Tools/bench/lease: durable lease-channel updates per second between a lessor's and a lessee's
// `LeaseService` (each storing every co-signed state in its own SQLite peer store, WAL,
// synchronous FULL, before it answers or calls the update done), over TCP and over UDP on
// loopback: on one channel, one update after another (by one caller waiting for each, and by a
// caller that keeps `window` payments queued, which the proposer pipelines with its own stores),
// and on 100 channels at once; p50 and p99 update latency; against the bare crypto cost of an
// update (2 signs and 2 verifies) measured in the same run. The channels are opened on an in-process arbiter core (`InMemoryArbiter`), which
// is not what is measured. Build and run in release:
//
//     swift run -c release bench-lease [updates, default 2000]
//
// The last line is one JSON object (README, "Benchmarks").
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import RWAChannel
import RWACrypto
import RWALedger
import RWANode
import RWASession
import RWAStore
import RWAWire

let updates = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 2_000 : 2_000
let channelCount = 100
/// Payments one caller keeps queued on one channel in the pipelined measurement.
let window = 8
let cores = ProcessInfo.processInfo.activeProcessorCount
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rwanet-bench-lease-\(getpid())")
try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: scratch) }
let quiet: Logger = {
    var logger = Logger(label: "bench-lease")
    logger.logLevel = .error
    return logger
}()

let arbiterKey = try SigningKeyPair(seed: [UInt8](repeating: 1, count: 32))
let regulator = try SigningKeyPair(seed: [UInt8](repeating: 2, count: 32))
let issuer = try SigningKeyPair(seed: [UInt8](repeating: 3, count: 32))
let lessorKey = try SigningKeyPair(seed: [UInt8](repeating: 4, count: 32))
let lesseeKey = try SigningKeyPair(seed: [UInt8](repeating: 5, count: 32))
let now = UInt64(Date().timeIntervalSince1970 * 1000)

/// Updates per second of the crypto alone (2 signs + 2 verifies of a 65-byte state) on `threads`.
func cryptoBound(threads: Int, perThread: Int = 3_000) -> Double {
    let state = ChannelState(
        channelID: Blake2b.hash256([1]), nonce: 1, paid: 1, paidThroughSeconds: 1, final: false)
    let chain = Blake2b.hash256([2])
    let start = ContinuousClock.now
    DispatchQueue.concurrentPerform(iterations: threads) { _ in
        for _ in 0..<perThread {
            let a = state.signed(by: lessorKey, chainID: chain)
            let b = state.signed(by: lesseeKey, chainID: chain)
            precondition(state.isSigned(by: lessorKey.publicKey, a, chainID: chain))
            precondition(state.isSigned(by: lesseeKey.publicKey, b, chainID: chain))
        }
    }
    return Double(perThread * threads) / ((ContinuousClock.now - start) / .seconds(1))
}

/// A chain with the lessor's licence and a funded lessee; hours of 60 s.
func world() async throws -> (InMemoryArbiter, Genesis) {
    let genesis = Genesis(
        networkName: "bench-lease", timeMilliseconds: now, arbiter: arbiterKey.publicKey,
        claimIssuers: [regulator.publicKey], stablecoinIssuer: issuer.publicKey, periodSeconds: 60)
    var ledger = Ledger(genesis: genesis)
    let rows = ledger.takeStateChanges().compactMap { change in
        change.row.map { StateRow(key: change.key.bytes, value: $0) }
    }
    let arbiter = try InMemoryArbiter(
        store: InMemoryChainStore(genesis: genesis, genesisRows: rows), arbiterKey: arbiterKey)
    var sequences: [SigningPublicKey: UInt64] = [:]
    func submit(_ signer: SigningKeyPair, _ operation: LedgerOperation) async throws -> Receipt {
        let sequence = sequences[signer.publicKey, default: 0]
        sequences[signer.publicKey] = sequence + 1
        return try await arbiter.submit(
            try Transaction(signedBy: signer, chainID: genesis.chainID, sequence: sequence, operation: operation))
    }
    for key in [lessorKey, lesseeKey] {
        let identity = try await submit(regulator, .registerIdentity(account: key.publicKey, country: 840)).createdID
        _ = try await submit(regulator, .addClaim(identity: identity, topic: ClaimTopic.kyc))
    }
    _ = try await submit(
        regulator,
        .registerResource(
            ResourceRegistration(
                kind: .radioSpectrum, owner: lessorKey.publicKey, name: "bench", valuation: 1,
                spectrum: SpectrumLicence(
                    centreHz: 3_500_000_000, widthHz: 10_000_000, country: 840, region: "bench",
                    validFrom: now / 1000 - 1_000, validUntil: now / 1000 + 10_000_000),
                compliance: ComplianceRules())))
    _ = try await submit(issuer, .mint(token: 0, to: lesseeKey.publicKey, amount: 1 << 100))
    return (arbiter, genesis)
}

/// Runs `updates` updates over `transport` on `channels` channels at once, with `queued` payments
/// asked at a time on each; returns updates per second and each update's latency in microseconds.
func measure(_ transport: TransportKind, channels: Int, queued: Int = 1, name: String) async throws -> (
    Double, [Double]
) {
    let (arbiter, genesis) = try await world()
    let directory = scratch.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let lessor = try LeaseService(
        role: .lessor, key: lessorKey, genesis: genesis,
        store: try PeerStore.open(path: directory.appendingPathComponent("lessor.sqlite").path), arbiter: arbiter,
        offers: [LeaseOffer(licence: 1, firstSlice: 0, sliceCount: 100, ratePerSliceHour: 1, maxHours: 8_784)],
        logger: quiet)
    lessor.start()
    let listener = try await transport.listen(
        host: "127.0.0.1", port: 0,
        configuration: try SessionConfiguration(
            handshake: HandshakeConfiguration(identity: lessorKey, chainID: genesis.chainID)),
        group: MultiThreadedEventLoopGroup.singleton)
    Task { for await session in listener.sessions { lessor.serve(session) } }
    let lessee = try LeaseService(
        role: .lessee, key: lesseeKey, genesis: genesis,
        store: try PeerStore.open(path: directory.appendingPathComponent("lessee.sqlite").path), arbiter: arbiter,
        logger: quiet)
    lessee.start()
    let session = try await transport.dial(
        host: "127.0.0.1", port: listener.port,
        configuration: try SessionConfiguration(
            handshake: HandshakeConfiguration(
                identity: lesseeKey, chainID: genesis.chainID, expectedPeer: lessorKey.publicKey)),
        group: MultiThreadedEventLoopGroup.singleton)
    lessee.adopt(session)
    // Channels starting in a day, long enough that `updates` payments of 1 fit the deposit.
    let start = (now / 1000 / 60 + 1_440) * 60
    var ids: [Digest32] = []
    for index in 0..<channels {
        let terms = LeaseTerms(
            chainID: genesis.chainID, lessor: lessorKey.publicKey, lessee: lesseeKey.publicKey, licence: 1,
            firstSlice: UInt8(index % 100), sliceCount: 1, startSeconds: start + UInt64(index / 100) * 60 * 1_000,
            hours: 1_000, periodSeconds: 60, ratePerSliceHour: 1_000_000, deposit: 1_000_000_000,
            paymentIncrement: 1, challengePeriodMilliseconds: 60_000, nonce: UInt64(index))
        ids.append(try await lessee.open(terms, over: session))
    }
    let perCaller = max(1, updates / channels / queued)
    let started = ContinuousClock.now
    let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
        for id in ids {
            for _ in 0..<queued {
                group.addTask {
                    var latencies: [Double] = []
                    for _ in 0..<perCaller {
                        let sent = ContinuousClock.now
                        _ = try await lessee.pay(id, amount: 1)
                        latencies.append((ContinuousClock.now - sent) / .microseconds(1))
                    }
                    return latencies
                }
            }
        }
        var all: [Double] = []
        for try await part in group { all += part }
        return all
    }
    let seconds = (ContinuousClock.now - started) / .seconds(1)
    lessor.stop()
    lessee.stop()
    await session.close()
    await listener.close()
    return (Double(perCaller * queued * channels) / seconds, latencies)
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// Microseconds one durable store of a co-signed state takes (one SQLite commit, synchronous FULL):
/// an update waits for two of them in a row, the receiver's and the proposer's.
func storeLatency() throws -> Double {
    let store = try PeerStore.open(path: scratch.appendingPathComponent("latency.sqlite").path)
    let terms = LeaseTerms(
        chainID: Blake2b.hash256([3]), lessor: lessorKey.publicKey, lessee: lesseeKey.publicKey, licence: 1,
        firstSlice: 0, sliceCount: 1, startSeconds: 60, hours: 1, periodSeconds: 60, ratePerSliceHour: 1_000,
        deposit: 1_000, paymentIncrement: 1, challengePeriodMilliseconds: 1, nonce: 1)
    try store.save(
        StoredChannel(
            role: .lessee, terms: terms, lessorSignature: lessorKey.sign([1], domain: terms.signatureDomain),
            lesseeSignature: lesseeKey.sign([1], domain: terms.signatureDomain)))
    let count = 300
    let start = ContinuousClock.now
    for nonce in 1...count {
        let state = ChannelState(
            channelID: terms.channelID, nonce: UInt64(nonce), paid: UInt128(nonce),
            paidThroughSeconds: terms.paidThroughSeconds(paid: UInt128(nonce)), final: false)
        try store.saveState(
            CoSignedState(
                state: state, lessorSignature: state.signed(by: lessorKey, chainID: terms.chainID),
                lesseeSignature: state.signed(by: lesseeKey, chainID: terms.chainID)))
    }
    return (ContinuousClock.now - start) / .microseconds(1) / Double(count)
}

print("bench-lease: \(updates) updates per measurement, \(cores) cores")
let storeMicroseconds = try storeLatency()
let bound1 = cryptoBound(threads: 1)
let bound2 = cryptoBound(threads: cores)
var results: [String: (Double, [Double])] = [:]
for transport in TransportKind.allCases {
    for (channels, queued) in [(1, 1), (1, window), (channelCount, 1)] {
        let name = "\(transport.rawValue)-\(channels)-\(queued)"
        let result = try await measure(transport, channels: channels, queued: queued, name: name)
        results[name] = result
        print(
            String(
                format:
                    "  %@, %3d channel(s), %d payment(s) queued per channel: %7.0f durable updates/s, p50 %.0f µs, p99 %.0f µs",
                transport.rawValue, channels, queued, result.0, percentile(result.1, 0.5), percentile(result.1, 0.99)))
    }
}
let oneCaller = results["tcp-1-1"]!
let sequential = results["tcp-1-\(window)"]!
let multi = results["tcp-\(channelCount)-1"]!
let udpSequential = results["udp-1-\(window)"]!.0
let udpMulti = results["udp-\(channelCount)-1"]!.0
print(
    String(
        format: "  crypto bound (2 signs + 2 verifies): %.0f updates/s on one core, %.0f on %d", bound1, bound2, cores))
print(
    String(
        format:
            "  one durable store (SQLite commit, synchronous FULL, with 2 signs): %.0f µs; two in a row bound one channel to %.0f updates/s",
        storeMicroseconds, 1e6 / (2 * storeMicroseconds)))
print(
    String(
        format:
            "  one channel reaches %.0f%% of the one-core bound with %d payments queued, %.0f%% with one caller waiting for each (target 40%%); %d channels %.0f%% of the %d-core bound (target 60%%)",
        sequential.0 / bound1 * 100, window, oneCaller.0 / bound1 * 100, channelCount, multi.0 / bound2 * 100, cores))
print(
    #"{"bench":"lease","seq_per_s":\#(Int(sequential.0)),"multi_per_s":\#(Int(multi.0)),"p50_us":\#(Int(percentile(oneCaller.1, 0.5))),"p99_us":\#(Int(percentile(oneCaller.1, 0.99))),"seq_one_caller_per_s":\#(Int(oneCaller.0)),"crypto_bound_1core_per_s":\#(Int(bound1)),"seq_ratio":\#(String(format: "%.3f", sequential.0 / bound1)),"multi_ratio":\#(String(format: "%.3f", multi.0 / bound2)),"udp_seq_per_s":\#(Int(udpSequential)),"udp_multi_per_s":\#(Int(udpMulti)),"store_us":\#(Int(storeMicroseconds))}"#
)
