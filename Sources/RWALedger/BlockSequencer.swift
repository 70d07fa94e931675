import RWACrypto
import RWAWire

/// The arbiter's sequencing policy, pure: it applies submissions to the ledger in arrival order
/// and decides when the pending block closes, at `maxTransactions` or `maxDelayNanoseconds` after
/// its first submission, whichever comes first. A sealed block comes back with its state changes
/// and the outcome of every submission since the last block, in order; `ArbiterCore` (RWAArbiter)
/// holds the answers until the block is durable. Time comes in as arguments: `now` from a monotonic clock
/// (the block's delay), `timeMilliseconds` from the wall clock (the block's time).
public struct BlockSequencer<Reply> {
    /// What one submission came to: its place in the sealed block, or its rejection.
    public struct Outcome {
        public var reply: Reply
        /// `H(submitted bytes)`, also for bytes that do not decode.
        public var hash: Digest32
        public var result: Result<Int, Rejection>
    }

    /// A closed block (nil when every submission since the last one was rejected), its state
    /// changes, and every outcome to answer once it is durable.
    public struct Sealed {
        public var block: Block?
        public var changes: [(key: StateKey, row: [UInt8]?)]
        public var outcomes: [Outcome]
    }

    public private(set) var ledger: Ledger
    public let maxTransactions: Int
    public let maxDelayNanoseconds: UInt64
    private let arbiter: SigningKeyPair
    private var outcomes: [Outcome] = []
    private var blockDeadline: UInt64?

    public init(ledger: Ledger, arbiter: SigningKeyPair, maxTransactions: Int, maxDelayNanoseconds: UInt64) {
        precondition(maxTransactions >= 1)
        self.ledger = ledger
        self.arbiter = arbiter
        self.maxTransactions = maxTransactions
        self.maxDelayNanoseconds = maxDelayNanoseconds
    }

    /// The pending block holds `maxTransactions`: seal before submitting more.
    public var isFull: Bool { ledger.pending.count >= maxTransactions }

    /// Submissions since the last sealed block.
    public var pendingOutcomes: Int { outcomes.count }

    /// When the pending block closes for its delay, if anything was submitted since the last one.
    public var nextDeadline: UInt64? { blockDeadline }

    /// Applies one submission, whose signature and chain were checked before (possibly in
    /// parallel, hence `checked`). The first submission after a block starts the next block's
    /// delay, accepted or not, so a rejection is answered within the delay too.
    public mutating func submit(
        _ checked: Result<VerifiedTransaction, Rejection>, bytes: [UInt8], reply: Reply, now: UInt64,
        timeMilliseconds: UInt64
    ) {
        precondition(!isFull, "seal the full block first")
        if blockDeadline == nil { blockDeadline = now + maxDelayNanoseconds }
        switch checked.flatMap({ verified in
            ledger.apply(verified, timeMilliseconds: timeMilliseconds).map { _ in verified.hash }
        }
        )
        {
        case .success(let hash):
            outcomes.append(Outcome(reply: reply, hash: hash, result: .success(ledger.pending.count - 1)))
        case .failure(let rejection):
            outcomes.append(Outcome(reply: reply, hash: Blake2b.hash256(bytes), result: .failure(rejection)))
        }
    }

    /// Closes the pending block if it is full or its delay has passed at `now`, or whatever is
    /// pending when `draining`; nil when there is nothing to close or it is not due.
    public mutating func sealIfDue(now: UInt64, draining: Bool = false) -> Sealed? {
        guard !outcomes.isEmpty else { return nil }
        let due = blockDeadline.map { now >= $0 } ?? false
        guard isFull || due || draining else { return nil }
        var sealed = Sealed(block: nil, changes: [], outcomes: outcomes)
        if !ledger.pending.isEmpty {
            sealed.block = ledger.sealBlock(arbiter: arbiter)
            sealed.changes = ledger.takeStateChanges()
        }
        outcomes.removeAll(keepingCapacity: true)
        blockDeadline = nil
        return sealed
    }
}

extension BlockSequencer.Outcome: Sendable where Reply: Sendable {}
extension BlockSequencer.Sealed: Sendable where Reply: Sendable {}
extension BlockSequencer: Sendable where Reply: Sendable {}
