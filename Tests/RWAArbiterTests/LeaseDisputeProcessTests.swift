// Goal: the lease channel's unhappy paths with real processes on loopback (`rwa-arbiter run`,
// `rwa-lessor run`, `rwa-lessee run`): a lessee that stops paying is revoked and closed by the
// lessor's daemon on its own; a party whose store comes back from an old backup registers a stale
// state and the other daemon challenges it unasked, both ways round; and hostile input, off the
// chain to the lessor's daemon and on the chain to the arbiter, is refused with its code and
// changes nothing.
import Foundation
import NIOPosix
import RWAChannel
import RWACrypto
import RWALedger
import RWANode
import RWASession
import RWAStore
import RWATestSupport
import RWAWire
import XCTest

final class LeaseDisputeProcessTests: XCTestCase {
    typealias World = LeaseProcessTests.World

    /// Polls `condition` every 50 ms; fails the test if it does not hold within `seconds`.
    func waitUntil(
        _ what: String, seconds: Double = 60, _ condition: () async throws -> Bool
    ) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try await !condition() {
            guard Date() < deadline else { throw TestFailure("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The channel as the ledger holds it.
    func record(_ world: World, _ channel: String) async throws -> ChannelRecord? {
        let id = try Digest32(bytes: try XCTUnwrap([UInt8](hex: channel)))
        guard let row = try await world.admin.stateRow(.channel(id)),
            case .channel(let record) = try StateRecord(key: .channel(id), value: row)
        else { return nil }
        return record
    }

    func lessorArguments(_ world: World, port: Int, extra: [String] = []) -> [String] {
        ["run", "--home", world.lessorHome, "--port", "\(port)", "--no-udp", "--offer", "\(world.licence):0-99:10:100"]
            + extra + world.connection
    }

    func lesseeArguments(_ world: World) -> [String] { ["run", "--home", world.lesseeHome] + world.connection }

    /// Opens a channel from the lessee's CLI: two slices from `firstSlice`, 10 hours at 10 per
    /// slice-hour (200 in all, the deposit), paid 20 (one hour) at a time.
    func open(
        _ world: World, port: Int, firstSlice: Int, start: UInt64, challengeMilliseconds: Int
    ) throws -> String {
        let opened = try LeaseDaemonProcess.json(
            "rwa-lessee",
            [
                "open", "--home", world.lesseeHome, "--lessor", "127.0.0.1:\(port)", "--lessor-key",
                "\(world.lessorKey.publicKey)", "--licence", "\(world.licence)", "--slices",
                "\(firstSlice)-\(firstSlice + 1)", "--start", "\(start)", "--hours", "10", "--rate", "10", "--deposit",
                "200", "--increment", "20", "--challenge-ms", "\(challengeMilliseconds)",
            ])
        return try XCTUnwrap(opened["channel"] as? String)
    }

    /// Pays 20 more, retrying while the lessee's daemon is still finding its lessor again.
    @discardableResult
    func pay(_ world: World, _ channel: String) async throws -> Int {
        for _ in 0..<100 {
            let result = try ToolProcess.run(
                tool: "rwa-lessee", ["pay", "--home", world.lesseeHome, channel, "20", "--json"], timeout: 60)
            if result.status == 0,
                let answer = try? JSONSerialization.jsonObject(with: Data(result.output.joined().utf8))
                    as? [String: Any],
                let nonce = (answer["state"] as? [String: Any])?["nonce"] as? Int
            {
                return nonce
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("timed out waiting for a payment on \(channel)")
    }

    func nonce(_ tool: String, home: String, _ channel: String) throws -> Int? {
        let status = try LeaseDaemonProcess.json(tool, ["status", "--home", home, channel])
        return ((status["channel"] as? [String: Any])?["state"] as? [String: Any])?["nonce"] as? Int
    }

    /// Copies a daemon's store files (the daemon is stopped) to `backup`, or back.
    func copyStore(from source: String, to destination: String) throws {
        let files = FileManager.default
        try files.createDirectory(atPath: destination, withIntermediateDirectories: true)
        for suffix in ["", "-wal", "-shm"] {
            let target = "\(destination)/peer.sqlite\(suffix)"
            if files.fileExists(atPath: target) { try files.removeItem(atPath: target) }
            if files.fileExists(atPath: "\(source)/peer.sqlite\(suffix)") {
                try files.copyItem(atPath: "\(source)/peer.sqlite\(suffix)", toPath: target)
            }
        }
    }

    // MARK: Default

    /// The lessee's daemon pays ahead on its own, then dies (SIGKILL) and pays no more: the
    /// lessor's daemon revokes the radio at the paid-through time, proposes the final state to
    /// no one, registers its latest state and settles after the period. The lessor's side ends
    /// with everything paid, the lessee with the rest of its deposit.
    func testALesseeThatStopsPayingIsRevokedAndClosedByTheLessor() async throws {
        try await withTimeout(180, "testALesseeThatStopsPayingIsRevokedAndClosedByTheLessor") { [self] in
            let world = try await LeaseProcessTests.makeWorld()
            defer { world.arbiter.stop() }
            let (lessor, port) = try LeaseProcessTests.startDaemon(
                "rwa-lessor", lessorArguments(world, port: 0, extra: ["--close-grace-seconds", "2"]))
            defer { lessor.stop() }
            let (lessee, _) = try LeaseProcessTests.startDaemon("rwa-lessee", lesseeArguments(world))
            defer { lessee.stop() }
            let watch = try ToolProcess(tool: "rwa-lessor", ["watch", "--home", world.lessorHome])
            defer { watch.stop() }

            // Hours of two seconds from a few seconds ahead: the lessee's daemon pays each one
            // ahead of time, unasked.
            let start = (UInt64(Date().timeIntervalSince1970) / 2 + 2) * 2
            let channel = try open(
                world, port: try XCTUnwrap(port), firstSlice: 30, start: start, challengeMilliseconds: 2_000)
            try await waitUntil("three automatic payments") {
                try nonce("rwa-lessee", home: world.lesseeHome, channel) ?? 0 >= 3
            }
            lessee.kill()
            _ = lessee.waitForExit(timeout: 10)

            try await waitUntil("the lessor's daemon closing the channel on its own") {
                try await record(world, channel)?.status == .settled
            }
            let settledRecord = try await record(world, channel)
            let settled = try XCTUnwrap(settledRecord)
            let paid = settled.paid
            XCTAssertGreaterThanOrEqual(paid, 60, "at least the three payments seen")
            XCTAssertLessThan(paid, 200, "the lessee stopped before the end")
            let lessorView = try LeaseDaemonProcess.json("rwa-lessor", ["status", "--home", world.lessorHome, channel])
            let lessorState = (lessorView["channel"] as? [String: Any])?["state"] as? [String: Any]
            XCTAssertEqual(lessorState?["paid"] as? String, "\(paid)", "settled on the lessor's latest state")
            let lesseeBalance = try await world.admin.holding(token: 0, account: world.lesseeKey.publicKey).balance
            XCTAssertEqual(lesseeBalance, 1_000_000 - paid, "the lessee got the rest of its deposit back")
            _ = try LeaseDaemonProcess.json(
                "rwa-lessor", ["claim-rent", "--home", world.lessorHome, "\(world.licence)"])
            let lessorRent = try await world.admin.holding(token: 0, account: world.lessorKey.publicKey).balance
            XCTAssertEqual(lessorRent, paid * 35 / 100, "the lessor's share of everything paid")

            // The radio was granted up to the paid-through time, then revoked.
            watch.stop()
            let events = watch.remainingLines(timeout: 5)
            let grants = events.filter { $0.hasPrefix("grant \(channel) through ") }
            XCTAssertEqual(
                grants.last.map { String($0.split(separator: " ").last!) }, "\(settled.paidThroughSeconds)",
                "the last grant reaches the paid-through time: \(events)")
            XCTAssertTrue(events.contains("revoke \(channel)"), "revoked: \(events)")
            await world.admin.close()
        }
    }

    // MARK: Stale states

    /// Both ways round, the way it happens in practice: a party's store comes back from an older
    /// backup while the other is away, and its operator registers that state (`dispute`); the
    /// other daemon, back, challenges it within the period without being told to, and the
    /// settlement uses the latest state.
    func testAStaleStateFromABackupIsChallengedByTheOtherDaemon() async throws {
        try await withTimeout(240, "testAStaleStateFromABackupIsChallengedByTheOtherDaemon") { [self] in
            let world = try await LeaseProcessTests.makeWorld()
            defer { world.arbiter.stop() }
            var (lessor, picked) = try LeaseProcessTests.startDaemon("rwa-lessor", lessorArguments(world, port: 0))
            let port = try XCTUnwrap(picked)
            var (lessee, _) = try LeaseProcessTests.startDaemon("rwa-lessee", lesseeArguments(world))
            defer {
                lessor.stop()
                lessee.stop()
            }
            let backups = world.scratch.directory.appendingPathComponent("backups").path
            // Far enough ahead that no daemon pays or closes on its own meanwhile.
            let start = (UInt64(Date().timeIntervalSince1970) / 2 + 600) * 2

            for (slices, stale) in [(40, "rwa-lessee"), (50, "rwa-lessor")] {
                let channel = try open(
                    world, port: port, firstSlice: slices, start: start, challengeMilliseconds: 8_000)
                try await pay(world, channel)
                try await pay(world, channel)
                // The backup: state 2.
                let home = stale == "rwa-lessee" ? world.lesseeHome : world.lessorHome
                let backup = "\(backups)/\(slices)"
                if stale == "rwa-lessee" {
                    lessee.stop()
                    try copyStore(from: home, to: backup)
                    (lessee, _) = try LeaseProcessTests.startDaemon("rwa-lessee", lesseeArguments(world))
                } else {
                    lessor.stop()
                    try copyStore(from: home, to: backup)
                    (lessor, _) = try LeaseProcessTests.startDaemon("rwa-lessor", lessorArguments(world, port: port))
                }
                try await pay(world, channel)
                let latest = try await pay(world, channel)
                XCTAssertEqual(latest, 4)
                // Both stop; the stale side comes back from its backup alone and registers state 2.
                lessor.stop()
                lessee.stop()
                try copyStore(from: backup, to: home)
                if stale == "rwa-lessee" {
                    (lessee, _) = try LeaseProcessTests.startDaemon("rwa-lessee", lesseeArguments(world))
                } else {
                    (lessor, _) = try LeaseProcessTests.startDaemon("rwa-lessor", lessorArguments(world, port: port))
                }
                XCTAssertEqual(try nonce(stale, home: home, channel), 2, "\(stale) is back at state 2")
                _ = try LeaseDaemonProcess.json(stale, ["dispute", "--home", home, channel])
                try await waitUntil("the registration of state 2") {
                    let registered = try await record(world, channel)
                    return registered?.status == .disputed && registered?.nonce == 2
                }
                // The other daemon comes back, reads the chain and challenges on its own.
                if stale == "rwa-lessee" {
                    (lessor, _) = try LeaseProcessTests.startDaemon("rwa-lessor", lessorArguments(world, port: port))
                } else {
                    (lessee, _) = try LeaseProcessTests.startDaemon("rwa-lessee", lesseeArguments(world))
                }
                try await waitUntil("the challenge with state 4") { try await record(world, channel)?.nonce == 4 }
                try await waitUntil("the settlement") { try await record(world, channel)?.status == .settled }
                let settledRecord = try await record(world, channel)
                let settled = try XCTUnwrap(settledRecord)
                XCTAssertEqual(settled.nonce, 4, "\(stale)'s stale state did not win")
                XCTAssertEqual(settled.paid, 80)
            }
            let lesseeBalance = try await world.admin.holding(token: 0, account: world.lesseeKey.publicKey).balance
            XCTAssertEqual(lesseeBalance, 1_000_000 - 160, "each channel settled on 80 paid")
            await world.admin.close()
        }
    }

    // MARK: Bad input

    /// A hostile lessee on a real session to the lessor's daemon, then hostile transactions to
    /// the arbiter: each is refused with its code, and the channel, the ledger and both stores
    /// stay as they were.
    func testBadInputIsRefusedWithItsCodeAndChangesNothing() async throws {
        try await withTimeout(180, "testBadInputIsRefusedWithItsCodeAndChangesNothing") { [self] in
            let world = try await LeaseProcessTests.makeWorld()
            defer { world.arbiter.stop() }
            let (lessor, picked) = try LeaseProcessTests.startDaemon("rwa-lessor", lessorArguments(world, port: 0))
            defer { lessor.stop() }
            let port = try XCTUnwrap(picked)
            let (lessee, _) = try LeaseProcessTests.startDaemon("rwa-lessee", lesseeArguments(world))
            defer { lessee.stop() }
            let start = (UInt64(Date().timeIntervalSince1970) / 2 + 600) * 2
            let channel = try open(world, port: port, firstSlice: 60, start: start, challengeMilliseconds: 2_000)
            try await pay(world, channel)
            try await pay(world, channel)
            lessee.stop()

            // The terms as the CLI made them, so the test can sign states of this channel.
            let terms = LeaseTerms(
                chainID: world.genesis.chainID, lessor: world.lessorKey.publicKey, lessee: world.lesseeKey.publicKey,
                licence: world.licence, firstSlice: 60, sliceCount: 2, startSeconds: start, hours: 10,
                periodSeconds: 2, ratePerSliceHour: 10, deposit: 200, paymentIncrement: 20,
                challengePeriodMilliseconds: 2_000, nonce: 1)
            XCTAssertEqual("\(terms.channelID)", channel)
            func state(_ nonce: UInt64, paid: UInt128, of terms: LeaseTerms = terms) -> ChannelState {
                ChannelState(
                    channelID: terms.channelID, nonce: nonce, paid: paid,
                    paidThroughSeconds: terms.paidThroughSeconds(paid: paid), final: false)
            }
            var elsewhere = terms
            elsewhere.nonce = 99

            let session = try await TransportKind.tcp.dial(
                host: "127.0.0.1", port: port,
                configuration: try SessionConfiguration(
                    handshake: HandshakeConfiguration(
                        identity: world.lesseeKey, chainID: world.genesis.chainID,
                        expectedPeer: world.lessorKey.publicKey)),
                group: MultiThreadedEventLoopGroup.singleton)
            var inbox = session.inbox.makeAsyncIterator()
            /// Sends an update and returns the lessor's answer to it.
            func send(_ requestID: UInt64, _ proposed: ChannelState, signedBy key: SigningKeyPair) async throws
                -> LeaseMessage
            {
                try await session.send(
                    .lease(
                        .update(
                            requestID: requestID, state: proposed,
                            signature: proposed.signed(by: key, chainID: terms.chainID))))
                while let message = try await inbox.next() {
                    if case .lease(let answer) = message, answer.requestID == requestID { return answer }
                }
                throw TestFailure("timed out waiting for an answer to update \(requestID)")
            }
            let hostile: [(String, ChannelState, SigningKeyPair, ErrorCode)] = [
                ("a forged signature", state(3, paid: 60), SigningKeyPair.generate(), .badChannelSignature),
                ("a skipped nonce", state(4, paid: 60), world.lesseeKey, .nonceNotNext),
                ("a replayed older state", state(1, paid: 20), world.lesseeKey, .nonceNotNext),
                ("a decreasing payment", state(3, paid: 20), world.lesseeKey, .paymentDecreased),
                ("a payment above the deposit", state(3, paid: 220), world.lesseeKey, .paymentAboveDeposit),
                ("a state of another channel", state(3, paid: 60, of: elsewhere), world.lesseeKey, .unknownChannel),
            ]
            for (index, (name, proposed, key, code)) in hostile.enumerated() {
                let answer = try await send(UInt64(100 + index), proposed, signedBy: key)
                guard case .updateRefused(_, _, _, let refusal, let reason) = answer else {
                    XCTFail("\(name): answered \(answer)")
                    continue
                }
                XCTAssertEqual(refusal, code, "\(name): \(reason)")
            }
            // Nothing changed: the lessor's channel, its store, the lessee's store.
            XCTAssertEqual(try nonce("rwa-lessor", home: world.lessorHome, channel), 2)
            let lessorStore = try PeerStore.open(path: world.lessorHome + "/peer.sqlite")
            XCTAssertEqual(try lessorStore.latestState(of: terms.channelID)?.state, state(2, paid: 40))
            let lesseeStore = try PeerStore.open(path: world.lesseeHome + "/peer.sqlite")
            XCTAssertEqual(try lesseeStore.latestState(of: terms.channelID)?.state, state(2, paid: 40))
            // And the channel still works: the right next state is countersigned.
            guard
                case .countersign(_, _, let nonce, let signature) = try await send(
                    200, state(3, paid: 60), signedBy: world.lesseeKey)
            else { return XCTFail("a valid update was not countersigned") }
            XCTAssertEqual(nonce, 3)
            XCTAssertTrue(state(3, paid: 60).isSigned(by: world.lessorKey.publicKey, signature, chainID: terms.chainID))
            await session.close()

            // On the chain, each transaction is refused with its code and moves nothing.
            let admin = world.admin
            let balanceBefore = try await admin.holding(token: 0, account: world.lesseeKey.publicKey).balance
            func signedOpen(_ terms: LeaseTerms) -> LedgerOperation {
                .openChannel(
                    terms: terms, lessorSignature: world.lessorKey.sign(terms.encoded, domain: terms.signatureDomain),
                    lesseeSignature: world.lesseeKey.sign(terms.encoded, domain: terms.signatureDomain))
            }
            func expectRefused(
                _ name: String, _ code: ErrorCode, _ operation: LedgerOperation, by key: SigningKeyPair
            ) async throws {
                do {
                    _ = try await admin.sign(operation, with: key)
                    XCTFail("\(name) was accepted")
                } catch let rejection as Rejection {
                    XCTAssertEqual(rejection.code, code, "\(name): \(rejection.reason)")
                }
                let balance = try await admin.holding(token: 0, account: world.lesseeKey.publicKey).balance
                XCTAssertEqual(balance, balanceBefore, "\(name) moved nothing")
            }
            var overlapping = terms
            overlapping.nonce = 2
            try await expectRefused(
                "an open of a leased slice-hour", .sliceHourTaken, signedOpen(overlapping), by: world.lesseeKey)
            var late = terms
            late.firstSlice = 80
            late.startSeconds = 1_999_999_990  // the licence is valid until 2,000,000,000
            try await expectRefused(
                "an open outside the licence's validity", .outsideLicenceValidity, signedOpen(late), by: world.lesseeKey
            )
            // An identity without the KYC claim the licence requires.
            let frank = SigningKeyPair.generate()
            let regulator = try KeyFile.read(from: "\(world.chainDir)/regulator.key")
            _ = try await admin.sign(.registerIdentity(account: frank.publicKey, country: 840), with: regulator)
            var unverified = terms
            unverified.lessee = frank.publicKey
            unverified.firstSlice = 80
            try await expectRefused(
                "an open by an identity without the licence's claims", .receiverNotVerified,
                .openChannel(
                    terms: unverified,
                    lessorSignature: world.lessorKey.sign(unverified.encoded, domain: unverified.signatureDomain),
                    lesseeSignature: frank.sign(unverified.encoded, domain: unverified.signatureDomain)),
                by: frank)
            let unverifiedRecord = try await record(world, "\(unverified.channelID)")
            XCTAssertNil(unverifiedRecord, "no channel was made")

            // A channel no daemon follows, registered at its opening state: settling before the
            // period and challenging after it are refused.
            var direct = terms
            direct.firstSlice = 90
            direct.nonce = 3
            _ = try await admin.sign(signedOpen(direct), with: world.lesseeKey)
            _ = try await admin.sign(.registerState(channel: direct.channelID, state: nil), with: world.lesseeKey)
            let registered = try await record(world, "\(direct.channelID)")
            let directBalance = try await admin.holding(token: 0, account: world.lesseeKey.publicKey).balance
            do {
                _ = try await admin.sign(.settleChannel(direct.channelID), with: world.lessorKey)
                XCTFail("a settle before the period was accepted")
            } catch let rejection as Rejection {
                XCTAssertEqual(rejection.code, .challengePeriodRunning)
            }
            try await Task.sleep(for: .milliseconds(2_500))
            let first = state(1, paid: 20, of: direct)
            let coSigned = CoSignedState(
                state: first, lessorSignature: first.signed(by: world.lessorKey, chainID: direct.chainID),
                lesseeSignature: first.signed(by: world.lesseeKey, chainID: direct.chainID))
            do {
                _ = try await admin.sign(.challenge(coSigned), with: world.lessorKey)
                XCTFail("a challenge after the period was accepted")
            } catch let rejection as Rejection {
                XCTAssertEqual(rejection.code, .challengePeriodOver)
            }
            let unchanged = try await record(world, "\(direct.channelID)")
            XCTAssertEqual(unchanged, registered, "the refusals left the channel as registered")
            let unchangedBalance = try await admin.holding(token: 0, account: world.lesseeKey.publicKey).balance
            XCTAssertEqual(unchangedBalance, directBalance)
            // After the period, the settlement returns the whole deposit (nothing was paid).
            _ = try await admin.sign(.settleChannel(direct.channelID), with: world.lessorKey)
            let settledBalance = try await admin.holding(token: 0, account: world.lesseeKey.publicKey).balance
            XCTAssertEqual(settledBalance, directBalance + 200)
            await admin.close()
        }
    }
}
