// Goal: the lessor's and lessee's lease services, each a shell around its `LeaseChannel`, lease a
// licence's slices to each other over a real TCP session on loopback, with the arbiter's core
// in process (`InMemoryArbiter`) and the clock in the test's hands: the lessee opens, pays in
// increments that both sides store, and closes cooperatively; the ledger's balances are exact and
// the licence's two holders collect the rent pro rata. A lessee restarted from its store resumes
// the channel where both sides left it.
import Foundation
import Logging
import NIOPosix
import RWAChannel
import RWACrypto
import RWALedger
import RWASession
import RWAStore
import RWATestSupport
import RWAWire
import XCTest

@testable import RWANode

final class LeaseServiceTests: XCTestCase {
    let arbiterKey = try! SigningKeyPair(seed: [UInt8](repeating: 41, count: 32))
    let regulator = try! SigningKeyPair(seed: [UInt8](repeating: 42, count: 32))
    let issuer = try! SigningKeyPair(seed: [UInt8](repeating: 43, count: 32))
    let lessorKey = try! SigningKeyPair(seed: [UInt8](repeating: 44, count: 32))
    let lesseeKey = try! SigningKeyPair(seed: [UInt8](repeating: 45, count: 32))
    let carol = try! SigningKeyPair(seed: [UInt8](repeating: 46, count: 32))
    static let now: UInt64 = 1_800_000_000_000
    var quiet: Logger {
        var logger = Logger(label: "test.lease")
        logger.logLevel = .warning
        return logger
    }

    /// A chain whose hours last 60 s, with the lessor owning a licence (carol holds 25 of its 100
    /// slices) and the lessee funded.
    func makeWorld() async throws -> (InMemoryArbiter, ManualTimeSource, Genesis) {
        let time = ManualTimeSource(unixMilliseconds: Self.now)
        let genesis = Genesis(
            networkName: "lease-service-test", timeMilliseconds: Self.now, arbiter: arbiterKey.publicKey,
            claimIssuers: [regulator.publicKey], stablecoinIssuer: issuer.publicKey, periodSeconds: 60)
        var ledger = Ledger(genesis: genesis)
        let rows = ledger.takeStateChanges().compactMap { change in
            change.row.map { StateRow(key: change.key.bytes, value: $0) }
        }
        let arbiter = try InMemoryArbiter(
            store: InMemoryChainStore(genesis: genesis, genesisRows: rows), arbiterKey: arbiterKey, time: time)
        var sequences: [SigningPublicKey: UInt64] = [:]
        func submit(_ signer: SigningKeyPair, _ operation: LedgerOperation) async throws -> Receipt {
            let sequence = sequences[signer.publicKey, default: 0]
            sequences[signer.publicKey] = sequence + 1
            return try await arbiter.submit(
                try Transaction(signedBy: signer, chainID: genesis.chainID, sequence: sequence, operation: operation))
        }
        for key in [lessorKey, lesseeKey, carol] {
            let identity = try await submit(regulator, .registerIdentity(account: key.publicKey, country: 840))
                .createdID
            _ = try await submit(regulator, .addClaim(identity: identity, topic: ClaimTopic.kyc))
        }
        _ = try await submit(
            regulator,
            .registerResource(
                ResourceRegistration(
                    kind: .radioSpectrum, owner: lessorKey.publicKey, name: "CBRS", valuation: 1_000_000,
                    spectrum: SpectrumLicence(
                        centreHz: 3_500_000_000, widthHz: 10_000_000, country: 840, region: "test",
                        validFrom: 1_700_000_000, validUntil: 1_900_000_000),
                    compliance: ComplianceRules())))
        _ = try await submit(lessorKey, .transfer(token: 1, to: carol.publicKey, amount: 25_000_000))
        _ = try await submit(issuer, .mint(token: 0, to: lesseeKey.publicKey, amount: 1_000_000))
        return (arbiter, time, genesis)
    }

    func balance(_ arbiter: InMemoryArbiter, _ token: TokenID, _ account: SigningPublicKey) async throws -> UInt128 {
        guard let row = try await arbiter.stateRow(.holding(token, account)),
            case .holding(let holding) = try StateRecord(key: .holding(token, account), value: row)
        else { return 0 }
        return holding.balance
    }

    /// Waits (at most 10 s) until `condition` holds.
    func eventually(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TestFailure("timed out waiting: \(what)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// A lessor and a lessee service on `world`, connected over TCP, with a channel open between
    /// them: two slices for five hours, ten periods from now, 10 per slice-hour, deposit 100.
    struct Lease {
        var lessor: LeaseService
        var lessee: LeaseService
        var lesseeStore: any ChannelStore
        var session: PeerSession
        var listener: SessionListener
        var id: Digest32
        var terms: LeaseTerms

        func stop() async {
            lessor.stop()
            lessee.stop()
            await session.close()
            await listener.close()
        }
    }

    /// A lessor service offering slices 0-99 of licence 1, serving a TCP listener of its own.
    func startLessor(
        _ arbiter: InMemoryArbiter, _ time: ManualTimeSource, _ genesis: Genesis,
        store: any ChannelStore = InMemoryChannelStore()
    ) async throws -> (LeaseService, SessionListener) {
        let lessor = try LeaseService(
            role: .lessor, key: lessorKey, genesis: genesis, store: store, arbiter: arbiter, time: time,
            offers: [LeaseOffer(licence: 1, firstSlice: 0, sliceCount: 100, ratePerSliceHour: 10, maxHours: 100)],
            logger: quiet)
        lessor.start()
        let listener = try await TransportKind.tcp.listen(
            host: "127.0.0.1", port: 0,
            configuration: try SessionConfiguration(
                handshake: HandshakeConfiguration(identity: lessorKey, chainID: genesis.chainID)),
            group: MultiThreadedEventLoopGroup.singleton)
        Task { for await session in listener.sessions { lessor.serve(session) } }
        return (lessor, listener)
    }

    func openLease(
        _ arbiter: InMemoryArbiter, _ time: ManualTimeSource, _ genesis: Genesis,
        lesseeStore: any ChannelStore = InMemoryChannelStore()
    ) async throws -> Lease {
        let (lessor, listener) = try await startLessor(arbiter, time, genesis)
        let lessee = try LeaseService(
            role: .lessee, key: lesseeKey, genesis: genesis, store: lesseeStore, arbiter: arbiter, time: time,
            logger: quiet)
        lessee.start()
        let session = try await dial(listener.port, genesis)
        lessee.adopt(session)
        let terms = LeaseTerms(
            chainID: genesis.chainID, lessor: lessorKey.publicKey, lessee: lesseeKey.publicKey, licence: 1,
            firstSlice: 20, sliceCount: 2, startSeconds: (Self.now / 1000 / 60 + 10) * 60, hours: 5, periodSeconds: 60,
            ratePerSliceHour: 10, deposit: 100, paymentIncrement: 10, challengePeriodMilliseconds: 5_000, nonce: 1)
        let id = try await lessee.open(terms, over: session)
        try await eventually("the lessor sees the open") { lessor.channels().first?.status == .open }
        return Lease(
            lessor: lessor, lessee: lessee, lesseeStore: lesseeStore, session: session, listener: listener, id: id,
            terms: terms)
    }

    func dial(_ port: Int, _ genesis: Genesis) async throws -> PeerSession {
        try await TransportKind.tcp.dial(
            host: "127.0.0.1", port: port,
            configuration: try SessionConfiguration(
                handshake: HandshakeConfiguration(
                    identity: lesseeKey, chainID: genesis.chainID, expectedPeer: lessorKey.publicKey)),
            group: MultiThreadedEventLoopGroup.singleton)
    }

    /// The lessee pays twice and goes silent. The lessor revokes at the paid-through time,
    /// proposes the final state, and when nobody countersigns registers its latest state and
    /// settles after the challenge period: it has everything paid, the lessee the rest.
    func testALessorWhoseLesseeStopsPayingRevokesAndCloses() async throws {
        try await withTimeout(60, "testALessorWhoseLesseeStopsPayingRevokesAndCloses") { [self] in
            let (arbiter, time, genesis) = try await makeWorld()
            let lease = try await openLease(arbiter, time, genesis)
            var events = lease.lessor.watch().makeAsyncIterator()
            _ = try await lease.lessee.pay(lease.id, amount: 10)
            _ = try await lease.lessee.pay(lease.id, amount: 10)
            lease.lessee.stop()
            await lease.session.close()
            let paidThrough = lease.terms.startSeconds + 60  // 20 buys one period of two slices at 10
            XCTAssertEqual(lease.lessor.channels().first?.state.paidThroughSeconds, paidThrough)
            func until(_ prefix: String) async throws {
                while let event = await events.next() {
                    if event.hasPrefix(prefix) { return }
                }
                throw TestFailure("no \(prefix) event")
            }
            time.advance(byNanoseconds: (paidThrough * 1000 - time.unixMilliseconds) * 1_000_000)
            try await until("revoke")
            // The grace: the final state is proposed and goes unanswered; as long again, and the
            // lessor registers its state. (Its clock is read every 100 ms.)
            time.advance(byNanoseconds: 61_000_000_000)
            try await Task.sleep(for: .milliseconds(300))
            time.advance(byNanoseconds: 61_000_000_000)
            try await until("registered")
            time.advance(byNanoseconds: 6_000_000_000)  // past the challenge period
            try await eventually("the lessor settles") { lease.lessor.channels().first?.status == .closed }
            let lesseeBalance = try await balance(arbiter, 0, lesseeKey.publicKey)
            XCTAssertEqual(lesseeBalance, 1_000_000 - 20, "the unpaid rest of the deposit came back")
            _ = try await lease.lessor.claimRent(token: 1)
            let rent = try await balance(arbiter, 0, lessorKey.publicKey)
            XCTAssertEqual(rent, 15, "75% of the 20 paid")
            await lease.stop()
        }
    }

    /// Payments asked at once (a user's and a script's, or one sent before a restart and the
    /// next) take turns: each completes with its own state and none is refused for the other.
    /// Payments queued on one channel pipeline with the lessee's stores: while its disk holds the
    /// store of state 1, the lessee already proposes state 2 and the lessor stores and
    /// countersigns it; no payment returns before the lessee has stored its state.
    func testQueuedPaymentsPipelineWithTheProposersStores() async throws {
        try await withTimeout(60, "testQueuedPaymentsPipelineWithTheProposersStores") { [self] in
            let (arbiter, time, genesis) = try await makeWorld()
            let store = HeldChannelStore()
            let lease = try await openLease(arbiter, time, genesis, lesseeStore: store)
            let (lessee, id) = (lease.lessee, lease.id)
            store.hold()
            let returned = HeldChannelStore.Count()
            let first = Task {
                defer { returned.add() }
                return try await lessee.pay(id, amount: 10)
            }
            try await eventually("state 1 waits for the lessee's disk") { store.waitingWrites > 0 }
            let second = Task {
                defer { returned.add() }
                return try await lessee.pay(id, amount: 10)
            }
            try await eventually("the lessor stored and countersigned state 2 meanwhile") {
                lease.lessor.channels().first?.state.nonce == 2
            }
            XCTAssertNil(try store.latestState(of: id), "nothing stored on the lessee's side yet")
            XCTAssertEqual(returned.value, 0, "no payment returns before the lessee has stored it")
            XCTAssertEqual(lessee.channels().first?.state.nonce, 0)
            store.release()
            let states = [try await first.value, try await second.value]
            XCTAssertEqual(states.map(\.nonce), [1, 2])
            XCTAssertEqual(try store.latestState(of: id)?.state, states[1], "stored before the pay returned")
            await lease.stop()
        }
    }

    /// A peer whose messages pile up on the service's queue (sent without waiting for answers) is
    /// closed with `overloaded` once more wait than its channels justify: 64, and 4 per channel.
    /// A lessee with channels has room for more.
    func testASessionWhoseMessagesPileUpIsClosed() async throws {
        try await withTimeout(60, "testASessionWhoseMessagesPileUpIsClosed") { [self] in
            let (arbiter, time, genesis) = try await makeWorld()
            let store = HeldChannelStore()
            let (lessor, listener) = try await startLessor(arbiter, time, genesis, store: store)
            XCTAssertEqual(lessor.waitingMessagesMax(from: lesseeKey.publicKey), 64)
            let session = try await dial(listener.port, genesis)
            let terms = LeaseTerms(
                chainID: genesis.chainID, lessor: lessorKey.publicKey, lessee: lesseeKey.publicKey, licence: 1,
                firstSlice: 0, sliceCount: 1, startSeconds: (Self.now / 1000 / 60 + 10) * 60, hours: 1,
                periodSeconds: 60, ratePerSliceHour: 10, deposit: 10, paymentIncrement: 10,
                challengePeriodMilliseconds: 5_000, nonce: 1)
            // The lessor's queue stores the accepted open's record, and the disk holds it there.
            store.hold(records: true)
            try await session.send(.lease(LeaseChannel.openRequest(terms, lessee: lesseeKey, requestID: 1)))
            try await eventually("the lessor's queue waits for its disk") { store.waitingWrites > 0 }
            for requestID in 0..<UInt64(64 + 8) {
                _ = session.sendPipelined(.lease(.getOffers(requestID: requestID)))
            }
            do {
                for try await message in session.inbox { XCTFail("no answer while the queue waits: \(message)") }
                XCTFail("the session ended without saying why")
            } catch let error as SessionError {
                XCTAssertEqual(error.code, .overloaded, "\(error)")
            }
            store.release()
            try await eventually("the open is stored") { lessor.channels().count == 1 }
            XCTAssertEqual(lessor.waitingMessagesMax(from: lesseeKey.publicKey), 68, "4 more for the channel")
            lessor.stop()
            await listener.close()
        }
    }

    func testPaymentsAskedAtOnceTakeTurns() async throws {
        try await withTimeout(60, "testPaymentsAskedAtOnceTakeTurns") { [self] in
            let (arbiter, time, genesis) = try await makeWorld()
            let lease = try await openLease(arbiter, time, genesis)
            let lessee = lease.lessee
            let id = lease.id
            let states = try await withThrowingTaskGroup(of: ChannelState.self) { group in
                for _ in 0..<5 { group.addTask { try await lessee.pay(id, amount: 10) } }
                return try await group.reduce(into: [ChannelState]()) { $0.append($1) }
            }
            XCTAssertEqual(states.map(\.nonce).sorted(), [1, 2, 3, 4, 5], "each payment has its own update")
            XCTAssertEqual(states.map(\.paid).sorted(), [10, 20, 30, 40, 50])
            try await eventually("the lessor holds all five") { lease.lessor.channels().first?.state.paid == 50 }
            await lease.stop()
        }
    }

    /// A "lessor" that completes the handshake and then never answers: the lessee's offers and
    /// open fail once `peerAnswerMillisecondsMax` has passed on its clock, instead of holding
    /// their callers for ever; a second open of the same terms meanwhile is refused at once, and
    /// the lessee keeps no channel.
    func testALessorThatNeverAnswersFailsTheAskAfterItsTime() async throws {
        try await withTimeout(60, "testALessorThatNeverAnswersFailsTheAskAfterItsTime") { [self] in
            let (arbiter, time, genesis) = try await makeWorld()
            let silent = try await TransportKind.tcp.listen(
                host: "127.0.0.1", port: 0,
                configuration: try SessionConfiguration(
                    handshake: HandshakeConfiguration(identity: lessorKey, chainID: genesis.chainID)),
                group: MultiThreadedEventLoopGroup.singleton)
            Task { for await session in silent.sessions { Task { for try await _ in session.inbox {} } } }
            let lessee = try LeaseService(
                role: .lessee, key: lesseeKey, genesis: genesis, store: InMemoryChannelStore(), arbiter: arbiter,
                time: time, logger: quiet)
            lessee.start()
            let session = try await dial(silent.port, genesis)
            lessee.adopt(session)
            let terms = LeaseTerms(
                chainID: genesis.chainID, lessor: lessorKey.publicKey, lessee: lesseeKey.publicKey, licence: 1,
                firstSlice: 0, sliceCount: 1, startSeconds: (Self.now / 1000 / 60 + 10) * 60, hours: 1,
                periodSeconds: 60, ratePerSliceHour: 10, deposit: 10, paymentIncrement: 10,
                challengePeriodMilliseconds: 5_000, nonce: 1)
            let offers = Task { try await lessee.offers(over: session) }
            let open = Task { try await lessee.open(terms, over: session) }
            try await Task.sleep(for: .milliseconds(300))
            do {
                _ = try await lessee.open(terms, over: session)
                XCTFail("a second open of the same terms was asked while the first waits")
            } catch let rejection as Rejection {
                XCTAssertEqual(rejection.code, .updateInProgress)
            }
            time.advance(byNanoseconds: (LeaseService.peerAnswerMillisecondsMax - 1) * 1_000_000)
            try await Task.sleep(for: .milliseconds(300))
            time.advance(byNanoseconds: 1_000_000)
            for (what, result) in [
                ("offers", await offers.result.map { _ in () }), ("open", await open.result.map { _ in () }),
            ] {
                guard case .failure(let error as SessionError) = result else {
                    XCTFail("\(what) of a silent lessor: \(result)")
                    continue
                }
                XCTAssertEqual(error.code, .deliveryFailed, what)
            }
            XCTAssertTrue(lessee.channels().isEmpty, "no channel kept for an open never answered")
            lessee.stop()
            await session.close()
            await silent.close()
        }
    }

    /// The lessee's store is restored from an old backup and it registers that stale state. The
    /// lessor's service challenges with its newer one without being asked, and the settlement
    /// pays what the latest state says.
    func testAStaleRegistrationIsChallengedByThePeersService() async throws {
        try await withTimeout(60, "testAStaleRegistrationIsChallengedByThePeersService") { [self] in
            let (arbiter, time, genesis) = try await makeWorld()
            let lease = try await openLease(arbiter, time, genesis)
            _ = try await lease.lessee.pay(lease.id, amount: 10)
            _ = try await lease.lessee.pay(lease.id, amount: 10)
            let backup = InMemoryChannelStore()
            for channel in try lease.lesseeStore.channels() { try backup.save(channel) }
            try backup.saveState(try XCTUnwrap(lease.lesseeStore.latestState(of: lease.id)))
            for _ in 1...3 { _ = try await lease.lessee.pay(lease.id, amount: 10) }
            lease.lessee.stop()
            await lease.session.close()
            let restored = try LeaseService(
                role: .lessee, key: lesseeKey, genesis: genesis, store: backup, arbiter: arbiter, time: time,
                logger: quiet)
            restored.start()
            XCTAssertEqual(restored.channels().first?.state.nonce, 2, "the backup's state")
            try await eventually("the restored lessee has followed the chain to the open") {
                restored.channels().first?.status == .open
            }
            try restored.dispute(lease.id)
            try await eventually("the lessor challenges and the channel is disputed at nonce 5") {
                lease.lessor.channels().first?.status == .closing
            }
            // Let the challenge land before the period ends (block time is the manual clock).
            try await Task.sleep(for: .milliseconds(200))
            time.advance(byNanoseconds: 6_000_000_000)
            try await eventually("settled") { lease.lessor.channels().first?.status == .closed }
            let lesseeBalance = try await balance(arbiter, 0, lesseeKey.publicKey)
            XCTAssertEqual(lesseeBalance, 1_000_000 - 50, "settled with the latest state, 50 paid, not 20")
            restored.stop()
            await lease.stop()
        }
    }

    func testALeaseOpensPaysAndClosesOverTCP() async throws {
        try await withTimeout(60, "testALeaseOpensPaysAndClosesOverTCP") { [self] in
            let (arbiter, time, genesis) = try await makeWorld()
            let lease = try await openLease(arbiter, time, genesis)
            let (lessor, lessee, lesseeStore, id) = (lease.lessor, lease.lessee, lease.lesseeStore, lease.id)
            let depositPaid = try await balance(arbiter, 0, lesseeKey.publicKey)
            XCTAssertEqual(depositPaid, 1_000_000 - 100)
            // Terms below the lessor's offer are refused, and leave no channel on either side.
            var refused = lease.terms
            refused.ratePerSliceHour = 9
            refused.deposit = 90
            refused.paymentIncrement = 9
            refused.nonce = 2
            do {
                _ = try await lessee.open(refused, over: lease.session)
                XCTFail("a rate below the offer was accepted")
            } catch let rejection as Rejection {
                XCTAssertEqual(rejection.code, .notOffered)
            }
            XCTAssertEqual(lessee.channels().map(\.channelID), [id])
            XCTAssertEqual(lessor.channels().map(\.channelID), [id])
            // Terms at the offer that share a slice-hour with the open channel: the lessor refuses
            // them itself, before the ledger would.
            let seenBy = ContinuousClock.now + .seconds(10)
            while lessor.channels().first?.status != .open && ContinuousClock.now < seenBy {
                try await Task.sleep(for: .milliseconds(10))
            }
            XCTAssertEqual(lessor.channels().first?.status, .open, "the lessor saw the open's block")
            var overlapping = lease.terms
            overlapping.nonce = 3
            do {
                _ = try await lessee.open(overlapping, over: lease.session)
                XCTFail("an overlapping lease was accepted")
            } catch let rejection as Rejection {
                XCTAssertEqual(rejection.code, .sliceHourTaken)
            }
            XCTAssertEqual(lessee.channels().map(\.channelID), [id])
            XCTAssertEqual(lessor.channels().map(\.channelID), [id], "the lessor signed nothing")
            // And the lessor's offers, asked over the session, list the lease as taken.
            let catalogue = try await lessee.offers(over: lease.session)
            XCTAssertEqual(
                catalogue.offers,
                [LeaseOffer(licence: 1, firstSlice: 0, sliceCount: 100, ratePerSliceHour: 10, maxHours: 100)])
            XCTAssertEqual(catalogue.taken, [LeasedRange(lease.terms)])

            for step in 1...10 {
                let state = try await lessee.pay(id, amount: 10)
                XCTAssertEqual(state.nonce, UInt64(step))
                XCTAssertEqual(state.paid, UInt128(step * 10))
                XCTAssertEqual(try lesseeStore.latestState(of: id)?.state, state, "stored before the pay returns")
            }
            do {
                _ = try await lessee.pay(id, amount: 1)
                XCTFail("a payment above the deposit was accepted")
            } catch let rejection as Rejection {
                XCTAssertEqual(rejection.code, .paymentAboveDeposit)
            }
            XCTAssertEqual(lessor.channels().first?.state, lessee.channels().first?.state)

            let final = try await lessee.close(id)
            XCTAssertTrue(final.final)
            try await eventually("both sides see the settlement") {
                lessor.channels().first?.status == .closed && lessee.channels().first?.status == .closed
            }
            let afterSettlement = try await balance(arbiter, 0, lesseeKey.publicKey)
            XCTAssertEqual(afterSettlement, 1_000_000 - 100, "all of the deposit was paid")
            // Rent: 75 to the lessor, 25 to carol.
            _ = try await lessor.claimRent(token: 1)
            let lessorRent = try await balance(arbiter, 0, lessorKey.publicKey)
            XCTAssertEqual(lessorRent, 75)
            let carolService = try LeaseService(
                role: .lessee, key: carol, genesis: genesis, store: InMemoryChannelStore(), arbiter: arbiter,
                time: time,
                logger: quiet)
            _ = try await carolService.claimRent(token: 1)
            let carolRent = try await balance(arbiter, 0, carol.publicKey)
            XCTAssertEqual(carolRent, 25)
            await lease.stop()
        }
    }
}

/// A store in memory whose state writes wait while it is held: a slow disk, on demand.
final class HeldChannelStore: ChannelStore, @unchecked Sendable {
    private let inner = InMemoryChannelStore()
    private let condition = NSCondition()
    private var held = false
    private var holdsRecords = false
    private var waiting = 0

    /// A counter threads may bump.
    final class Count: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        var value: Int { lock.withLock { count } }
        func add() { lock.withLock { count += 1 } }
    }

    /// Writes of states blocked now.
    var waitingWrites: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting
    }

    /// Holds the writes of states, and with `records` those of channel records too.
    func hold(records: Bool = false) {
        condition.lock()
        held = true
        holdsRecords = records
        condition.unlock()
    }

    func release() {
        condition.lock()
        held = false
        condition.broadcast()
        condition.unlock()
    }

    func channels() throws -> [StoredChannel] { try inner.channels() }
    func latestState(of channel: Digest32) throws -> CoSignedState? { try inner.latestState(of: channel) }
    func save(_ channel: StoredChannel) throws {
        condition.lock()
        let holding = holdsRecords
        condition.unlock()
        if holding { try waitWhileHeld() }
        try inner.save(channel)
    }
    func forget(_ channel: Digest32) throws { try inner.forget(channel) }
    func saveState(_ state: CoSignedState) throws { try saveStates([state]) }

    func saveStates(_ states: [CoSignedState]) throws {
        try waitWhileHeld()
        try inner.saveStates(states)
    }

    /// Waits while held (at most 20 s, then fails the write).
    private func waitWhileHeld() throws {
        condition.lock()
        waiting += 1
        let deadline = Date() + 20
        while held && condition.wait(until: deadline) {}
        waiting -= 1
        let stillHeld = held
        condition.unlock()
        if stillHeld { throw TestFailure("a held store was never released") }
    }
}
