extension Simulation {
    /// Runs `seed` once.
    public static func run(seed: UInt64, configuration: SimulationConfiguration, wholeTrace: Bool = false)
        -> SimulationReport
    {
        do {
            return try Simulation(seed: seed, configuration: configuration).run(keepingWholeTrace: wholeTrace)
        } catch {
            var report = SimulationReport(seed: seed, configuration: configuration)
            report.failure = SimulationFailure(
                invariant: "set-up", detail: "\(error)", event: 0, timeNanoseconds: 0)
            return report
        }
    }

    /// The smallest configuration found, by switching fault classes off and removing traders and
    /// transactions one step at a time, under which `seed` still breaks the same invariant. The
    /// seed's choices shift as the configuration shrinks, so this is a search, not a proof.
    public static func shrink(seed: UInt64, configuration: SimulationConfiguration, invariant: String)
        -> (SimulationConfiguration, SimulationReport)?
    {
        func failsTheSame(_ candidate: SimulationConfiguration) -> SimulationReport? {
            let report = run(seed: seed, configuration: candidate)
            return report.failure?.invariant == invariant ? report : nil
        }
        guard var best = failsTheSame(configuration).map({ (configuration, $0) }) else { return nil }
        let switches: [WritableKeyPath<SimulationConfiguration, Bool>] = [
            \.linkDrops, \.partitions, \.crashes, \.latencySpikes, \.duplicates, \.hostileTransactions,
        ]
        for flag in switches where best.0[keyPath: flag] {
            var candidate = best.0
            candidate[keyPath: flag] = false
            if let report = failsTheSame(candidate) { best = (candidate, report) }
        }
        while best.0.traders > 2 {
            var candidate = best.0
            candidate.traders -= 1
            guard let report = failsTheSame(candidate) else { break }
            best = (candidate, report)
        }
        while best.0.transactionsPerTrader > 1 {
            var candidate = best.0
            candidate.transactionsPerTrader /= 2
            guard let report = failsTheSame(candidate) else { break }
            best = (candidate, report)
        }
        return best
    }
}
