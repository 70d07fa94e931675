import NIOCore
import RWAArbiter
import RWACrypto
import RWAExchange
import RWALedger
import RWAStore
import RWAWire

/// The whole system in one process, on virtual time, under seeded faults, in the manner of
/// TigerBeetle's VOPR and FoundationDB's simulator: the arbiter's real core (`ArbiterCore`) on
/// an `InMemoryChainStore` that survives its crashes, the exchange's real book (`ExchangeBook`)
/// following the chain through the block stream, and traders that transfer and swap with real
/// signed transactions. Every message crosses a simulated session as the bytes `proto/` gives it.
///
/// A session delivers in order or breaks, losing what it carried (the session layer's own
/// repair of lost, duplicated and reordered packets has its own simulation in
/// `ReliableDeliveryTests`). Faults: broken sessions, partitions, crashes and restarts of the
/// arbiter and the exchange, latency spikes that let other links overtake, duplicated and
/// retried requests, hostile transactions. Invariants are checked as events happen (see
/// `fail(_:_:)` callers); after the fault window every request must complete.
public final class Simulation {
    public let seed: UInt64
    public let configuration: SimulationConfiguration
    var random: SimulationRandom
    let world: World
    var agenda = Agenda<Event>()
    var now: UInt64 = 0
    var report: SimulationReport
    var traceDigest: Digest32
    var traceTail: [String] = []
    var keepWholeTrace = false
    var faultsActive = true

    // MARK: Nodes and links

    enum Node: Equatable, CustomStringConvertible {
        case arbiter, exchange
        case trader(Int)
        case lessor
        case lessee(Int)

        var description: String {
            switch self {
            case .arbiter: return "arbiter"
            case .exchange: return "exchange"
            case .trader(let index): return "trader\(index)"
            case .lessor: return "lessor"
            case .lessee(let index): return "lessee\(index)"
            }
        }
    }

    /// A session between a client and a server; `epoch` counts the sessions the link has had,
    /// so what a dead session carried is recognised and lost.
    struct Link {
        let client: Node
        let server: Node
        var epoch = 0
        var up = false
        var unreachableUntil: UInt64 = 0
        var connecting = false
        /// When the last message in each direction (to the server, to the client) arrives: a
        /// session delivers in order.
        var lastArrival: [UInt64] = [0, 0]
    }

    enum Event {
        case deliver(link: Int, epoch: Int, toServer: Bool, frame: [UInt8])
        case connect(link: Int)
        case arbiterTick(incarnation: Int)
        case diskWrite(incarnation: Int, block: Block, changes: [(key: StateKey, row: [UInt8]?)])
        case traderWake(Int)
        case traderRetry(Int, attempt: Int)
        case dropLink(Int)
        case partition(link: Int, nanoseconds: UInt64)
        case crash(Node)
        case restart(Node)
        case faultsEnd
        case leaseAct(Int)
        case leaseRetry(Int, attempt: Int)
        case lessorRetry(attempt: Int)
        /// A lease node's store finished writing `state` (lost if the node crashed since).
        case leaseStored(node: Node, incarnation: Int, state: CoSignedState)
    }

    var links: [Link] = []
    static let exchangeToArbiter = 0
    func arbiterLink(_ trader: Int) -> Int { 1 + 2 * trader }
    func exchangeLink(_ trader: Int) -> Int { 2 + 2 * trader }

    // MARK: The arbiter

    struct ArbiterReply {
        var link: Int
        var epoch: Int
        var requestID: UInt64
    }

    let store: InMemoryChainStore
    var arbiter: ArbiterCore<ArbiterReply>?
    var arbiterIncarnation = 0
    /// Submissions waiting while the core's pending block cannot close.
    var arbiterBacklog: [(checked: Result<VerifiedTransaction, Rejection>, bytes: [UInt8], reply: ArbiterReply)] =
        []
    /// Block subscribers by link, with the next height each is owed.
    var subscriptions: [Int: UInt64] = [:]
    var diskFreeAt: UInt64 = 0
    var tickAt: UInt64?

    // MARK: The exchange

    struct FillWaiter {
        var link: Int
        var epoch: Int
        var requestID: UInt64
    }

    var book: ExchangeBook<FillWaiter>?
    var exchangeIncarnation = 0
    var relays: [UInt64: (hash: Digest32, waiter: FillWaiter)] = [:]
    var nextRelayID: UInt64 = 1
    var blockStream = BlockStreamAssembler()

    // MARK: Traders

    enum Path { case arbiter, exchange }

    struct Pending {
        var bytes: [UInt8]
        var hash: Digest32
        var path: Path
        var label: String
        /// A forged or foreign transaction: it must never commit.
        var hostile: Bool
        var requestIDs: Set<UInt64> = []
        var attempts = 0
    }

    struct Trader {
        let key: SigningKeyPair
        var sequence: UInt64
        var remaining: Int
        var pending: Pending?
        var nextRequestID: UInt64 = 1
        /// The request id of a `get_state` for the trader's account, after a sequence surprise.
        var resync: UInt64?
    }

    var traders: [Trader] = []

    // MARK: Leases (Leases.swift)

    var lessees: [LesseeNode] = []
    var lessor = LessorNode()
    var leaseLinkBase = 0
    var lessorArbiterLink = 0

    // MARK: The oracle

    /// A replica that verifies every signature of every durable block: the reference the
    /// arbiter's restarts, the exchange's replica and every receipt and fill are checked against.
    var oracle: Ledger
    var oracleDigests: [UInt64: Digest32] = [:]
    var oracleFills: [Digest32: PoolFill] = [:]
    var hostileHashes: Set<Digest32> = []

    public init(seed: UInt64, configuration: SimulationConfiguration = SimulationConfiguration()) throws {
        precondition(configuration.traders >= 2)
        self.seed = seed
        self.configuration = configuration
        random = SimulationRandom(seed: seed)
        world = try World(traderCount: configuration.traders, lesseeCount: configuration.lessees, random: &random)
        store = InMemoryChainStore(genesis: world.genesis, genesisRows: world.genesisRows)
        try store.commit(world.setupBlock, changes: world.setupChanges)
        oracle = Ledger(genesis: world.genesis)
        report = SimulationReport(seed: seed, configuration: configuration)
        traceDigest = Blake2b.hash256([UInt8]("rwanet simulation \(seed) \(configuration)".utf8))
        try oracle.replay(world.setupBlock)
        oracleDigests[oracle.height] = oracle.state.digest
        links.append(Link(client: .exchange, server: .arbiter))
        for index in 0..<configuration.traders {
            links.append(Link(client: .trader(index), server: .arbiter))
            links.append(Link(client: .trader(index), server: .exchange))
            let key = world.traders[index]
            traders.append(
                Trader(
                    key: key, sequence: oracle.state.accounts[key.publicKey]?.nextSequence ?? 0,
                    remaining: configuration.transactionsPerTrader))
        }
        leaseLinkBase = links.count
        for index in 0..<configuration.lessees {
            links.append(Link(client: .lessee(index), server: .arbiter))
            links.append(Link(client: .lessee(index), server: .lessor))
            lessees.append(LesseeNode(key: world.lessees[index]))
        }
        lessorArbiterLink = links.count
        links.append(Link(client: .lessor, server: .arbiter))
    }

    /// Runs the seed to its end: every trader done and the system quiet, or a broken invariant.
    public func run(keepingWholeTrace: Bool = false) -> SimulationReport {
        keepWholeTrace = keepingWholeTrace
        do {
            try start()
            try loop()
            try finish()
        } catch let failure as SimulationFailure {
            report.failure = failure
        } catch {
            report.failure = SimulationFailure(
                invariant: "no-unexpected-error", detail: "\(error)", event: report.events, timeNanoseconds: now)
        }
        report.virtualNanoseconds = now
        report.blocks = (try? store.tip()?.height) ?? 0
        report.traceDigest = traceDigest.description
        report.trace = traceTail
        return report
    }

    func fail(_ invariant: String, _ detail: String) -> SimulationFailure {
        SimulationFailure(invariant: invariant, detail: detail, event: report.events, timeNanoseconds: now)
    }

    func trace(_ line: String) {
        let stamped = "\(formatTime(now)) \(line)"
        traceDigest = Blake2b.hash256(traceDigest.bytes + Array(stamped.utf8))
        traceTail.append(stamped)
        if !keepWholeTrace && traceTail.count > 400 { traceTail.removeFirst(200) }
    }

    func schedule(_ event: Event, after nanoseconds: UInt64) {
        agenda.schedule(event, at: now + nanoseconds)
    }

    static let millisecond: UInt64 = 1_000_000

    func milliseconds(_ range: ClosedRange<UInt64>) -> UInt64 {
        random.next(in: range.lowerBound * Self.millisecond...range.upperBound * Self.millisecond)
    }

    // MARK: The run

    func start() throws {
        try restartArbiter()
        restartExchange()
        for index in traders.indices {
            schedule(.connect(link: arbiterLink(index)), after: milliseconds(0...2))
            schedule(.connect(link: exchangeLink(index)), after: milliseconds(0...2))
            schedule(.traderWake(index), after: milliseconds(3...10))
        }
        startLeases()
        let window = configuration.faultWindowMilliseconds
        if configuration.linkDrops {
            for _ in 0..<max(1, window / 60) {
                schedule(.dropLink(random.index(below: links.count)), after: milliseconds(1...window))
            }
        }
        if configuration.partitions {
            for _ in 0..<2 {
                schedule(
                    .partition(link: random.index(below: links.count), nanoseconds: milliseconds(20...200)),
                    after: milliseconds(1...window))
            }
        }
        if configuration.crashes {
            // At least one arbiter crash per run, in the busy middle of the window.
            schedule(.crash(.arbiter), after: milliseconds(window / 4...window / 2))
            if random.chance(permille: 500) { schedule(.crash(.arbiter), after: milliseconds(window / 2...window)) }
            schedule(.crash(.exchange), after: milliseconds(1...window))
            if !lessees.isEmpty {
                for _ in 0..<configuration.leaseCrashesPerRun {
                    schedule(.crash(.lessor), after: milliseconds(1...window))
                    schedule(.crash(.lessee(random.index(below: lessees.count))), after: milliseconds(1...window))
                }
            }
        }
        schedule(.faultsEnd, after: window * Self.millisecond)
    }

    func loop() throws {
        let deadline = (configuration.faultWindowMilliseconds + 30_000) * Self.millisecond
        while let (time, event) = agenda.next() {
            precondition(time >= now, "time runs forward")
            now = time
            report.events += 1
            guard now <= deadline else {
                throw fail("liveness", "requests still open 30 s after the faults ended: \(openRequests())")
            }
            try handle(event)
            if isDone { return }
        }
        if !isDone { throw fail("liveness", "nothing left to happen, yet requests are open: \(openRequests())") }
    }

    var isDone: Bool {
        !faultsActive && traders.allSatisfy { $0.remaining == 0 && $0.pending == nil && $0.resync == nil }
            && lessees.allSatisfy { $0.phase == .closed } && lessor.submission == nil
            && (arbiter?.unansweredCount ?? 1) == 0 && arbiterBacklog.isEmpty
            && book?.ledger.height == (try? store.tip()?.height)
    }

    func openRequests() -> String {
        traders.enumerated().compactMap { index, trader in
            if let pending = trader.pending { return "trader\(index) waits on \(pending.label) \(pending.hash)" }
            if trader.resync != nil { return "trader\(index) waits for its account" }
            if trader.remaining > 0 { return "trader\(index) has \(trader.remaining) to send" }
            return nil
        }.joined(separator: "; ")
            + lessees.enumerated().filter { $0.element.phase != .closed }.map {
                "; lessee\($0.offset) is \($0.element.phase)"
            }
            .joined()
            + " (exchange at \(book?.ledger.height ?? 0), chain at \((try? store.tip()?.height) ?? 0))"
    }

    func finish() throws {
        // The whole chain, replayed from the store with every signature checked, is the oracle.
        var replayed = Ledger(genesis: world.genesis)
        var height: UInt64 = 1
        while true {
            let blocks = try store.blocks(from: height, limit: 64)
            if blocks.isEmpty { break }
            for block in blocks {
                do { try replayed.replay(block) } catch { throw fail("chain-verifies", "\(error)") }
                report.committedTransactions += block.transactions.count
            }
            height += UInt64(blocks.count)
        }
        guard replayed.state.digest == oracle.state.digest else {
            throw fail("chain-verifies", "the replayed chain's state differs from the oracle's")
        }
        report.committedTransactions -= world.setupBlock.transactions.count
        try checkRent()
        trace("done: \(replayed.height) blocks")
    }

    func handle(_ event: Event) throws {
        switch event {
        case .deliver(let index, let epoch, let toServer, let frame):
            guard links[index].up, links[index].epoch == epoch else {
                report.messagesLost += 1
                return
            }
            let message: Message
            do { message = try Message.decode(frame: ByteBuffer(bytes: frame)) } catch {
                throw fail("codec", "a frame the simulation encoded does not decode: \(error)")
            }
            let link = links[index]
            let receiver = toServer ? link.server : link.client
            trace("\(toServer ? link.client : link.server) -> \(receiver) \(message.type)")
            try receive(message, at: receiver, link: index)

        case .connect(let index):
            links[index].connecting = false
            guard !links[index].up else { return }
            let link = links[index]
            guard isUp(link.client) else { return }  // a restart connects again
            guard isUp(link.server), now >= link.unreachableUntil else {
                links[index].connecting = true
                schedule(.connect(link: index), after: milliseconds(5...25))
                return
            }
            links[index].up = true
            links[index].epoch += 1
            links[index].lastArrival = [now, now]
            trace("connect \(link.client) -> \(link.server) (session \(links[index].epoch))")
            try connected(index)

        case .arbiterTick(let incarnation):
            guard incarnation == arbiterIncarnation, arbiter != nil else { return }
            tickAt = nil
            try perform(arbiter!.tick(now: now))
            try feedBacklog()

        case .diskWrite(let incarnation, let block, let changes):
            guard incarnation == arbiterIncarnation, arbiter != nil else {
                trace("disk write of block \(block.header.height) lost in a crash")
                return
            }
            try persist(block, changes: changes)

        case .traderWake(let index):
            try traderAct(index)

        case .traderRetry(let index, let attempt):
            guard let pending = traders[index].pending, pending.attempts == attempt else { return }
            report.retries += 1
            trace("trader\(index) retries \(pending.label)")
            traders[index].pending?.attempts += 1
            try sendPending(index)

        case .dropLink(let index):
            guard faultsActive, links[index].up else { return }
            report.linkDrops += 1
            trace("fault: session \(links[index].client) -> \(links[index].server) breaks")
            try drop(index)

        case .partition(let index, let nanoseconds):
            guard faultsActive else { return }
            report.partitions += 1
            links[index].unreachableUntil = now + nanoseconds
            trace("fault: \(links[index].client) -> \(links[index].server) unreachable for \(formatTime(nanoseconds))")
            if links[index].up { try drop(index) }

        case .crash(let node):
            guard faultsActive, isUp(node) else { return }
            trace("fault: \(node) crashes")
            try crash(node)

        case .restart(.arbiter):
            try restartArbiter()
        case .restart(.exchange):
            restartExchange()
        case .restart(.trader):
            break
        case .restart(.lessor):
            try restartLessor()
        case .restart(.lessee(let index)):
            try restartLessee(index)
        case .leaseAct(let index):
            try lesseeAct(index)
        case .leaseRetry(let index, let attempt):
            try lesseeRetry(index, attempt: attempt)
        case .lessorRetry(let attempt):
            lessorRetry(attempt: attempt)
        case .leaseStored(let node, let incarnation, let state):
            try leaseStored(node, incarnation: incarnation, state)

        case .faultsEnd:
            faultsActive = false
            trace("faults end")
        }
    }

    func isUp(_ node: Node) -> Bool {
        switch node {
        case .arbiter: return arbiter != nil
        case .exchange: return book != nil
        case .trader: return true
        case .lessor: return lessor.up
        case .lessee(let index): return lessees[index].up
        }
    }

    // MARK: Sessions

    func send(_ message: Message, on index: Int, toServer: Bool) {
        guard links[index].up else {
            report.messagesLost += 1
            return
        }
        var latency = random.next(in: 50_000...1_500_000)
        if faultsActive && configuration.latencySpikes && random.chance(permille: 30) {
            report.latencySpikes += 1
            latency += milliseconds(20...80)
        }
        let direction = toServer ? 0 : 1
        let arrival = max(now + latency, links[index].lastArrival[direction] + 1)
        links[index].lastArrival[direction] = arrival
        agenda.schedule(
            .deliver(link: index, epoch: links[index].epoch, toServer: toServer, frame: message.frameBytes()),
            at: arrival)
    }

    func drop(_ index: Int) throws {
        guard links[index].up else { return }
        links[index].up = false
        links[index].epoch += 1
        let link = links[index]
        if link.server == .arbiter { subscriptions[index] = nil }
        switch link.client {
        case .exchange:
            // The exchange cannot follow the chain without its session: it stops, and its
            // supervisor restarts it.
            if book != nil {
                trace("exchange lost the arbiter: restarting")
                try crash(.exchange)
            }
        case .trader, .arbiter, .lessor, .lessee:
            reconnect(index)
        }
    }

    func reconnect(_ index: Int) {
        guard !links[index].connecting else { return }
        links[index].connecting = true
        schedule(.connect(link: index), after: milliseconds(1...20))
    }

    func connected(_ index: Int) throws {
        switch links[index].client {
        case .exchange:
            guard let book else { return }
            blockStream = BlockStreamAssembler()
            send(
                .arbiter(.subscribeBlocks(requestID: 0, fromHeight: book.ledger.height + 1)), on: index, toServer: true)
        case .trader(let trader):
            if let pending = traders[trader].pending, link(for: pending.path, trader) == index {
                try sendPending(trader)
            }
            if let resync = traders[trader].resync, index == arbiterLink(trader) {
                send(
                    .arbiter(.getState(requestID: resync, key: StateKey.account(traders[trader].key.publicKey).bytes)),
                    on: index, toServer: true)
            }
        case .lessee(let lessee):
            try leaseConnected(lessee, link: index)
        case .lessor:
            sendLessorSubmission()
        case .arbiter:
            break
        }
    }

    func crash(_ node: Node) throws {
        switch node {
        case .arbiter:
            report.arbiterCrashes += 1
            arbiter = nil
            arbiterIncarnation += 1
            arbiterBacklog = []
            subscriptions = [:]
            tickAt = nil
            for index in links.indices where links[index].server == .arbiter { try drop(index) }
            schedule(.restart(.arbiter), after: milliseconds(5...60))
        case .exchange:
            report.exchangeRestarts += 1
            book = nil
            exchangeIncarnation += 1
            relays = [:]
            for index in links.indices where links[index].server == .exchange || links[index].client == .exchange {
                try drop(index)
            }
            schedule(.restart(.exchange), after: milliseconds(5...20))
        case .trader:
            break
        case .lessor, .lessee:
            try crashLeaseNode(node)
        }
    }

    func restartArbiter() throws {
        let ledger = try store.loadLedger()
        guard ledger.state.digest == oracleDigests[ledger.height] else {
            throw fail("restart-recovers", "the arbiter restarted at height \(ledger.height) with another state")
        }
        arbiter = ArbiterCore(
            ledger: ledger, arbiter: world.arbiter, maxTransactions: configuration.blockMaxTransactions,
            maxDelayNanoseconds: configuration.blockDelayMilliseconds * Self.millisecond)
        diskFreeAt = now
        trace("arbiter starts at height \(ledger.height)")
    }

    func restartExchange() {
        book = ExchangeBook(genesis: world.genesis)
        blockStream = BlockStreamAssembler()
        trace("exchange starts")
        reconnect(Self.exchangeToArbiter)
    }

    // MARK: Receiving

    func receive(_ message: Message, at node: Node, link: Int) throws {
        switch (node, message) {
        case (.arbiter, .arbiter(let request)):
            try arbiterReceive(request, link: link)
        case (.exchange, .arbiter(let event)):
            try exchangeReceiveFromArbiter(event)
        case (.exchange, .exchange(let request)):
            exchangeReceive(request, link: link)
        case (.trader(let index), .arbiter(let answer)):
            try traderReceive(index, arbiter: answer)
        case (.trader(let index), .exchange(let answer)):
            try traderReceive(index, exchange: answer)
        case (.lessor, .lease(let message)):
            try lessorReceive(message, link: link)
        case (.lessor, .arbiter(let answer)):
            try lessorReceive(arbiter: answer)
        case (.lessee(let index), .lease(let message)):
            try lesseeReceive(index, message)
        case (.lessee(let index), .arbiter(let answer)):
            try lesseeReceive(index, arbiter: answer)
        default:
            throw fail("protocol", "\(node) got \(message.type), which nobody sends it")
        }
    }

    // MARK: The arbiter's shell

    func arbiterReceive(_ request: ArbiterMessage, link: Int) throws {
        let epoch = links[link].epoch
        switch request {
        case .submitTransaction(let requestID, let bytes):
            let checked = Result { () throws(Rejection) in
                try Transaction.verify(bytes: bytes, chainID: world.genesis.chainID)
            }
            arbiterBacklog.append((checked, bytes, ArbiterReply(link: link, epoch: epoch, requestID: requestID)))
            try feedBacklog()
        case .subscribeBlocks(_, let fromHeight):
            subscriptions[link] = max(1, fromHeight)
            try publish()
        case .getState(let requestID, let key):
            send(
                .arbiter(.stateAnswer(requestID: requestID, key: key, value: try store.stateRow(key: key))), on: link,
                toServer: false)
        default:
            throw fail("protocol", "the arbiter got \(request.type), which the simulation does not send")
        }
    }

    func feedBacklog() throws {
        // The core is mutated in place (`arbiter!`): a copy would copy the whole ledger.
        guard arbiter != nil else { return }
        var fed = 0
        var actions: [ArbiterCore<ArbiterReply>.Action] = []
        let time = World.genesisTime + 1_000 + now / Self.millisecond
        for item in arbiterBacklog {
            guard arbiter!.acceptsSubmissions else { break }
            actions += arbiter!.submit(
                item.checked, bytes: item.bytes, reply: item.reply, now: now, timeMilliseconds: time)
            fed += 1
        }
        arbiterBacklog.removeFirst(fed)
        try perform(actions)
    }

    func perform(_ actions: [ArbiterCore<ArbiterReply>.Action]) throws {
        for action in actions {
            switch action {
            case .persist(let block, let changes):
                // One disk, writing in order.
                diskFreeAt = max(diskFreeAt, now) + milliseconds(0...3) + 200_000
                agenda.schedule(
                    .diskWrite(incarnation: arbiterIncarnation, block: block, changes: changes), at: diskFreeAt)
                trace("arbiter seals block \(block.header.height) (\(block.transactions.count) transactions)")
                if configuration.mutation == .answerBeforePersist, arbiter != nil {
                    try perform(arbiter!.persisted(height: block.header.height, now: now))
                }
            case .answer(let reply, let answer):
                try answerSubmission(reply, answer)
            case .answerFromChain(let reply, let hash, let otherwise):
                if configuration.mutation != .rejectResubmissions, let located = try store.transaction(hash: hash) {
                    try answerSubmission(
                        reply,
                        .receipt(
                            hash: hash, height: located.height, index: located.index,
                            createdID: located.transaction.createdID))
                } else {
                    try answerSubmission(reply, .rejected(hash: hash, otherwise))
                }
            case .publish:
                try publish()
            }
        }
        scheduleTick()
    }

    func answerSubmission(_ reply: ArbiterReply, _ answer: ArbiterCore<ArbiterReply>.Answer) throws {
        if case .rejected(let hash, let rejection) = answer, let located = try store.transaction(hash: hash) {
            throw fail(
                "never-rejects-committed",
                "the arbiter answers \(rejection.code.name) about \(hash), which block \(located.height) holds")
        }
        guard links[reply.link].up, links[reply.link].epoch == reply.epoch else {
            report.messagesLost += 1
            return
        }
        send(.arbiter(answer.message(requestID: reply.requestID)), on: reply.link, toServer: false)
    }

    func scheduleTick() {
        guard let deadline = arbiter?.nextDeadline else { return }
        if let tickAt, tickAt <= deadline { return }
        tickAt = max(deadline, now)
        agenda.schedule(.arbiterTick(incarnation: arbiterIncarnation), at: max(deadline, now))
    }

    func persist(_ block: Block, changes: [(key: StateKey, row: [UInt8]?)]) throws {
        do { try store.commit(block, changes: changes) } catch {
            throw fail("store-follows-tip", "\(error)")
        }
        try oracleFollow(block)
        trace("block \(block.header.height) durable")
        try perform(arbiter!.persisted(height: block.header.height, now: now))
        if configuration.mutation == .answerBeforePersist { try publish() }
        try feedBacklog()
    }

    /// Sends every subscriber the durable blocks it has not had.
    func publish() throws {
        guard let tip = try store.tip()?.height else { return }
        for index in subscriptions.keys.sorted() {
            guard var next = subscriptions[index], next <= tip else { continue }
            for block in try store.blocks(from: next, limit: Int(tip - next + 1)) {
                send(.arbiter(.blockCommitted(header: block.header.encoded)), on: index, toServer: false)
                for (position, transaction) in block.transactions.enumerated() {
                    send(
                        .arbiter(
                            .transactionCommitted(
                                CommittedTransactionInfo(
                                    height: block.header.height, index: UInt32(position),
                                    createdID: transaction.createdID, transaction: transaction.bytes))),
                        on: index, toServer: false)
                }
                next = block.header.height + 1
            }
            subscriptions[index] = next
        }
    }

    // MARK: The oracle

    func oracleFollow(_ block: Block) throws {
        for committed in block.transactions {
            do { _ = try Transaction.verify(bytes: committed.bytes, chainID: world.genesis.chainID) } catch {
                throw fail("only-valid-transactions-commit", "block \(block.header.height) holds \(error)")
            }
            if hostileHashes.contains(committed.hash) {
                throw fail("only-valid-transactions-commit", "hostile transaction \(committed.hash) committed")
            }
        }
        var fills: [Digest32: PoolFill] = [:]
        do {
            try oracle.follow(block) { index, _, fill in
                if let fill { fills[block.transactions[index].hash] = fill }
            }
        } catch {
            throw fail("chain-verifies", "\(error)")
        }
        oracleFills.merge(fills) { $1 }
        oracleDigests[oracle.height] = oracle.state.digest
        try leaseFollow(block)
        for (token, supply) in oracle.state.tokens.map({ ($0.key, $0.value.totalSupply) }) {
            var sum: UInt128 = 0
            for (key, holding) in oracle.state.holdings {
                if case .holding(token, _) = key { sum += holding.balance }
            }
            guard sum == supply else {
                throw fail("conservation", "token \(token): balances sum to \(sum), supply is \(supply)")
            }
        }
    }

    /// A receipt is only ever given for a durable transaction, at the place it names.
    func checkReceipt(_ hash: Digest32, height: UInt64, index: UInt32, at node: Node) throws {
        guard let located = try store.transaction(hash: hash) else {
            throw fail(
                "receipts-are-durable",
                "\(node) holds a receipt for \(hash) in block \(height), which the store does not hold")
        }
        guard located.height == height, located.index == index else {
            throw fail(
                "receipts-are-durable",
                "\(node)'s receipt puts \(hash) at \(height)/\(index); the store at \(located.height)/\(located.index)")
        }
    }

    // MARK: The exchange's shell

    func exchangeReceive(_ request: ExchangeMessage, link: Int) {
        // The book is mutated in place (`book!`): a copy would copy its whole replica.
        guard book != nil else { return }
        let waiter = FillWaiter(link: link, epoch: links[link].epoch, requestID: request.requestID)
        switch request {
        case .submitOrder(_, let bytes):
            switch book!.admit(bytes) {
            case .answer(let result):
                answerOrder(waiter, hash: Blake2b.hash256(bytes), result)
            case .relay(let transaction, let hash):
                guard links[Self.exchangeToArbiter].up else {
                    book!.refused(hash)
                    answerOrder(
                        waiter, hash: hash,
                        .failure(Rejection(.exchangeUnavailable, "the arbiter did not take the order")))
                    return
                }
                let relay = nextRelayID
                nextRelayID += 1
                relays[relay] = (hash, waiter)
                send(
                    .arbiter(.submitTransaction(requestID: relay, transaction: transaction.encoded)),
                    on: Self.exchangeToArbiter, toServer: true)
            }
        default:
            answerExchange(waiter, .failed(requestID: waiter.requestID, code: .badQuery, reason: "not simulated"))
        }
    }

    func exchangeReceiveFromArbiter(_ event: ArbiterMessage) throws {
        guard book != nil else { return }
        switch event {
        case .transactionReceipt(let relay, let hash, let height, let index, _):
            try checkReceipt(hash, height: height, index: index, at: .exchange)
            guard let (expected, waiter) = relays.removeValue(forKey: relay) else { return }
            guard expected == hash else { throw fail("receipts-name-their-transaction", "relay \(relay)") }
            if let known = book!.committed(hash, height: height, index: index, waiter: waiter) {
                answerOrder(waiter, hash: hash, known)
            }
        case .transactionRejected(let relay, let hash, let code, let reason):
            guard let (_, waiter) = relays.removeValue(forKey: relay) else { return }
            book!.refused(hash)
            answerOrder(waiter, hash: hash, .failure(Rejection(code, reason)))
        case .blockCommitted, .transactionCommitted:
            let block: Block?
            do { block = try blockStream.take(event) } catch {
                throw fail("block-stream", "the exchange got a broken block stream: \(error)")
            }
            guard let block else { return }
            let settled: [(FillWaiter, OrderFill)]
            do { settled = try book!.follow(block) } catch {
                throw fail("replicas-agree", "the exchange cannot follow block \(block.header.height): \(error)")
            }
            guard book!.ledger.state.digest == oracleDigests[block.header.height] else {
                throw fail("replicas-agree", "the exchange's state after block \(block.header.height) differs")
            }
            for (waiter, fill) in settled { answerOrder(waiter, hash: fill.hash, .success(fill)) }
        default:
            throw fail("protocol", "the exchange got \(event.type) from the arbiter")
        }
    }

    func answerOrder(_ waiter: FillWaiter, hash: Digest32, _ result: Result<OrderFill, Rejection>) {
        switch result {
        case .success(let fill): answerExchange(waiter, .orderFilled(requestID: waiter.requestID, fill: fill))
        case .failure(let rejection):
            answerExchange(
                waiter,
                .orderRejected(requestID: waiter.requestID, hash: hash, code: rejection.code, reason: rejection.reason))
        }
    }

    func answerExchange(_ waiter: FillWaiter, _ message: ExchangeMessage) {
        guard links[waiter.link].up, links[waiter.link].epoch == waiter.epoch else {
            report.messagesLost += 1
            return
        }
        send(.exchange(message), on: waiter.link, toServer: false)
    }

    // MARK: Traders

    func link(for path: Path, _ trader: Int) -> Int {
        path == .arbiter ? arbiterLink(trader) : exchangeLink(trader)
    }

    func traderAct(_ index: Int) throws {
        guard traders[index].pending == nil, traders[index].resync == nil, traders[index].remaining > 0 else { return }
        let trader = traders[index]
        let chainID = world.genesis.chainID
        let other = world.traders[(index + 1 + random.index(below: traders.count - 1)) % traders.count].publicKey
        let licence = world.licence
        let far: UInt64 = .max
        var operation: LedgerOperation
        var path = Path.exchange
        var label: String
        let roll = random.next(in: 0...99)
        switch roll {
        case 0..<40:
            operation = .transfer(token: World.stablecoin, to: other, amount: UInt128(random.next(in: 1...1_000_000)))
            path = .arbiter
            label = "transfer"
        case 40..<50:
            operation = .transfer(token: licence, to: other, amount: UInt128(random.next(in: 1...1_000)))
            path = .arbiter
            label = "licence transfer"
        case 50..<75:
            let tight = random.chance(permille: 100)
            operation = .swapExactIn(
                token: licence, side: .buy, amountIn: UInt128(random.next(in: 100_000...50_000_000)),
                minimumOut: tight ? 1_000_000_000_000 : 0, deadlineMilliseconds: far)
            label = tight ? "buy with an unreachable limit" : "buy"
        default:
            let late = random.chance(permille: 50)
            operation = .swapExactIn(
                token: licence, side: .sell, amountIn: UInt128(random.next(in: 1_000...100_000)), minimumOut: 0,
                deadlineMilliseconds: late ? World.genesisTime : far)
            label = late ? "sell past its deadline" : "sell"
        }
        var transaction = try Transaction(
            signedBy: trader.key, chainID: chainID, sequence: trader.sequence, operation: operation)
        var bytes = transaction.encoded
        var hostile = false
        if configuration.hostileTransactions && random.chance(permille: 80) {
            hostile = true
            if random.chance(permille: 500) {
                bytes[bytes.count - 1 - random.index(below: 64)] ^= 0x01  // a forged signature
                label = "forged " + label
            } else {
                transaction = try Transaction(
                    signedBy: trader.key, chainID: Blake2b.hash256([UInt8]("another chain".utf8)),
                    sequence: trader.sequence, operation: operation)
                bytes = transaction.encoded
                label = "other-chain " + label
            }
        }
        let hash = Blake2b.hash256(bytes)
        if hostile { hostileHashes.insert(hash) }
        traders[index].pending = Pending(bytes: bytes, hash: hash, path: path, label: label, hostile: hostile)
        trace("trader\(index) sends \(label) (sequence \(trader.sequence))")
        try sendPending(index)
    }

    func sendPending(_ index: Int) throws {
        guard let pending = traders[index].pending else { return }
        schedule(.traderRetry(index, attempt: pending.attempts), after: milliseconds(150...250))
        let link = link(for: pending.path, index)
        guard links[link].up else { return }  // sent again when the session is back
        let copies = faultsActive && configuration.duplicates && random.chance(permille: 100) ? 2 : 1
        if copies == 2 { report.duplicatesSent += 1 }
        for _ in 0..<copies {
            let requestID = traders[index].nextRequestID
            traders[index].nextRequestID += 1
            traders[index].pending?.requestIDs.insert(requestID)
            switch pending.path {
            case .arbiter:
                send(
                    .arbiter(.submitTransaction(requestID: requestID, transaction: pending.bytes)), on: link,
                    toServer: true)
            case .exchange:
                send(
                    .exchange(.submitOrder(requestID: requestID, transaction: pending.bytes)), on: link, toServer: true)
            }
        }
    }

    func traderReceive(_ index: Int, arbiter answer: ArbiterMessage) throws {
        switch answer {
        case .transactionReceipt(let requestID, let hash, let height, let index2, _):
            try checkReceipt(hash, height: height, index: index2, at: .trader(index))
            report.receipts += 1
            try resolve(index, requestID: requestID, hash: hash, committed: true, code: nil)
        case .transactionRejected(let requestID, let hash, let code, _):
            try resolve(index, requestID: requestID, hash: hash, committed: false, code: code)
        case .stateAnswer(let requestID, let key, let value):
            guard traders[index].resync == requestID else { return }
            let rows = value.map { [StateRow(key: key, value: $0)] } ?? []
            let state = try LedgerState(rows: rows)
            traders[index].sequence = state.accounts[traders[index].key.publicKey]?.nextSequence ?? 0
            traders[index].resync = nil
            trace("trader\(index) resumes at sequence \(traders[index].sequence)")
            schedule(.traderWake(index), after: milliseconds(1...5))
        default:
            throw fail("protocol", "trader\(index) got \(answer.type) from the arbiter")
        }
    }

    func traderReceive(_ index: Int, exchange answer: ExchangeMessage) throws {
        switch answer {
        case .orderFilled(let requestID, let fill):
            try checkReceipt(fill.hash, height: fill.height, index: fill.index, at: .trader(index))
            guard let expected = oracleFills[fill.hash], expected.licence == fill.licence,
                expected.stablecoin == fill.stablecoin, expected.shares == fill.shares
            else {
                throw fail("fills-match-the-chain", "trader\(index)'s fill for \(fill.hash) is not what the block did")
            }
            report.fills += 1
            try resolve(index, requestID: requestID, hash: fill.hash, committed: true, code: nil)
        case .orderRejected(let requestID, let hash, let code, _):
            try resolve(index, requestID: requestID, hash: hash, committed: false, code: code)
        default:
            throw fail("protocol", "trader\(index) got \(answer.type) from the exchange")
        }
    }

    /// An answer to one of the pending transaction's copies settles it; answers that only say
    /// "try again later" leave it to the retry timer.
    func resolve(_ index: Int, requestID: UInt64, hash: Digest32, committed: Bool, code: ErrorCode?) throws {
        guard let pending = traders[index].pending, pending.requestIDs.contains(requestID) else { return }
        guard hash == pending.hash else {
            throw fail(
                "answers-name-their-transaction", "trader\(index) sent \(pending.hash), was answered about \(hash)")
        }
        if let code, code == .arbiterBusy || code == .exchangeUnavailable {
            trace("trader\(index): \(pending.label) \(code.name), will retry")
            return
        }
        traders[index].pending = nil
        traders[index].remaining -= 1
        if committed {
            if pending.hostile { throw fail("only-valid-transactions-commit", "\(pending.label) was accepted") }
            traders[index].sequence += 1
            trace("trader\(index): \(pending.label) committed")
        } else {
            report.rejections += 1
            trace("trader\(index): \(pending.label) rejected, \(code?.name ?? "?")")
            if code == .sequenceReused || code == .sequenceAhead {
                // A copy of an earlier transaction committed after all: read the account again.
                let requestID = traders[index].nextRequestID
                traders[index].nextRequestID += 1
                traders[index].resync = requestID
                let link = arbiterLink(index)
                if links[link].up {
                    send(
                        .arbiter(
                            .getState(requestID: requestID, key: StateKey.account(traders[index].key.publicKey).bytes)),
                        on: link, toServer: true)
                }
                return
            }
        }
        schedule(.traderWake(index), after: milliseconds(1...20))
    }
}
