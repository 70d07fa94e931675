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
import RWAWire

/// `rwa-amm`: the purchase-mode exchange. `run` is the exchange peer; the other subcommands are
/// what traders and liquidity providers use, each signing with its own key file.
@main
struct RWAAMM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwa-amm",
        abstract: "Constant-product market for licence tokens against the stablecoin.",
        discussion: """
            A typical session (the arbiter of chain/ running on 7700):
              rwa-amm pool create --dir chain --key chain/regulator.key --token 1 --country 840
              rwa-amm run --dir chain --key amm.key &
              rwa-amm add-liquidity --dir chain --key owner.key --token 1 --licence 40000000 --stablecoin 4000000000
              rwa-amm quote --dir chain --key buyer.key --token 1 --side buy --amount-in 1000000
              rwa-amm swap --dir chain --key buyer.key --token 1 --side buy --amount-in 1000000 --slippage-bps 50
              rwa-amm price --dir chain --key buyer.key --token 1 --twap-seconds 3600 --depth 1000000
              rwa-amm trades --dir chain --key buyer.key --token 1
            """,
        subcommands: [
            Run.self, PoolCommand.self, AddLiquidity.self, RemoveLiquidity.self, Quote.self, Swap.self, Price.self,
            Trades.self,
        ])
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the exchange over TCP and UDP until the arbiter goes away.",
        discussion: """
            Follows the chain through the arbiter's block subscription (replaying every block), then \
            prints `following <height>` and `listening <transport> <host> <port> <exchange key>` per \
            transport. Exits 1 if it loses the arbiter.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "The exchange's key file (created if it does not exist).")
    var key = "amm.key"

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "TCP port (0: any free port).")
    var port = 7710

    @Option(help: "UDP port (0: any free port).")
    var udpPort = 7710

    @Flag(help: "Serve TCP only.")
    var noUDP = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .notice

    @OptionGroup var metrics: MetricsOptions

    func run() async throws {
        try await metrics.start()
        var logger = Logger(label: "rwa-amm")
        logger.logLevel = logLevel
        if !FileManager.default.fileExists(atPath: key) {
            do { try KeyFile.write(SigningKeyPair.generate(), to: key) } catch {
                throw CLIError("key file \(key): \(error)")
            }
        }
        let identity = try readKey(key)
        let genesis = try connection.chain.genesis()
        let arbiter = try await connection.connect(as: identity)
        let service = ExchangeService(genesis: genesis, arbiter: arbiter, logger: logger)
        do { try await service.start() } catch { throw CLIError("cannot follow the chain: \(error)") }
        let configuration = try SessionConfiguration(
            handshake: HandshakeConfiguration(identity: identity, chainID: genesis.chainID))
        let listeners = try await listen(
            host: host, port: port, udpPort: udpPort, udp: !noUDP, configuration: configuration, logger: logger)
        emit("following \(service.height)")
        for listener in listeners {
            emit("listening \(listener.transport.rawValue) \(host) \(listener.port) \(identity.publicKey)")
        }
        for listener in listeners {
            Task { for await session in listener.sessions { service.serve(session) } }
        }
        // The exchange is only as good as its view of the chain: without the arbiter it stops.
        try? await arbiter.session.closeFuture.get()
        throw CLIError("lost the arbiter's session")
    }
}

/// How a trader reaches the exchange and the arbiter (for its next sequence number), and signs.
struct TraderOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Exchange address, host:port.")
    var amm = "127.0.0.1:7710"

    @Option(help: "Key file of the trader (required for orders; queries use a fresh key without it).")
    var key: String?

    @Flag(help: "Print one JSON object; amounts are decimal strings of base units.")
    var json = false

    func connectExchange(as identity: SigningKeyPair) async throws -> ExchangeClient {
        let genesis = try connection.chain.genesis()
        let parts = amm.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--amm must be host:port") }
        do {
            return try await ExchangeClient.connect(
                host: String(parts[0]), port: port, transport: connection.transport, identity: identity,
                chainID: genesis.chainID, group: MultiThreadedEventLoopGroup.singleton)
        } catch {
            throw CLIError("cannot reach the exchange at \(amm): \(error)")
        }
    }

    /// Runs `body` with a session to the exchange, closing it afterwards.
    func withExchange<T>(_ body: (ExchangeClient, SigningKeyPair) async throws -> T) async throws -> T {
        let identity = try key.map(readKey) ?? SigningKeyPair.generate()
        let client = try await connectExchange(as: identity)
        do {
            let result = try await body(client, identity)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }

    /// Prints a refusal (readable or JSON) and exits 1.
    func refuse(_ rejection: Rejection) -> Error { report(rejection, json: json) }
}

extension TradeSide: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "buy": self = .buy
        case "sell": self = .sell
        default: return nil
        }
    }

    /// What `--help` lists (the raw values are the wire's 1 and 2).
    public static var allValueStrings: [String] { ["buy", "sell"] }
}
