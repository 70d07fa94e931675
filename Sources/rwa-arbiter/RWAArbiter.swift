import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import RWACommandLine
import RWACrypto
import RWALedger
import RWAMetrics
import RWANode
import RWASession
import RWAStore
import RWAWire

/// `rwa-arbiter`: the ledger everyone trusts to order transactions, enforce the token rules and
/// keep an auditable record. `init` creates a chain, `run` serves it, `verify` replays it,
/// `inspect` reads it, and the other subcommands sign and submit transactions.
@main
struct RWAArbiter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwa-arbiter",
        abstract: "The rwanet arbiter: a durable, verifiable ledger of identities, compliant tokens and resources.",
        discussion: """
            A typical session:
              rwa-arbiter init --dir chain
              rwa-arbiter run --dir chain &
              rwa-arbiter identity register --dir chain --key chain/regulator.key --account <hex> --country 840
              rwa-arbiter claim add --dir chain --key chain/regulator.key --identity 1 --topic kyc
              rwa-arbiter stablecoin mint --dir chain --key chain/stablecoin-issuer.key --to <hex> --amount 1000000
              rwa-arbiter verify --dir chain
            """,
        subcommands: [
            Init.self, Run.self, Verify.self, Inspect.self, Watch.self, Keygen.self, IdentityCommand.self,
            ClaimCommand.self,
            StablecoinCommand.self, TransferCommand.self, ClaimRentCommand.self, ResourceCommand.self,
            TokenCommand.self,
        ])
}

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new chain: keys, genesis and an empty database.",
        discussion: """
            Writes <dir>/arbiter.key, <dir>/regulator.key (the trusted claim issuer and resource \
            registrar) and <dir>/stablecoin-issuer.key unless existing key files are named, then \
            <dir>/genesis.bin and <dir>/chain.sqlite. Prints the chain id. Never overwrites anything.
            """)

    @OptionGroup var chain: ChainOptions

    @Option(help: "Network name recorded in the genesis.")
    var networkName = "rwanet-local"

    @Option(help: "Existing arbiter key file to use instead of making one.")
    var arbiterKey: String?

    @Option(help: "Existing claim issuer key files (repeatable) instead of making regulator.key.")
    var issuerKey: [String] = []

    @Option(help: "Existing stablecoin issuer key file instead of making one.")
    var stablecoinKey: String?

    @Option(help: "Stablecoin symbol.")
    var symbol = "USDR"

    @Option(help: "Stablecoin decimals.")
    var decimals: UInt8 = 6

    @Option(help: "Length of a lease's usage-right period (its \"hour\"), in seconds; shorter for test networks.")
    var periodSeconds: UInt32 = 3_600

    func validate() throws {
        guard periodSeconds > 0 else { throw ValidationError("--period-seconds must be positive") }
        guard !networkName.isEmpty, networkName.utf8.count <= LedgerLimits.networkNameBytesMax else {
            throw ValidationError("--network-name must be 1...\(LedgerLimits.networkNameBytesMax) bytes")
        }
        guard !symbol.isEmpty, symbol.utf8.count <= LedgerLimits.symbolBytesMax else {
            throw ValidationError("--symbol must be 1...\(LedgerLimits.symbolBytesMax) bytes")
        }
        guard issuerKey.count <= LedgerLimits.claimIssuersMax else {
            throw ValidationError("at most \(LedgerLimits.claimIssuersMax) --issuer-key")
        }
    }

    func run() throws {
        try FileManager.default.createDirectory(atPath: chain.dir, withIntermediateDirectories: true)
        for path in [chain.databasePath, chain.genesisPath] where FileManager.default.fileExists(atPath: path) {
            throw CLIError("\(path) exists; init never overwrites a chain")
        }
        func key(_ given: String?, _ name: String) throws -> SigningKeyPair {
            if let given { return try readKey(given) }
            let keyPair = SigningKeyPair.generate()
            do { try KeyFile.write(keyPair, to: "\(chain.dir)/\(name).key") } catch { throw CLIError("\(error)") }
            return keyPair
        }
        let arbiter = try key(arbiterKey, "arbiter")
        let issuers = issuerKey.isEmpty ? [try key(nil, "regulator")] : try issuerKey.map(readKey)
        let stablecoinIssuer = try key(stablecoinKey, "stablecoin-issuer")
        let genesis = Genesis(
            networkName: networkName, timeMilliseconds: UInt64(Date().timeIntervalSince1970 * 1000),
            arbiter: arbiter.publicKey,
            claimIssuers: issuers.map(\.publicKey), stablecoinIssuer: stablecoinIssuer.publicKey,
            stablecoinSymbol: symbol, stablecoinDecimals: decimals, periodSeconds: periodSeconds)
        var ledger = Ledger(genesis: genesis)
        let rows = ledger.takeStateChanges().compactMap { change in
            change.row.map { StateRow(key: change.key.bytes, value: $0) }
        }
        _ = try LedgerStore.create(path: chain.databasePath, genesis: genesis, genesisRows: rows)
        try Data(genesis.encoded).write(to: URL(fileURLWithPath: chain.genesisPath))
        emit("chain \(genesis.chainID)")
        emit("arbiter \(arbiter.publicKey)")
        for issuer in issuers { emit("claim-issuer \(issuer.publicKey)") }
        emit("stablecoin-issuer \(stablecoinIssuer.publicKey)")
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the chain over TCP and UDP until interrupted.",
        discussion: """
            Prints `listening <transport> <host> <port> <arbiter key>` per transport once ready. \
            Blocks close at --block-size transactions or --block-interval-ms after their first \
            one; --profile paper gives the paper's 10 transactions and 5 s.
            """)

    enum Profile: String, ExpressibleByArgument {
        case standard, paper
    }

    @OptionGroup var chain: ChainOptions

    @Option(help: "Arbiter key file (default: <dir>/arbiter.key).")
    var key: String?

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "TCP port (0: any free port).")
    var port = 7700

    @Option(help: "UDP port (0: any free port).")
    var udpPort = 7700

    @Flag(help: "Serve TCP only.")
    var noUDP = false

    @Option(help: "Block rules: standard (1000 transactions or 10 ms) or paper (10 or 5 s).")
    var profile: Profile = .standard

    @Option(help: "Transactions per block (overrides the profile).")
    var blockSize: Int?

    @Option(help: "Milliseconds from a block's first transaction to its close (overrides the profile).")
    var blockIntervalMs: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .notice

    @OptionGroup var metrics: MetricsOptions

    func validate() throws {
        if let blockSize, blockSize < 1 { throw ValidationError("--block-size must be at least 1") }
        if let blockIntervalMs, blockIntervalMs < 0 { throw ValidationError("--block-interval-ms must be at least 0") }
    }

    func run() async throws {
        try await metrics.start()
        var logger = Logger(label: "rwa-arbiter")
        logger.logLevel = logLevel
        let arbiterKey = try readKey(key ?? chain.dir + "/arbiter.key")
        var rules = profile == .paper ? BlockRules.paper : BlockRules.standard
        if let blockSize { rules.maxTransactions = blockSize }
        if let blockIntervalMs { rules.maxDelay = .milliseconds(Int64(blockIntervalMs)) }
        let store = try LedgerStore.open(path: chain.databasePath)
        let service = try ArbiterService(store: store, arbiterKey: arbiterKey, rules: rules, logger: logger)
        service.start()
        let configuration = try SessionConfiguration(
            handshake: HandshakeConfiguration(identity: arbiterKey, chainID: service.chainID))
        let listeners = try await listen(
            host: host, port: port, udpPort: udpPort, udp: !noUDP, configuration: configuration, logger: logger)
        emit("chain \(service.chainID) height \(service.height)")
        for listener in listeners {
            emit("listening \(listener.transport.rawValue) \(host) \(listener.port) \(arbiterKey.publicKey)")
        }
        await withDiscardingTaskGroup { tasks in
            for listener in listeners {
                tasks.addTask {
                    for await session in listener.sessions { service.serve(session) }
                }
            }
        }
        await service.shutdown()
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay the whole chain from its genesis and check every stored byte.",
        discussion: """
            Checks each block's hash, parent, transactions root and arbiter signature, each \
            transaction's hash, signature and result, SQLite's page integrity, and that the stored \
            state equals the replayed one row for row. Exits 1 with the first difference found.
            """)

    @OptionGroup var chain: ChainOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let store = try LedgerStore.open(path: chain.databasePath, readonly: true)
        let started = ContinuousClock.now
        let report: ChainVerifier.Report
        do {
            // The genesis peers were given must be the one the database replays from.
            if let given = FileManager.default.contents(atPath: chain.genesisPath),
                [UInt8](given) != (try store.genesis()).encoded
            {
                throw CLIError("\(chain.genesisPath) differs from the genesis stored in \(chain.databasePath)")
            }
            report = try ChainVerifier.verify(store)
        } catch {
            if json {
                emit(JSON.render(["ok": false, "error": "\(error)"]))
            } else {
                FileHandle.standardError.write(Data("rwa-arbiter verify: FAILED: \(error)\n".utf8))
            }
            throw ExitCode(1)
        }
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        if json {
            emit(
                JSON.render([
                    "ok": true, "height": report.height, "transactions": report.transactions,
                    "state_rows": report.stateRows, "tip_hash": "\(report.tipHash)", "seconds": seconds,
                ]))
        } else {
            emit(
                "ok: \(report.height) blocks, \(report.transactions) transactions, \(report.stateRows) state rows, "
                    + "tip \(report.tipHash) (\(String(format: "%.2f", seconds)) s)")
        }
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new account key file (mode 0600) and print its public key.")

    @Option(help: "Where to write the key file; an existing file is never overwritten.")
    var out: String

    func run() throws {
        let keyPair = SigningKeyPair.generate()
        do { try KeyFile.write(keyPair, to: out) } catch { throw CLIError("\(error)") }
        emit("\(keyPair.publicKey)")
    }
}
