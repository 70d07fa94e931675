// Goal: the established session's rules, on virtual time, as both transports apply them: pings
// answered, warnings logged, the peer's error and a late handshake message end the session, a
// silent peer times out, an idle session is kept alive, a paused reader is not taken for a
// silent peer, and a close reports its reason once.
import RWACrypto
import RWAWire
import XCTest

@testable import RWASession

final class SessionCoreTests: XCTestCase {
    let milliseconds: UInt64 = 1_000_000
    var timing: SessionCore.Timing {
        SessionCore.Timing(keepaliveNanoseconds: 50 * milliseconds, idleTimeoutNanoseconds: 400 * milliseconds)
    }
    let note = Message.signedNote(SignedNote(signedBy: .generate(), chainID: ChainIDs.devnet, number: 0, body: [1]))

    func testMessagesGetTheirAnswers() {
        var core = SessionCore(timing: timing, now: 0)
        XCTAssertEqual(core.receive(.ping(Ping(nonce: 9)), now: 1), [.send(.pong(Pong(nonce: 9)))])
        XCTAssertEqual(core.receive(.pong(Pong(nonce: 1)), now: 2), [])
        XCTAssertEqual(core.receive(.ignored(MessageType(rawValue: 0x0801)), now: 3), [])
        XCTAssertEqual(core.receive(note, now: 4), [.deliver(note)])
        let warning = ErrorReport(code: .overloaded, text: "slow down")
        XCTAssertEqual(core.receive(.warning(warning), now: 5), [.warn(warning)])
        XCTAssertTrue(core.isOpen)
    }

    func testThePeersErrorClosesWithoutAnswer() {
        var core = SessionCore(timing: timing, now: 0)
        XCTAssertEqual(
            core.receive(.error(ErrorReport(code: .badSignature, text: "no")), now: 1),
            [.close(SessionError(.badSignature, "no", fromPeer: true))])
        XCTAssertFalse(core.isOpen)
        XCTAssertEqual(core.receive(note, now: 2), [], "nothing is delivered after the close")
        XCTAssertNil(core.nextDeadline)
    }

    func testAHandshakeMessageAfterTheHandshakeIsReportedAndCloses() {
        var core = SessionCore(timing: timing, now: 0)
        let hello = Message.hello(
            Hello(
                protocolVersion: 1, features: FeatureBits(), chainID: ChainIDs.devnet,
                identity: SigningKeyPair.generate().publicKey, ephemeralKey: KeyExchangeKeyPair.generate().publicKey))
        let actions = core.receive(hello, now: 1)
        let error = SessionError(.unexpectedMessage, "\(MessageType.hello) after the handshake")
        XCTAssertEqual(
            actions, [.send(.error(ErrorReport(code: .unexpectedMessage, text: error.reason))), .close(error)])
    }

    func testKeepaliveAndIdleTimeoutOnVirtualTime() {
        var core = SessionCore(timing: timing, now: 0)
        XCTAssertEqual(core.nextDeadline, 50 * milliseconds)
        XCTAssertEqual(core.tick(now: 49 * milliseconds), [])
        XCTAssertEqual(core.tick(now: 50 * milliseconds), [.send(.ping(Ping(nonce: 1)))])
        XCTAssertEqual(core.nextDeadline, 100 * milliseconds)
        // The peer answers each ping: ten periods pass and the session stays open.
        var now = 50 * milliseconds
        var pings: [UInt64] = [1]
        var lastHeard: UInt64 = 0
        while now < 1_000 * milliseconds {
            now += 10 * milliseconds
            if case .ping(let ping)? = core.tick(now: now).compactMap({ action -> Message? in
                if case .send(let message) = action { return message } else { return nil }
            }).first {
                pings.append(ping.nonce)
                lastHeard = now + milliseconds
                _ = core.receive(.pong(Pong(nonce: ping.nonce)), now: lastHeard)
            }
        }
        XCTAssertTrue(core.isOpen)
        XCTAssertEqual(pings, Array(1...20), "a ping every 50 ms, numbered")
        // Then silence: pings go out, nothing comes back, and 400 ms after the last answer it ends.
        var closedAt: UInt64?
        while closedAt == nil && now < 2_000 * milliseconds {
            now += milliseconds
            if core.tick(now: now).contains(where: { if case .close = $0 { true } else { false } }) { closedAt = now }
        }
        XCTAssertEqual(closedAt, lastHeard + 400 * milliseconds)
        XCTAssertFalse(core.isOpen)
    }

    func testSendingPostponesThePingAndHearingPostponesTheTimeout() {
        var core = SessionCore(timing: timing, now: 0)
        core.sent(now: 40 * milliseconds)
        XCTAssertEqual(core.tick(now: 60 * milliseconds), [], "sent 20 ms ago")
        XCTAssertEqual(core.tick(now: 90 * milliseconds), [.send(.ping(Ping(nonce: 1)))])
        core.heard(now: 300 * milliseconds)  // an acknowledgement, say
        XCTAssertEqual(core.tick(now: 650 * milliseconds).count, 1, "a ping only: heard 350 ms ago")
        XCTAssertEqual(
            core.tick(now: 700 * milliseconds).last, .close(SessionError(.idleTimeout, "nothing received for 400 ms")))
    }

    func testAPausedReaderIsNotASilentPeer() {
        var core = SessionCore(timing: timing, now: 0)
        var now: UInt64 = 0
        while now < 2_000 * milliseconds {
            now += 10 * milliseconds
            _ = core.tick(now: now, readingPaused: true)
        }
        XCTAssertTrue(core.isOpen, "two seconds of not reading: the peer's silence is ours")
        XCTAssertTrue(
            core.tick(now: now + 399 * milliseconds).allSatisfy { if case .close = $0 { false } else { true } })
        XCTAssertFalse(core.tick(now: now + 400 * milliseconds).isEmpty)
        XCTAssertFalse(core.isOpen, "reading again, the idle clock runs from the pause's end")
    }

    func testALocalCloseReportsItsReasonOnce() {
        var core = SessionCore(timing: timing, now: 0)
        let error = SessionError(.closed, "done")
        XCTAssertEqual(core.close(error), [.send(.error(ErrorReport(code: .closed, text: "done"))), .close(error)])
        XCTAssertEqual(core.close(SessionError(.overloaded, "again")), [], "one close")
        XCTAssertEqual(core.tick(now: 10_000 * milliseconds), [])
    }

    func testAClosingSessionLingersLongAfterANormalCloseAndBrieflyAfterAnError() {
        XCTAssertEqual(SessionCore.lingerDeadline(for: SessionError(.closed, "done"), now: 5), 5 + 2_000 * milliseconds)
        XCTAssertEqual(
            SessionCore.lingerDeadline(for: SessionError(.badSignature, "no"), now: 5), 5 + 250 * milliseconds)
    }

    /// A handshake frame over UDP goes again at 50, 150, 350, 750, 1,550 ms, then every 1.6 s,
    /// until the peer's next step; a new frame starts the schedule over; 5 s after the start the
    /// handshake has timed out.
    func testHandshakeFramesRepeatWithBackoffUntilTheTimeout() {
        var timing = HandshakeRepetition(
            startedAt: 0, timeoutNanoseconds: 5_000 * milliseconds, initialNanoseconds: 50 * milliseconds)
        var sent: [UInt64] = []
        for millisecond in UInt64(0)...4_800 where timing.repeatDue(now: millisecond * milliseconds) {
            sent.append(millisecond)
        }
        XCTAssertEqual(sent, [50, 150, 350, 750, 1_550, 3_150, 4_750])
        XCTAssertFalse(timing.timedOut(now: 4_999 * milliseconds))
        XCTAssertTrue(timing.timedOut(now: 5_000 * milliseconds))
        timing.sentNewFrame(now: 4_800 * milliseconds)
        XCTAssertFalse(timing.repeatDue(now: 4_849 * milliseconds))
        XCTAssertTrue(timing.repeatDue(now: 4_850 * milliseconds), "a new frame starts at the initial delay")
    }
}
