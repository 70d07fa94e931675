import ArgumentParser
import Foundation
import Logging
import RWACommandLine
import RWACrypto
import RWALeaseDaemon
import RWALedger
import RWAMetrics
import RWANode
import RWAWire

/// `rwa-lessee`: leases slices of a lessor's licence and pays as it goes.
@main
struct Lessee: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwa-lessee",
        abstract: "The lessee's daemon and its commands.",
        subcommands: [
            Run.self, Offers.self, Open.self, Pay.self, Channels.self, Status.self, Close.self, Dispute.self,
            ClaimRent.self,
            Proof.self, VerifyProof.self,
        ])
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the lessee: follow the chain, keep channels in <dir>/peer.sqlite, pay ahead automatically.",
        discussion: "Prints `control <socket>` and `ready`.")
    @OptionGroup var directory: DaemonDirectory
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Log level.") var logLevel: Logger.Level = .notice
    @OptionGroup var metrics: MetricsOptions

    func run() async throws {
        try await metrics.start()
        try await runDaemon(
            role: .lessee, directory: directory, connection: connection, listenHost: nil, port: 0, offers: [],
            logLevel: logLevel)
    }
}

struct Open: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open a lease channel with a lessor: the daemon asks it, then submits the open with both signatures.")
    @OptionGroup var directory: DaemonDirectory
    @Option(help: "The lessor's address, host:port.") var lessor: String
    @Option(help: "Transport to the lessor: tcp or udp.") var transport: TransportKind = .tcp
    @Option(help: "The lessor's key (hex).") var lessorKey: String
    @Option(help: "The licence's token id.") var licence: UInt64
    @Option(help: "Slices, first-last (e.g. 20-21).") var slices: String
    @Option(help: "Unix seconds of the first hour (a multiple of the chain's period).") var start: UInt64
    @Option(help: "How many hours (periods).") var hours: UInt32
    @Option(help: "Rate per slice-hour, stablecoin base units, or \"offer\": the lessor's offered rate, asked first.")
    var rate = "offer"
    @Option(help: "Deposit, stablecoin base units.") var deposit: String
    @Option(help: "Payment increment, stablecoin base units.") var increment: String
    @Option(help: "Challenge period in milliseconds of block time.") var challengeMs: UInt64 = 60_000
    @Option(help: "A nonce of your choice: equal terms with another nonce are another channel.") var nonce: UInt64 = 1
    @Flag(help: "Print the answer as one JSON object.") var json = false

    func run() throws {
        let range = slices.split(separator: "-").compactMap { UInt8($0) }
        guard range.count == 2, range[0] <= range[1], range[1] < 100 else {
            throw ValidationError("--slices is first-last within 0-99, not '\(slices)'")
        }
        try command(
            directory,
            [
                "command": "open", "lessor": transport == .udp ? "udp://\(lessor)" : lessor, "lessor_key": lessorKey,
                "licence": "\(licence)",
                "first_slice": "\(range[0])", "slice_count": "\(range[1] - range[0] + 1)", "start_seconds": "\(start)",
                "hours": "\(hours)", "rate": rate, "deposit": deposit, "increment": increment,
                "challenge_ms": "\(challengeMs)", "nonce": "\(nonce)",
            ], json: json)
    }
}

struct Offers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a lessor what it offers: licences, slices, rates, and the leases it has already taken.")
    @OptionGroup var directory: DaemonDirectory
    @Option(help: "The lessor's address, host:port.") var lessor: String
    @Option(help: "Transport to the lessor: tcp or udp.") var transport: TransportKind = .tcp
    @Option(help: "The lessor's key (hex).") var lessorKey: String
    @Flag(help: "Print the answer as one JSON object.") var json = false

    func run() throws {
        try command(
            directory,
            [
                "command": "offers", "lessor": transport == .udp ? "udp://\(lessor)" : lessor,
                "lessor_key": lessorKey,
            ], json: json)
    }
}

struct Pay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Pay more on a channel now (the daemon also pays ahead on its own); returns once both sides stored it.")
    @OptionGroup var directory: DaemonDirectory
    @Argument(help: "The channel id (hex).") var channel: String
    @Argument(help: "Amount, stablecoin base units.") var amount: String
    @Option(help: "How many updates of this amount, one after another.") var count = 1
    @Flag(help: "Print the answer as one JSON object.") var json = false
    func run() throws {
        try command(
            directory, ["command": "pay", "channel": channel, "amount": amount, "count": "\(count)"], json: json)
    }
}

struct Proof: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the usage-right proof of a channel: the open, its block and Merkle path, the latest state.")
    @OptionGroup var directory: DaemonDirectory
    @Argument(help: "The channel id (hex).") var channel: String
    @Option(help: "Where to write the proof file.") var out: String

    func run() throws {
        let client = try ControlClient(path: directory.controlPath)
        try client.send(["command": "proof", "channel": channel])
        guard let answer = try client.receive(), answer["ok"] as? Bool == true, let hex = answer["proof"] as? String,
            let bytes = [UInt8](hex: hex)
        else { throw CLIError("no proof: \(try client.receive().map { "\($0)" } ?? "the daemon refused")") }
        try Data(bytes).write(to: URL(fileURLWithPath: out))
        emit("wrote \(out)")
    }
}

struct VerifyProof: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-proof",
        abstract:
            "Check a usage-right proof offline with only the arbiter's key: yes (exit 0) or no (exit 1), with why.")
    @Argument(help: "The proof file.") var file: String
    @Option(help: "Unix seconds the right is checked at.") var at: UInt64
    @Option(help: "The arbiter's public key (hex).") var arbiterKey: String
    @Flag(help: "Also ask the arbiter (--arbiter, --dir) whether the channel has been settled since.")
    var checkSettled = false
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let key = try parseAccount(arbiterKey, "--arbiter-key")
        guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
        let proof: UsageProof
        do { proof = try UsageProof(decoding: [UInt8](data)) } catch {
            emit("no: \(file) is not a usage-right proof: \(error)")
            throw ExitCode.failure
        }
        switch proof.covers(at, arbiter: key) {
        case .failure(let rejection):
            emit("no: \(rejection.reason)")
            throw ExitCode.failure
        case .success(let finding):
            if checkSettled {
                let client = try await connection.connect(as: SigningKeyPair.generate())
                let id = finding.terms.channelID
                let row = try await client.stateRow(.channel(id))
                await client.close()
                if let row, case .channel(let record) = try StateRecord(key: .channel(id), value: row),
                    record.status == .settled
                {
                    emit("no: the channel \(id) was settled on the chain")
                    throw ExitCode.failure
                }
            }
            let bands = finding.bands.map { "\($0.lowHz)-\($0.highHz) Hz" }.joined(separator: ", ")
            emit(
                "yes: licence \(finding.terms.licence) slices \(finding.terms.firstSlice)-"
                    + "\(Int(finding.terms.firstSlice) + Int(finding.terms.sliceCount) - 1) (\(bands)) for "
                    + "\(finding.terms.lessee), paid through \(finding.paidThroughSeconds)")
        }
    }
}
