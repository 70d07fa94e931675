import NIOConcurrencyHelpers
import RWASession
import RWAWire

/// The bounded queue between a session's event loop and the code that consumes its messages.
/// When it holds `capacity` messages the transport stops taking more from the peer (TCP stops
/// reading; UDP stops acknowledging), so a peer that floods a slow consumer cannot grow memory.
public final class Inbox: AsyncSequence, Sendable {
    public typealias Element = Message

    /// What an event-loop consumer is handed: each message, then the end of the session.
    public enum Event: Sendable {
        case message(Message)
        /// nil for a normal close.
        case finished(SessionError?)
    }

    private struct State {
        var inlineConsumer: (@Sendable (Event) -> Void)?
        var buffer: [Message] = []
        var head = 0
        var waiter: CheckedContinuation<Message?, Error>?
        var finished: Error?? = nil  // .some(nil): finished cleanly
        var wasFull = false
        var count: Int { buffer.count - head }
    }

    public let capacity: Int
    private let state = NIOLockedValueBox(State())
    /// Called (on whatever thread consumes) when a full inbox drains to half, to resume reading.
    private let onDrain: @Sendable () -> Void

    init(capacity: Int, onDrain: @escaping @Sendable () -> Void) {
        self.capacity = capacity
        self.onDrain = onDrain
    }

    /// Messages waiting for the consumer.
    public var bufferedCount: Int { state.withLockedValue { $0.count } }

    /// Whether another message would be accepted now.
    var hasRoom: Bool { state.withLockedValue { $0.count < capacity } }

    /// Hands every message to `consumer` on the session's event loop as it arrives, instead of
    /// buffering it for an async iterator: no thread hop per message, which is what lets a
    /// request/response peer run at the speed of its cryptography. Must be called on the session's
    /// event loop; messages already buffered are handed over first. The consumer must be quick.
    public func consumeOnEventLoop(_ consumer: @escaping @Sendable (Event) -> Void) {
        let (buffered, finished): ([Message], Error??) = state.withLockedValue { state in
            precondition(state.inlineConsumer == nil && state.waiter == nil, "one consumer at a time")
            state.inlineConsumer = consumer
            let buffered = Array(state.buffer[state.head...])
            state.buffer.removeAll()
            state.head = 0
            return (buffered, state.finished)
        }
        for message in buffered { consumer(.message(message)) }
        if let finished {
            consumer(.finished(Self.abnormalEnd(finished)))
            state.withLockedValue { $0.inlineConsumer = nil }
        }
        if !buffered.isEmpty { onDrain() }
    }

    /// The error an ending session reports to its consumer: none for a normal close by the peer.
    static func abnormalEnd(_ error: Error?) -> SessionError? {
        guard let error else { return nil }
        guard let sessionError = error as? SessionError else { return SessionError(.closed, "\(error)") }
        return sessionError.code == .closed && sessionError.fromPeer ? nil : sessionError
    }

    /// Adds a message; returns false when the inbox is now full and the producer should pause.
    @discardableResult
    func push(_ message: Message) -> Bool {
        let (consumer, finished) = state.withLockedValue { ($0.inlineConsumer, $0.finished != nil) }
        if finished { return true }  // the session is over: nothing more reaches the consumer
        if let consumer {
            consumer(.message(message))
            return true
        }
        let (waiter, hasRoom): (CheckedContinuation<Message?, Error>?, Bool) = state.withLockedValue { state in
            if state.finished != nil { return (nil, true) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, true)
            }
            state.buffer.append(message)
            let full = state.count >= capacity
            if full { state.wasFull = true }
            return (nil, !full)
        }
        waiter?.resume(returning: message)
        return hasRoom
    }

    /// Ends the sequence after the buffered messages, with an error if the session failed.
    func finish(_ error: Error?) {
        let (waiter, consumer): (CheckedContinuation<Message?, Error>?, (@Sendable (Event) -> Void)?) =
            state.withLockedValue { state in
                guard state.finished == nil else { return (nil, nil) }
                state.finished = .some(error)
                if let consumer = state.inlineConsumer { return (nil, consumer) }
                if state.count == 0, let waiter = state.waiter {
                    state.waiter = nil
                    return (waiter, nil)
                }
                return (nil, nil)
            }
        if let consumer {
            consumer(.finished(Self.abnormalEnd(error)))
            // Release it: consumers capture their session, and the session holds this inbox.
            state.withLockedValue { $0.inlineConsumer = nil }
        }
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
        }
    }

    func next() async throws -> Message? {
        enum Step {
            case value(Message, drained: Bool)
            case end(Error?)
            case wait
        }
        let step: Step = state.withLockedValue { state in
            if state.count > 0 {
                let message = state.buffer[state.head]
                state.head += 1
                if state.head > 256 && state.head * 2 > state.buffer.count {
                    state.buffer.removeFirst(state.head)
                    state.head = 0
                }
                var drained = false
                if state.wasFull && state.count <= capacity / 2 {
                    state.wasFull = false
                    drained = true
                }
                return .value(message, drained: drained)
            }
            if let finished = state.finished { return .end(finished) }
            precondition(state.inlineConsumer == nil, "an inbox consumed on the event loop cannot also be iterated")
            return .wait
        }
        switch step {
        case .value(let message, let drained):
            if drained { onDrain() }
            return message
        case .end(let error):
            if let error { throw error }
            return nil
        case .wait:
            // A cancelled consumer stops waiting (with CancellationError); the session goes on.
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let immediate: Result<Message?, Error>? = state.withLockedValue { state in
                        if Task.isCancelled { return .failure(CancellationError()) }
                        if state.count > 0 {
                            let message = state.buffer[state.head]
                            state.head += 1
                            return .success(message)
                        }
                        if let finished = state.finished {
                            if let error = finished { return .failure(error) }
                            return .success(nil)
                        }
                        precondition(state.waiter == nil, "one consumer at a time")
                        state.waiter = continuation
                        return nil
                    }
                    if let immediate { continuation.resume(with: immediate) }
                }
            } onCancel: {
                let waiter = state.withLockedValue { state -> CheckedContinuation<Message?, Error>? in
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume(throwing: CancellationError())
            }
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let inbox: Inbox
        public mutating func next() async throws -> Message? { try await inbox.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inbox: self) }
}
