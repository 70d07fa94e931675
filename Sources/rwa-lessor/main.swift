import ArgumentParser
import Foundation
import Logging
import RWACommandLine
import RWALeaseDaemon
import RWAMetrics
import RWANode

/// `rwa-lessor`: leases slices of its licences by the hour through lease channels.
@main
struct Lessor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwa-lessor",
        abstract: "The lessor's daemon and its commands.",
        subcommands: [
            Run.self, Offers.self, Channels.self, Status.self, Close.self, Dispute.self, ClaimRent.self, Watch.self,
        ])
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the lessor: listen for lessees, follow the chain, keep channels in <dir>/peer.sqlite.",
        discussion: "Prints `listening tcp <host> <port> <key>`, `control <socket>` and `ready`.")
    @OptionGroup var directory: DaemonDirectory
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Address to listen on for lessees.") var host = "127.0.0.1"
    @Option(help: "TCP port (0: any free port).") var port = 7720
    @Option(help: "UDP port (0: any free port).") var udpPort = 7720
    @Flag(help: "Serve TCP only.") var noUDP = false
    @Option(help: "What is offered: licence:first-last:rate:max-hours (repeatable).") var offer: [String] = []
    @Option(
        help:
            "Seconds after the paid-through time before the lessor proposes the final state, and again before it registers its state on the chain if the lessee does not countersign."
    )
    var closeGraceSeconds: UInt64 = 60
    @Option(help: "Log level.") var logLevel: Logger.Level = .notice
    @OptionGroup var metrics: MetricsOptions

    func run() async throws {
        try await metrics.start()
        try await runDaemon(
            role: .lessor, directory: directory, connection: connection, listenHost: host, port: port,
            udpPort: noUDP ? nil : udpPort, offers: try offer.map(parseOffer), closeGraceSeconds: closeGraceSeconds,
            logLevel: logLevel)
    }
}

struct Offers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "What this lessor offers.")
    @OptionGroup var directory: DaemonDirectory
    @Flag(help: "Print the answer as one JSON object.") var json = false
    func run() throws { try command(directory, ["command": "offers"], json: json) }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print grants, revocations and channel events as they happen, for a radio controller.")
    @OptionGroup var directory: DaemonDirectory
    func run() throws {
        let client = try ControlClient(path: directory.controlPath)
        try client.send(["command": "watch"])
        while let event = try client.receive() {
            if let line = event["event"] as? String { emit(line) }
        }
    }
}
