import NIOConcurrencyHelpers

/// Shares a pool of query workers fairly between sessions: each session has at most
/// `inFlightPerSession` queries running and keeps the rest in its own queue, so one session that
/// pipelines thousands of queries delays another's by at most a few of its own, never by all of
/// them. A session's queue is bounded too: beyond it a query is refused at once.
final class FairQueries: Sendable {
    static let inFlightPerSession = 4
    static let waitingPerSessionMax = 1_024

    private struct Lane {
        var running = 0
        var waiting: [@Sendable () -> Void] = []
        var head = 0
    }

    private let lanes = NIOLockedValueBox<[ObjectIdentifier: Lane]>([:])

    /// Runs `start` now or once the session's earlier queries leave room; `start` must call
    /// `finished(session:)` when its query is done. False (and nothing runs) if the session
    /// already has `waitingPerSessionMax` queries waiting.
    func submit(session: ObjectIdentifier, _ start: @escaping @Sendable () -> Void) -> Bool {
        let runNow = lanes.withLockedValue { lanes -> Bool? in
            var lane = lanes[session, default: Lane()]
            defer { lanes[session] = lane }
            if lane.running < Self.inFlightPerSession {
                lane.running += 1
                return true
            }
            guard lane.waiting.count - lane.head < Self.waitingPerSessionMax else { return nil }
            lane.waiting.append(start)
            return false
        }
        guard let runNow else { return false }
        if runNow { start() }
        return true
    }

    /// One of the session's queries is done: the next one waiting starts.
    func finished(session: ObjectIdentifier) {
        let next = lanes.withLockedValue { lanes -> (@Sendable () -> Void)? in
            guard var lane = lanes[session] else { return nil }
            defer { lanes[session] = lane.running == 0 && lane.head == lane.waiting.count ? nil : lane }
            guard lane.head < lane.waiting.count else {
                lane.running -= 1
                return nil
            }
            let next = lane.waiting[lane.head]
            lane.head += 1
            if lane.head == lane.waiting.count {
                lane.waiting.removeAll()
                lane.head = 0
            }
            return next
        }
        next?()
    }

    /// The session ended: its waiting queries are dropped (those running finish on their own).
    func forget(session: ObjectIdentifier) {
        lanes.withLockedValue { lanes in
            guard var lane = lanes[session] else { return }
            lane.waiting.removeAll()
            lane.head = 0
            lanes[session] = lane.running == 0 ? nil : lane
        }
    }
}
