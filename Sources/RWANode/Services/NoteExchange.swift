import NIOCore
import RWACrypto
import RWAWire

/// The signed-note exchange run by `rwa-peer`, the integration tests and the session benchmark:
/// one side sends numbered notes, the other checks each and answers with a note of its own that
/// names the hash of the one it answers. Every note is checked: author is the authenticated peer,
/// signature valid for this chain, numbers consecutive (so each arrives exactly once, in order).
public enum NoteExchange {
    public struct Summary: Sendable, Equatable {
        public var sent = 0
        public var verified = 0

        public init() {}
    }

    /// Answers every note on `session` until the peer closes. A note that fails a check gets an
    /// error frame with its code, and the session is dropped.
    @discardableResult
    public static func serve(_ session: PeerSession, identity: SigningKeyPair, chainID: Digest32) async throws -> Summary {
        var summary = Summary()
        do {
            for try await message in session.inbox {
                guard case .signedNote(let note) = message else { continue }
                try await check(note, from: session, chainID: chainID, expectedNumber: UInt64(summary.verified), inReplyTo: nil)
                summary.verified += 1
                let reply = SignedNote(signedBy: identity, chainID: chainID, number: note.number, inReplyTo: note.hash, body: Array("ack".utf8))
                try await session.send(.signedNote(reply))
                summary.sent += 1
            }
        } catch let error as SessionError where error.code == .closed && error.fromPeer {
            return summary  // the peer hung up: the normal end of an exchange
        }
        return summary
    }

    /// Sends `count` notes with up to `window` unanswered at once and checks every answer.
    public static func exchange(_ session: PeerSession, identity: SigningKeyPair, chainID: Digest32, count: Int,
                                window: Int = 64, bodyBytes: Int = 64) async throws -> Summary {
        precondition(window >= 1 && bodyBytes <= WireLimits.noteBodyBytesMax)
        var summary = Summary()
        var outstanding: [Digest32] = []  // hashes of sent, unanswered notes, oldest first
        var outstandingHead = 0
        var iterator = session.inbox.makeAsyncIterator()
        var body = [UInt8](repeating: 0, count: bodyBytes)
        while summary.verified < count {
            while summary.sent < count && summary.sent - summary.verified < window {
                // The note's number, big-endian, leads the body so every body differs.
                for i in 0..<min(8, body.count) { body[i] = UInt8(truncatingIfNeeded: summary.sent >> (56 - 8 * i)) }
                let note = SignedNote(signedBy: identity, chainID: chainID, number: UInt64(summary.sent), body: body)
                outstanding.append(note.hash)
                try await session.send(.signedNote(note))
                summary.sent += 1
            }
            guard case .signedNote(let reply)? = try await iterator.next() else {
                throw SessionError(.closed, "peer closed after \(summary.verified) of \(count) answers", fromPeer: true)
            }
            try await check(reply, from: session, chainID: chainID, expectedNumber: UInt64(summary.verified), inReplyTo: outstanding[outstandingHead])
            outstandingHead += 1
            summary.verified += 1
        }
        return summary
    }

    static func check(_ note: SignedNote, from session: PeerSession, chainID: Digest32, expectedNumber: UInt64, inReplyTo: Digest32?) async throws {
        let failure: SessionError?
        if note.author != session.peerIdentity {
            failure = SessionError(.badSignature, "note \(note.number) is by \(note.author), not the session's peer")
        } else if !note.hasValidSignature(chainID: chainID) {
            failure = SessionError(.badSignature, "note \(note.number) signature does not verify")
        } else if note.number != expectedNumber {
            failure = SessionError(.unexpectedMessage, "note \(note.number) where \(expectedNumber) was due")
        } else if let inReplyTo, note.inReplyTo != inReplyTo {
            failure = SessionError(.unexpectedMessage, "answer \(note.number) names another note")
        } else {
            failure = nil
        }
        if let failure {
            await session.close(reporting: failure)
            throw failure
        }
    }
}
