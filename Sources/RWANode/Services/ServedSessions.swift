import NIOConcurrencyHelpers
import NIOCore
import RWASession
import RWAWire

/// The one way a service serves its sessions, shared by the arbiter, the exchange and the coming
/// lease service: each session gets a paced outbox through which every answer and event leaves;
/// its inbox is consumed on its event loop, where messages of the service's family go to the
/// service and anything else closes the session with `unexpected_message`; when the session ends
/// the service is told and the outbox is forgotten.
final class ServedSessions: Sendable {
    /// Who serves, for the reason given to a peer that sends the wrong family ("the arbiter").
    let service: String
    private let outboxes = NIOLockedValueBox<[ObjectIdentifier: PacedOutbox]>([:])

    init(service: String) {
        self.service = service
    }

    /// Serves `session` until it ends: `route` picks the service's messages out of the inbox and
    /// `handle` runs on the session's loop for each one, in order. `started` runs once the
    /// session's outbox exists and before its first message is handled: a service that speaks
    /// first (the lease service's reestablishment) makes the session known there, so nothing it
    /// sends is dropped for want of an outbox and no answer goes out before the session is known.
    /// Call once per session.
    func serve<Request>(
        _ session: PeerSession, route: @escaping @Sendable (Message) -> Request?,
        handle: @escaping @Sendable (Request) -> Void, started: () -> Void = {},
        ended: @escaping @Sendable () -> Void = {}
    ) {
        let outbox = PacedOutbox(session: session)
        outboxes.withLockedValue { $0[ObjectIdentifier(session)] = outbox }
        started()
        let service = service
        session.eventLoop.execute { [self] in
            session.inbox.consumeOnEventLoop { event in
                switch event {
                case .message(let message):
                    guard let request = route(message) else {
                        session.beginClose(
                            reporting: SessionError(
                                .unexpectedMessage, "\(message.type) is not a message for \(service)"))
                        return
                    }
                    handle(request)
                case .finished:
                    ended()
                    self.outboxes.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(session)) }
                }
            }
        }
    }

    /// The session's outbox; nil once the session has ended.
    func outbox(_ session: PeerSession) -> PacedOutbox? {
        outboxes.withLockedValue { $0[ObjectIdentifier(session)] }
    }

    /// Sends on the session's loop, through its outbox; nothing once the session has ended.
    func send(_ messages: [Message], to session: PeerSession) {
        if session.eventLoop.inEventLoop {
            outbox(session)?.send(messages)
        } else {
            session.eventLoop.execute { [self] in outbox(session)?.send(messages) }
        }
    }
}
