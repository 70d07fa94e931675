import ArgumentParser
import Foundation
import Logging
import RWACommandLine
import RWALeaseDaemon
import RWANode

/// `rwa-lessee`: leases slices of a lessor's licence and pays as it goes.
@main
struct Lessee: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwa-lessee",
        abstract: "The lessee's daemon and its commands.",
        subcommands: [
            Run.self, Open.self, Pay.self, Channels.self, Status.self, Close.self, Dispute.self, ClaimRent.self,
        ])
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the lessee: follow the chain, keep channels in <dir>/peer.sqlite, pay ahead automatically.",
        discussion: "Prints `control <socket>` and `ready`.")
    @OptionGroup var directory: DaemonDirectory
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Log level.") var logLevel: Logger.Level = .notice

    func run() async throws {
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
    @Option(help: "The lessor's key (hex).") var lessorKey: String
    @Option(help: "The licence's token id.") var licence: UInt64
    @Option(help: "Slices, first-last (e.g. 20-21).") var slices: String
    @Option(help: "Unix seconds of the first hour (a multiple of the chain's period).") var start: UInt64
    @Option(help: "How many hours (periods).") var hours: UInt32
    @Option(help: "Rate per slice-hour, stablecoin base units.") var rate: String
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
                "command": "open", "lessor": lessor, "lessor_key": lessorKey, "licence": "\(licence)",
                "first_slice": "\(range[0])", "slice_count": "\(range[1] - range[0] + 1)", "start_seconds": "\(start)",
                "hours": "\(hours)", "rate": rate, "deposit": deposit, "increment": increment,
                "challenge_ms": "\(challengeMs)", "nonce": "\(nonce)",
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
    @Flag(help: "Print the answer as one JSON object.") var json = false
    func run() throws { try command(directory, ["command": "pay", "channel": channel, "amount": amount], json: json) }
}
