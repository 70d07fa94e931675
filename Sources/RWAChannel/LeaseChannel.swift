import RWACrypto
import RWAWire

public enum LeaseRole: String, Sendable, Equatable {
    case lessor, lessee
}

/// One lease channel as one party sees it, pure: no socket, no clock, no store. It takes events
/// (a message from the peer, a payment to propose, the time, a report that a state is stored, a
/// registration seen on the chain) and returns actions for its shell (send, persist, grant,
/// revoke, close, challenge). The rules:
///
/// - An update is one round trip. The proposer signs state n + 1; the receiver checks it (the
///   proposer's signature, this channel, nonce exactly n + 1, paid never falling and never above
///   the deposit, only the lessee changing it, paid-through what the paid amount buys),
///   **persists it, and only then countersigns**; the proposer persists the co-signed state.
///   Every refusal carries its code and leaves the channel as it was.
/// - The proposer may propose n + 2 while its co-signed n + 1 is still being stored (a pipeline:
///   its store overlaps the next round trip); n + 1 counts as done, for its caller, only once
///   stored. A crash before then loses nothing acknowledged: the receiver stored n + 1 before it
///   countersigned, and hands it back on the next session.
/// - On a new session both sides say which nonce they hold; the one ahead sends its co-signed
///   state, which the other checks and adopts, and a proposal the peer never got is sent again.
/// - The lessor grants the radio up to the paid-through time and revokes it there; once payments
///   have stopped for `closeGraceSeconds` it proposes the final state, and registers its latest
///   state on the chain if the lessee does not countersign within as long again.
/// - The lessee pays one increment ahead of the paid-through time, up to the deposit.
/// - Either side answers a registration of an older state with its newer one.
public struct LeaseChannel: Sendable {
    public enum Action: Equatable, Sendable {
        case send(LeaseMessage)
        /// Store this co-signed state durably, then report `persisted(nonce:)`; nothing that
        /// depends on it happens before.
        case persist(CoSignedState)
        /// Lessor: the radio may serve the lease's slices until this time (Unix seconds).
        case grant(throughSeconds: UInt64)
        /// Lessor: the radio must stop serving the lease.
        case revoke
        /// Both sides now hold this state: a pending `pay` or `close` has completed.
        case settled(nonce: UInt64)
        /// Our proposal (or our request to propose) was refused: a pending `pay` or `close` fails.
        case refused(Rejection)
        /// We refused a peer's message (answered with a refusal where the protocol has one): for
        /// the operator's log; nothing of ours fails.
        case rejectedPeer(Rejection)
        /// Submit the cooperative close with this final co-signed state.
        case closeCooperatively(CoSignedState)
        /// Register this state on the chain (nil: the opening state) to close unilaterally.
        case register(CoSignedState?)
        /// A stale state of this channel was registered: replace it with this newer one.
        case challenge(CoSignedState)
    }

    public let role: LeaseRole
    public let terms: LeaseTerms
    public let channelID: Digest32
    private let key: SigningKeyPair
    /// The latest state both sides signed; nil while it is the opening state (nonce 0).
    public private(set) var latest: CoSignedState?
    /// A state we signed and sent, waiting for the peer's countersignature.
    public private(set) var proposal: (state: ChannelState, signature: Signature, requestID: UInt64)?
    /// Co-signed states handed to the shell to store, oldest first, each with what follows once
    /// it is stored and whether it is our own countersigned proposal (which a next proposal need
    /// not wait for).
    private var storing: [(state: CoSignedState, then: [Action], ownProposal: Bool)] = []
    private var nextRequestID: UInt64 = 1
    /// Lessor: whether the radio's grant has been withdrawn, when it proposed the final state,
    /// and whether it has given up on the lessee and registered its state.
    private var revoked = false
    private var finalProposedAt: UInt64?
    private var registeredOnChain = false
    /// Lessor: how long after the paid-through time it gives up and closes.
    public let closeGraceSeconds: UInt64

    public init(
        role: LeaseRole, terms: LeaseTerms, key: SigningKeyPair, latest: CoSignedState? = nil,
        closeGraceSeconds: UInt64 = 60
    ) {
        precondition(key.publicKey == (role == .lessor ? terms.lessor : terms.lessee), "the key is not this role's")
        precondition(latest.map { $0.isValid(for: terms) } ?? true, "a stored state that is not co-signed")
        self.role = role
        self.terms = terms
        self.channelID = terms.channelID
        self.key = key
        self.latest = latest
        self.closeGraceSeconds = closeGraceSeconds
    }

    /// The latest co-signed state stored, or the opening one.
    public var state: ChannelState { latest?.state ?? ChannelState.opening(terms) }

    /// The newest co-signed state held, stored or still being stored: what the next proposal
    /// builds on and what a reestablishment reports.
    public var newest: ChannelState { storing.last?.state.state ?? state }

    private var peer: SigningPublicKey { role == .lessor ? terms.lessee : terms.lessor }

    /// Whether an update is in flight (a proposal awaits its countersignature, or a state other
    /// than our own countersigned proposal is being stored): a new proposal is refused until it
    /// ends, so a shell queues its callers' updates.
    public var isBusy: Bool { proposal != nil || storing.contains { !$0.ownProposal } }

    // MARK: Opening

    /// The lessee's open request: the terms with its signature.
    public static func openRequest(_ terms: LeaseTerms, lessee: SigningKeyPair, requestID: UInt64) -> LeaseMessage {
        .openRequest(
            requestID: requestID, terms: terms,
            lesseeSignature: lessee.sign(terms.encoded, domain: terms.signatureDomain))
    }

    /// The lessor's answer to an open request: its signature over the terms if they are valid,
    /// signed by the lessee, addressed to this lessor and offered (`offer` says why not).
    public static func answerOpen(
        _ request: LeaseMessage, lessor: SigningKeyPair, offer: (LeaseTerms) -> Rejection?
    ) -> Result<(answer: LeaseMessage, lesseeSignature: Signature, lessorSignature: Signature), Rejection> {
        guard case .openRequest(_, let terms, let lesseeSignature) = request else {
            return .failure(Rejection(.unexpectedMessage, "\(request.type) is not an open request"))
        }
        if terms.lessor != lessor.publicKey {
            return .failure(Rejection(.invalidTerms, "the terms name another lessor"))
        }
        if let problem = terms.problem { return .failure(Rejection(.invalidTerms, problem)) }
        guard terms.lessee.isValidSignature(lesseeSignature, for: terms.encoded, domain: terms.signatureDomain) else {
            return .failure(
                Rejection(.badChannelSignature, "the lessee's signature over the terms does not verify"))
        }
        if let refusal = offer(terms) { return .failure(refusal) }
        let signature = lessor.sign(terms.encoded, domain: terms.signatureDomain)
        return .success(
            (
                .openAccept(requestID: request.requestID, channelID: terms.channelID, lessorSignature: signature),
                lesseeSignature, signature
            ))
    }

    /// The lessee's check of the lessor's acceptance.
    public static func checkAcceptance(_ terms: LeaseTerms, _ message: LeaseMessage) -> Result<
        Signature, Rejection
    > {
        switch message {
        case .openAccept(_, let channelID, let signature):
            guard channelID == terms.channelID else {
                return .failure(Rejection(.wrongChannel, "the acceptance is for another channel"))
            }
            guard terms.lessor.isValidSignature(signature, for: terms.encoded, domain: terms.signatureDomain) else {
                return .failure(
                    Rejection(.badChannelSignature, "the lessor's signature over the terms does not verify"))
            }
            return .success(signature)
        case .openRefused(_, _, let code, let reason):
            return .failure(Rejection(code, reason))
        case .openRequest, .update, .countersign, .updateRefused, .reestablish, .latestState, .getOffers, .offers:
            return .failure(Rejection(.unexpectedMessage, "\(message.type) does not answer an open request"))
        }
    }

    // MARK: Proposing

    /// Lessee: proposes paying `amount` more.
    public mutating func pay(_ amount: UInt128) -> [Action] {
        guard role == .lessee else {
            return [.refused(Rejection(.lessorCannotPay, "only the lessee pays"))]
        }
        let (paid, overflow) = newest.paid.addingReportingOverflow(amount)
        guard !overflow, paid <= terms.deposit else {
            return [.refused(Rejection(.paymentAboveDeposit, "paying \(amount) more would exceed the deposit"))]
        }
        return propose(paid: paid, final: false)
    }

    /// Either side: proposes the final state (the lessee may pay `amount` more with it).
    public mutating func proposeFinal(paying amount: UInt128 = 0) -> [Action] {
        guard amount == 0 || role == .lessee else {
            return [.refused(Rejection(.lessorCannotPay, "only the lessee pays"))]
        }
        let (paid, overflow) = newest.paid.addingReportingOverflow(amount)
        guard !overflow, paid <= terms.deposit else {
            return [.refused(Rejection(.paymentAboveDeposit, "paying \(amount) more would exceed the deposit"))]
        }
        return propose(paid: paid, final: true)
    }

    private mutating func propose(paid: UInt128, final: Bool) -> [Action] {
        if newest.final { return [.refused(Rejection(.channelFinal, "the channel's state is final"))] }
        if isBusy {
            return [.refused(Rejection(.updateInProgress, "an update is already waiting to be countersigned"))]
        }
        let next = ChannelState(
            channelID: channelID, nonce: newest.nonce + 1, paid: paid,
            paidThroughSeconds: terms.paidThroughSeconds(paid: paid), final: final)
        let signature = next.signed(by: key, chainID: terms.chainID)
        let requestID = nextRequestID
        nextRequestID += 1
        proposal = (next, signature, requestID)
        return [.send(.update(requestID: requestID, state: next, signature: signature))]
    }

    // MARK: Receiving

    public mutating func receive(_ message: LeaseMessage) -> [Action] {
        guard message.channelID == channelID else {
            return [.rejectedPeer(Rejection(.wrongChannel, "\(message.type) is for another channel"))]
        }
        switch message {
        case .update(let requestID, let proposed, let signature):
            return receiveUpdate(requestID: requestID, proposed, signature)
        case .countersign(_, _, let nonce, let signature):
            // A countersignature again (after a crossed reestablishment): already in hand.
            if nonce <= newest.nonce { return [] }
            guard let proposal, proposal.state.nonce == nonce else {
                return [
                    .rejectedPeer(
                        Rejection(.nonceNotNext, "a countersignature for nonce \(nonce), not proposed"))
                ]
            }
            guard proposal.state.isSigned(by: peer, signature, chainID: terms.chainID) else {
                return [.rejectedPeer(Rejection(.badChannelSignature, "the countersignature does not verify"))]
            }
            let coSigned = coSign(proposal.state, mine: proposal.signature, theirs: signature)
            var then: [Action] = [.settled(nonce: nonce)]
            if proposal.state.final { then.append(.closeCooperatively(coSigned)) }
            self.proposal = nil
            return store(coSigned, then: then, ownProposal: true)
        case .updateRefused(_, _, let nonce, let code, let reason):
            guard let proposal, proposal.state.nonce == nonce else { return [] }
            self.proposal = nil
            return [.refused(Rejection(code, reason))]
        case .reestablish(_, _, let theirs):
            let ours = newest.nonce
            if theirs < ours, let held = storing.last?.state ?? latest {
                return [.send(.latestState(requestID: 0, state: held))]
            }
            if theirs == ours, let proposal {
                // The peer never got our proposal: the same state and signature again.
                return [
                    .send(.update(requestID: proposal.requestID, state: proposal.state, signature: proposal.signature))
                ]
            }
            return []  // level, or the peer is ahead and sends its state
        case .latestState(_, let coSigned):
            guard coSigned.state.nonce > newest.nonce else { return [] }
            guard coSigned.isValid(for: terms), coSigned.state.paid <= terms.deposit else {
                return [
                    .rejectedPeer(Rejection(.badChannelSignature, "the peer's latest state is not co-signed"))
                ]
            }
            var then: [Action] = []
            if let proposal, proposal.state.nonce <= coSigned.state.nonce {
                // Our proposal is done if the peer's state is it; otherwise it was superseded
                // (by a state we had countersigned and lost), and the caller asks again.
                then.append(
                    proposal.state == coSigned.state
                        ? .settled(nonce: coSigned.state.nonce)
                        : .refused(
                            Rejection(
                                .nonceNotNext,
                                "the peer holds state \(coSigned.state.nonce); this proposal was superseded")))
            }
            // A final state both signed closes the channel, whoever proposed it: its proposer
            // may have lost it in a crash before it could.
            if coSigned.state.final { then.append(.closeCooperatively(coSigned)) }
            return store(coSigned, then: then)
        case .openRequest, .openAccept, .openRefused, .getOffers, .offers:
            return [.rejectedPeer(Rejection(.unexpectedMessage, "\(message.type) on an open channel"))]
        }
    }

    private mutating func receiveUpdate(requestID: UInt64, _ proposed: ChannelState, _ signature: Signature) -> [Action]
    {
        func refuse(_ code: ErrorCode, _ reason: String) -> [Action] {
            let rejection = Rejection(code, reason)
            return [
                .send(
                    .updateRefused(
                        requestID: requestID, channelID: channelID, nonce: proposed.nonce, code: code, reason: reason)),
                .rejectedPeer(rejection),
            ]
        }
        guard proposed.isSigned(by: peer, signature, chainID: terms.chainID) else {
            return refuse(.badChannelSignature, "the proposer's signature does not verify")
        }
        // The same update again (sent again after a reestablishment that crossed it): being
        // stored, it is answered once stored; already stored, its countersignature goes again.
        if storing.contains(where: { $0.state.state == proposed }) { return [] }
        if let latest, latest.state == proposed {
            let mine = role == .lessor ? latest.lessorSignature : latest.lesseeSignature
            return [
                .send(.countersign(requestID: requestID, channelID: channelID, nonce: proposed.nonce, signature: mine))
            ]
        }
        if state.final { return refuse(.channelFinal, "the channel's state is final") }
        if let proposal {
            // Both proposed at once: the lessee's proposal goes first, and the lessor's is dropped
            // once the lessee's passes every check below (a refused one leaves it waiting).
            guard role == .lessor, storing.isEmpty else {
                return refuse(.updateInProgress, "a proposal of nonce \(proposal.state.nonce) is waiting")
            }
        }
        if !storing.isEmpty { return refuse(.updateInProgress, "a state is being stored") }
        guard proposed.nonce == state.nonce + 1 else {
            return refuse(.nonceNotNext, "nonce \(proposed.nonce), expected \(state.nonce + 1)")
        }
        guard proposed.paid >= state.paid else {
            return refuse(.paymentDecreased, "paid \(proposed.paid) is below \(state.paid)")
        }
        guard proposed.paid <= terms.deposit else {
            return refuse(.paymentAboveDeposit, "paid \(proposed.paid) is above the deposit \(terms.deposit)")
        }
        if role == .lessee && proposed.paid != state.paid {
            return refuse(.lessorCannotPay, "the lessor may not change the paid amount")
        }
        let expected = terms.paidThroughSeconds(paid: proposed.paid)
        guard proposed.paidThroughSeconds == expected else {
            return refuse(
                .paidThroughMismatch, "\(proposed.paid) pays through \(expected), not \(proposed.paidThroughSeconds)")
        }
        proposal = nil
        let mine = proposed.signed(by: key, chainID: terms.chainID)
        let coSigned = coSign(proposed, mine: mine, theirs: signature)
        return store(
            coSigned,
            then: [
                .send(.countersign(requestID: requestID, channelID: channelID, nonce: proposed.nonce, signature: mine))
            ])
    }

    private func coSign(_ state: ChannelState, mine: Signature, theirs: Signature) -> CoSignedState {
        role == .lessor
            ? CoSignedState(state: state, lessorSignature: mine, lesseeSignature: theirs)
            : CoSignedState(state: state, lessorSignature: theirs, lesseeSignature: mine)
    }

    private mutating func store(_ coSigned: CoSignedState, then: [Action], ownProposal: Bool = false) -> [Action] {
        storing.append((coSigned, then, ownProposal))
        return [.persist(coSigned)]
    }

    /// The shell stored the state of `nonce` (states are stored in the order they were handed
    /// over): it becomes the latest, and what waited for it follows.
    public mutating func persisted(nonce: UInt64) -> [Action] {
        guard let (coSigned, then, _) = storing.first, coSigned.state.nonce == nonce else { return [] }
        storing.removeFirst()
        latest = coSigned
        if let proposal, proposal.state.nonce <= nonce { self.proposal = nil }
        var actions = then
        if role == .lessor && coSigned.state.paidThroughSeconds > terms.startSeconds && !coSigned.state.final {
            revoked = false
            actions.append(.grant(throughSeconds: coSigned.state.paidThroughSeconds))
        }
        if role == .lessor && coSigned.state.final && !revoked {
            revoked = true
            actions.append(.revoke)
        }
        return actions
    }

    /// A new session with the peer: say which state we hold.
    public func reconnected() -> [Action] {
        [.send(.reestablish(requestID: 0, channelID: channelID, nonce: state.nonce))]
    }

    // MARK: Time

    /// What the time asks for: the lessor revokes at the paid-through time and, payments having
    /// stopped, closes; the lessee pays one increment ahead.
    public mutating func tick(nowSeconds now: UInt64) -> [Action] {
        // The lessor grants and revokes on what it has stored; the lessee pays ahead of the
        // newest state it holds, stored or not.
        let current = role == .lessor ? state : newest
        guard !newest.final else { return [] }
        switch role {
        case .lessor:
            var actions: [Action] = []
            let paidThrough = current.paidThroughSeconds
            if now >= paidThrough && !revoked && paidThrough > terms.startSeconds {
                revoked = true
                actions.append(.revoke)
            }
            let endOfService = min(paidThrough, terms.endSeconds)
            guard now >= max(endOfService, terms.startSeconds) + closeGraceSeconds || now >= terms.endSeconds else {
                return actions
            }
            if let proposedAt = finalProposedAt {
                if now >= proposedAt + closeGraceSeconds && !registeredOnChain {
                    // The lessee did not countersign in time: close on the chain instead.
                    registeredOnChain = true
                    if proposal?.state.final == true { proposal = nil }
                    actions.append(.register(latest))
                } else if !isBusy && !registeredOnChain {
                    actions += proposeFinal()  // the last proposal was refused: ask again
                }
                return actions
            }
            if !isBusy {
                finalProposedAt = now
                actions += proposeFinal()
            }
            return actions
        case .lessee:
            guard !isBusy, current.paid < terms.deposit, current.paidThroughSeconds < terms.endSeconds else {
                return []
            }
            let increment = min(terms.paymentIncrement, terms.deposit - current.paid)
            let lead = terms.paidThroughSeconds(paid: increment) - terms.startSeconds
            guard now + lead >= current.paidThroughSeconds else { return [] }
            return pay(increment)
        }
    }

    // MARK: The chain

    /// Someone registered (or challenged with) the state of `nonce`: answer an older one with ours.
    public func registered(nonce: UInt64) -> [Action] {
        guard let latest, latest.state.nonce > nonce else { return [] }
        return [.challenge(latest)]
    }
}
