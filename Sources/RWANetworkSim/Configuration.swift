import RWACrypto

/// What one simulated run contains. Each fault class can be switched off, which is how a failing
/// run is shrunk to the faults it needs.
public struct SimulationConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// Deliberate bugs in the simulated shells, so a test can show that a seed catches each.
    public enum Mutation: String, Sendable, CaseIterable {
        case none
        /// The arbiter's shell tells the core a block is durable as soon as it starts writing it,
        /// so receipts can leave before the block is on the disk.
        case answerBeforePersist = "answer-before-persist"
        /// The arbiter's shell answers a transaction sent again with the ledger's
        /// `sequence_reused` instead of looking up its receipt, so a retry after a lost answer is
        /// told "rejected" about a committed transaction.
        case rejectResubmissions = "reject-resubmissions"
        /// A lease node's shell tells its channel core a state is stored as soon as it starts
        /// writing it, so an update can be acknowledged and then lost in a crash.
        case acknowledgeBeforeStoring = "acknowledge-before-storing"
        /// The lessor does not follow the chain, so a stale state a lessee registers goes
        /// unchallenged.
        case ignoreStaleRegistrations = "ignore-stale-registrations"
    }

    public var traders = 4
    public var transactionsPerTrader = 20
    /// Lessees leasing from the lessor (who owns the second licence), each one channel; the odd
    /// ones dispute from a backup instead of closing cooperatively.
    public var lessees = 2
    /// Payments each lessee makes before it closes (or disputes) its channel.
    public var paymentsPerLease = 8
    /// Crashes of the lessor, and of a lessee, in the fault window (with `crashes`).
    public var leaseCrashesPerRun = 1
    /// Faults are injected from the start until then; the network is quiet afterwards, and every
    /// request must then complete.
    public var faultWindowMilliseconds: UInt64 = 800
    /// Sessions that break, losing what they carry.
    public var linkDrops = true
    /// Links that break and stay unreachable for up to 200 ms.
    public var partitions = true
    /// The arbiter (at least once) and the exchange crash and restart.
    public var crashes = true
    /// Messages held up to 80 ms, overtaken on other links.
    public var latencySpikes = true
    /// Requests sent twice at once, besides the retries after timeouts.
    public var duplicates = true
    /// Transactions with forged signatures or for another chain.
    public var hostileTransactions = true
    public var blockMaxTransactions = 8
    public var blockDelayMilliseconds: UInt64 = 5
    public var mutation: Mutation = .none

    public init() {}

    public var faultClasses: [String] {
        [
            linkDrops ? "link-drops" : nil, partitions ? "partitions" : nil, crashes ? "crashes" : nil,
            latencySpikes ? "latency-spikes" : nil, duplicates ? "duplicates" : nil,
            hostileTransactions ? "hostile-transactions" : nil,
        ].compactMap { $0 }
    }

    public var description: String {
        "traders=\(traders) transactions=\(transactionsPerTrader) lessees=\(lessees) faults=[\(faultClasses.joined(separator: ","))]"
            + " window=\(faultWindowMilliseconds)ms block=\(blockMaxTransactions)/\(blockDelayMilliseconds)ms"
            + (mutation == .none ? "" : " mutation=\(mutation.rawValue)")
    }
}

/// A broken invariant: which, why, and when.
public struct SimulationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var invariant: String
    public var detail: String
    public var event: Int
    public var timeNanoseconds: UInt64

    public var description: String {
        "invariant \(invariant) broken at event \(event) (t=\(formatTime(timeNanoseconds))): \(detail)"
    }
}

/// What a run did, and its trace's digest: two runs of one seed must give the same digest.
public struct SimulationReport: Sendable {
    public var seed: UInt64
    public var configuration: SimulationConfiguration
    public var events = 0
    public var virtualNanoseconds: UInt64 = 0
    public var blocks: UInt64 = 0
    public var committedTransactions = 0
    public var receipts = 0
    public var fills = 0
    public var rejections = 0
    public var retries = 0
    public var arbiterCrashes = 0
    public var exchangeRestarts = 0
    public var linkDrops = 0
    public var partitions = 0
    public var duplicatesSent = 0
    public var messagesLost = 0
    public var latencySpikes = 0
    public var leaseCrashes = 0
    public var leasesSettled = 0
    /// Disputes in which the lessor's challenge replaced a stale registration.
    public var disputesWon = 0
    /// Rent distributed on the leased licence, in stablecoin base units.
    public var rentDistributed: UInt128 = 0
    public var traceDigest = ""
    public var failure: SimulationFailure?
    /// The last lines of the trace (all of it when asked for).
    public var trace: [String] = []

    /// One line for logs and the command's output.
    public var summary: String {
        "seed \(seed): \(failure == nil ? "ok" : "FAILED") events=\(events) t=\(formatTime(virtualNanoseconds))"
            + " blocks=\(blocks) committed=\(committedTransactions) receipts=\(receipts) fills=\(fills)"
            + " rejections=\(rejections) retries=\(retries) arbiter-crashes=\(arbiterCrashes)"
            + " exchange-restarts=\(exchangeRestarts) link-drops=\(linkDrops) partitions=\(partitions)"
            + " duplicates=\(duplicatesSent) lost=\(messagesLost) spikes=\(latencySpikes) lease-crashes=\(leaseCrashes)"
            + " leases=\(leasesSettled) disputes-won=\(disputesWon) rent=\(rentDistributed)"
            + " trace=\(traceDigest.prefix(16))"
    }
}

func formatTime(_ nanoseconds: UInt64) -> String {
    let micros = nanoseconds / 1_000
    return "\(micros / 1_000).\(String(micros % 1_000).leftPadded(to: 3))ms"
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
