import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RWAArbiter
import RWACrypto
import RWALedger
import RWASession
import RWAStore
import RWAWire

/// When a block closes: at `maxTransactions` or `maxDelay` after its first transaction,
/// whichever comes first.
public struct BlockRules: Sendable, Equatable {
    public var maxTransactions: Int
    public var maxDelay: TimeAmount

    public init(maxTransactions: Int, maxDelay: TimeAmount) {
        precondition(maxTransactions >= 1 && maxDelay >= .zero)
        self.maxTransactions = maxTransactions
        self.maxDelay = maxDelay
    }

    /// The paper's simulated chain: 10 transactions or 5 s.
    public static let paper = BlockRules(maxTransactions: 10, maxDelay: .seconds(5))
    /// Ours: a block every 10 ms under load, which keeps a receipt within a few milliseconds of
    /// the fsync while still batching hundreds of transactions into one durable commit.
    public static let standard = BlockRules(maxTransactions: 1000, maxDelay: .milliseconds(10))
}

/// The arbiter on the network: it takes transactions and queries from sessions, orders
/// transactions into blocks on one sequencer thread, commits each block durably and only then
/// answers, and pushes committed blocks to subscribers.
///
/// Every decision is the pure `ArbiterCore`'s; this class is its shell. Threads: a session's
/// event loop decrypts and frames; the sequencer thread owns the core, takes everything queued,
/// checks the batch's signatures in parallel on every core and feeds them to the core in arrival
/// order, each piece as soon as it is checked (so applying overlaps checking); the committer
/// thread writes each sealed block durably and reports it back, and only then does the core
/// release its answers, so the next batch is verified while the last one is fsynced. Queries
/// read the store (a WAL snapshot of committed blocks) on a thread pool, never on an event loop.
public final class ArbiterService: Sendable {
    public let chainID: Digest32
    public let rules: BlockRules
    private let store: any ChainStore
    private let arbiterKey: SigningKeyPair
    private let logger: Logger
    private let threadPool: NIOThreadPool
    /// Block subscriptions served at once; each is protected from eviction, so they are bounded
    /// well below the listener's sessions.
    public static let subscriptionsMax = 256
    /// Submissions one session may have waiting for the sequencer (a client may pipeline a batch
    /// of a few thousand, as `bench-arbiter` and the tests do; the queue as a whole holds
    /// `queueCapacity`); more are refused with `arbiter_busy`.
    public static let queuedPerSessionMax = 4_096
    /// The thread pool's queries, shared fairly between sessions.
    private let fairQueries = FairQueries()
    private let checkers = SignatureCheckers()
    private let queue: NIOLockedValueBox<Queue>
    private let condition = ConditionLock(value: 0)
    private let subscribers = NIOLockedValueBox<[ObjectIdentifier: Subscription]>([:])
    private let sessions = ServedSessions(service: "the arbiter")
    private let committedHeight: NIOLockedValueBox<UInt64>
    /// The ledger as loaded, until `start` hands it to the core.
    private let ledgerAtStart: NIOLockedValueBox<Ledger?>
    private let stopped = ManagedAtomicFlag()
    /// Writes blocks durably, in order, and reports each one to the core.
    private let committer = DispatchQueue(label: "rwanet-committer")
    /// Carries out the core's actions, in the order the core gave them.
    private let dispatcher = DispatchQueue(label: "rwanet-dispatcher")
    /// The core, driven by the sequencer thread (submissions, ticks) and the committer (durable
    /// blocks); nil until `start`.
    private let core = NIOLockedValueBox<ArbiterCore<Reply>?>(nil)
    /// Submissions waiting for the sequencer beyond this are refused with `arbiter_busy`.
    public let queueCapacity: Int

    struct Submission {
        var bytes: [UInt8]
        var reply: Reply
    }

    struct Reply: Sendable {
        var session: PeerSession
        var requestID: UInt64
        /// When the submission arrived (uptime nanoseconds), for the latency metric.
        var arrivedNanoseconds: UInt64
    }

    struct Queue {
        var items: [Submission] = []
        /// How many of `items` each session sent.
        var bySession: [ObjectIdentifier: Int] = [:]
        var stopping = false
        /// The committer reported a block to the core since the sequencer last looked: the core
        /// may take submissions again, or have nothing left to answer.
        var committerNews = false
    }

    /// Where the sequencer reads the time it hands the core.
    private let time: any TimeSource

    public init(
        store: any ChainStore, arbiterKey: SigningKeyPair, rules: BlockRules = .standard, queueCapacity: Int = 100_000,
        time: any TimeSource = SystemTimeSource(), logger: Logger = Logger(label: "rwanet.arbiter")
    ) throws {
        self.time = time
        let ledger = try store.loadLedger()
        guard ledger.genesis.arbiter == arbiterKey.publicKey else {
            throw StoreError("this key is not the arbiter named in the genesis (\(ledger.genesis.arbiter))")
        }
        self.chainID = ledger.chainID
        self.store = store
        self.arbiterKey = arbiterKey
        self.rules = rules
        self.logger = logger
        self.queueCapacity = queueCapacity
        self.queue = NIOLockedValueBox(Queue())
        self.committedHeight = NIOLockedValueBox(ledger.height)
        self.ledgerAtStart = NIOLockedValueBox(ledger)
        self.threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
    }

    public var height: UInt64 { committedHeight.withLockedValue { $0 } }

    /// Starts the sequencer thread. Blocks are sealed until `shutdown`.
    public func start() {
        checkers.start()
        let thread = Thread { [self] in self.sequence() }
        thread.name = "rwanet-sequencer"
        thread.start()
    }

    /// Stops sealing after the block in progress is committed and answered.
    public func shutdown() async {
        queue.withLockedValue { $0.stopping = true }
        wake()
        while !stopped.isSet { try? await Task.sleep(for: .milliseconds(5)) }
        checkers.stop()
        try? await threadPool.shutdownGracefully()
    }

    /// Answers `session` until it closes. Must be called once per session.
    public func serve(_ session: PeerSession) {
        sessions.serve(
            session,
            route: { message in
                if case .arbiter(let request) = message { return request }
                return nil
            },
            handle: { [self] request in handle(request, from: session) },
            ended: { [self] in
                subscribers.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(session)) }
                fairQueries.forget(session: ObjectIdentifier(session))
            })
    }

    // MARK: Requests (on the session's event loop)

    private func handle(_ message: ArbiterMessage, from session: PeerSession) {
        switch message {
        case .submitTransaction(let requestID, let bytes):
            enqueue(
                Submission(
                    bytes: bytes,
                    reply: Reply(session: session, requestID: requestID, arrivedNanoseconds: time.uptimeNanoseconds)))

        case .getState(let requestID, let key):
            guard (try? StateKey(bytes: key)) != nil else {
                reply(session, .requestFailed(requestID: requestID, code: .badQuery, reason: "not a state key"))
                return
            }
            query(session, requestID) { store in
                .stateAnswer(requestID: requestID, key: key, value: try store.stateRow(key: key))
            }

        case .getBlock(let requestID, let height):
            query(session, requestID) { store in
                .blockAnswer(requestID: requestID, header: try store.header(height: height)?.encoded)
            }

        case .getTransaction(let requestID, let hash):
            query(session, requestID) { store in
                let found = try store.transaction(hash: hash).map {
                    CommittedTransactionInfo(
                        height: $0.height, index: $0.index, createdID: $0.transaction.createdID,
                        transaction: $0.transaction.bytes)
                }
                return .transactionAnswer(requestID: requestID, found: found)
            }

        case .getStatus(let requestID):
            let chainID = chainID
            query(session, requestID) { store in
                let tip = try store.tip()
                return .statusAnswer(
                    requestID: requestID, chainID: chainID, height: tip?.height ?? 0, tipHash: tip?.hash ?? chainID,
                    tipTimeMilliseconds: tip?.timeMilliseconds ?? 0)
            }

        case .subscribeBlocks(let requestID, let fromHeight):
            guard let outbox = outbox(session) else { return }
            let subscription = Subscription(outbox: outbox, nextHeight: max(1, fromHeight))
            let full = subscribers.withLockedValue { $0.count >= Self.subscriptionsMax }
            guard !full else {
                reply(
                    session,
                    .requestFailed(
                        requestID: requestID, code: .overloaded,
                        reason: "the arbiter serves \(Self.subscriptionsMax) subscriptions already"))
                return
            }
            let added = subscribers.withLockedValue { subscribers in
                subscribers.updateValue(subscription, forKey: ObjectIdentifier(session)) == nil
            }
            guard added else {
                subscribers.withLockedValue { $0[ObjectIdentifier(session)] = nil }
                reply(
                    session,
                    .requestFailed(requestID: requestID, code: .badQuery, reason: "one subscription per session"))
                session.beginClose(reporting: SessionError(.unexpectedMessage, "a second subscribe_blocks"))
                return
            }
            // A subscriber only listens: silent on purpose, it is not evicted for a newcomer.
            session.protectFromEviction()
            pump(subscription)

        case .transactionReceipt, .transactionRejected, .stateAnswer, .blockAnswer, .transactionAnswer, .statusAnswer,
            .requestFailed, .blockCommitted, .transactionCommitted:
            session.beginClose(
                reporting: SessionError(.unexpectedMessage, "\(message.type) is not a request to the arbiter"))
        }
    }

    private func outbox(_ session: PeerSession) -> PacedOutbox? { sessions.outbox(session) }

    private func reply(_ session: PeerSession, _ message: ArbiterMessage) {
        sessions.send([.arbiter(message)], to: session)
    }

    /// Runs a read of committed state on the thread pool, a fair share per session
    /// (`FairQueries`), and answers on the session's loop.
    private func query(
        _ session: PeerSession, _ requestID: UInt64,
        _ read: @escaping @Sendable (any ChainStore) throws -> ArbiterMessage
    ) {
        let store = store
        let id = ObjectIdentifier(session)
        let admitted = fairQueries.submit(session: id) { [self] in
            threadPool.runIfActive(eventLoop: session.eventLoop) { try read(store) }.whenComplete { [self] result in
                fairQueries.finished(session: id)
                switch result {
                case .success(let answer): reply(session, answer)
                case .failure(let error):
                    reply(session, .requestFailed(requestID: requestID, code: .badQuery, reason: "\(error)"))
                }
            }
        }
        if !admitted {
            // A session that pipelines this many queries without waiting for their answers is
            // flooding: it is closed rather than answered one refusal at a time.
            session.beginClose(
                reporting: SessionError(
                    .overloaded, "\(FairQueries.waitingPerSessionMax) queries of this session already wait"))
        }
    }

    private func enqueue(_ submission: Submission) {
        // Only the submission that makes the queue non-empty wakes the sequencer: it drains
        // the whole queue when it runs, so one wake-up serves a burst.
        let session = ObjectIdentifier(submission.reply.session)
        let (accepted, wake) = queue.withLockedValue { queue -> (Bool, Bool) in
            // One session's share of the queue is bounded too: a flood from one session (of
            // forged signatures, say) is refused at once instead of filling memory and the queue.
            guard !queue.stopping, queue.items.count < queueCapacity,
                queue.bySession[session, default: 0] < Self.queuedPerSessionMax
            else { return (false, false) }
            queue.items.append(submission)
            queue.bySession[session, default: 0] += 1
            return (true, queue.items.count == 1)
        }
        guard accepted else {
            reply(
                submission.reply.session,
                .transactionRejected(
                    requestID: submission.reply.requestID, hash: Blake2b.hash256(submission.bytes), code: .arbiterBusy,
                    reason:
                        "the arbiter's queue (or this session's share of it, \(Self.queuedPerSessionMax)) is full or stopping; send again later"
                ))
            return
        }
        if wake { self.wake() }
    }

    // MARK: The sequencer thread

    private func takeQueued() -> [Submission] {
        queue.withLockedValue { queue in
            NodeMetrics.arbiterQueue(depth: queue.items.count)
            defer {
                queue.items.removeAll(keepingCapacity: true)
                queue.bySession.removeAll(keepingCapacity: true)
            }
            return queue.items
        }
    }

    /// Clears and returns whether the committer has reported a block since the last call.
    private func takeCommitterNews() -> Bool {
        queue.withLockedValue { queue in
            defer { queue.committerNews = false }
            return queue.committerNews
        }
    }

    /// Sleeps until `deadline` passes or there is work: news from the committer, `shutdown`, or
    /// (unless the core cannot take them) new submissions.
    private func waitForWork(until deadline: UInt64?, submissionsWelcome: Bool) {
        func ready() -> Bool {
            queue.withLockedValue { queue in
                queue.committerNews || (submissionsWelcome && (!queue.items.isEmpty || queue.stopping))
            }
        }
        if ready() { return }
        condition.lock()
        condition.unlock(withValue: 0)  // what arrives from now on wakes the wait below
        if ready() { return }
        if let deadline {
            // Sleeps for what the time source says is left; a manual source that has not moved
            // is asked again after that long.
            let now = time.uptimeNanoseconds
            guard deadline > now else { return }
            if condition.lock(whenValue: 1, timeoutSeconds: Double(deadline - now) / 1e9) {
                condition.unlock(withValue: 0)
            }
        } else {
            condition.lock(whenValue: 1)
            condition.unlock(withValue: 0)
        }
    }

    private func wake() {
        condition.lock()
        condition.unlock(withValue: 1)
    }

    /// Runs `body` on the core under its lock, and queues the actions it returns for the
    /// dispatcher while still holding it: so actions are carried out in exactly the order the
    /// core gave them, whichever thread drove it.
    private func drive<Value>(_ body: (inout ArbiterCore<Reply>) -> ([ArbiterCore<Reply>.Action], Value)) -> Value {
        core.withLockedValue { core in
            guard core != nil else { preconditionFailure("the core is driven only after start") }
            let (actions, value) = body(&core!)
            if !actions.isEmpty { dispatcher.async { [self] in perform(actions) } }
            return value
        }
    }

    /// Feeds the pure `ArbiterCore` with what the sessions submitted, its signatures checked in
    /// parallel first. The committer reports durable blocks to the core itself (`persisted`), so
    /// answers never wait for this thread.
    private func sequence() {
        guard let ledger = ledgerAtStart.withLockedValue({ $0.take() }) else {
            preconditionFailure("an arbiter service is started once")
        }
        // Checking and applying submissions is bulk work: the sessions' loops go first.
        SignatureCheckers.lowerCallingThreadsPriority()
        core.withLockedValue { core in
            core = ArbiterCore(
                ledger: ledger, arbiter: arbiterKey, maxTransactions: rules.maxTransactions,
                maxDelayNanoseconds: UInt64(rules.maxDelay.nanoseconds))
        }
        // Slices, so taking a block's worth off the front costs nothing however long the queue.
        var backlog: ArraySlice<Submission> = []
        var checked: ArraySlice<Result<VerifiedTransaction, Rejection>> = []
        /// Hands the core the checked submissions at the front of the backlog, as many as it
        /// takes, then (if `tick`) the time; returns whether it takes more, and its next deadline.
        func feed(tick: Bool) -> (accepting: Bool, deadline: UInt64?) {
            let now = time.uptimeNanoseconds
            let wall = time.unixMilliseconds  // the block's time, if this opens one
            let (consumed, accepting, deadline) = drive { core in
                var actions: [ArbiterCore<Reply>.Action] = []
                var consumed = 0
                for (submission, result) in zip(backlog, checked) {
                    guard core.acceptsSubmissions else { break }
                    consumed += 1
                    actions += core.submit(
                        result, bytes: submission.bytes, reply: submission.reply, now: now, timeMilliseconds: wall)
                }
                if tick { actions += core.tick(now: time.uptimeNanoseconds) }
                return (actions, (consumed, core.acceptsSubmissions, core.nextDeadline))
            }
            backlog = backlog.dropFirst(consumed)
            checked = checked.dropFirst(consumed)
            return (accepting, deadline)
        }
        while true {
            _ = takeCommitterNews()
            if backlog.isEmpty {
                backlog = takeQueued()[...]
                checked = []
                // What is checked is applied while the rest is still being checked.
                checkers.verify(batch: backlog.map(\.bytes), chainID: chainID) { results in
                    checked += results
                    _ = feed(tick: false)
                }
            }
            let (accepting, deadline) = feed(tick: true)
            guard backlog.isEmpty || !accepting else { continue }
            if backlog.isEmpty && queue.withLockedValue({ $0.stopping && $0.items.isEmpty }) {
                // Drain: seal what is pending, then wait until every answer has been released.
                let unanswered = drive { core in
                    (core.tick(now: time.uptimeNanoseconds, draining: true), core.unansweredCount)
                }
                if unanswered == 0 { break }
                waitForWork(until: nil, submissionsWelcome: false)
                continue
            }
            waitForWork(until: deadline, submissionsWelcome: accepting)
        }
        dispatcher.sync {}  // every released answer has been handed to its session
        stopped.set()
    }

    /// Carries out the core's actions in order: a block goes to the committer, which reports it
    /// durable; answers are grouped per session so each session's loop is woken once.
    private func perform(_ actions: [ArbiterCore<Reply>.Action]) {
        guard !actions.isEmpty else { return }
        var bySession: [ObjectIdentifier: (PeerSession, [Message])] = [:]
        func send(_ reply: Reply, _ message: ArbiterMessage) {
            bySession[ObjectIdentifier(reply.session), default: (reply.session, [])].1.append(.arbiter(message))
            var result = "committed"
            if case .transactionRejected(_, _, let code, _) = message { result = code.name }
            NodeMetrics.transactionAnswered(result, nanoseconds: time.uptimeNanoseconds &- reply.arrivedNanoseconds)
        }
        for action in actions {
            switch action {
            case .persist(let block, let changes):
                committer.async { [self] in
                    commit(block, changes: changes)
                    drive { core in (core.persisted(height: block.header.height, now: time.uptimeNanoseconds), ()) }
                    queue.withLockedValue { $0.committerNews = true }
                    wake()
                }
            case .answer(let reply, let answer):
                send(reply, answer.message(requestID: reply.requestID))
            case .answerFromChain(let reply, let hash, let rejection):
                if let located = try? store.transaction(hash: hash) {
                    send(
                        reply,
                        .transactionReceipt(
                            requestID: reply.requestID, hash: hash, height: located.height, index: located.index,
                            createdID: located.transaction.createdID))
                } else {
                    send(
                        reply,
                        ArbiterCore<Reply>.Answer.rejected(hash: hash, rejection).message(requestID: reply.requestID))
                }
            case .publish:
                for subscription in subscribers.withLockedValue({ Array($0.values) }) { pump(subscription) }
            }
        }
        for (session, messages) in bySession.values { sessions.send(messages, to: session) }
    }

    private func commit(_ block: Block, changes: [(key: StateKey, row: [UInt8]?)]) {
        do {
            try store.commit(block, changes: changes)
        } catch {
            // The ledger in memory is now ahead of the disk: nothing may be answered and
            // nothing more applied. A restart recovers the last committed block.
            logger.critical("cannot commit block \(block.header.height): \(error)")
            fatalError("rwa-arbiter: cannot commit block \(block.header.height): \(error)")
        }
        committedHeight.withLockedValue { $0 = block.header.height }
        NodeMetrics.blockCommitted(transactions: block.transactions.count)
    }

    // MARK: Subscriptions

    /// Sends a subscriber every committed block it has not had, a few blocks at a time read
    /// from the store, the next batch only once the last has left through the outbox. One pump
    /// per subscriber runs at once, on its event loop.
    private func pump(_ subscription: Subscription) {
        let outbox = subscription.outbox
        let session = outbox.session
        session.eventLoop.execute { [self] in
            guard !subscription.pumping.value, subscription.nextHeight.value <= height else { return }
            let current = subscribers.withLockedValue { $0[ObjectIdentifier(session)] }
            guard current === subscription else { return }  // the session ended or resubscribed
            subscription.pumping.value = true
            let from = subscription.nextHeight.value
            let store = store
            threadPool.runIfActive(eventLoop: session.eventLoop) { try store.blocks(from: from, limit: 4) }
                .whenComplete { [self] result in
                    guard case .success(let blocks) = result, !blocks.isEmpty else {
                        subscription.pumping.value = false
                        return
                    }
                    var messages: [Message] = []
                    for block in blocks {
                        messages.append(.arbiter(.blockCommitted(header: block.header.encoded)))
                        for (index, transaction) in block.transactions.enumerated() {
                            messages.append(
                                .arbiter(
                                    .transactionCommitted(
                                        CommittedTransactionInfo(
                                            height: block.header.height, index: UInt32(index),
                                            createdID: transaction.createdID, transaction: transaction.bytes))))
                        }
                    }
                    subscription.nextHeight.value = blocks.last!.header.height + 1
                    outbox.sendPaced(messages)
                    outbox.whenDrained { [self] in
                        subscription.pumping.value = false
                        pump(subscription)
                    }
                }
        }
    }

    final class Subscription: Sendable {
        let outbox: PacedOutbox
        let nextHeight: NIOLoopBoundBox<UInt64>
        let pumping: NIOLoopBoundBox<Bool>

        init(outbox: PacedOutbox, nextHeight: UInt64) {
            self.outbox = outbox
            self.nextHeight = NIOLoopBoundBox(nextHeight, eventLoop: outbox.session.eventLoop)
            self.pumping = NIOLoopBoundBox(false, eventLoop: outbox.session.eventLoop)
        }
    }
}

/// A flag set once, read from any thread.
final class ManagedAtomicFlag: Sendable {
    private let box = NIOLockedValueBox(false)
    var isSet: Bool { box.withLockedValue { $0 } }
    func set() { box.withLockedValue { $0 = true } }
}
