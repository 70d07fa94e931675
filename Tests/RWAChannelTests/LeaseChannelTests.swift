// Goal: the lease channel state machine, both roles back to back with no network, keeps its
// rules: an update is one round trip in which the receiver stores the state before it
// countersigns; every bad update is refused with its own code and changes nothing; a side that
// lost a message or a state catches up from the peer on reconnection; the lessor grants up to
// the paid-through time, revokes there and closes when payments stop; the lessee pays ahead; an
// older registered state is challenged.
import NIOCore
import RWAChannel
import RWACrypto
import RWAWire
import XCTest

final class LeaseChannelTests: XCTestCase {
    let lessorKey = try! SigningKeyPair(seed: [UInt8](repeating: 21, count: 32))
    let lesseeKey = try! SigningKeyPair(seed: [UInt8](repeating: 22, count: 32))
    let chainID = Blake2b.hash256([UInt8]("lease tests".utf8))

    /// Two slices for 4 periods of 3,600 s at 1,000 per slice-hour: 8,000 in all; a deposit of
    /// 6,000 paid in increments of 500 (a quarter of a period each).
    func terms(nonce: UInt64 = 1) -> LeaseTerms {
        LeaseTerms(
            chainID: chainID, lessor: lessorKey.publicKey, lessee: lesseeKey.publicKey, licence: 1, firstSlice: 10,
            sliceCount: 2, startSeconds: 1_800_000_000, hours: 4, periodSeconds: 3_600, ratePerSliceHour: 1_000,
            deposit: 6_000, paymentIncrement: 500, challengePeriodMilliseconds: 60_000, nonce: nonce)
    }

    func pair() -> (LeaseChannel, LeaseChannel) {
        (
            LeaseChannel(role: .lessor, terms: terms(), key: lessorKey, closeGraceSeconds: 60),
            LeaseChannel(role: .lessee, terms: terms(), key: lesseeKey)
        )
    }

    /// Carries out actions the way a shell would with an instant disk: a `persist` is reported
    /// stored at once, messages go to the other side, everything else is collected.
    func run(_ actions: [LeaseChannel.Action], from sender: inout LeaseChannel, to receiver: inout LeaseChannel)
        -> [LeaseChannel.Action]
    {
        var queue: [(LeaseChannel.Action, Bool)] = actions.map { ($0, true) }  // true: the sender's
        var others: [LeaseChannel.Action] = []
        while !queue.isEmpty {
            let (action, fromSender) = queue.removeFirst()
            switch action {
            case .send(let message):
                let next = fromSender ? receiver.receive(message) : sender.receive(message)
                queue += next.map { ($0, !fromSender) }
            case .persist(let state):
                let next =
                    fromSender
                    ? sender.persisted(nonce: state.state.nonce) : receiver.persisted(nonce: state.state.nonce)
                queue += next.map { ($0, fromSender) }
            default:
                others.append(action)
            }
        }
        return others
    }

    func testPaymentsFlowAndBothSidesHoldEveryState() {
        var (lessor, lessee) = pair()
        for step in 1...12 {
            let others = run(lessee.pay(500), from: &lessee, to: &lessor)
            let paid = UInt128(step * 500)
            XCTAssertEqual(lessee.state, lessor.state, "step \(step): both hold the same state")
            XCTAssertEqual(lessee.state.nonce, UInt64(step))
            XCTAssertEqual(lessee.state.paid, paid)
            XCTAssertEqual(lessee.state.paidThroughSeconds, 1_800_000_000 + UInt64(step) * 900, "500 buys 900 s")
            XCTAssertTrue(lessee.latest!.isValid(for: terms()), "co-signed by both")
            XCTAssertTrue(others.contains(.settled(nonce: UInt64(step))), "the lessee's pay completed")
            XCTAssertTrue(others.contains(.grant(throughSeconds: lessee.state.paidThroughSeconds)), "the lessor grants")
        }
        XCTAssertEqual(
            lessee.pay(1), [.refused(Rejection(.paymentAboveDeposit, "paying 1 more would exceed the deposit"))])
    }

    func testTheReceiverCountersignsOnlyAfterTheStateIsStored() throws {
        var (lessor, lessee) = pair()
        guard case .send(let update) = try XCTUnwrap(lessee.pay(500).first) else { return XCTFail("no update sent") }
        let received = lessor.receive(update)
        XCTAssertEqual(received.count, 1)
        guard case .persist(let state) = received.first else { return XCTFail("first the store: \(received)") }
        XCTAssertEqual(state.state.nonce, 1)
        XCTAssertEqual(lessor.state.nonce, 0, "not the latest until stored")
        XCTAssertEqual(lessor.persisted(nonce: 7), [], "a report for another state does nothing")
        let stored = lessor.persisted(nonce: 1)
        guard case .send(.countersign(_, _, 1, _)) = stored.first else {
            return XCTFail("then the countersignature: \(stored)")
        }
        XCTAssertEqual(lessor.state.nonce, 1)
        // The proposer also stores before it calls the update done.
        let countersigned = lessee.receive(
            try XCTUnwrap(stored.first.flatMap { if case .send(let m) = $0 { m } else { nil } }))
        guard case .persist = countersigned.first, countersigned.count == 1 else { return XCTFail("\(countersigned)") }
        XCTAssertEqual(lessee.persisted(nonce: 1), [.settled(nonce: 1)])
    }

    /// A forged, misdirected or rule-breaking update is refused with its own code, answered with
    /// `update_refused`, and leaves the receiver's channel exactly as it was.
    func testEveryBadUpdateIsRefusedWithItsCodeAndChangesNothing() {
        var (lessor, lessee) = pair()
        _ = run(lessee.pay(1_000), from: &lessee, to: &lessor)  // nonce 1, paid 1,000
        let t = terms()
        func state(
            nonce: UInt64 = 2, paid: UInt128 = 1_500, through: UInt64? = nil, final: Bool = false,
            channel: Digest32? = nil
        )
            -> ChannelState
        {
            ChannelState(
                channelID: channel ?? t.channelID, nonce: nonce, paid: paid,
                paidThroughSeconds: through ?? t.paidThroughSeconds(paid: paid), final: final)
        }
        let other = terms(nonce: 2)
        let cases: [(String, ChannelState, SigningKeyPair, ErrorCode, LeaseRole)] = [
            ("forged signature", state(), SigningKeyPair.generate(), .badChannelSignature, .lessor),
            ("signed by the receiver itself", state(), lessorKey, .badChannelSignature, .lessor),
            ("skipped nonce", state(nonce: 3), lesseeKey, .nonceNotNext, .lessor),
            ("replayed older state", state(nonce: 0, paid: 0), lesseeKey, .nonceNotNext, .lessor),
            ("decreasing payment", state(paid: 500), lesseeKey, .paymentDecreased, .lessor),
            (
                "payment above the deposit", state(paid: 6_001, through: t.paidThroughSeconds(paid: 6_001)), lesseeKey,
                .paymentAboveDeposit, .lessor
            ),
            (
                "paid-through beyond what is paid", state(through: t.paidThroughSeconds(paid: 1_500) + 1), lesseeKey,
                .paidThroughMismatch, .lessor
            ),
            ("the lessor raising the payment", state(), lessorKey, .lessorCannotPay, .lessee),
        ]
        for (name, bad, signer, code, receiverRole) in cases {
            var receiver = receiverRole == .lessor ? lessor : lessee
            let before = (receiver.state, receiver.latest)
            let message = LeaseMessage.update(
                requestID: 9, state: bad, signature: bad.signed(by: signer, chainID: chainID))
            let actions = receiver.receive(message)
            XCTAssertEqual(actions.count, 2, name)
            guard case .send(.updateRefused(9, _, let nonce, let sent, _)) = actions.first,
                case .rejectedPeer(let rejection) = actions.last
            else {
                XCTFail("\(name): \(actions)")
                continue
            }
            XCTAssertEqual(sent, code, name)
            XCTAssertEqual(rejection.code, code, name)
            XCTAssertEqual(nonce, bad.nonce, name)
            XCTAssertEqual(receiver.state, before.0, "\(name): state unchanged")
            XCTAssertEqual(receiver.latest, before.1, "\(name): latest unchanged")
            XCTAssertNil(receiver.proposal, name)
        }
        // A state of another channel, correctly signed: refused before anything else.
        let foreign = ChannelState(
            channelID: other.channelID, nonce: 2, paid: 1_500, paidThroughSeconds: 0, final: false)
        let misdirected = lessor.receive(
            .update(requestID: 1, state: foreign, signature: foreign.signed(by: lesseeKey, chainID: chainID)))
        guard case .rejectedPeer(let wrong) = misdirected.first, misdirected.count == 1 else {
            return XCTFail("\(misdirected)")
        }
        XCTAssertEqual(wrong.code, .wrongChannel)
        // After the final state nothing more is accepted.
        _ = run(lessee.proposeFinal(), from: &lessee, to: &lessor)
        XCTAssertTrue(lessor.state.final)
        let late = state(nonce: 3, paid: 1_500)
        let refused = lessor.receive(
            .update(requestID: 3, state: late, signature: late.signed(by: lesseeKey, chainID: chainID)))
        XCTAssertEqual(refused.last, .rejectedPeer(Rejection(.channelFinal, "the channel's state is final")))
        XCTAssertEqual(lessor.state.nonce, 2)
    }

    func testASecondProposalWaitsAndSimultaneousProposalsResolve() {
        var (lessor, lessee) = pair()
        let first = lessee.pay(500)
        XCTAssertEqual(
            lessee.pay(500),
            [.refused(Rejection(.updateInProgress, "an update is already waiting to be countersigned"))])
        // The lessor proposes the final state at the same moment: the lessee refuses it, the
        // lessor drops its own for the lessee's.
        var lessorFinal = lessor.proposeFinal()
        guard case .send(let finalUpdate) = lessorFinal.removeFirst(), case .send(let payment) = first[0] else {
            return XCTFail("both should send")
        }
        let lesseeAnswer = lessee.receive(finalUpdate)
        guard case .send(.updateRefused(_, _, _, .updateInProgress, _)) = lesseeAnswer.first else {
            return XCTFail("\(lesseeAnswer)")
        }
        // On the ordered session the lessee's payment reaches the lessor before the refusal.
        let stored = lessor.receive(payment)
        XCTAssertNil(lessor.proposal, "the lessor dropped its proposal for the lessee's")
        XCTAssertEqual(lessor.receive(lesseeAnswer[0].sentMessage!), [], "the refusal of a dropped proposal is moot")
        _ = run(stored, from: &lessor, to: &lessee)
        XCTAssertEqual(lessor.state.nonce, 1)
        XCTAssertEqual(lessee.state.nonce, 1)
        XCTAssertEqual(lessee.state.paid, 500)
        XCTAssertNil(lessor.proposal)
        XCTAssertNil(lessee.proposal)
    }

    /// Found by the channel fuzz target: a lessee's update the lessor refuses (here a replay of an
    /// old one) must not make it drop its own waiting proposal; only one it accepts does.
    func testARefusedUpdateLeavesTheLessorsProposalWaiting() {
        var (lessor, lessee) = pair()
        let payment = lessee.pay(500)
        guard case .send(let firstUpdate) = payment[0] else { return XCTFail("the lessee should send") }
        _ = run(payment, from: &lessee, to: &lessor)
        XCTAssertEqual(lessor.state.nonce, 1)
        let final = lessor.proposeFinal()
        XCTAssertEqual(lessor.proposal?.state.nonce, 2)
        let answer = lessor.receive(firstUpdate)  // the old update again, then one with a skipped nonce
        guard case .send(.countersign(_, _, 1, _)) = answer.first else {
            return XCTFail("the update already stored is countersigned again, not refused: \(answer)")
        }
        var skipped = lessee.state
        skipped.nonce += 5
        let refused = lessor.receive(
            .update(requestID: 9, state: skipped, signature: skipped.signed(by: lesseeKey, chainID: chainID)))
        guard case .send(.updateRefused(_, _, _, .nonceNotNext, _)) = refused.first else {
            return XCTFail("\(refused)")
        }
        XCTAssertEqual(lessor.proposal?.state.nonce, 2, "the refused update left the lessor's proposal waiting")
        _ = run(final, from: &lessor, to: &lessee)
        XCTAssertTrue(lessor.state.final)
        XCTAssertTrue(lessee.state.final)
    }

    /// The lessor stored and countersigned, but the countersignature was lost and the lessee
    /// restarted from its store: on reconnection the lessor, ahead, sends its co-signed state.
    func testASideThatLostTheLastStateAdoptsThePeers() {
        var (lessor, lessee) = pair()
        _ = run(lessee.pay(500), from: &lessee, to: &lessor)
        let backup = lessee.latest
        guard case .send(let update) = lessee.pay(500)[0] else { return XCTFail() }
        var toLessor = lessor.receive(update)
        XCTAssertEqual(toLessor.count, 1)
        toLessor = lessor.persisted(nonce: 2)  // stored and countersigned; the countersignature is lost
        var restarted = LeaseChannel(role: .lessee, terms: terms(), key: lesseeKey, latest: backup)
        XCTAssertEqual(restarted.state.nonce, 1)
        var actions = restarted.reconnected() + lessor.reconnected()
        var collected: [LeaseChannel.Action] = []
        // Exchange the reestablish messages in both directions.
        guard case .send(let fromLessee) = actions[0], case .send(let fromLessor) = actions[1] else { return XCTFail() }
        actions = lessor.receive(fromLessee)
        guard case .send(.latestState(_, let state)) = actions.first else {
            return XCTFail("the lessor sends its state: \(actions)")
        }
        XCTAssertEqual(state.state.nonce, 2)
        XCTAssertEqual(restarted.receive(fromLessor), [], "the lessee is behind: it waits for the state")
        collected = run(restarted.receive(actions[0].sentMessage!), from: &restarted, to: &lessor)
        XCTAssertEqual(restarted.state, lessor.state)
        XCTAssertEqual(restarted.state.paid, 1_000)
        XCTAssertEqual(collected, [])
        // A forged "latest state" is refused and changes nothing.
        var forged = state
        forged.state.nonce = 9
        XCTAssertEqual(
            restarted.receive(.latestState(requestID: 0, state: forged)).first,
            .rejectedPeer(Rejection(.badChannelSignature, "the peer's latest state is not co-signed")))
        XCTAssertEqual(restarted.state.nonce, 2)
    }

    /// An update that arrives twice (sent again after a reestablishment that crossed it) is
    /// answered once while it is being stored, and with its countersignature again once stored.
    func testAnUpdateReceivedTwiceIsAnsweredNotRefused() {
        var (lessor, lessee) = pair()
        guard case .send(let update) = lessee.pay(500)[0] else { return XCTFail() }
        XCTAssertEqual(lessor.receive(update).count, 1, "stored first")
        XCTAssertEqual(lessor.receive(update), [], "the copy waits for the same store")
        let stored = lessor.persisted(nonce: 1)
        guard case .send(.countersign(_, _, 1, let signature)) = stored.first else { return XCTFail("\(stored)") }
        XCTAssertEqual(
            lessor.receive(update),
            [.send(.countersign(requestID: 1, channelID: lessor.channelID, nonce: 1, signature: signature))],
            "stored: the countersignature again")
        _ = run(lessee.receive(stored[0].sentMessage!), from: &lessee, to: &lessor)
        XCTAssertEqual(lessee.state.nonce, 1)
        XCTAssertEqual(lessor.state.nonce, 1)
        XCTAssertEqual(lessee.receive(stored[0].sentMessage!), [], "a countersignature again is already in hand")
        XCTAssertEqual(lessee.state.nonce, 1)
    }

    /// Found by the whole-system simulation: a lessee that proposed the final state, crashed before
    /// storing the countersigned one, and proposed again after its restart learns from the
    /// lessor's state that it is final, and closes the channel (its first proposer having lost
    /// it); a proposal the peer's newer state supersedes is reported refused, not done.
    func testAStateAdoptedAfterACrashSettlesOrSupersedesTheProposal() {
        var (lessor, lessee) = pair()
        _ = run(lessee.pay(500), from: &lessee, to: &lessor)
        let backup = lessee.latest
        guard case .send(let final) = lessee.proposeFinal()[0] else { return XCTFail() }
        _ = lessor.receive(final)
        _ = lessor.persisted(nonce: 2)  // stored and countersigned; the lessee crashes before storing
        var restarted = LeaseChannel(role: .lessee, terms: terms(), key: lesseeKey, latest: backup)
        _ = restarted.proposeFinal()  // the same final state again
        let answer = lessor.receive(restarted.reconnected()[0].sentMessage!)
        let adopted = restarted.receive(answer[0].sentMessage!)
        guard case .persist = adopted.first else { return XCTFail("\(adopted)") }
        let after = restarted.persisted(nonce: 2)
        XCTAssertEqual(after.first, .settled(nonce: 2), "the proposal was the state the lessor holds")
        guard case .closeCooperatively(let closing) = after.last else { return XCTFail("\(after)") }
        XCTAssertTrue(closing.state.final)

        // A proposal that the peer's newer state supersedes.
        var (lessor2, lessee2) = pair()
        _ = run(lessee2.pay(500), from: &lessee2, to: &lessor2)
        let old = lessee2.latest
        guard case .send(let second) = lessee2.pay(500)[0] else { return XCTFail() }
        _ = lessor2.receive(second)
        _ = lessor2.persisted(nonce: 2)
        var behind = LeaseChannel(role: .lessee, terms: terms(), key: lesseeKey, latest: old)
        _ = behind.pay(1_000)  // a different state 2
        let state = lessor2.receive(behind.reconnected()[0].sentMessage!)
        _ = behind.receive(state[0].sentMessage!)
        XCTAssertEqual(
            behind.persisted(nonce: 2).first,
            .refused(Rejection(.nonceNotNext, "the peer holds state 2; this proposal was superseded")))
        XCTAssertEqual(behind.state.paid, 1_000, "the lessor's state, not the lost proposal")
    }

    /// The proposer pipelines: once its proposal is countersigned it proposes the next while the
    /// countersigned state is still being stored. Each payment completes only once stored, in
    /// order, and a crash before the stores loses nothing: the lessor stored both before it
    /// countersigned, and hands the newest back on the next session.
    func testTheProposerProposesTheNextWhileItsLastStateIsBeingStored() throws {
        var (lessor, lessee) = pair()
        _ = lessor.receive(try XCTUnwrap(lessee.pay(500).first?.sentMessage))
        let countersigned = lessee.receive(try XCTUnwrap(lessor.persisted(nonce: 1).first?.sentMessage))
        guard case .persist(let first) = countersigned.first, countersigned.count == 1 else {
            return XCTFail("\(countersigned)")
        }
        XCTAssertEqual(first.state.nonce, 1)
        XCTAssertFalse(lessee.isBusy, "its own store does not hold the next proposal back")
        XCTAssertEqual(lessee.state.nonce, 0, "state 1 is not the stored latest yet")
        XCTAssertEqual(lessee.newest.nonce, 1)
        let second = lessee.pay(500)
        guard case .send(.update(_, let proposed, _)) = second.first else { return XCTFail("\(second)") }
        XCTAssertEqual(proposed.nonce, 2)
        XCTAssertEqual(proposed.paid, 1_000, "built on the state being stored")
        XCTAssertTrue(lessee.isBusy, "one proposal at a time")
        XCTAssertEqual(
            lessee.pay(500),
            [.refused(Rejection(.updateInProgress, "an update is already waiting to be countersigned"))])

        _ = lessor.receive(try XCTUnwrap(second.first?.sentMessage))
        let countersign2 = try XCTUnwrap(lessor.persisted(nonce: 2).first?.sentMessage)
        let crashedLessee = lessee  // neither state stored yet
        guard case .persist = lessee.receive(countersign2).first else { return XCTFail("state 2 goes to the store") }
        XCTAssertEqual(lessee.persisted(nonce: 2), [], "states are stored in order: 1 first")
        XCTAssertEqual(lessee.persisted(nonce: 1), [.settled(nonce: 1)])
        XCTAssertEqual(lessee.state.nonce, 1)
        XCTAssertEqual(lessee.persisted(nonce: 2), [.settled(nonce: 2)])
        XCTAssertEqual(lessee.state, lessor.state)

        // The lessee crashed before either store: it restarts from the opening state, and the
        // lessor's newest state comes back with the reestablishment.
        XCTAssertNil(crashedLessee.latest)
        var restarted = LeaseChannel(role: .lessee, terms: terms(), key: lesseeKey, latest: crashedLessee.latest)
        let lessorAnswer = lessor.receive(try XCTUnwrap(restarted.reconnected().first?.sentMessage))
        let adopted = restarted.receive(try XCTUnwrap(lessorAnswer.first?.sentMessage))
        guard case .persist(let handedBack) = adopted.first else { return XCTFail("\(adopted)") }
        XCTAssertEqual(handedBack.state, lessor.state)
        _ = restarted.persisted(nonce: 2)
        XCTAssertEqual(restarted.state.paid, 1_000)
    }

    /// The lessee's automatic payment, too, builds on the newest state it holds; a final state
    /// being stored ends all proposals.
    func testAPaymentAheadAndAFinalStateBeingStored() throws {
        var (lessor, lessee) = pair()
        _ = lessor.receive(try XCTUnwrap(lessee.proposeFinal(paying: 500).first?.sentMessage))
        _ = lessee.receive(try XCTUnwrap(lessor.persisted(nonce: 1).first?.sentMessage))
        XCTAssertTrue(lessee.newest.final)
        XCTAssertEqual(lessee.pay(500), [.refused(Rejection(.channelFinal, "the channel's state is final"))])
        XCTAssertEqual(lessee.tick(nowSeconds: 1_800_000_000), [], "nothing more to pay on a final state")
        let stored = lessee.persisted(nonce: 1)
        XCTAssertEqual(stored.first, .settled(nonce: 1))
        guard case .closeCooperatively = stored.last else { return XCTFail("\(stored)") }
    }

    func testAProposalThePeerNeverGotIsSentAgainOnReconnection() {
        var (lessor, lessee) = pair()
        _ = lessee.pay(500)  // lost on the way
        let lesseeSays = lessee.reconnected()[0].sentMessage!
        let lessorSays = lessor.reconnected()[0].sentMessage!
        XCTAssertEqual(lessor.receive(lesseeSays), [], "level: nothing to send")
        let again = lessee.receive(lessorSays)
        guard case .send(.update(_, let state, _)) = again.first else { return XCTFail("\(again)") }
        XCTAssertEqual(state.nonce, 1)
        _ = run(again, from: &lessee, to: &lessor)
        XCTAssertEqual(lessor.state.paid, 500)
        XCTAssertEqual(lessee.state.nonce, 1)
    }

    func testTheLessorRevokesAtThePaidThroughTimeAndClosesWhenPaymentsStop() {
        var (lessor, lessee) = pair()
        let start: UInt64 = 1_800_000_000
        _ = run(lessee.pay(500), from: &lessee, to: &lessor)
        XCTAssertEqual(lessor.tick(nowSeconds: start + 899), [], "paid through start + 900")
        XCTAssertEqual(lessor.tick(nowSeconds: start + 900), [.revoke])
        XCTAssertEqual(lessor.tick(nowSeconds: start + 950), [], "revoked once")
        let closing = lessor.tick(nowSeconds: start + 960)
        guard case .send(.update(_, let final, _)) = closing.first else {
            return XCTFail("a final proposal: \(closing)")
        }
        XCTAssertTrue(final.final)
        XCTAssertEqual(final.paid, 500)
        let others = run(closing, from: &lessor, to: &lessee)
        guard
            case .closeCooperatively(let coSigned) = others.first(where: {
                if case .closeCooperatively = $0 { true } else { false }
            })
        else { return XCTFail("the lessor closes cooperatively: \(others)") }
        XCTAssertTrue(coSigned.isValid(for: terms()))
        XCTAssertTrue(lessee.state.final)
    }

    func testALessorWhoseFinalStateIsNeverCountersignedRegistersItsState() {
        var (lessor, lessee) = pair()
        let start: UInt64 = 1_800_000_000
        _ = run(lessee.pay(500), from: &lessee, to: &lessor)
        _ = lessor.tick(nowSeconds: start + 900)
        XCTAssertFalse(lessor.tick(nowSeconds: start + 960).isEmpty, "the final state is proposed (and lost)")
        XCTAssertEqual(lessor.tick(nowSeconds: start + 1_019), [])
        XCTAssertEqual(lessor.tick(nowSeconds: start + 1_020), [.register(lessor.latest)])
        XCTAssertEqual(lessor.tick(nowSeconds: start + 2_000), [], "once")
    }

    func testTheLesseePaysOneIncrementAhead() {
        var (lessor, lessee) = pair()
        let start: UInt64 = 1_800_000_000
        XCTAssertEqual(lessee.tick(nowSeconds: start - 901), [], "an increment buys 900 s: not yet")
        let first = lessee.tick(nowSeconds: start - 900)
        _ = run(first, from: &lessee, to: &lessor)
        XCTAssertEqual(lessee.state.paid, 500)
        XCTAssertEqual(lessee.tick(nowSeconds: start - 1), [], "paid through start + 900")
        _ = run(lessee.tick(nowSeconds: start), from: &lessee, to: &lessor)
        XCTAssertEqual(lessor.state.paid, 1_000)
        // The deposit (6,000) runs out before the lease's 8,000: no payment beyond it.
        for minute in stride(from: 0, to: 240, by: 5) {
            _ = run(lessee.tick(nowSeconds: start + UInt64(minute) * 60), from: &lessee, to: &lessor)
            XCTAssertGreaterThan(
                lessee.state.paidThroughSeconds, min(start + UInt64(minute) * 60, start + 10_800 - 1), "ahead")
        }
        XCTAssertEqual(lessee.state.paid, 6_000)
        XCTAssertEqual(lessee.tick(nowSeconds: start + 20_000), [])
    }

    func testAnOlderRegisteredStateIsChallengedWithTheLatest() {
        var (lessor, lessee) = pair()
        XCTAssertEqual(lessor.registered(nonce: 0), [], "nothing newer than the opening state")
        _ = run(lessee.pay(500), from: &lessee, to: &lessor)
        _ = run(lessee.pay(500), from: &lessee, to: &lessor)
        XCTAssertEqual(lessor.registered(nonce: 1), [.challenge(lessor.latest!)])
        XCTAssertEqual(lessee.registered(nonce: 2), [], "the registered state is the latest")
    }

    func testOpeningNeedsValidSignedOfferedTerms() {
        let request = LeaseChannel.openRequest(terms(), lessee: lesseeKey, requestID: 4)
        guard case .success(let accepted) = LeaseChannel.answerOpen(request, lessor: lessorKey, offer: { _ in nil })
        else {
            return XCTFail("valid terms are accepted")
        }
        XCTAssertEqual(accepted.answer.requestID, 4)
        XCTAssertEqual(try LeaseChannel.checkAcceptance(terms(), accepted.answer).get(), accepted.lessorSignature)
        XCTAssertEqual(
            LeaseChannel.checkAcceptance(terms(nonce: 5), accepted.answer).failureCode, .wrongChannel)
        var bad = terms()
        bad.sliceCount = 95  // slices 10 to 104
        XCTAssertEqual(
            LeaseChannel.answerOpen(
                LeaseChannel.openRequest(bad, lessee: lesseeKey, requestID: 1), lessor: lessorKey, offer: { _ in nil }
            ).failureCode, .invalidTerms)
        let forged = LeaseMessage.openRequest(
            requestID: 1, terms: terms(),
            lesseeSignature: SigningKeyPair.generate().sign([1], domain: terms().signatureDomain))
        XCTAssertEqual(
            LeaseChannel.answerOpen(forged, lessor: lessorKey, offer: { _ in nil }).failureCode, .badChannelSignature)
        XCTAssertEqual(
            LeaseChannel.answerOpen(
                request, lessor: lessorKey, offer: { _ in Rejection(.notOffered, "sold out") }
            ).failureCode,
            .notOffered)
        XCTAssertEqual(
            LeaseChannel.answerOpen(request, lessor: SigningKeyPair.generate(), offer: { _ in nil }).failureCode,
            .invalidTerms)
    }

    func testTermsProblemsAndTheChannelIDBindsEveryTerm() {
        let base = terms()
        XCTAssertNil(base.problem)
        XCTAssertEqual(base.fullPrice, 8_000)
        XCTAssertEqual(base.paidThroughSeconds(paid: 8_000), base.endSeconds)
        XCTAssertEqual(base.paidThroughSeconds(paid: .max), base.endSeconds, "no overflow, capped at the end")
        var variants: [LeaseTerms] = []
        func vary(_ change: (inout LeaseTerms) -> Void) {
            var copy = base
            change(&copy)
            variants.append(copy)
        }
        vary { $0.chainID = Blake2b.hash256([1]) }
        vary { $0.lessor = SigningKeyPair.generate().publicKey }
        vary { $0.lessee = SigningKeyPair.generate().publicKey }
        vary { $0.licence = 2 }
        vary { $0.firstSlice = 11 }
        vary { $0.sliceCount = 3 }
        vary { $0.startSeconds += 3_600 }
        vary { $0.hours = 5 }
        vary { $0.periodSeconds = 1_800 }
        vary { $0.ratePerSliceHour = 999 }
        vary { $0.deposit = 5_999 }
        vary { $0.paymentIncrement = 499 }
        vary { $0.challengePeriodMilliseconds = 1 }
        vary { $0.nonce = 2 }
        XCTAssertEqual(Set(variants.map(\.channelID) + [base.channelID]).count, variants.count + 1)
        var buffer = ByteBuffer(bytes: base.encoded)
        XCTAssertEqual(buffer.readableBytes, LeaseTerms.encodedByteCount)
        XCTAssertEqual(try LeaseTerms(decoding: &buffer), base)
        let problems: [(String, (inout LeaseTerms) -> Void)] = [
            ("same key", { $0.lessee = $0.lessor }), ("no slices", { $0.sliceCount = 0 }),
            ("past slice 99", { $0.firstSlice = 99 }), ("no hours", { $0.hours = 0 }),
            ("unaligned start", { $0.startSeconds += 1 }), ("zero rate", { $0.ratePerSliceHour = 0 }),
            ("zero deposit", { $0.deposit = 0 }), ("increment above deposit", { $0.paymentIncrement = 6_001 }),
            ("deposit above price", { $0.deposit = 8_001 }),
            ("no challenge period", { $0.challengePeriodMilliseconds = 0 }),
            ("price overflows", { $0.ratePerSliceHour = .max }),
        ]
        for (name, change) in problems {
            var copy = base
            change(&copy)
            XCTAssertNotNil(copy.problem, name)
        }
    }
}

extension LeaseChannel.Action {
    var sentMessage: LeaseMessage? {
        if case .send(let message) = self { return message }
        return nil
    }
}

extension Result {
    var failureCode: ErrorCode? {
        if case .failure(let error) = self { return (error as? Rejection)?.code }
        return nil
    }
}
