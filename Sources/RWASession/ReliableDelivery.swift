import NIOCore
import RWAWire

/// Settings of UDP reliable delivery (proto/README.md, "UDP reliability").
public struct ReliabilityConfiguration: Sendable {
    /// Frames sent but not yet acknowledged, at most. Also the receiver's reorder buffer.
    public var windowFrames: Int = 256
    /// The retransmission timeout before any round trip has been measured. After that it is
    /// RFC 6298's `SRTT + 4 RTTVAR` from acknowledged first transmissions (Karn's rule), plus
    /// the peer's acknowledgement delay, within the bounds below; it doubles each time a timer
    /// expires, until the next sample.
    public var initialRetransmitNanoseconds: UInt64 = 50_000_000
    /// Below this, a busy receiver's processing pauses would be taken for loss.
    public var minimumRetransmitNanoseconds: UInt64 = 10_000_000
    public var maximumRetransmitNanoseconds: UInt64 = 1_000_000_000
    /// How long the peer may hold an acknowledgement: one tick of its timer (the reference's
    /// `UDPTransport.tickInterval`). Samples taken from promptly answered frames miss it, so a
    /// timeout without it expires early for every frame whose acknowledgement waits for a tick.
    public var peerAcknowledgementDelayNanoseconds: UInt64 = 5_000_000
    /// A frame retransmitted this many times without acknowledgement fails the session.
    public var retriesMax: Int = 12
    /// Frames waiting for room in the window, at most; beyond that `send` is refused with
    /// `overloaded` (a caller that awaits each send never gets there: it waits for admission).
    public var pendingFramesMax: Int = 1024

    public init() {}
}

/// The sending half of UDP reliable delivery, pure: frames are numbered from zero, sent while the
/// window has room, retransmitted with exponential backoff until acknowledged, and the session
/// fails after `retriesMax` retries. Time comes in as `now` (nanoseconds, any monotonic origin).
public struct ReliableSender: Sendable {
    struct InFlight: Sendable {
        var frame: ByteBuffer
        var sentAt: UInt64
        var retransmitAt: UInt64
        var retries: Int
        /// Due at once because a frame sent after it arrived, not because its timer expired.
        var declaredLost = false
    }

    /// Smoothed round-trip time and its variation (RFC 6298), nil before the first sample.
    private var smoothedRoundTrip: Double?
    private var roundTripVariation: Double = 0

    /// Doublings of the timeout since a timer last expired without a new sample (RFC 6298 5.5):
    /// retransmitted frames give no samples (Karn), so without this a timeout shorter than the
    /// real round trip would never grow and every frame would be sent twice.
    private var timeoutBackoff = 0

    /// The current retransmission timeout (RTO), for first transmissions and retransmissions alike.
    public var retransmitTimeoutNanoseconds: UInt64 {
        let estimate: UInt64
        if let smoothedRoundTrip {
            let measured = UInt64(smoothedRoundTrip + 4 * roundTripVariation)
            estimate = max(
                measured + configuration.peerAcknowledgementDelayNanoseconds, configuration.minimumRetransmitNanoseconds
            )
        } else {
            estimate = configuration.initialRetransmitNanoseconds
        }
        return min(estimate << UInt64(timeoutBackoff), configuration.maximumRetransmitNanoseconds)
    }

    private mutating func sampleRoundTrip(_ nanoseconds: UInt64) {
        timeoutBackoff = 0
        let sample = Double(nanoseconds)
        if let smoothed = smoothedRoundTrip {
            roundTripVariation = 0.75 * roundTripVariation + 0.25 * abs(smoothed - sample)
            smoothedRoundTrip = 0.875 * smoothed + 0.125 * sample
        } else {
            smoothedRoundTrip = sample
            roundTripVariation = sample / 2
        }
    }

    public let configuration: ReliabilityConfiguration
    /// The sequence number of the oldest unacknowledged frame.
    public private(set) var base: UInt64 = 0
    public private(set) var nextSequence: UInt64 = 0
    /// Indexed by `sequence - base`; nil once selectively acknowledged.
    private var inFlight: [InFlight?] = []
    private var pending: [ByteBuffer] = []
    private var pendingHead = 0

    public init(configuration: ReliabilityConfiguration) { self.configuration = configuration }

    public var pendingCount: Int { pending.count - pendingHead }
    public var inFlightCount: Int { Int(nextSequence - base) }
    public var isIdle: Bool { pendingCount == 0 && inFlightCount == 0 }

    public mutating func enqueue(_ frame: ByteBuffer) {
        pending.append(frame)
    }

    /// A frame to put on the wire now.
    public struct Transmission: Sendable {
        public var sequence: UInt64
        public var frame: ByteBuffer
        public var isRetransmission: Bool
    }

    /// New frames admitted to the window and retransmissions that are due, oldest first.
    public mutating func poll(now: UInt64) throws(SessionError) -> [Transmission] {
        var out: [Transmission] = []
        // A timer that expired doubles the timeout once (one timer per session in RFC 6298's
        // terms), before the due frames are rescheduled with it.
        if inFlight.contains(where: { $0.map { $0.retransmitAt <= now && !$0.declaredLost } ?? false }) {
            timeoutBackoff = min(timeoutBackoff + 1, 20)
        }
        for index in inFlight.indices {
            guard var entry = inFlight[index], entry.retransmitAt <= now else { continue }
            entry.declaredLost = false
            entry.retries += 1
            guard entry.retries <= configuration.retriesMax else {
                throw SessionError(
                    .deliveryFailed,
                    "frame \(base + UInt64(index)) unacknowledged after \(configuration.retriesMax) retransmissions")
            }
            entry.sentAt = now
            entry.retransmitAt = now + retransmitTimeoutNanoseconds
            inFlight[index] = entry
            out.append(Transmission(sequence: base + UInt64(index), frame: entry.frame, isRetransmission: true))
        }
        while pendingHead < pending.count && inFlight.count < configuration.windowFrames {
            let frame = pending[pendingHead]
            pendingHead += 1
            inFlight.append(
                InFlight(frame: frame, sentAt: now, retransmitAt: now + retransmitTimeoutNanoseconds, retries: 0))
            out.append(Transmission(sequence: nextSequence, frame: frame, isRetransmission: false))
            nextSequence += 1
        }
        if pendingHead > 64 && pendingHead * 2 > pending.count {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
        return out
    }

    /// Applies the peer's acknowledgement; returns how many frames it newly acknowledged.
    /// An acknowledgement of frames never sent is a protocol violation.
    ///
    /// Fast retransmission: a frame still unacknowledged although one sent after it has arrived
    /// is taken as lost and becomes due at once, instead of waiting for its timer (RACK's rule;
    /// reordering only costs a spurious retransmission, which the receiver drops as a duplicate).
    /// Only a frame sent once says when it was sent: the acknowledgement of a retransmitted frame
    /// may be for its first copy, and taking the retransmission's time would declare every frame
    /// sent in between lost, one spurious timeout cascading into a whole window resent.
    @discardableResult
    public mutating func receive(_ ack: Acknowledgement, now: UInt64) throws(SessionError) -> Int {
        guard ack.ackNext <= nextSequence else {
            throw SessionError(.unexpectedMessage, "acknowledgement of frame \(ack.ackNext) that was never sent")
        }
        var newly = 0
        var latestDeliveredSentAt: UInt64? = nil
        var samples: [UInt64] = []
        func delivered(_ entry: InFlight) {
            newly += 1
            guard entry.retries == 0 else { return }  // ambiguous (Karn): no time, no sample
            latestDeliveredSentAt = max(latestDeliveredSentAt ?? 0, entry.sentAt)
            if now >= entry.sentAt { samples.append(now - entry.sentAt) }
        }
        if ack.ackNext > base {
            let advance = Int(ack.ackNext - base)
            for entry in inFlight.prefix(advance) { if let entry { delivered(entry) } }
            inFlight.removeFirst(advance)
            base = ack.ackNext
        }
        var bits = ack.selectiveAcks
        var sequence = ack.ackNext + 1  // bit 0; a stale acknowledgement may start below base
        while bits != 0 {
            if bits & 1 != 0, sequence >= base, sequence - base < UInt64(inFlight.count),
                let entry = inFlight[Int(sequence - base)]
            {
                inFlight[Int(sequence - base)] = nil
                delivered(entry)
            }
            bits >>= 1
            sequence += 1
        }
        // One sample per acknowledgement, from the most recently sent frame it covers.
        if let sample = samples.min() { sampleRoundTrip(sample) }
        if let latestDeliveredSentAt {
            for index in inFlight.indices {
                if let entry = inFlight[index], entry.sentAt < latestDeliveredSentAt, entry.retransmitAt > now {
                    inFlight[index]!.retransmitAt = now
                    inFlight[index]!.declaredLost = true
                }
            }
        }
        return newly
    }

    /// When `poll` next has something to do, if anything is in flight.
    public var nextDeadline: UInt64? {
        inFlight.lazy.compactMap { $0?.retransmitAt }.min()
    }
}

/// The receiving half, pure: delivers each sequence number exactly once and in order, buffering up
/// to a window of frames that arrive early and dropping duplicates and frames beyond the window.
public struct ReliableReceiver: Sendable {
    public let windowFrames: Int
    public private(set) var nextExpected: UInt64 = 0
    /// Data packets delivered since an acknowledgement last went out (every sealed packet carries
    /// one, so any packet sent pays the debt).
    public private(set) var acknowledgementsOwed = 0
    /// This many unacknowledged data packets are acknowledged at once, not at the next tick.
    public static let packetsPerAcknowledgement = 16
    /// Indexed by `sequence - nextExpected - 1`.
    private var early: [ByteBuffer?] = []
    /// Slots held for frames that arrived early: never more than the window (the fuzz target
    /// checks it).
    public var bufferedSlots: Int { early.count }

    public init(windowFrames: Int) { self.windowFrames = windowFrames }

    public enum Outcome: Equatable, Sendable {
        /// Frames now deliverable, in order (possibly empty if this one arrived early).
        case deliver([ByteBuffer])
        case duplicate
        case beyondWindow
    }

    public mutating func receive(sequence: UInt64, frame: ByteBuffer) -> Outcome {
        if sequence < nextExpected { return .duplicate }
        let offset = sequence - nextExpected
        guard offset < UInt64(windowFrames) else { return .beyondWindow }
        if offset > 0 {
            let index = Int(offset) - 1
            if early.count <= index { early.append(contentsOf: repeatElement(nil, count: index + 1 - early.count)) }
            if early[index] != nil { return .duplicate }
            early[index] = frame
            return .deliver([])
        }
        var delivered = [frame]
        nextExpected += 1
        var consumed = 0
        while consumed < early.count, let next = early[consumed] {
            delivered.append(next)
            nextExpected += 1
            consumed += 1
        }
        if consumed < early.count {
            early.removeFirst(consumed + 1)  // the slot at `consumed` is nextExpected itself: still missing
        } else {
            early.removeAll(keepingCapacity: true)
        }
        return .deliver(delivered)
    }

    /// Whether `outcome` calls for an acknowledgement at once: a gap (so the sender repairs it
    /// now), a duplicate or a frame beyond the window (so the sender stops resending). A frame
    /// delivered in order is owed an acknowledgement that waits for the next tick, the next data
    /// packet, or the `packetsPerAcknowledgement`-th delivery (`acknowledgementDue`).
    public mutating func acknowledgeAtOnce(after outcome: Outcome) -> Bool {
        switch outcome {
        case .deliver(let frames):
            acknowledgementsOwed += 1
            return frames.isEmpty
        case .duplicate, .beyondWindow:
            return true
        }
    }

    /// Enough deliveries are owed an acknowledgement that it should go out now.
    public var acknowledgementDue: Bool { acknowledgementsOwed >= Self.packetsPerAcknowledgement }

    /// An acknowledgement went out (alone or on a data packet).
    public mutating func acknowledgementSent() { acknowledgementsOwed = 0 }

    public var acknowledgement: Acknowledgement {
        var bits: UInt64 = 0
        for (index, frame) in early.prefix(64).enumerated() where frame != nil { bits |= 1 << UInt64(index) }
        return Acknowledgement(ackNext: nextExpected, selectiveAcks: bits)
    }
}
