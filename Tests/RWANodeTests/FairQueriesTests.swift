// Goal: the arbiter's query lanes keep their promises: at most `inFlightPerSession` queries of a
// session run at once, the rest start in the order they came as earlier ones finish, a session's
// waiting queue is bounded, one session's backlog never holds up another's, and a session that
// ends loses what still waited.
import Foundation
import NIOConcurrencyHelpers
import XCTest

@testable import RWANode

final class FairQueriesTests: XCTestCase {
    func testLanesRunInOrderWithinTheirBoundsAndForgetEndedSessions() {
        let queries = FairQueries()
        let started = NIOLockedValueBox<[String]>([])
        func query(_ name: String) -> @Sendable () -> Void { { started.withLockedValue { $0.append(name) } } }
        let sessions = (NSObject(), NSObject())  // alive for the whole test: distinct identifiers
        let flooder = ObjectIdentifier(sessions.0)
        let other = ObjectIdentifier(sessions.1)
        let inFlight = FairQueries.inFlightPerSession
        let waitingMax = FairQueries.waitingPerSessionMax

        for n in 0..<(inFlight + waitingMax) {
            XCTAssertTrue(queries.submit(session: flooder, query("f\(n)")))
        }
        XCTAssertEqual(started.withLockedValue { $0 }, (0..<inFlight).map { "f\($0)" }, "only the first few run")
        XCTAssertFalse(queries.submit(session: flooder, query("refused")), "beyond the waiting bound: refused")
        XCTAssertTrue(queries.submit(session: other, query("o0")))
        XCTAssertEqual(started.withLockedValue { $0.last }, "o0", "another session runs at once, past the backlog")

        queries.finished(session: flooder)
        queries.finished(session: flooder)
        XCTAssertEqual(
            started.withLockedValue { Array($0.suffix(2)) }, ["f\(inFlight)", "f\(inFlight + 1)"],
            "each finished query lets the next waiting one start, in order")
        XCTAssertTrue(queries.submit(session: flooder, query("room again")), "room in the queue again")

        queries.forget(session: flooder)
        let before = started.withLockedValue { $0.count }
        for _ in 0..<inFlight { queries.finished(session: flooder) }
        XCTAssertEqual(started.withLockedValue { $0.count }, before, "an ended session's waiting queries never start")
        XCTAssertTrue(queries.submit(session: flooder, query("fresh")))
        XCTAssertEqual(started.withLockedValue { $0.last }, "fresh", "and its lane is empty again")
        withExtendedLifetime(sessions) {}
    }
}
