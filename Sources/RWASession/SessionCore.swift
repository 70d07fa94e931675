import RWAWire

/// The rules of an established session, the same over TCP and UDP: answer pings, pass the
/// peer's warnings to the log, end the session on the peer's error, on a handshake message after
/// the handshake, or after `idleTimeout` without hearing from the peer; ping after
/// `keepaliveInterval` without sending. Pure, like the handshake machine: time comes in as
/// nanoseconds of any monotonic clock, and out come actions that the transport (a thin shell
/// owning the socket and the timers) carries out in order.
public struct SessionCore: Sendable {
    public struct Timing: Sendable, Equatable {
        /// A ping goes out after this long without sending anything.
        public var keepaliveNanoseconds: UInt64
        /// The session ends after this long without receiving anything.
        public var idleTimeoutNanoseconds: UInt64

        public init(keepaliveNanoseconds: UInt64, idleTimeoutNanoseconds: UInt64) {
            self.keepaliveNanoseconds = keepaliveNanoseconds
            self.idleTimeoutNanoseconds = idleTimeoutNanoseconds
        }
    }

    public enum Action: Equatable, Sendable {
        /// Seal and transmit this message: a pong, a keepalive ping, or the error frame of a close.
        case send(Message)
        /// Hand this application message to the consumer.
        case deliver(Message)
        /// The peer's warning, for the log.
        case warn(ErrorReport)
        /// The session is over: close it once what was sent before (its error frame included) is out.
        case close(SessionError)
    }

    public let timing: Timing
    public private(set) var isOpen = true
    private var lastReceive: UInt64
    private var lastSend: UInt64
    private var pingNonce: UInt64 = 0

    public init(timing: Timing, now: UInt64) {
        self.timing = timing
        self.lastReceive = now
        self.lastSend = now
    }

    /// A message that arrived, decrypted and decoded.
    public mutating func receive(_ message: Message, now: UInt64) -> [Action] {
        guard isOpen else { return [] }
        heard(now: now)
        switch message {
        case .ping(let ping):
            lastSend = max(lastSend, now)
            return [.send(.pong(Pong(nonce: ping.nonce)))]
        case .pong, .ignored:
            return []
        case .warning(let report):
            return [.warn(report)]
        case .error(let report):
            return close(SessionError(report.code, report.text, fromPeer: true))
        case .hello, .helloReply, .helloFinish:
            return close(SessionError(.unexpectedMessage, "\(message.type) after the handshake"))
        case .signedNote, .arbiter, .exchange, .lease:
            return [.deliver(message)]
        }
    }

    /// The peer was heard from (over UDP, any authenticated packet, an acknowledgement included).
    public mutating func heard(now: UInt64) {
        lastReceive = max(lastReceive, now)
    }

    /// Something was transmitted at `now`: the keepalive waits from there.
    public mutating func sent(now: UInt64) {
        lastSend = max(lastSend, now)
    }

    /// Time passes: the idle timeout, or a keepalive ping. While `readingPaused` (the shell
    /// stopped reading for a slow consumer), the peer's silence is ours, so the idle clock waits.
    public mutating func tick(now: UInt64, readingPaused: Bool = false) -> [Action] {
        guard isOpen else { return [] }
        if readingPaused { lastReceive = max(lastReceive, now) }
        if now >= lastReceive + timing.idleTimeoutNanoseconds {
            let milliseconds = timing.idleTimeoutNanoseconds / 1_000_000
            return close(SessionError(.idleTimeout, "nothing received for \(milliseconds) ms"))
        }
        if now >= lastSend + timing.keepaliveNanoseconds {
            pingNonce += 1
            lastSend = now
            return [.send(.ping(Ping(nonce: pingNonce)))]
        }
        return []
    }

    /// Ends the session from this side: the peer is told why in an error frame (unless the error
    /// is the peer's own report, or the connection is already gone), then the session closes. A
    /// second close does nothing.
    public mutating func close(_ error: SessionError, notifyingPeer: Bool = true) -> [Action] {
        guard isOpen else { return [] }
        isOpen = false
        if error.fromPeer || !notifyingPeer { return [.close(error)] }
        return [.send(.error(ErrorReport(code: error.code, text: error.reason))), .close(error)]
    }

    /// How long a closing session waits for the peer to take its last frames (its close report
    /// included) before it ends anyway: long after a normal close, which loses nothing sent before
    /// it, short after an error, when the peer may be gone or hostile.
    public static let closeLingerNanoseconds: UInt64 = 2_000_000_000
    public static let errorLingerNanoseconds: UInt64 = 250_000_000

    /// When a session closing at `now` for `error` ends at the latest.
    public static func lingerDeadline(for error: SessionError, now: UInt64) -> UInt64 {
        now + (error.code == .closed ? closeLingerNanoseconds : errorLingerNanoseconds)
    }

    /// When `tick` next has something to do: the earlier of the idle and the keepalive deadline.
    public var nextDeadline: UInt64? {
        guard isOpen else { return nil }
        return min(lastReceive + timing.idleTimeoutNanoseconds, lastSend + timing.keepaliveNanoseconds)
    }
}

/// The handshake's timing over UDP, where any frame may be lost: it must finish within the
/// timeout of its start, and the last handshake frame sent goes out again after the initial
/// delay, then after twice as long each time (at most 32 times the initial delay), until the
/// peer's next step shows it arrived (proto/README.md, "The handshake over UDP").
public struct HandshakeRepetition: Sendable {
    public let startedAt: UInt64
    public let timeoutNanoseconds: UInt64
    public let initialNanoseconds: UInt64
    public private(set) var repeats = 0
    public private(set) var nextRepeatAt: UInt64

    public init(startedAt: UInt64, timeoutNanoseconds: UInt64, initialNanoseconds: UInt64) {
        self.startedAt = startedAt
        self.timeoutNanoseconds = timeoutNanoseconds
        self.initialNanoseconds = initialNanoseconds
        self.nextRepeatAt = startedAt + initialNanoseconds
    }

    public func timedOut(now: UInt64) -> Bool { now >= startedAt + timeoutNanoseconds }

    /// A new handshake frame went out at `now`: its repetitions start over.
    public mutating func sentNewFrame(now: UInt64) {
        repeats = 0
        nextRepeatAt = now + initialNanoseconds
    }

    /// Whether the frame is due again at `now`; when it is, the next repetition is scheduled.
    public mutating func repeatDue(now: UInt64) -> Bool {
        guard now >= nextRepeatAt else { return false }
        repeats += 1
        nextRepeatAt = now + (initialNanoseconds << UInt64(min(repeats, 5)))
        return true
    }
}
