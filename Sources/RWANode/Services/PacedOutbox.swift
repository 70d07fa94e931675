import NIOCore
import RWAWire

/// Sends a session's messages in order with at most `inFlightMax` not yet taken by the transport,
/// queueing the rest. A burst (a block's thousand receipts, a subscriber catching up) then never
/// overruns UDP's window and queue, which would refuse the excess with `overloaded`. Over TCP the
/// messages go straight to the channel. Used only on the session's event loop.
final class PacedOutbox: Sendable {
    static let inFlightMax = 128
    let session: PeerSession
    private let state: NIOLoopBoundBox<State>

    private struct State {
        var queue: [Message] = []
        var head = 0
        var inFlight = 0
        var pumping = false
        var whenDrained: [() -> Void] = []
    }

    init(session: PeerSession) {
        self.session = session
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: session.eventLoop)
    }

    /// Messages waiting or in flight.
    var pending: Int { state.value.queue.count - state.value.head + state.value.inFlight }

    /// Answers. Over TCP they go straight to the channel, which queues what the socket has not
    /// taken; the session stops reading from a peer that does not read, so answers, one per
    /// request, cannot pile up without bound.
    func send(_ messages: [Message]) {
        if session.transport == .tcp && pending == 0 {
            for message in messages { session.sendPipelined(message).whenFailure { _ in } }
            return
        }
        sendPaced(messages)
    }

    /// Events nobody asked for one by one (a subscription catching up): always paced, so a slow
    /// reader holds back the reading of more blocks instead of filling memory.
    func sendPaced(_ messages: [Message]) {
        state.value.queue += messages
        pump()
    }

    /// Runs `action` once everything sent so far has been taken by the transport (or failed).
    func whenDrained(_ action: @escaping () -> Void) {
        if pending == 0 { action() } else { state.value.whenDrained.append(action) }
    }

    private func pump() {
        // A send to a closed session fails at once and its callback calls `pump` again: the loop
        // already running picks up the freed slot, so nothing recurses.
        guard !state.value.pumping else { return }
        state.value.pumping = true
        defer { state.value.pumping = false }
        while state.value.inFlight < Self.inFlightMax && state.value.head < state.value.queue.count {
            let message = state.value.queue[state.value.head]
            state.value.head += 1
            state.value.inFlight += 1
            // A failure means the session is closing; its peer will reconnect and ask again.
            session.sendPipelined(message).whenComplete { [self] _ in
                state.value.inFlight -= 1
                pump()
            }
        }
        if state.value.head == state.value.queue.count {
            state.value.queue.removeAll(keepingCapacity: true)
            state.value.head = 0
        } else if state.value.head > 4096 {
            state.value.queue.removeFirst(state.value.head)
            state.value.head = 0
        }
        if pending == 0 && !state.value.whenDrained.isEmpty {
            let actions = state.value.whenDrained
            state.value.whenDrained.removeAll()
            for action in actions { action() }
        }
    }
}
