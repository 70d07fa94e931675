import NIOConcurrencyHelpers
import NIOCore

/// Shares a pool of query workers fairly between sessions: each session has at most
/// `inFlightPerSession` queries running and keeps the rest in its own queue, so one session that
/// pipelines thousands of queries delays another's by at most a few of its own, never by all of
/// them. A session's queue is bounded too: beyond it a query is refused at once.
final class FairQueries: Sendable {
    static let inFlightPerSession = 4
    static let waitingPerSessionMax = 1_024

    private struct Lane {
        var running = 0
        var waiting = CircularBuffer<@Sendable () -> Void>()

        var isIdle: Bool { running == 0 && waiting.isEmpty }
    }

    // Lanes are changed in place through the dictionary's subscript, never as a copy taken out
    // and put back: a copy shares the waiting queue's storage, so the next append copied all of
    // it (up to `waitingPerSessionMax` closures for every query a flooding session sent; perf
    // found it at 22% of the arbiter under a flood of unread queries).
    private let lanes = NIOLockedValueBox<[ObjectIdentifier: Lane]>([:])

    /// Runs `start` now or once the session's earlier queries leave room; `start` must call
    /// `finished(session:)` when its query is done. False (and nothing runs) if the session
    /// already has `waitingPerSessionMax` queries waiting.
    func submit(session: ObjectIdentifier, _ start: @escaping @Sendable () -> Void) -> Bool {
        let runNow = lanes.withLockedValue { lanes -> Bool? in
            Self.admit(start, into: &lanes[session, default: Lane()])
        }
        guard let runNow else { return false }
        if runNow { start() }
        return true
    }

    private static func admit(_ start: @escaping @Sendable () -> Void, into lane: inout Lane) -> Bool? {
        if lane.running < inFlightPerSession {
            lane.running += 1
            return true
        }
        guard lane.waiting.count < waitingPerSessionMax else { return nil }
        lane.waiting.append(start)
        return false
    }

    /// One of the session's queries is done: the next one waiting starts.
    func finished(session: ObjectIdentifier) {
        let next = lanes.withLockedValue { lanes -> (@Sendable () -> Void)? in
            guard lanes[session] != nil else { return nil }
            let next = Self.next(in: &lanes[session]!)
            if lanes[session]!.isIdle { lanes[session] = nil }
            return next
        }
        next?()
    }

    /// The next query waiting, which takes the finished one's place; nil if none waits.
    private static func next(in lane: inout Lane) -> (@Sendable () -> Void)? {
        guard let next = lane.waiting.popFirst() else {
            lane.running -= 1
            return nil
        }
        return next
    }

    /// The session ended: its waiting queries are dropped (those running finish on their own).
    func forget(session: ObjectIdentifier) {
        lanes.withLockedValue { lanes in
            guard lanes[session] != nil else { return }
            lanes[session]!.waiting.removeAll()
            if lanes[session]!.isIdle { lanes[session] = nil }
        }
    }
}
