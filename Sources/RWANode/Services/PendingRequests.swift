import Logging
import NIOCore
import RWACrypto
import RWASession
import RWAWire

/// A client's requests on one session that await their answers, matched by request id: the
/// mechanism the arbiter's and the exchange's clients share. Requests may be pipelined.
final class PendingRequests<Answer: Sendable>: Sendable {
    private let session: PeerSession
    private let state: NIOLoopBoundBox<State>

    private struct State {
        var nextRequestID: UInt64 = 1
        var waiting: [UInt64: EventLoopPromise<Answer>] = [:]
        var ended: SessionError?
    }

    init(session: PeerSession) {
        self.session = session
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: session.eventLoop)
    }

    /// Sends the request `build` makes around a fresh id; the future gets its answer. Called on
    /// the session's loop (a pipelining consumer), the request goes out in this turn.
    func send(_ build: @escaping @Sendable (UInt64) -> Message) -> EventLoopFuture<Answer> {
        let state = state
        let session = session
        @Sendable func send() -> EventLoopFuture<Answer> {
            if let ended = state.value.ended { return session.eventLoop.makeFailedFuture(ended) }
            let id = state.value.nextRequestID
            state.value.nextRequestID += 1
            let promise = session.eventLoop.makePromise(of: Answer.self)
            state.value.waiting[id] = promise
            session.sendPipelined(build(id)).whenFailure { error in
                state.value.waiting.removeValue(forKey: id)?.fail(error)
            }
            return promise.futureResult
        }
        return session.eventLoop.inEventLoop ? send() : session.eventLoop.flatSubmit(send)
    }

    /// On the session's loop: hands an answer to its request; one nobody waits for is dropped.
    func answer(_ requestID: UInt64, _ answer: Answer) {
        state.value.waiting.removeValue(forKey: requestID)?.succeed(answer)
    }

    /// On the session's loop: the session is over; what waits and what is asked later fails.
    func end(_ error: SessionError) {
        state.value.ended = error
        for promise in state.value.waiting.values { promise.fail(error) }
        state.value.waiting.removeAll()
    }

    /// On the session's loop: why the session ended, if it has.
    var ended: SessionError? { state.value.ended }
}

extension TransportKind {
    /// A client's session with a service (the arbiter, the exchange): the handshake must prove
    /// `expectedPeer` when given, and the inbox holds a deep pipeline of answers.
    func dialService(
        host: String, port: Int, identity: SigningKeyPair, chainID: Digest32, expectedPeer: SigningPublicKey?,
        group: EventLoopGroup, logger: Logger
    ) async throws -> PeerSession {
        var configuration = try SessionConfiguration(
            handshake: HandshakeConfiguration(identity: identity, chainID: chainID, expectedPeer: expectedPeer))
        configuration.inboxCapacity = 4096
        return try await dial(host: host, port: port, configuration: configuration, group: group, logger: logger)
    }
}
