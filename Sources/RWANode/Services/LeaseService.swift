import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RWAChannel
import RWACrypto
import RWALedger
import RWASession
import RWAStore
import RWAWire

/// A lessor's offers and the leases it has taken on them (`lease_offers`).
public struct LeaseCatalogue: Sendable, Equatable {
    public var offers: [LeaseOffer]
    public var taken: [LeasedRange]

    /// The offer that covers these slices of this licence, if any.
    public func offer(licence: UInt64, firstSlice: UInt8, sliceCount: UInt8) -> LeaseOffer? {
        offers.first { $0.covers(licence: licence, firstSlice: firstSlice, sliceCount: sliceCount) }
    }
}

/// A channel as the daemon reports it.
public struct ChannelSummary: Sendable, Equatable {
    public var channelID: Digest32
    public var role: LeaseRole
    public var status: StoredChannel.Status
    public var terms: LeaseTerms
    public var state: ChannelState
}

/// The lease channel daemon's shell (`rwa-lessor run`, `rwa-lessee run`): it keeps a pure
/// `LeaseChannel` per channel and carries out its actions: messages to the peer's session, states
/// stored in the `ChannelStore` before the core is told (so nothing countersigned is lost),
/// transactions to the arbiter (open, close, registration, challenge, settlement), grants and
/// revocations for the radio. It follows the chain's blocks to learn when opens commit and to
/// answer a registration of an older state with its newer one. All state lives on one serial
/// queue; the cores decide, this class only carries out.
public final class LeaseService: @unchecked Sendable {
    public let role: LeaseRole
    public let genesis: Genesis
    private let key: SigningKeyPair
    /// This daemon's key.
    public var identity: SigningPublicKey { key.publicKey }
    private let store: any ChannelStore
    private let arbiter: any ArbiterLink
    private let time: any TimeSource
    private let offers: [LeaseOffer]
    /// Lessor: how long after payments stop it proposes the final state, and then registers.
    private let closeGraceSeconds: UInt64
    private let logger: Logger
    private let queue = DispatchQueue(label: "rwanet-lease")
    private let served: ServedSessions
    private let submitter: Submitter

    // Everything below is used on `queue` only.
    private var entries: [Digest32: Entry] = [:]
    private var sessions: [SigningPublicKey: PeerSession] = [:]
    /// Opens asked of a lessor and not answered yet: their terms, the lessor, and who waits.
    private var pendingOpens: [Digest32: PendingAsk<Signature>] = [:]
    /// Offers asked of a lessor and not answered yet, by request id: the lessor, and who waits.
    private var pendingOfferAsks: [UInt64: PendingAsk<LeaseCatalogue>] = [:]
    private var nextOfferAsk: UInt64 = 1
    private var watchers: [UUID: AsyncStream<String>.Continuation] = [:]
    /// Disputed channels and the block time after which they may be settled.
    private var settleAfter: [Digest32: UInt64] = [:]
    /// When each disputed channel's settlement was last submitted (Unix milliseconds).
    private var settleTried: [Digest32: UInt64] = [:]
    private var tipTimeMilliseconds: UInt64 = 0
    private var stopped = false
    /// Each open of ours as committed: its bytes, block header, position and Merkle path.
    private var opens: [Digest32: (transaction: [UInt8], header: BlockHeader, index: UInt32, path: [Digest32])] = [:]
    /// States to store, gathered for the next group commit.
    private var pendingWrites: [(id: Digest32, state: CoSignedState)] = []
    /// Whether a group commit is on `writer` now.
    private var flushing = false
    /// Where group commits run, so the service's queue goes on checking and signing other
    /// channels' updates (and gathering the next group) while the disk flushes this one.
    private let writer = DispatchQueue(label: "rwanet-lease-writer")
    static let settleRetryMilliseconds: UInt64 = 2_000
    /// Messages of one session that may wait for the service's queue before the session is
    /// closed: a few asks (offers, an open) and, per channel with that peer, an update or a
    /// countersignature, a reestablishment and a latest state. A fixed 1,024 let a flood of
    /// requests sent without reading the answers pile up that many per session, whose answers
    /// then held up the event loops for everyone (`rwa-fuzz --pressure unread,forged` against a
    /// lessor: one stall of 200-600 ms after the flood; 93 ms at worst with a bound of 64).
    static let waitingMessagesBase = 64
    static let waitingMessagesPerChannel = 4
    /// Channels with each peer, readable on the sessions' event loops (kept on `queue`).
    private let channelsWithPeer = NIOLockedValueBox<[SigningPublicKey: Int]>([:])

    /// How many of `peer`'s messages may wait for the queue.
    func waitingMessagesMax(from peer: SigningPublicKey) -> Int {
        Self.waitingMessagesBase + Self.waitingMessagesPerChannel * channelsWithPeer.withLockedValue { $0[peer] ?? 0 }
    }
    private let waitingMessages = NIOLockedValueBox<[ObjectIdentifier: Int]>([:])

    /// A class, so that reading a channel's entry on every action copies nothing (a struct of
    /// this size cost a copy of every field per action in the 100-channel profile).
    final class Entry {
        var core: LeaseChannel
        var stored: StoredChannel
        /// The caller whose proposal is in flight (the proposed state; nil if the core made none):
        /// moved to `storing` when that very state goes to the store, resumed by `.refused` if
        /// it is refused or superseded.
        var waiter: (proposed: ChannelState?, continuation: CheckedContinuation<ChannelState, Error>)?
        /// Callers whose proposals were countersigned, by nonce: resumed by `.settled` once this
        /// side has stored the state (the next proposal may be in flight meanwhile).
        var storing: [UInt64: CheckedContinuation<ChannelState, Error>] = [:]
        /// Callers whose update waits for the one in flight to end (one at a time per channel).
        var queued: [QueuedUpdate] = []

        init(core: LeaseChannel, stored: StoredChannel) {
            self.core = core
            self.stored = stored
        }
    }

    /// A question asked of a lessor (an open, its offers): a lessor that never answers fails it
    /// after `peerAnswerMillisecondsMax` rather than holding the caller (and this entry) forever.
    struct PendingAsk<Answer> {
        var terms: LeaseTerms? = nil
        let lessor: SigningPublicKey
        let askedMilliseconds: UInt64
        let waiter: CheckedContinuation<Answer, Error>
    }

    /// How long a lessor has to answer an open or an offers request.
    public static let peerAnswerMillisecondsMax: UInt64 = 10_000

    struct QueuedUpdate {
        let propose: @Sendable (inout LeaseChannel) -> [LeaseChannel.Action]
        let waiter: CheckedContinuation<ChannelState, Error>
    }

    /// Updates of one channel that may wait their turn behind the one in flight.
    static let queuedUpdatesPerChannelMax = 64

    public init(
        role: LeaseRole, key: SigningKeyPair, genesis: Genesis, store: any ChannelStore, arbiter: any ArbiterLink,
        time: any TimeSource = SystemTimeSource(), offers: [LeaseOffer] = [], closeGraceSeconds: UInt64 = 60,
        logger: Logger = Logger(label: "rwanet.lease")
    ) throws {
        self.closeGraceSeconds = closeGraceSeconds
        self.role = role
        self.key = key
        self.genesis = genesis
        self.store = store
        self.arbiter = arbiter
        self.time = time
        self.offers = offers
        self.logger = logger
        self.submitter = Submitter(key: key, arbiter: arbiter)
        self.served = ServedSessions(service: "the \(role.rawValue)")
        // Every channel resumes from the store: its latest co-signed state, or the opening one.
        for stored in try store.channels() {
            let latest = stored.status == .accepted ? nil : try store.latestState(of: stored.channelID)
            setEntry(
                Entry(
                    core: LeaseChannel(
                        role: role, terms: stored.terms, key: key, latest: latest, closeGraceSeconds: closeGraceSeconds),
                    stored: stored),
                for: stored.channelID)
        }
    }

    /// Sets or removes a channel's entry, keeping the count of channels per peer.
    private func setEntry(_ entry: Entry?, for id: Digest32) {
        if let old = entries[id] { channelsWithPeer.withLockedValue { $0[peerOf(old), default: 1] -= 1 } }
        entries[id] = entry
        if let entry { channelsWithPeer.withLockedValue { $0[peerOf(entry), default: 0] += 1 } }
    }

    /// Follows the chain and starts the clock. Returns at once.
    public func start() {
        let blocks = arbiter.subscribe(from: 1)
        Task { [self] in
            do {
                for try await block in blocks { queue.async { self.follow(block) } }
            } catch {
                logger.error("stopped following the chain: \(error)")
            }
        }
        scheduleTick()
    }

    public func stop() {
        queue.sync {
            stopped = true
            for watcher in watchers.values { watcher.finish() }
        }
    }

    private func scheduleTick() {
        queue.asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
            guard !stopped else { return }
            tick()
            scheduleTick()
        }
    }

    // MARK: Sessions

    /// Lessor: serves a lessee's session until it ends.
    public func serve(_ session: PeerSession) {
        served.serve(
            session,
            route: { message in
                if case .lease(let lease) = message { return lease }
                return nil
            },
            handle: { [self] message in
                // A peer's messages wait on the service's queue; one that sends far faster than
                // the service can take them (and than any honest lessee, which waits for each
                // answer) is closed instead of filling memory.
                let id = ObjectIdentifier(session)
                let waiting = waitingMessages.withLockedValue {
                    $0[id, default: 0] += 1
                    return $0[id]!
                }
                let allowed = waitingMessagesMax(from: session.peerIdentity)
                guard waiting <= allowed else {
                    waitingMessages.withLockedValue { $0[id, default: 1] -= 1 }
                    return session.beginClose(
                        reporting: SessionError(.overloaded, "more than \(allowed) messages wait to be handled"))
                }
                queue.async {
                    self.waitingMessages.withLockedValue { $0[id] = ($0[id] ?? 1) > 1 ? $0[id]! - 1 : nil }
                    self.receive(message, from: session)
                }
            },
            started: {
                // Queued before any of the session's messages, and after its outbox exists.
                queue.async { [self] in
                    sessions[session.peerIdentity] = session
                    reconnected(session.peerIdentity)
                }
            },
            ended: { [self] in
                queue.async {
                    if self.sessions[session.peerIdentity] === session { self.sessions[session.peerIdentity] = nil }
                    // An open or offers asked on this session get no answer now.
                    for (id, pending) in self.pendingOpens where pending.lessor == session.peerIdentity {
                        self.pendingOpens[id] = nil
                        pending.waiter.resume(throwing: SessionError(.closed, "the session with the lessor ended"))
                    }
                    for (id, pending) in self.pendingOfferAsks where pending.lessor == session.peerIdentity {
                        self.pendingOfferAsks[id] = nil
                        pending.waiter.resume(throwing: SessionError(.closed, "the session with the lessor ended"))
                    }
                }
            })
    }

    /// Lessee: takes a session with a lessor into use (its inbox is consumed here).
    public func adopt(_ session: PeerSession) {
        serve(session)
    }

    private func send(_ message: LeaseMessage, to peer: SigningPublicKey) {
        guard let session = sessions[peer] else {
            logger.info("no session with \(peer): \(message.type) waits for the reconnection")
            return
        }
        logger.debug("\(message.type) to \(peer)")
        served.send([.lease(message)], to: session)
    }

    private func reconnected(_ peer: SigningPublicKey) {
        for (id, entry) in entries where entry.stored.status == .open && peerOf(entry) == peer {
            perform(entry.core.reconnected(), on: id)
        }
    }

    /// Lessor: one of its own channels, opened on the chain and not closed, that shares a
    /// slice-hour with `terms`. (One only accepted may never open; the ledger judges those, and
    /// leases of the same licence by its other owners.)
    private func overlappingLease(_ terms: LeaseTerms) -> Digest32? {
        entries.values.first { entry in
            let other = entry.stored.terms
            return [.open, .closing].contains(entry.stored.status) && other.licence == terms.licence
                && other.channelID != terms.channelID
                && Int(other.firstSlice) < Int(terms.firstSlice) + Int(terms.sliceCount)
                && Int(terms.firstSlice) < Int(other.firstSlice) + Int(other.sliceCount)
                && other.startSeconds < terms.endSeconds && terms.startSeconds < other.endSeconds
        }?.stored.channelID
    }

    private func peerOf(_ entry: Entry) -> SigningPublicKey {
        role == .lessor ? entry.stored.terms.lessee : entry.stored.terms.lessor
    }

    // MARK: Receiving

    private func receive(_ message: LeaseMessage, from session: PeerSession) {
        switch message {
        case .openRequest(_, let terms, _):
            guard role == .lessor else { return }
            guard terms.lessee == session.peerIdentity else {
                served.send(
                    [
                        .lease(
                            .openRefused(
                                requestID: message.requestID, channelID: terms.channelID, code: .invalidTerms,
                                reason: "the terms name another lessee than this session's"))
                    ],
                    to: session)
                return
            }
            let answer = LeaseChannel.answerOpen(message, lessor: key) { [offers, genesis, self] terms in
                guard terms.periodSeconds == genesis.periodSeconds, terms.chainID == genesis.chainID else {
                    return Rejection(.periodMismatch, "this chain's period is \(genesis.periodSeconds) s")
                }
                guard offers.contains(where: { $0.refusal(terms) == nil }) else {
                    return offers.first.flatMap { $0.refusal(terms) } ?? Rejection(.notOffered, "nothing is offered")
                }
                if let taken = overlappingLease(terms) {
                    return Rejection(.sliceHourTaken, "slice-hours of these are leased by channel \(taken)")
                }
                return nil
            }
            switch answer {
            case .success(let accepted):
                let stored = StoredChannel(
                    role: .lessor, terms: terms, lessorSignature: accepted.lessorSignature,
                    lesseeSignature: accepted.lesseeSignature)
                do {
                    try store.save(stored)
                } catch {
                    logger.error("cannot store channel \(terms.channelID): \(error)")
                    return
                }
                setEntry(
                    Entry(
                        core: LeaseChannel(role: .lessor, terms: terms, key: key, closeGraceSeconds: closeGraceSeconds),
                        stored: stored),
                    for: terms.channelID)
                served.send([.lease(accepted.answer)], to: session)
                event("accepted \(terms.channelID)")
            case .failure(let rejection):
                served.send(
                    [
                        .lease(
                            .openRefused(
                                requestID: message.requestID, channelID: terms.channelID, code: rejection.code,
                                reason: rejection.reason))
                    ],
                    to: session)
            }
        case .openAccept(_, let id, _), .openRefused(_, let id, _, _):
            // Only the lessor asked may answer: any other would fail the open with its forgery.
            guard let pending = pendingOpens[id], let terms = pending.terms, pending.lessor == session.peerIdentity
            else { return }
            pendingOpens[id] = nil
            pending.waiter.resume(with: LeaseChannel.checkAcceptance(terms, message).mapError { $0 as Error })
        case .getOffers(let requestID):
            // A lessee offers nothing: it answers with an empty list.
            let answer = currentCatalogue()
            served.send(
                [.lease(.offers(requestID: requestID, offers: answer.offers, taken: answer.taken))], to: session)
        case .offers(let requestID, let offers, let taken):
            guard let pending = pendingOfferAsks[requestID], pending.lessor == session.peerIdentity else { return }
            pendingOfferAsks[requestID] = nil
            pending.waiter.resume(returning: LeaseCatalogue(offers: offers, taken: taken))
        case .update(_, let state, _):
            receiveOnChannel(message, state.channelID, from: session)
        case .countersign(_, let id, _, _), .updateRefused(_, let id, _, _, _), .reestablish(_, let id, _):
            receiveOnChannel(message, id, from: session)
        case .latestState(_, let state):
            receiveOnChannel(message, state.state.channelID, from: session)
        }
    }

    private func receiveOnChannel(_ message: LeaseMessage, _ id: Digest32, from session: PeerSession) {
        guard let entry = entries[id], peerOf(entry) == session.peerIdentity else {
            served.send(
                [
                    .lease(
                        .updateRefused(
                            requestID: message.requestID, channelID: id, nonce: 0, code: .unknownChannel,
                            reason: "no such channel with you"))
                ],
                to: session)
            return
        }
        logger.debug("channel \(id): \(message.type) from the peer")
        perform(entries[id]!.core.receive(message), on: id)
    }

    // MARK: Carrying out the core's actions

    private func perform(_ actions: [LeaseChannel.Action], on id: Digest32) {
        var queueOfActions = actions
        while !queueOfActions.isEmpty {
            let action = queueOfActions.removeFirst()
            guard let entry = entries[id] else { return }
            switch action {
            case .send(let message):
                send(message, to: peerOf(entry))
            case .persist(let state):
                if let waiter = entry.waiter, waiter.proposed == state.state {
                    entry.storing[state.state.nonce] = waiter.continuation
                    entry.waiter = nil
                }
                // Group commit: every state to store that arrives while the previous group is
                // being written goes into the next SQLite transaction, with one flush to the disk.
                pendingWrites.append((id, state))
                if !flushing { flushWrites() }
            case .grant(let through):
                event("grant \(id) through \(through)")
            case .revoke:
                event("revoke \(id)")
            case .settled(let nonce):
                event("state \(id) \(nonce) paid \(entry.core.state.paid)")
                // Its caller was moved aside when the state went to the store.
                entry.storing.removeValue(forKey: nonce)?.resume(returning: entry.core.state)
            case .rejectedPeer(let rejection):
                logger.info("channel \(id): refused the peer's message: \(rejection)")
            case .refused(let rejection):
                logger.info("channel \(id): \(rejection)")
                entry.waiter?.continuation.resume(throwing: rejection)
                entry.waiter = nil
            case .closeCooperatively(let state):
                mark(id, .closing)
                submit(.closeChannel(state), for: id)
            case .register(let state):
                mark(id, .closing)
                NodeMetrics.disputeSubmitted()
                submit(.registerState(channel: id, state: state), for: id)
            case .challenge(let state):
                NodeMetrics.challengeSubmitted()
                submit(.challenge(state), for: id)
            }
        }
        advanceUpdates(on: id)
    }

    /// Stores every pending state at once on `writer`, then, back on the queue, tells each core
    /// its state is stored and starts the next group if one has gathered.
    private func flushWrites() {
        let batch = pendingWrites
        pendingWrites = []
        guard !batch.isEmpty else { return }
        flushing = true
        writer.async { [self] in
            let result = Result { try store.saveStates(batch.map(\.state)) }
            queue.async { [self] in
                flushing = false
                switch result {
                case .success:
                    for (id, state) in batch {
                        guard let entry = entries[id] else { continue }
                        NodeMetrics.channelUpdated(asLessor: entry.stored.role == .lessor)
                        let actions = entry.core.persisted(nonce: state.state.nonce)
                        perform(actions, on: id)
                    }
                case .failure(let error):
                    // Not stored: no core is told, so nothing depends on these states.
                    logger.error("cannot store \(batch.count) states: \(error)")
                }
                if !flushing { flushWrites() }
            }
        }
    }

    private func mark(_ id: Digest32, _ status: StoredChannel.Status, openHeight: UInt64? = nil) {
        guard let entry = entries[id], entry.stored.status != status || openHeight != nil else { return }
        entry.stored.status = status
        if let openHeight { entry.stored.openHeight = openHeight }
        do { try store.save(entry.stored) } catch { logger.error("cannot store channel \(id): \(error)") }
    }

    private func submit(_ operation: LedgerOperation, for id: Digest32) {
        let submitter = submitter
        Task { [self] in
            do {
                let receipt = try await submitter.submit(operation)
                event("\(operation.name) \(id) committed in block \(receipt.height)")
            } catch {
                logger.warning("\(operation.name) for \(id) failed: \(error)")
                event("\(operation.name) \(id) failed: \(error)")
            }
        }
    }

    private func event(_ line: String) {
        logger.info("\(line)")
        for watcher in watchers.values { watcher.yield(line) }
    }

    // MARK: The chain

    private func follow(_ block: Block) {
        tipTimeMilliseconds = block.header.timeMilliseconds
        for (index, committed) in block.transactions.enumerated() {
            // A settled channel stays settled: replaying the chain after a restart does not
            // reopen it or answer its old registrations again.
            guard let transaction = try? Transaction(decoding: committed.bytes),
                let id = transaction.operation.channelID, let entry = entries[id], entry.stored.status != .closed
            else { continue }
            switch transaction.operation {
            case .openChannel:
                opens[id] = (
                    committed.bytes, block.header, UInt32(index),
                    MerkleTree.path(block.transactions.map(\.hash), index: index)
                )
                mark(id, .open, openHeight: block.header.height)
                if let entry = entries[id], sessions[peerOf(entry)] != nil { perform(entry.core.reconnected(), on: id) }
                event("opened \(id) in block \(block.header.height)")
            case .registerState, .challenge:
                var nonce: UInt64 = 0
                if case .registerState(_, let state) = transaction.operation { nonce = state?.state.nonce ?? 0 }
                if case .challenge(let state) = transaction.operation { nonce = state.state.nonce }
                let terms = entries[id]!.stored.terms
                settleAfter[id] = settleAfter[id] ?? block.header.timeMilliseconds + terms.challengePeriodMilliseconds
                mark(id, .closing)
                event("registered \(id) at nonce \(nonce)")
                if transaction.signer != key.publicKey { perform(entries[id]!.core.registered(nonce: nonce), on: id) }
            case .closeChannel, .settleChannel:
                settleAfter[id] = nil
                settleTried[id] = nil
                mark(id, .closed)
                event("settled \(id)")
            default:
                break
            }
        }
    }

    private func tick() {
        let now = time.unixMilliseconds / 1000
        expireUnansweredAsks()
        for id in entries.keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) {
            guard let entry = entries[id], entry.stored.status == .open else { continue }
            perform(entries[id]!.core.tick(nowSeconds: now), on: id)
        }
        // Settle a disputed channel once its challenge period is over, and again every few
        // seconds until its settlement is seen on the chain: a submission refused as early (block
        // time lags the clock) or lost with the arbiter's session is not the end of it.
        let nowMilliseconds = time.unixMilliseconds
        for (id, deadline) in settleAfter where tipTimeMilliseconds > deadline || nowMilliseconds > deadline {
            if let tried = settleTried[id], nowMilliseconds < tried + Self.settleRetryMilliseconds { continue }
            settleTried[id] = nowMilliseconds
            submit(.settleChannel(id), for: id)
        }
    }

    private func expireUnansweredAsks() {
        let now = time.unixMilliseconds
        func expired<Answer>(_ ask: PendingAsk<Answer>) -> Bool {
            now >= ask.askedMilliseconds + Self.peerAnswerMillisecondsMax
        }
        let failure = SessionError(
            .deliveryFailed, "the lessor did not answer within \(Self.peerAnswerMillisecondsMax / 1000) s")
        for (id, ask) in pendingOpens where expired(ask) {
            pendingOpens[id] = nil
            ask.waiter.resume(throwing: failure)
        }
        for (id, ask) in pendingOfferAsks where expired(ask) {
            pendingOfferAsks[id] = nil
            ask.waiter.resume(throwing: failure)
        }
    }

    // MARK: Commands

    /// Lessor: what `lease_offers` says: its offers, and the leases of its channels opened on the
    /// chain, not yet closed and not yet over (the last-ending first, as many as one answer carries).
    public func catalogue() -> LeaseCatalogue { queue.sync { currentCatalogue() } }

    private func currentCatalogue() -> LeaseCatalogue {
        let now = time.unixMilliseconds / 1000
        let taken = entries.values.map(\.stored).filter {
            [.open, .closing].contains($0.status) && $0.terms.endSeconds > now
        }.sorted {
            $0.terms.endSeconds != $1.terms.endSeconds
                ? $0.terms.endSeconds > $1.terms.endSeconds
                : $0.channelID.bytes.lexicographicallyPrecedes($1.channelID.bytes)
        }
        return LeaseCatalogue(
            offers: Array(offers.prefix(WireLimits.leaseOffersMax)),
            taken: taken.prefix(WireLimits.leaseTakenMax).map { LeasedRange($0.terms) })
    }

    /// Lessee: asks the lessor on `session` what it offers.
    public func offers(over session: PeerSession) async throws -> LeaseCatalogue {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                let requestID = nextOfferAsk
                nextOfferAsk += 1
                pendingOfferAsks[requestID] = PendingAsk(
                    lessor: session.peerIdentity, askedMilliseconds: time.unixMilliseconds, waiter: continuation)
                sessions[session.peerIdentity] = session
                served.send([.lease(.getOffers(requestID: requestID))], to: session)
            }
        }
    }

    /// Lessee: asks the lessor on `session` to open a channel on `terms`, then submits the open.
    public func open(_ terms: LeaseTerms, over session: PeerSession, peerAddress: String? = nil) async throws
        -> Digest32
    {
        precondition(role == .lessee)
        let id = terms.channelID
        let request = LeaseChannel.openRequest(terms, lessee: key, requestID: 1)
        guard case .openRequest(_, _, let lesseeSignature) = request else { preconditionFailure("an open request") }
        // The channel exists here only once the lessor has signed; a refusal leaves nothing.
        let lessorSignature: Signature = try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                guard pendingOpens[id] == nil else {
                    continuation.resume(
                        throwing: Rejection(.updateInProgress, "the open of channel \(id) is being asked already"))
                    return
                }
                pendingOpens[id] = PendingAsk(
                    terms: terms, lessor: session.peerIdentity, askedMilliseconds: time.unixMilliseconds,
                    waiter: continuation)
                sessions[session.peerIdentity] = session
                served.send([.lease(request)], to: session)
            }
        }
        let stored = StoredChannel(
            role: .lessee, terms: terms, lessorSignature: lessorSignature, lesseeSignature: lesseeSignature,
            peerAddress: peerAddress)
        try store.save(stored)
        queue.sync {
            setEntry(Entry(core: LeaseChannel(role: .lessee, terms: terms, key: key), stored: stored), for: id)
        }
        let receipt: Receipt
        do {
            receipt = try await submitter.submit(
                .openChannel(terms: terms, lessorSignature: lessorSignature, lesseeSignature: lesseeSignature))
        } catch let rejection as Rejection {
            // The ledger refused the open: nothing was locked, so the channel is forgotten. (Any
            // other failure may hide a committed open, and the channel stays to be followed.)
            try queue.sync {
                setEntry(nil, for: id)
                try store.forget(id)
            }
            throw rejection
        }
        queue.sync { mark(id, .open, openHeight: receipt.height) }
        return id
    }

    /// Lessee: pays `amount` more; returns the co-signed state once both sides stored it.
    public func pay(_ id: Digest32, amount: UInt128) async throws -> ChannelState {
        let started = DispatchTime.now().uptimeNanoseconds
        let state = try await update(id) { $0.pay(amount) }
        NodeMetrics.paymentCompleted(nanoseconds: DispatchTime.now().uptimeNanoseconds &- started)
        return state
    }

    /// Either side: agrees the final state with the peer; the proposer then closes on the chain.
    public func close(_ id: Digest32) async throws -> ChannelState {
        try await update(id) { $0.proposeFinal() }
    }

    private func update(
        _ id: Digest32, _ propose: @escaping @Sendable (inout LeaseChannel) -> [LeaseChannel.Action]
    ) async throws
        -> ChannelState
    {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                guard let entry = entries[id], entry.stored.status == .open else {
                    continuation.resume(throwing: Rejection(.unknownChannel, "no open channel \(id)"))
                    return
                }
                // One proposal at a time: a caller who asks while one awaits its countersignature
                // (a payment sent before a restart, the lessee's automatic payment) waits for it.
                // The store of the last countersigned state does not hold it back: the next
                // proposal goes while the disk flushes (the core's pipeline).
                guard !entry.core.isBusy else {
                    guard entry.queued.count < Self.queuedUpdatesPerChannelMax else {
                        continuation.resume(
                            throwing: Rejection(
                                .updateInProgress,
                                "\(Self.queuedUpdatesPerChannelMax) updates already wait their turn on \(id)"))
                        return
                    }
                    entry.queued.append(QueuedUpdate(propose: propose, waiter: continuation))
                    return
                }
                startProposal(propose, for: continuation, on: entry, id)
            }
        }
    }

    /// The core proposes for `caller`, who then waits for the proposed state (none if the core
    /// refused at once, which `perform` reports to it).
    private func startProposal(
        _ propose: @Sendable (inout LeaseChannel) -> [LeaseChannel.Action],
        for caller: CheckedContinuation<ChannelState, Error>, on entry: Entry, _ id: Digest32
    ) {
        let actions = propose(&entry.core)
        entry.waiter = (entry.core.proposal?.state, caller)
        perform(actions, on: id)
    }

    /// Once no update is in flight: callers whose proposal ended unanswered (dropped for the
    /// peer's crossing update, or given up for a registration) are told, and the next queued
    /// caller proposes.
    private func advanceUpdates(on id: Digest32) {
        guard let entry = entries[id], !entry.core.isBusy else { return }
        if let waiter = entry.waiter {
            waiter.continuation.resume(
                throwing: Rejection(
                    .nonceNotNext, "the proposal was superseded: the channel is at state \(entry.core.state.nonce)"))
            entry.waiter = nil
        }
        guard !entry.queued.isEmpty else {
            return
        }
        let next = entry.queued.removeFirst()
        guard entry.stored.status == .open else {
            next.waiter.resume(throwing: Rejection(.unknownChannel, "channel \(id) is no longer open"))
            return advanceUpdates(on: id)
        }
        startProposal(next.propose, for: next.waiter, on: entry, id)
    }

    /// Registers this side's latest state on the chain now (a unilateral close).
    public func dispute(_ id: Digest32) throws {
        try queue.sync {
            guard let entry = entries[id] else { throw Rejection(.unknownChannel, "no channel \(id)") }
            mark(id, .closing)
            NodeMetrics.disputeSubmitted()
            submit(.registerState(channel: id, state: entry.core.latest), for: id)
        }
    }

    /// Lessee: the proof of its usage right on channel `id`, for a radio or an auditor to check
    /// offline with the arbiter's key (nil until the open has been seen in a block).
    public func proof(_ id: Digest32) async throws -> UsageProof {
        let (open, latest, terms) = queue.sync { (opens[id], entries[id]?.core.latest, entries[id]?.stored.terms) }
        guard let open, let terms else { throw Rejection(.unknownChannel, "no committed open for \(id) yet") }
        guard let latest else { throw Rejection(.unknownChannel, "nothing is paid on \(id) yet") }
        var centre: UInt64 = 0
        var width: UInt64 = 0
        if let row = try await arbiter.stateRow(.resource(terms.licence)),
            case .resource(let resource) = try StateRecord(key: .resource(terms.licence), value: row),
            let spectrum = resource.registration.spectrum
        {
            centre = spectrum.centreHz
            width = spectrum.widthHz
        }
        return UsageProof(
            openTransaction: open.transaction, header: open.header, index: open.index, path: open.path, state: latest,
            centreHz: centre, widthHz: width)
    }

    /// Collects this key's rent on a licence token.
    public func claimRent(token: UInt64) async throws -> Receipt {
        try await submitter.submit(.claimRent(token: token))
    }

    public func channels() -> [ChannelSummary] {
        queue.sync {
            entries.values.map {
                ChannelSummary(
                    channelID: $0.stored.channelID, role: role, status: $0.stored.status, terms: $0.stored.terms,
                    state: $0.core.state)
            }.sorted { $0.channelID.bytes.lexicographicallyPrecedes($1.channelID.bytes) }
        }
    }

    /// Grant, revoke and channel events as lines, as they happen (`rwa-lessor watch`).
    public func watch() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        let id = UUID()
        queue.async { [self] in watchers[id] = continuation }
        continuation.onTermination = { [self] _ in queue.async { self.watchers[id] = nil } }
        return stream
    }
}

/// Submits this daemon's transactions one at a time with consecutive sequence numbers, read from
/// the chain first and again after a sequence refusal.
final class Submitter: @unchecked Sendable {
    private let key: SigningKeyPair
    private let arbiter: any ArbiterLink
    private let lock = NIOLockedValueBox<(chain: Task<Receipt, Error>?, next: UInt64?)>((nil, nil))

    init(key: SigningKeyPair, arbiter: any ArbiterLink) {
        self.key = key
        self.arbiter = arbiter
    }

    func submit(_ operation: LedgerOperation) async throws -> Receipt {
        // Each submission waits for the one before it, so sequence numbers follow each other.
        let task = lock.withLockedValue { state -> Task<Receipt, Error> in
            let previous = state.chain
            let task = Task { [self] () throws -> Receipt in
                _ = try? await previous?.value
                for attempt in 0..<2 {
                    let sequence: UInt64
                    if let known = takeNext(), attempt == 0 {
                        sequence = known
                    } else {
                        sequence = try await arbiter.nextSequence(of: key.publicKey)
                    }
                    let transaction = try Transaction(
                        signedBy: key, chainID: arbiter.chainID, sequence: sequence, operation: operation)
                    do {
                        let receipt = try await arbiter.submit(transaction)
                        setNext(sequence + 1)
                        return receipt
                    } catch let rejection as Rejection
                        where rejection.code == .sequenceReused || rejection.code == .sequenceAhead
                    {
                        setNext(nil)
                        if attempt == 1 { throw rejection }
                    } catch let rejection as Rejection {
                        setNext(sequence)  // refused: the sequence number is still free
                        throw rejection
                    }
                }
                throw Rejection(.sequenceReused, "no free sequence number")
            }
            state.chain = task
            return task
        }
        return try await task.value
    }

    private func takeNext() -> UInt64? { lock.withLockedValue { $0.next } }

    private func setNext(_ value: UInt64?) { lock.withLockedValue { $0.next = value } }
}
