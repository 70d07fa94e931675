import ArgumentParser
import Foundation
import Logging
import RWAChannel
import RWACommandLine
import RWANode
import RWAWire

// The subcommands both daemons share; each talks to the running daemon over its control socket.

public struct Channels: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "List the daemon's channels.")
    public init() {}
    @OptionGroup var directory: DaemonDirectory
    @Flag(help: "Print the answer as one JSON object.") var json = false
    public func run() throws { try command(directory, ["command": "channels"], json: json) }
}

public struct Status: ParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Show one channel: terms, status, latest state.")
    public init() {}
    @OptionGroup var directory: DaemonDirectory
    @Argument(help: "The channel id (hex).") var channel: String
    @Flag(help: "Print the answer as one JSON object.") var json = false
    public func run() throws { try command(directory, ["command": "status", "channel": channel], json: json) }
}

public struct Close: ParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Agree the final state with the peer; the proposer then closes the channel on the chain.")
    public init() {}
    @OptionGroup var directory: DaemonDirectory
    @Argument(help: "The channel id (hex).") var channel: String
    @Flag(help: "Print the answer as one JSON object.") var json = false
    public func run() throws { try command(directory, ["command": "close", "channel": channel], json: json) }
}

public struct Dispute: ParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Register this side's latest state on the chain now (a unilateral close).")
    public init() {}
    @OptionGroup var directory: DaemonDirectory
    @Argument(help: "The channel id (hex).") var channel: String
    @Flag(help: "Print the answer as one JSON object.") var json = false
    public func run() throws { try command(directory, ["command": "dispute", "channel": channel], json: json) }
}

public struct ClaimRent: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "claim-rent", abstract: "Collect the rent this key's holding of a licence token has earned.")
    public init() {}
    @OptionGroup var directory: DaemonDirectory
    @Argument(help: "The licence's token id.") var token: UInt64
    @Flag(help: "Print the answer as one JSON object.") var json = false
    public func run() throws { try command(directory, ["command": "claim_rent", "token": "\(token)"], json: json) }
}

/// `--offer licence:first-last:rate:max-hours`, e.g. `1:0-99:10:24`.
public func parseOffer(_ text: String) throws -> LeaseOffer {
    let parts = text.split(separator: ":").map(String.init)
    let slices = parts.count == 4 ? parts[1].split(separator: "-").compactMap { UInt8($0) } : []
    guard parts.count == 4, let licence = UInt64(parts[0]), slices.count == 2, slices[0] <= slices[1], slices[1] < 100,
        let rate = UInt128(parts[2]), let hours = UInt32(parts[3])
    else { throw ValidationError("--offer is licence:first-last:rate:max-hours (e.g. 1:0-99:10:24), not '\(text)'") }
    return LeaseOffer(
        licence: licence, firstSlice: slices[0], sliceCount: slices[1] - slices[0] + 1, ratePerSliceHour: rate,
        maxHours: hours)
}
