import NIOCore
import RWACrypto
import RWASession
import RWAWire

/// The signed-note exchange run by `rwa-peer`, the integration tests and the session benchmark:
/// one side sends numbered notes, the other checks each and answers with a note of its own that
/// names the hash of the one it answers. Every note is checked: author is the authenticated peer,
/// signature valid for this chain, numbers consecutive (so each arrives exactly once, in order).
///
/// Both sides run on the session's event loop (`Inbox.consumeOnEventLoop`): a note is verified
/// and answered in the same turn of the loop that received it, with no thread hop.
public enum NoteExchange {
    public struct Summary: Sendable, Equatable {
        public var sent = 0
        public var verified = 0

        public init() {}
    }

    /// Answers every note on `session` until the peer closes. A note that fails a check gets an
    /// error frame with its code, the session is dropped, and the future fails with that error.
    public static func serve(_ session: PeerSession, identity: SigningKeyPair, chainID: Digest32) -> EventLoopFuture<
        Summary
    > {
        let eventLoop = session.eventLoop
        let promise = eventLoop.makePromise(of: Summary.self)
        eventLoop.execute {
            let summary = NIOLoopBoundBox(Summary(), eventLoop: eventLoop)
            session.inbox.consumeOnEventLoop { event in
                switch event {
                case .message(.signedNote(let note)):
                    if let failure = check(
                        note, from: session, chainID: chainID, expectedNumber: UInt64(summary.value.verified),
                        inReplyTo: nil)
                    {
                        session.beginClose(reporting: failure)
                        promise.fail(failure)
                        return
                    }
                    summary.value.verified += 1
                    let reply = SignedNote(
                        signedBy: identity, chainID: chainID, number: note.number, inReplyTo: note.hash,
                        body: Array("ack".utf8))
                    session.sendPipelined(.signedNote(reply)).whenFailure { promise.fail($0) }
                    summary.value.sent += 1
                case .message:
                    return
                case .finished(nil):
                    promise.succeed(summary.value)  // the peer hung up: the normal end of an exchange
                case .finished(let error?):
                    promise.fail(error)
                }
            }
        }
        return promise.futureResult
    }

    /// Sends `count` notes with up to `window` unanswered at once and checks every answer.
    public static func exchange(
        _ session: PeerSession, identity: SigningKeyPair, chainID: Digest32, count: Int,
        window: Int = 64, bodyBytes: Int = 64
    ) -> EventLoopFuture<Summary> {
        precondition(window >= 1 && bodyBytes >= 8 && bodyBytes <= WireLimits.noteBodyBytesMax)
        struct State {
            var summary = Summary()
            var outstanding: [Digest32] = []  // hashes of sent, unanswered notes, oldest first
            var outstandingHead = 0
            var body: [UInt8]
        }
        let eventLoop = session.eventLoop
        let promise = eventLoop.makePromise(of: Summary.self)
        if count == 0 {
            promise.succeed(Summary())
            return promise.futureResult
        }
        eventLoop.execute {
            let state = NIOLoopBoundBox(State(body: [UInt8](repeating: 0, count: bodyBytes)), eventLoop: eventLoop)
            @Sendable func sendMore() {
                while state.value.summary.sent < count
                    && state.value.summary.sent - state.value.summary.verified < window
                {
                    let number = UInt64(state.value.summary.sent)
                    // The note's number, big-endian, leads the body so every body differs.
                    for i in 0..<8 { state.value.body[i] = UInt8(truncatingIfNeeded: number >> (56 - 8 * UInt64(i))) }
                    let note = SignedNote(signedBy: identity, chainID: chainID, number: number, body: state.value.body)
                    state.value.outstanding.append(note.hash)
                    state.value.summary.sent += 1
                    session.sendPipelined(.signedNote(note)).whenFailure { promise.fail($0) }
                }
            }
            session.inbox.consumeOnEventLoop { event in
                switch event {
                case .message(.signedNote(let reply)):
                    guard state.value.outstandingHead < state.value.outstanding.count else {
                        let failure = SessionError(
                            .unexpectedMessage, "note \(reply.number) answers nothing that was sent")
                        session.beginClose(reporting: failure)
                        promise.fail(failure)
                        return
                    }
                    let expected = state.value.outstanding[state.value.outstandingHead]
                    if let failure = check(
                        reply, from: session, chainID: chainID, expectedNumber: UInt64(state.value.summary.verified),
                        inReplyTo: expected)
                    {
                        session.beginClose(reporting: failure)
                        promise.fail(failure)
                        return
                    }
                    state.value.outstandingHead += 1
                    state.value.summary.verified += 1
                    if state.value.summary.verified == count {
                        promise.succeed(state.value.summary)
                    } else {
                        sendMore()
                    }
                case .message:
                    return
                case .finished(let error):
                    promise.fail(
                        error
                            ?? SessionError(
                                .closed, "peer closed after \(state.value.summary.verified) of \(count) answers",
                                fromPeer: true))
                }
            }
            sendMore()
        }
        return promise.futureResult
    }

    static func check(
        _ note: SignedNote, from session: PeerSession, chainID: Digest32, expectedNumber: UInt64, inReplyTo: Digest32?
    ) -> SessionError? {
        if note.author != session.peerIdentity {
            return SessionError(
                .badSignature, "note \(note.number) is signed by \(note.author), not by the session's peer")
        } else if !note.hasValidSignature(chainID: chainID) {
            return SessionError(.badSignature, "note \(note.number) signature does not verify")
        } else if note.number != expectedNumber {
            return SessionError(.unexpectedMessage, "note \(note.number) where \(expectedNumber) was due")
        } else if let inReplyTo, note.inReplyTo != inReplyTo {
            return SessionError(.unexpectedMessage, "answer \(note.number) names another note")
        }
        return nil
    }
}
