import RWACrypto
import RWALedger
import RWAWire

/// The arbiter's decisions, pure: the block policy of `BlockSequencer`, plus the two rules that
/// make a receipt worth having. An answer leaves only once the block it depends on is durable
/// (the shell carries out `persist` and reports back with `persisted`), and answers leave in the
/// order the submissions came. A transaction sent again is answered with its first receipt.
///
/// The shell (the NIO `ArbiterService`, or the whole-system simulation) feeds it submissions,
/// ticks and persistence reports with the time, and carries out the actions in order.
public struct ArbiterCore<Reply> {
    /// What a submitter is told.
    public enum Answer: Equatable, Sendable {
        case receipt(hash: Digest32, height: UInt64, index: UInt32, createdID: UInt64)
        case rejected(hash: Digest32, Rejection)
    }

    public enum Action {
        /// Write the block and its state changes durably, then report `persisted(height:)`.
        case persist(Block, changes: [(key: StateKey, row: [UInt8]?)])
        case answer(Reply, Answer)
        /// A transaction whose sequence number is used: if the chain (durable up to here) holds
        /// `hash`, answer with that transaction's receipt; otherwise with `otherwise`.
        case answerFromChain(Reply, hash: Digest32, otherwise: Rejection)
        /// Blocks up to `height` are durable: subscribers may be sent them.
        case publish(height: UInt64)
    }

    /// Outcomes sealed together, waiting for their block (if any) to be durable.
    struct Group {
        var height: UInt64?
        var block: Block?
        var outcomes: [BlockSequencer<Reply>.Outcome]
    }

    private var sequencer: BlockSequencer<Reply>
    private var awaiting: [Group] = []
    private var awaitingStart = 0
    /// The last block the shell reported durable.
    public private(set) var durableHeight: UInt64
    /// Sealed blocks not yet durable beyond this stop the sealing (and so the intake).
    public let maxBlocksAwaitingPersistence: Int

    public init(
        ledger: Ledger, arbiter: SigningKeyPair, maxTransactions: Int, maxDelayNanoseconds: UInt64,
        maxBlocksAwaitingPersistence: Int = 4
    ) {
        precondition(maxBlocksAwaitingPersistence >= 1)
        sequencer = BlockSequencer(
            ledger: ledger, arbiter: arbiter, maxTransactions: maxTransactions,
            maxDelayNanoseconds: maxDelayNanoseconds)
        durableHeight = ledger.height
        self.maxBlocksAwaitingPersistence = maxBlocksAwaitingPersistence
    }

    /// The ledger with every accepted submission applied, durable or not.
    public var ledger: Ledger { sequencer.ledger }

    /// When `tick` must run next to close a block for its delay.
    public var nextDeadline: UInt64? { sequencer.nextDeadline }

    /// Blocks sealed and not yet reported durable.
    public var blocksAwaitingPersistence: Int {
        awaiting[awaitingStart...].lazy.filter { $0.height.map { $0 > durableHeight } ?? false }.count
    }

    /// Submissions sealed or pending whose answers have not left yet.
    public var unansweredCount: Int {
        awaiting[awaitingStart...].reduce(0) { $0 + $1.outcomes.count } + sequencer.pendingOutcomes
    }

    /// False while the pending block is full and cannot be sealed until a block is durable: the
    /// shell then holds further submissions back.
    public var acceptsSubmissions: Bool { !sequencer.isFull }

    /// Applies one submission whose signature and chain were checked before (`checked`).
    public mutating func submit(
        _ checked: Result<VerifiedTransaction, Rejection>, bytes: [UInt8], reply: Reply, now: UInt64,
        timeMilliseconds: UInt64
    ) -> [Action] {
        precondition(acceptsSubmissions, "submit only while acceptsSubmissions")
        sequencer.submit(checked, bytes: bytes, reply: reply, now: now, timeMilliseconds: timeMilliseconds)
        return sequencer.isFull ? tick(now: now) : []
    }

    /// Closes the pending block if it is full or due at `now` (anything pending when
    /// `draining`), unless too many blocks already wait to be durable.
    public mutating func tick(now: UInt64, draining: Bool = false) -> [Action] {
        guard blocksAwaitingPersistence < maxBlocksAwaitingPersistence,
            let sealed = sequencer.sealIfDue(now: now, draining: draining)
        else { return [] }
        var actions: [Action] = []
        if let block = sealed.block {
            actions.append(.persist(block, changes: sealed.changes))
        }
        awaiting.append(Group(height: sealed.block?.header.height, block: sealed.block, outcomes: sealed.outcomes))
        actions += release()
        return actions
    }

    /// The shell made every block up to `height` durable.
    public mutating func persisted(height: UInt64, now: UInt64) -> [Action] {
        precondition(height <= ledger.height, "block \(height) was never sealed")
        guard height > durableHeight else { return [] }
        durableHeight = height
        var actions = release()
        actions.append(.publish(height: height))
        // A block that waited for room can close now.
        actions += tick(now: now)
        return actions
    }

    /// The answers of every group, from the front, whose block is durable (or which has none).
    private mutating func release() -> [Action] {
        var actions: [Action] = []
        while awaitingStart < awaiting.count {
            let group = awaiting[awaitingStart]
            if let height = group.height, height > durableHeight { break }
            for outcome in group.outcomes { actions.append(Self.answer(outcome, block: group.block)) }
            awaitingStart += 1
        }
        if awaitingStart == awaiting.count {
            awaiting.removeAll(keepingCapacity: true)
            awaitingStart = 0
        }
        return actions
    }

    private static func answer(_ outcome: BlockSequencer<Reply>.Outcome, block: Block?) -> Action {
        switch outcome.result {
        case .success(let index):
            guard let block else { preconditionFailure("an accepted submission without its block") }
            return .answer(
                outcome.reply,
                .receipt(
                    hash: outcome.hash, height: block.header.height, index: UInt32(index),
                    createdID: block.transactions[index].createdID))
        case .failure(let rejection):
            guard rejection.code == .sequenceReused else {
                return .answer(outcome.reply, .rejected(hash: outcome.hash, rejection))
            }
            // The same transaction sent again: it is in this block or an earlier, durable one.
            if let block, let index = block.transactions.firstIndex(where: { $0.hash == outcome.hash }) {
                return .answer(
                    outcome.reply,
                    .receipt(
                        hash: outcome.hash, height: block.header.height, index: UInt32(index),
                        createdID: block.transactions[index].createdID))
            }
            return .answerFromChain(outcome.reply, hash: outcome.hash, otherwise: rejection)
        }
    }
}

extension ArbiterCore: Sendable where Reply: Sendable {}
extension ArbiterCore.Group: Sendable where Reply: Sendable {}
extension ArbiterCore.Action: Sendable where Reply: Sendable {}

extension ArbiterCore.Answer {
    /// The answer on the wire, for request `requestID`.
    public func message(requestID: UInt64) -> ArbiterMessage {
        switch self {
        case .receipt(let hash, let height, let index, let createdID):
            return .transactionReceipt(
                requestID: requestID, hash: hash, height: height, index: index, createdID: createdID)
        case .rejected(let hash, let rejection):
            return .transactionRejected(
                requestID: requestID, hash: hash, code: rejection.code, reason: rejection.reason)
        }
    }
}
