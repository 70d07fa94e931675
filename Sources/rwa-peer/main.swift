import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import RWACrypto
import RWAMetrics
import RWANode
import RWASession
import RWAWire

/// `rwa-peer`: a bare peer of the session layer. It creates identities, listens, and dials to
/// exchange signed notes over TCP or UDP, the smallest real use of the protocol until the lessor
/// and lessee daemons exist.
@main
struct RWAPeer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwa-peer",
        abstract: "Run an rwanet peer: authenticated, encrypted sessions exchanging signed notes.",
        subcommands: [Keygen.self, Listen.self, Send.self])
}

struct SessionOptions: ParsableArguments {
    @Option(help: "Key file of this peer's Ed25519 identity (see `rwa-peer keygen`).")
    var key: String

    @Option(help: "Transport: tcp or udp.")
    var transport: TransportKind = .tcp

    @Option(help: "Address to listen on or dial.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port, printed on the first line) or to dial.")
    var port: Int = 0

    @Option(help: "Chain id (64 hex digits); the development network's by default.")
    var chainID: String = ChainIDs.devnet.bytes.hexString

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .notice

    func makeConfiguration(expectedPeer: SigningPublicKey? = nil) throws -> SessionConfiguration {
        let identity: SigningKeyPair
        do { identity = try KeyFile.read(from: key) } catch { throw ValidationError("\(error)") }
        guard let chainBytes = [UInt8](hex: chainID), let chain = try? Digest32(bytes: chainBytes) else {
            throw ValidationError("--chain-id must be 64 hexadecimal digits")
        }
        return try SessionConfiguration(
            handshake: HandshakeConfiguration(identity: identity, chainID: chain, expectedPeer: expectedPeer))
    }

    func makeLogger() -> Logger {
        var logger = Logger(label: "rwa-peer")
        logger.logLevel = logLevel
        return logger
    }
}

extension TransportKind: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new identity key file (mode 0600) and print its public key.")

    @Option(help: "Where to write the key file; an existing file is never overwritten.")
    var out: String

    func run() throws {
        let keyPair = SigningKeyPair.generate()
        do { try KeyFile.write(keyPair, to: out) } catch { throw ValidationError("\(error)") }
        print(keyPair.publicKey)
    }
}

struct Listen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accept sessions and answer every signed note with a signed note of this peer's.",
        discussion:
            "Prints `listening <transport> <host> <port> <public key>` once ready, then one line per finished session.")

    @OptionGroup var options: SessionOptions

    @Option(help: "Exit after this many sessions have finished (0: serve forever).")
    var sessions: Int = 0

    @OptionGroup var metrics: MetricsOptions

    func run() async throws {
        try await metrics.start()
        let configuration = try options.makeConfiguration()
        let logger = options.makeLogger()
        let group = MultiThreadedEventLoopGroup.singleton
        let listener = try await options.transport.listen(
            host: options.host, port: options.port, configuration: configuration, group: group, logger: logger)
        emit(
            "listening \(options.transport.rawValue) \(options.host) \(listener.port) \(configuration.handshake.identity.publicKey)"
        )
        let identity = configuration.handshake.identity
        let chainID = configuration.handshake.chainID
        // Each session reports its own line when it ends; nothing is kept once it has.
        await withDiscardingTaskGroup { tasks in
            var accepted = 0
            for await session in listener.sessions {
                accepted += 1
                tasks.addTask {
                    do {
                        let summary = try await NoteExchange.serve(session, identity: identity, chainID: chainID).get()
                        let udp = await session.udpStatistics().map { " udp \($0.summary)" } ?? ""
                        emit(
                            "session \(session.peerIdentity) verified \(summary.verified) answered \(summary.sent)\(udp)"
                        )
                    } catch {
                        emit("session \(session.peerIdentity) failed: \(error)")
                    }
                }
                if sessions > 0 && accepted >= sessions { break }
            }
        }
        await listener.close()
    }
}

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dial a peer and exchange signed notes, checking every answer.",
        discussion: "Prints a one-line JSON summary; exits non-zero if any note fails a check.")

    @OptionGroup var options: SessionOptions

    @Option(help: "Notes to send.")
    var count: Int = 1000

    @Option(help: "Notes in flight at once (1: strict request/response).")
    var window: Int = 64

    @Option(help: "Public key (hex) the peer must prove; any identity if omitted.")
    var expectPeer: String?

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must be at least 0") }
        guard (1...512).contains(window) else { throw ValidationError("--window must be 1...512") }
    }

    func run() async throws {
        var expected: SigningPublicKey? = nil
        if let expectPeer {
            guard let bytes = [UInt8](hex: expectPeer), let key = try? SigningPublicKey(validating: bytes) else {
                throw ValidationError("--expect-peer must be a 64-hex-digit Ed25519 public key")
            }
            expected = key
        }
        let configuration = try options.makeConfiguration(expectedPeer: expected)
        let logger = options.makeLogger()
        let group = MultiThreadedEventLoopGroup.singleton
        let started = ContinuousClock.now
        let session = try await options.transport.dial(
            host: options.host, port: options.port, configuration: configuration, group: group, logger: logger)
        let summary = try await NoteExchange.exchange(
            session, identity: configuration.handshake.identity, chainID: configuration.handshake.chainID, count: count,
            window: window
        ).get()
        let udp = await session.udpStatistics().map { s in
            #","udp":{"datagrams":\#(s.datagrams),"dropped":\#(s.dropped),"duplicated":\#(s.duplicated),"reordered":\#(s.reordered),"retransmitted":\#(s.retransmitted),"duplicates_received":\#(s.duplicatesReceived)}"#
        }
        await session.close()
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        emit(
            #"{"transport":"\#(options.transport.rawValue)","peer":"\#(session.peerIdentity)","sent":\#(summary.sent),"verified":\#(summary.verified),"seconds":\#(String(format: "%.3f", seconds))\#(udp ?? "")}"#
        )
    }
}

/// Writes a whole line to stdout at once, unbuffered, so scripts reading it see it immediately.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
