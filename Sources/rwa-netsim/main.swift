import ArgumentParser
import Dispatch
import Foundation
import RWANetworkSim

/// `rwa-netsim`: the whole system (arbiter, exchange, traders) in one process on virtual time,
/// under seeded faults. Every seed replays byte for byte; a failing seed is shrunk and printed
/// with the command that reruns it.
@main
struct NetworkSimulation: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwa-netsim",
        abstract: "Run the whole rwanet system on virtual time under seeded faults, checking its invariants.")

    @Option(help: "The first seed (default: a random one, printed).")
    var seed: UInt64?

    @Option(help: "How many consecutive seeds to run.")
    var seeds: Int = 1

    @Option(help: "Worker threads; seeds are independent, so this changes nothing but the time taken.")
    var jobs: Int = 1

    @Option(help: "Traders in each run.")
    var traders: Int = 4

    @Option(help: "Transactions each trader sends.")
    var transactions: Int = 20

    @Option(
        help:
            "A deliberate bug to show the simulation catching it: \(SimulationConfiguration.Mutation.allCases.map(\.rawValue).joined(separator: ", "))."
    )
    var mutation: String = "none"

    @Flag(help: "Print the whole trace of each run (use with one seed).")
    var trace = false

    @Flag(help: "Do not shrink a failing seed.")
    var noShrink = false

    func validate() throws {
        guard seeds >= 1, seeds <= 1_000_000 else { throw ValidationError("--seeds must be between 1 and 1000000") }
        guard jobs >= 1, jobs <= 64 else { throw ValidationError("--jobs must be between 1 and 64") }
        guard traders >= 2, traders <= 64 else { throw ValidationError("--traders must be between 2 and 64") }
        guard transactions >= 1, transactions <= 10_000 else {
            throw ValidationError("--transactions must be between 1 and 10000")
        }
        guard SimulationConfiguration.Mutation(rawValue: mutation) != nil else {
            throw ValidationError("unknown --mutation \(mutation)")
        }
    }

    func run() throws {
        var configuration = SimulationConfiguration()
        configuration.traders = traders
        configuration.transactionsPerTrader = transactions
        configuration.mutation = SimulationConfiguration.Mutation(rawValue: mutation)!
        let chosen = configuration
        let first = seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        print("rwa-netsim: seeds \(first)..<\(first + UInt64(seeds)), \(configuration)")
        let started = Date()
        let reports = Reports(count: seeds)
        let next = Counter()
        DispatchQueue.concurrentPerform(iterations: jobs) { _ in
            while let offset = next.take(below: seeds) {
                let report = Simulation.run(
                    seed: first + UInt64(offset), configuration: chosen, wholeTrace: trace)
                reports.set(offset, report)
            }
        }
        let all = reports.all
        if trace { for report in all { report.trace.forEach { print($0) } } }
        for report in all where seeds <= 20 || report.failure != nil { print(report.summary) }
        let failed = all.filter { $0.failure != nil }
        let seconds = Date().timeIntervalSince(started)
        func total(_ value: (SimulationReport) -> Int) -> Int { all.reduce(0) { $0 + value($1) } }
        print(
            "rwa-netsim: \(all.count - failed.count) of \(all.count) seeds passed in \(String(format: "%.1f", seconds)) s;"
                + " events=\(total(\.events)) blocks=\(total { Int($0.blocks) }) committed=\(total(\.committedTransactions))"
                + " arbiter-crashes=\(total(\.arbiterCrashes)) exchange-restarts=\(total(\.exchangeRestarts))"
                + " link-drops=\(total(\.linkDrops)) partitions=\(total(\.partitions))"
                + " duplicates=\(total(\.duplicatesSent)) lost=\(total(\.messagesLost)) retries=\(total(\.retries))"
                + " lease-crashes=\(total(\.leaseCrashes)) leases-settled=\(total(\.leasesSettled))"
                + " fewest-arbiter-crashes=\(all.map(\.arbiterCrashes).min() ?? 0)")
        guard let firstFailure = failed.first, let failure = firstFailure.failure else { return }
        print("FAILED seed \(firstFailure.seed): \(failure)")
        print(
            "rerun: rwa-netsim --seed \(firstFailure.seed) --traders \(traders) --transactions \(transactions)"
                + (mutation == "none" ? "" : " --mutation \(mutation)") + " --trace")
        if !noShrink,
            let (smallest, report) = Simulation.shrink(
                seed: firstFailure.seed, configuration: configuration, invariant: failure.invariant)
        {
            print("shrunk: \(smallest)")
            print("shrunk failure: \(report.failure!)")
            print("last events of the shrunk run:")
            report.trace.suffix(40).forEach { print("  \($0)") }
        }
        throw ExitCode.failure
    }
}

final class Reports: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [SimulationReport?]

    init(count: Int) { reports = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ report: SimulationReport) {
        lock.lock()
        reports[index] = report
        lock.unlock()
    }

    var all: [SimulationReport] {
        lock.lock()
        defer { lock.unlock() }
        return reports.compactMap { $0 }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}
