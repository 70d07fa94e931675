import NIOCore
import RWASession
import RWAWire

/// Sends a session's messages in order with at most `inFlightMax` not yet taken by the transport,
/// queueing the rest. A burst (a block's thousand receipts, a subscriber catching up) then never
/// overruns UDP's window and queue, which would refuse the excess with `overloaded`. Over TCP the
/// messages go straight to the channel. Used only on the session's event loop.
///
/// It also keeps each session's refusal budget: a peer that keeps asking for what is refused
/// (forged or stale transactions, unknown channels, impossible orders) costs a signature check
/// or a lookup per request, so a session refused more often than a burst of `refusalBurst`,
/// then `refusalsPerSecond` a second, allow is closed with `overloaded` after its last answer.
/// A legitimate client stays far below: it learns from a refusal.
final class PacedOutbox: Sendable {
    static let inFlightMax = 128
    /// Refusals a session may receive at once, and the sustained rate that refills them.
    static let refusalBurst = 1_024
    static let refusalsPerSecond = 64
    let session: PeerSession
    private let state: NIOLoopBoundBox<State>

    private struct State {
        var queue: [Message] = []
        var head = 0
        var inFlight = 0
        var pumping = false
        var whenDrained: [() -> Void] = []
        /// A token bucket: `refusalBurst` full, one token back every 1/`refusalsPerSecond` s.
        var refusalTokens = Double(PacedOutbox.refusalBurst)
        var refusalsCountedAt = NIODeadline.now()
        var overRefused = false
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
        defer { chargeRefusals(in: messages) }
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

    /// Takes a token per refusal in `messages`; with none left, closes the session once what
    /// was sent before (these answers included) is out.
    private func chargeRefusals(in messages: [Message]) {
        let refusals = messages.reduce(0) { $0 + (Self.isRefusal($1) ? 1 : 0) }
        guard refusals > 0, !state.value.overRefused else { return }
        let now = NIODeadline.now()
        let seconds = Double((now - state.value.refusalsCountedAt).nanoseconds) / 1e9
        state.value.refusalsCountedAt = now
        state.value.refusalTokens = min(
            Double(Self.refusalBurst), state.value.refusalTokens + seconds * Double(Self.refusalsPerSecond))
        state.value.refusalTokens -= Double(refusals)
        guard state.value.refusalTokens < 0 else { return }
        state.value.overRefused = true
        let error = SessionError(
            .overloaded,
            "more than \(Self.refusalBurst) requests refused (\(Self.refusalsPerSecond) a second sustained)")
        whenDrained { [session] in session.beginClose(reporting: error) }
    }

    /// An answer that refuses what the peer asked. `arbiter_busy` is the arbiter's state, not
    /// the peer's fault, and is not counted.
    static func isRefusal(_ message: Message) -> Bool {
        if case .arbiter(.transactionRejected(_, _, let code, _)) = message { return code != .arbiterBusy }
        if case .arbiter(.requestFailed) = message { return true }
        if case .exchange(.orderRejected) = message { return true }
        if case .exchange(.failed) = message { return true }
        if case .lease(.openRefused) = message { return true }
        if case .lease(.updateRefused) = message { return true }
        return false
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
