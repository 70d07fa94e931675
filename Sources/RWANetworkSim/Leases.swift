import RWAChannel
import RWACrypto
import RWALedger
import RWAStore
import RWAWire

/// Leasing in the simulation: the lessor owns the second licence, and each lessee opens one
/// channel with it and pays `paymentsPerLease` times. An even lessee then closes cooperatively;
/// an odd one disputes the way it happens in practice: its store comes back from a backup taken
/// halfway, and it registers that stale state on the chain; the lessor, following the chain,
/// challenges with its newer state, and the lessee settles after the challenge period. Both run
/// the real `LeaseChannel` cores and keep their states in an `InMemoryChannelStore` whose writes
/// take simulated time and are lost in a crash, while the store itself survives. Checked: a state
/// either side acknowledged (the lessee's update done, the lessor's countersignature sent) is
/// never lost across a crash; the two sides end on the same state; no stale registration wins;
/// the chain settles each channel with the latest state's payment and returns the rest of the
/// deposit; and the licence's rent adds up (`checkRent`).
extension Simulation {
    enum LeasePhase: Equatable, CustomStringConvertible {
        /// Asked the lessor to accept the terms.
        case asking
        /// Submitted the open (with both signatures).
        case opening
        /// Paying, one update at a time.
        case paying
        /// Proposed (or agreed) the final state; submitting the close.
        case closing
        /// Registered a stale state from its backup; waiting to see it on the chain.
        case disputing
        /// The registration is on the chain; settling once the challenge period is over.
        case settling
        case closed

        var description: String {
            switch self {
            case .asking: return "asking"
            case .opening: return "opening"
            case .paying: return "paying"
            case .closing: return "closing"
            case .disputing: return "disputing"
            case .settling: return "settling"
            case .closed: return "closed"
            }
        }
    }

    struct LesseeNode {
        let key: SigningKeyPair
        /// Payments proposed, done or not: bounds the retries of a lessee whose payments keep failing.
        var attempts = 0
        var store = InMemoryChannelStore()
        var core: LeaseChannel?
        var terms: LeaseTerms?
        var phase = LeasePhase.asking
        var up = true
        var incarnation = 0
        /// A transaction (open or close) in flight to the arbiter, sent again until answered.
        var submission: (bytes: [UInt8], hash: Digest32, requestIDs: Set<UInt64>, attempts: Int)?
        var nextRequestID: UInt64 = 1
        /// The highest nonce this lessee's caller was told is done.
        var acknowledged: UInt64 = 0
        var proposing = false
        /// A copy of the store taken halfway through the payments (a disputing lessee's backup).
        var backup: InMemoryChannelStore?
        /// The nonce the stale registration carried.
        var registeredNonce: UInt64?
    }

    struct LessorNode {
        var store = InMemoryChannelStore()
        var cores: [Digest32: LeaseChannel] = [:]
        var up = true
        var incarnation = 0
        /// The highest nonce of each channel the lessor countersigned.
        var acknowledged: [Digest32: UInt64] = [:]
        /// The challenge in flight to the arbiter, sent again until answered, and those waiting.
        var submission: (bytes: [UInt8], hash: Digest32, requestIDs: Set<UInt64>, attempts: Int)?
        var queue: [LedgerOperation] = []
        var nextRequestID: UInt64 = 1
    }

    var lessorKey: SigningKeyPair { world.lessor }
    /// Odd lessees dispute from a backup instead of closing cooperatively.
    func disputes(_ lessee: Int) -> Bool { lessee % 2 == 1 }
    func leaseArbiterLink(_ lessee: Int) -> Int { leaseLinkBase + 2 * lessee }
    func leaseSessionLink(_ lessee: Int) -> Int { leaseLinkBase + 2 * lessee + 1 }

    func startLeases() {
        schedule(.connect(link: lessorArbiterLink), after: milliseconds(0...2))
        for index in lessees.indices {
            schedule(.connect(link: leaseArbiterLink(index)), after: milliseconds(0...2))
            schedule(.connect(link: leaseSessionLink(index)), after: milliseconds(0...2))
            schedule(.leaseAct(index), after: milliseconds(3...10))
        }
    }

    // MARK: Carrying out the cores' actions

    /// Writes take simulated time; the core hears of them when they are done.
    private func store(_ state: CoSignedState, at node: Node) {
        let incarnation: Int
        switch node {
        case .lessor: incarnation = lessor.incarnation
        case .lessee(let index): incarnation = lessees[index].incarnation
        case .arbiter, .exchange, .trader: return
        }
        schedule(.leaseStored(node: node, incarnation: incarnation, state: state), after: milliseconds(0...2) + 100_000)
        if configuration.mutation == .acknowledgeBeforeStoring {
            // The planted bug: the core hears "stored" before the write is done.
            let id = state.state.channelID
            switch node {
            case .lessor:
                if let actions = lessor.cores[id]?.persisted(nonce: state.state.nonce) {
                    try? performLessor(actions, channel: id)
                }
            case .lessee(let index):
                if let actions = lessees[index].core?.persisted(nonce: state.state.nonce) {
                    try? performLessee(index, actions)
                }
            case .arbiter, .exchange, .trader:
                break
            }
        }
    }

    func leaseStored(_ node: Node, incarnation: Int, _ state: CoSignedState) throws {
        let id = state.state.channelID
        switch node {
        case .lessor:
            guard lessor.up, lessor.incarnation == incarnation, lessor.cores[id] != nil else { return }
            try lessor.store.saveState(state)
            try performLessor(lessor.cores[id]!.persisted(nonce: state.state.nonce), channel: id)
        case .lessee(let index):
            guard lessees[index].up, lessees[index].incarnation == incarnation, lessees[index].core != nil else {
                return
            }
            try lessees[index].store.saveState(state)
            try performLessee(index, lessees[index].core!.persisted(nonce: state.state.nonce))
        case .arbiter, .exchange, .trader:
            return
        }
    }

    private func performLessor(_ actions: [LeaseChannel.Action], channel id: Digest32) throws {
        guard let core = lessor.cores[id] else { return }
        let lessee = lessees.firstIndex { $0.key.publicKey == core.terms.lessee }!
        for action in actions {
            switch action {
            case .send(let message):
                if case .countersign(_, _, let nonce, _) = message {
                    lessor.acknowledged[id] = max(lessor.acknowledged[id] ?? 0, nonce)
                }
                send(.lease(message), on: leaseSessionLink(lessee), toServer: false)
            case .persist(let state):
                store(state, at: .lessor)
            case .challenge(let state):
                trace("lessor challenges \(id) with state \(state.state.nonce)")
                try lessorSubmit(.challenge(state))
            case .grant, .revoke, .settled, .refused, .rejectedPeer, .closeCooperatively, .register:
                trace("lessor: \(action)".prefix(120).description)
            }
        }
    }

    private func performLessee(_ index: Int, _ actions: [LeaseChannel.Action]) throws {
        for action in actions {
            switch action {
            case .send(let message):
                send(.lease(message), on: leaseSessionLink(index), toServer: true)
            case .persist(let state):
                store(state, at: .lessee(index))
                // Countersigned: the next payment goes while this state is being stored.
                proposeNextWhenFree(index)
            case .settled(let nonce):
                lessees[index].acknowledged = max(lessees[index].acknowledged, nonce)
                trace("lessee\(index): state \(nonce) done")
                proposeNextWhenFree(index)
            case .refused(let rejection):
                lessees[index].proposing = false
                // A final state that was refused or superseded is proposed again.
                if lessees[index].phase == .closing && lessees[index].submission == nil {
                    lessees[index].phase = .paying
                }
                trace("lessee\(index): refused \(rejection.code.name)")
                schedule(.leaseAct(index), after: milliseconds(5...20))
            case .closeCooperatively(let state):
                guard [.paying, .closing].contains(lessees[index].phase) else { break }
                lessees[index].phase = .closing
                if lessees[index].submission == nil { try submit(index, .closeChannel(state)) }
            case .grant, .revoke, .rejectedPeer, .register, .challenge:
                break
            }
        }
    }

    /// Once the lessee's proposal is countersigned (its state stored or still being stored), the
    /// next payment is scheduled: payments pipeline with the proposer's stores.
    private func proposeNextWhenFree(_ index: Int) {
        guard lessees[index].proposing, lessees[index].core?.isBusy == false else { return }
        lessees[index].proposing = false
        if lessees[index].phase == .paying { schedule(.leaseAct(index), after: milliseconds(1...10)) }
    }

    // MARK: The lessee

    func lesseeAct(_ index: Int) throws {
        guard lessees[index].up else { return }
        switch lessees[index].phase {
        case .asking:
            let terms = LeaseTerms(
                chainID: world.genesis.chainID, lessor: lessorKey.publicKey, lessee: lessees[index].key.publicKey,
                licence: world.leaseLicence, firstSlice: UInt8(60 + index), sliceCount: 1,
                startSeconds: World.genesisTime / 1000 + 3_600, hours: 100, periodSeconds: World.periodSeconds,
                ratePerSliceHour: 100, deposit: 10_000, paymentIncrement: 100, challengePeriodMilliseconds: 10_000,
                nonce: UInt64(index))
            lessees[index].terms = terms
            send(
                .lease(LeaseChannel.openRequest(terms, lessee: lessees[index].key, requestID: 1)),
                on: leaseSessionLink(index), toServer: true)
            schedule(.leaseRetry(index, attempt: -1), after: milliseconds(150...250))
        case .paying:
            guard !lessees[index].proposing, let core = lessees[index].core else { return }
            // Payments count once co-signed and stored: one lost with a crash is made again, up
            // to twice as many attempts as payments (a shell that loses states may never get there).
            let made = Int(core.newest.paid / 100)
            let done =
                made >= configuration.paymentsPerLease || lessees[index].attempts >= 2 * configuration.paymentsPerLease
            if disputes(index) && made == configuration.paymentsPerLease / 2 && lessees[index].backup == nil {
                lessees[index].backup = try copy(lessees[index].store)
            }
            if disputes(index) && done, let backup = lessees[index].backup {
                try disputeFromBackup(index, backup)
                return
            }
            if done || core.newest.paid >= lessees[index].terms!.deposit {
                lessees[index].proposing = true
                lessees[index].phase = .closing
                trace("lessee\(index) proposes the final state")
                try performLessee(index, lessees[index].core!.proposeFinal())
                return
            }
            lessees[index].attempts += 1
            lessees[index].proposing = true
            try performLessee(index, lessees[index].core!.pay(100))
        case .settling:
            guard lessees[index].submission == nil, let terms = lessees[index].terms else { return }
            try submit(index, .settleChannel(terms.channelID))
        case .opening, .closing, .disputing, .closed:
            break
        }
    }

    /// The operator restores the store from the backup and registers the state it holds.
    private func disputeFromBackup(_ index: Int, _ backup: InMemoryChannelStore) throws {
        guard let stored = try backup.channels().first else { return }
        let stale = try backup.latestState(of: stored.channelID)
        lessees[index].store = try copy(backup)
        // Writes still in flight were to the store the backup replaced: they are lost with it.
        lessees[index].incarnation += 1
        lessees[index].core = LeaseChannel(role: .lessee, terms: stored.terms, key: lessees[index].key, latest: stale)
        // Restoring an old backup is the operator's act: what it acknowledged since is gone on purpose.
        lessees[index].acknowledged = stale?.state.nonce ?? 0
        lessees[index].registeredNonce = stale?.state.nonce ?? 0
        lessees[index].phase = .disputing
        trace("lessee\(index) restores its backup and registers state \(stale?.state.nonce ?? 0)")
        try submit(index, .registerState(channel: stored.channelID, state: stale))
    }

    func copy(_ store: InMemoryChannelStore) throws -> InMemoryChannelStore {
        let copy = InMemoryChannelStore()
        for channel in try store.channels() {
            try copy.save(channel)
            if let state = try store.latestState(of: channel.channelID) { try copy.saveState(state) }
        }
        return copy
    }

    /// Sends the pending submission again, or asks the lessor again, until answered.
    func lesseeRetry(_ index: Int, attempt: Int) throws {
        guard lessees[index].up else { return }
        if attempt == -1 {
            if lessees[index].phase == .asking { try lesseeAct(index) }
            return
        }
        guard let submission = lessees[index].submission, submission.attempts == attempt else { return }
        report.retries += 1
        lessees[index].submission?.attempts += 1
        sendSubmission(index)
    }

    private func submit(_ index: Int, _ operation: LedgerOperation) throws {
        let sequence = oracle.state.accounts[lessees[index].key.publicKey]?.nextSequence ?? 0
        // The lessee's only transactions are its open and its close, in that order.
        let transaction = try Transaction(
            signedBy: lessees[index].key, chainID: world.genesis.chainID,
            sequence: operation.tag == 0x40 ? 0 : max(sequence, 1), operation: operation)
        lessees[index].submission = (transaction.encoded, transaction.hash, [], 0)
        trace("lessee\(index) submits \(operation.name)")
        sendSubmission(index)
    }

    private func sendSubmission(_ index: Int) {
        guard let submission = lessees[index].submission else { return }
        schedule(.leaseRetry(index, attempt: submission.attempts), after: milliseconds(150...250))
        let link = leaseArbiterLink(index)
        guard links[link].up else { return }
        let requestID = lessees[index].nextRequestID
        lessees[index].nextRequestID += 1
        lessees[index].submission?.requestIDs.insert(requestID)
        send(
            .arbiter(.submitTransaction(requestID: requestID, transaction: submission.bytes)), on: link, toServer: true)
    }

    func lesseeReceive(_ index: Int, arbiter answer: ArbiterMessage) throws {
        guard lessees[index].up, let submission = lessees[index].submission else { return }
        switch answer {
        case .transactionReceipt(let requestID, let hash, let height, let position, _):
            try checkReceipt(hash, height: height, index: position, at: .lessee(index))
            guard submission.requestIDs.contains(requestID) else { return }
            lessees[index].submission = nil
            switch lessees[index].phase {
            case .opening:
                var stored = try lessees[index].store.channels().first!
                stored.status = .open
                try lessees[index].store.save(stored)
                lessees[index].core = LeaseChannel(role: .lessee, terms: stored.terms, key: lessees[index].key)
                lessees[index].phase = .paying
                trace("lessee\(index): open committed in block \(height)")
                try performLessee(index, lessees[index].core!.reconnected())
                schedule(.leaseAct(index), after: milliseconds(1...5))
            case .closing, .settling:
                try checkSettledLease(index)
                lessees[index].phase = .closed
                var stored = try lessees[index].store.channels().first!
                stored.status = .closed
                try lessees[index].store.save(stored)
                trace("lessee\(index): closed in block \(height)")
            case .disputing:
                var stored = try lessees[index].store.channels().first!
                stored.status = .closing
                try lessees[index].store.save(stored)
                lessees[index].phase = .settling
                trace("lessee\(index): registration in block \(height)")
                schedule(.leaseAct(index), after: milliseconds(10_000...10_500))
            case .asking, .paying, .closed:
                break
            }
        case .transactionRejected(let requestID, _, let code, let reason):
            guard submission.requestIDs.contains(requestID), code != .arbiterBusy else { return }
            if code == .challengePeriodRunning && lessees[index].phase == .settling {
                lessees[index].submission = nil
                schedule(.leaseAct(index), after: milliseconds(500...1_000))
                return
            }
            if code == .channelFinal && lessees[index].phase == .closing {
                // Settled already (a close sent again after a crash): check it as closed.
                lessees[index].submission = nil
                try checkSettledLease(index)
                lessees[index].phase = .closed
                return
            }
            throw fail(
                "leases-settle",
                "lessee\(index)'s \(lessees[index].phase) transaction was refused: \(code.name): \(reason)")
        default:
            return
        }
    }

    func lesseeReceive(_ index: Int, _ message: LeaseMessage) throws {
        guard lessees[index].up else { return }
        switch message {
        case .openAccept, .openRefused:
            guard lessees[index].phase == .asking, let terms = lessees[index].terms else { return }
            switch LeaseChannel.checkAcceptance(terms, message) {
            case .failure(let rejection):
                throw fail("leases-settle", "lessee\(index)'s open was refused: \(rejection)")
            case .success(let lessorSignature):
                let lesseeSignature = lessees[index].key.sign(terms.encoded, domain: terms.signatureDomain)
                try lessees[index].store.save(
                    StoredChannel(
                        role: .lessee, terms: terms, lessorSignature: lessorSignature, lesseeSignature: lesseeSignature)
                )
                lessees[index].phase = .opening
                try submit(
                    index,
                    .openChannel(terms: terms, lessorSignature: lessorSignature, lesseeSignature: lesseeSignature))
            }
        default:
            guard lessees[index].core != nil else { return }
            try performLessee(index, lessees[index].core!.receive(message))
        }
    }

    func leaseConnected(_ index: Int, link: Int) throws {
        guard lessees[index].up else { return }
        if link == leaseArbiterLink(index) {
            sendSubmission(index)
        } else if let core = lessees[index].core {
            try performLessee(index, core.reconnected())
        }
        // The lessor says which state it holds too.
        if link == leaseSessionLink(index), lessor.up, let core = lessees[index].core,
            let theirs = lessor.cores[core.channelID]
        {
            try performLessor(theirs.reconnected(), channel: core.channelID)
        }
    }

    // MARK: The lessor

    /// Queues a transaction of the lessor's (a challenge); they go one at a time, each signed
    /// when its turn comes, with the next sequence number the chain expects.
    func lessorSubmit(_ operation: LedgerOperation) throws {
        lessor.queue.append(operation)
        if lessor.submission == nil { try nextLessorSubmission() }
    }

    private func nextLessorSubmission() throws {
        guard lessor.submission == nil, !lessor.queue.isEmpty else { return }
        let operation = lessor.queue.removeFirst()
        let transaction = try Transaction(
            signedBy: lessorKey, chainID: world.genesis.chainID,
            sequence: oracle.state.accounts[lessorKey.publicKey]?.nextSequence ?? 0, operation: operation)
        lessor.submission = (transaction.encoded, transaction.hash, [], 0)
        sendLessorSubmission()
    }

    func sendLessorSubmission() {
        guard let submission = lessor.submission else { return }
        schedule(.lessorRetry(attempt: submission.attempts), after: milliseconds(150...250))
        guard lessor.up, links[lessorArbiterLink].up else { return }
        let requestID = lessor.nextRequestID
        lessor.nextRequestID += 1
        lessor.submission?.requestIDs.insert(requestID)
        send(
            .arbiter(.submitTransaction(requestID: requestID, transaction: submission.bytes)), on: lessorArbiterLink,
            toServer: true)
    }

    func lessorRetry(attempt: Int) {
        guard lessor.up, let submission = lessor.submission, submission.attempts == attempt else { return }
        report.retries += 1
        lessor.submission?.attempts += 1
        sendLessorSubmission()
    }

    func lessorReceive(arbiter answer: ArbiterMessage) throws {
        guard lessor.up, let submission = lessor.submission else { return }
        switch answer {
        case .transactionReceipt(let requestID, let hash, let height, let position, _):
            try checkReceipt(hash, height: height, index: position, at: .lessor)
            guard submission.requestIDs.contains(requestID) else { return }
            trace("lessor: challenge in block \(height)")
        case .transactionRejected(let requestID, _, let code, let reason):
            guard submission.requestIDs.contains(requestID), code != .arbiterBusy else { return }
            // Another challenge of the same state got there first: nothing to do.
            guard code == .staleState else {
                throw fail("no-stale-registration-wins", "the lessor's challenge was refused: \(code.name): \(reason)")
            }
        default:
            return
        }
        lessor.submission = nil
        try nextLessorSubmission()
    }

    /// The lessor follows the chain (the durable blocks, as the oracle replays them) and answers a
    /// registration of an older state of one of its channels with its newer one.
    func leaseFollow(_ block: Block) throws {
        guard lessor.up, configuration.mutation != .ignoreStaleRegistrations else { return }
        for committed in block.transactions {
            guard let transaction = try? Transaction(decoding: committed.bytes),
                transaction.signer != lessorKey.publicKey, let id = transaction.operation.channelID,
                lessor.cores[id] != nil
            else { continue }
            switch transaction.operation {
            case .registerState(_, let state):
                try performLessor(lessor.cores[id]!.registered(nonce: state?.state.nonce ?? 0), channel: id)
            case .challenge(let state):
                try performLessor(lessor.cores[id]!.registered(nonce: state.state.nonce), channel: id)
            default:
                break
            }
        }
    }

    func lessorReceive(_ message: LeaseMessage, link: Int) throws {
        guard lessor.up else { return }
        switch message {
        case .openRequest(_, let terms, _):
            guard lessor.cores[terms.channelID] == nil else {
                // Asked again (the acceptance was lost): the same answer.
                if let stored = try lessor.store.channels().first(where: { $0.channelID == terms.channelID }) {
                    send(
                        .lease(
                            .openAccept(
                                requestID: 1, channelID: terms.channelID, lessorSignature: stored.lessorSignature)),
                        on: link, toServer: false)
                }
                return
            }
            switch LeaseChannel.answerOpen(message, lessor: lessorKey, offer: { _ in nil }) {
            case .success(let accepted):
                try lessor.store.save(
                    StoredChannel(
                        role: .lessor, terms: terms, lessorSignature: accepted.lessorSignature,
                        lesseeSignature: accepted.lesseeSignature, status: .open))
                lessor.cores[terms.channelID] = LeaseChannel(role: .lessor, terms: terms, key: lessorKey)
                send(.lease(accepted.answer), on: link, toServer: false)
            case .failure(let rejection):
                throw fail("leases-settle", "the lessor refused valid terms: \(rejection)")
            }
        default:
            guard let id = message.channelID, lessor.cores[id] != nil else { return }
            try performLessor(lessor.cores[id]!.receive(message), channel: id)
        }
    }

    // MARK: Crashes

    func crashLeaseNode(_ node: Node) throws {
        switch node {
        case .lessor:
            report.leaseCrashes += 1
            lessor.up = false
            lessor.incarnation += 1
            lessor.cores = [:]
            for index in links.indices where links[index].server == .lessor || links[index].client == .lessor {
                try drop(index)
            }
            schedule(.restart(.lessor), after: milliseconds(5...40))
        case .lessee(let index):
            report.leaseCrashes += 1
            lessees[index].up = false
            lessees[index].incarnation += 1
            lessees[index].core = nil
            lessees[index].proposing = false
            for link in [leaseArbiterLink(index), leaseSessionLink(index)] { try drop(link) }
            schedule(.restart(.lessee(index)), after: milliseconds(5...40))
        case .arbiter, .exchange, .trader:
            return
        }
    }

    func restartLessor() throws {
        lessor.up = true
        for stored in try lessor.store.channels() {
            let latest = try lessor.store.latestState(of: stored.channelID)
            if (latest?.state.nonce ?? 0) < (lessor.acknowledged[stored.channelID] ?? 0) {
                throw fail(
                    "acknowledged-states-survive",
                    "the lessor countersigned state \(lessor.acknowledged[stored.channelID]!) of \(stored.channelID) "
                        + "but restarted with \(latest?.state.nonce ?? 0)")
            }
            lessor.cores[stored.channelID] = LeaseChannel(
                role: .lessor, terms: stored.terms, key: lessorKey, latest: latest)
        }
        trace("lessor restarts with \(lessor.cores.count) channels")
        reconnect(lessorArbiterLink)
        // Reading the chain again, it answers any registration of an older state of its channels.
        for id in lessor.cores.keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) {
            if let record = oracle.state.channels[id], record.status == .disputed,
                record.nonce < lessor.cores[id]!.state.nonce, configuration.mutation != .ignoreStaleRegistrations
            {
                try performLessor(lessor.cores[id]!.registered(nonce: record.nonce), channel: id)
            }
        }
    }

    func restartLessee(_ index: Int) throws {
        lessees[index].up = true
        if let stored = try lessees[index].store.channels().first {
            let latest = try lessees[index].store.latestState(of: stored.channelID)
            if (latest?.state.nonce ?? 0) < lessees[index].acknowledged {
                throw fail(
                    "acknowledged-states-survive",
                    "lessee\(index) was told state \(lessees[index].acknowledged) is done but restarted with "
                        + "\(latest?.state.nonce ?? 0)")
            }
            switch stored.status {
            case .accepted:
                lessees[index].phase = .opening  // the open may or may not have committed: send it again
                try submit(
                    index,
                    .openChannel(
                        terms: stored.terms, lessorSignature: stored.lessorSignature,
                        lesseeSignature: stored.lesseeSignature))
            case .open, .closing:
                lessees[index].core = LeaseChannel(
                    role: .lessee, terms: stored.terms, key: lessees[index].key, latest: latest)
                if [.disputing, .settling].contains(lessees[index].phase) {
                    // The registration is sent again until the chain has it; then it settles.
                    if oracle.state.channels[stored.channelID]?.status == .disputed {
                        lessees[index].submission = nil
                        lessees[index].phase = .settling
                        schedule(.leaseAct(index), after: milliseconds(500...1_000))
                    }
                } else if lessees[index].phase == .closing, let final = latest, final.state.final {
                    try submit(index, .closeChannel(final))  // the close may not have reached the chain
                } else {
                    lessees[index].phase = .paying
                    lessees[index].proposing = false
                    schedule(.leaseAct(index), after: milliseconds(1...5))
                }
            case .closed:
                lessees[index].phase = .closed
            }
        } else {
            lessees[index].phase = .asking
            schedule(.leaseAct(index), after: milliseconds(1...5))
        }
        for link in [leaseArbiterLink(index), leaseSessionLink(index)] { reconnect(link) }
        trace("lessee\(index) restarts, \(lessees[index].phase)")
    }

    // MARK: Settlement

    /// The chain settled the lessee's channel with its final state's payment, and both sides hold
    /// that state.
    func checkSettledLease(_ index: Int) throws {
        guard let terms = try lessees[index].terms ?? lessees[index].store.channels().first?.terms else { return }
        let id = terms.channelID
        guard let record = oracle.state.channels[id], record.status == .settled else {
            throw fail("leases-settle", "lessee\(index)'s channel is not settled on the chain")
        }
        let lesseeLatest = try lessees[index].store.latestState(of: id)
        let lessorLatest = try lessor.store.latestState(of: id)
        if let registered = lessees[index].registeredNonce {
            // Settled after a dispute: on the lessor's latest state, never the stale one.
            guard let lessorLatest, record.nonce == lessorLatest.state.nonce, record.paid == lessorLatest.state.paid
            else {
                throw fail(
                    "no-stale-registration-wins",
                    "lessee\(index) registered state \(registered); the chain settled state \(record.nonce) "
                        + "(\(record.paid) paid), the lessor holds \(lessorLatest.map { "\($0.state.nonce)" } ?? "none")"
                )
            }
            report.leasesSettled += 1
            report.disputesWon += lessorLatest.state.nonce > registered ? 1 : 0
            return
        }
        guard let lesseeLatest, lesseeLatest.state.final, lesseeLatest.state.paid == record.paid else {
            throw fail(
                "leases-settle",
                "lessee\(index)'s channel settled with \(record.paid) paid; its latest state says "
                    + "\(lesseeLatest.map { "\($0.state.paid)" } ?? "nothing")")
        }
        if let lessorLatest, lessorLatest.state.nonce > lesseeLatest.state.nonce {
            throw fail("leases-settle", "the lessor holds a newer state than the one lessee\(index) settled with")
        }
        report.leasesSettled += 1
    }

    /// The leased licence's rent adds up: everything its settled channels paid was distributed;
    /// what is still in the rent account is what its holders can claim (the pool's share went
    /// into its reserve at each settlement), give or take less than one base unit per holder.
    func checkRent() throws {
        let licence = world.leaseLicence
        let paid = oracle.state.channels.values.filter { $0.terms.licence == licence && $0.status == .settled }
            .reduce(UInt128(0)) { $0 + $1.paid }
        let distributed = oracle.state.rentIndexes[licence]?.distributed ?? 0
        guard distributed == paid else {
            throw fail("rent-adds-up", "the settled channels paid \(paid), the licence distributed \(distributed)")
        }
        let pool = PoolRecord.account(for: licence, chainID: world.genesis.chainID)
        var owed: UInt128 = 0
        var holders: UInt128 = 0
        for (key, holding) in oracle.state.holdings {
            guard case .holding(licence, let account) = key, holding.balance > 0, account != pool else { continue }
            owed += oracle.rentOwed(token: licence, account: account)
            holders += 1
        }
        let held = oracle.state.holding(
            World.stablecoin, RentIndex.account(for: licence, chainID: world.genesis.chainID)
        )
        .balance
        guard owed <= held, held - owed <= holders else {
            throw fail(
                "rent-adds-up", "the rent account holds \(held); the \(holders) holders are owed \(owed) in all")
        }
        report.rentDistributed = distributed
    }
}
