// Goal: the system's clocks and the manual ones a test drives keep one contract: the monotonic
// clock never goes back, the wall clock is a plausible Unix time, and a step moves both by the
// same amount (the system's within the scheduler's slack).
import NIOCore
import RWANode
import XCTest

final class TimeSourceConformanceTests: XCTestCase {
    func testEveryTimeSourceKeepsTheContract() {
        let manual = ManualTimeSource()
        let subjects: [(String, any TimeSource, (UInt64) -> Void, UInt64)] = [
            ("system", SystemTimeSource(), { usleep(UInt32($0 / 1_000)) }, 500),
            ("manual", manual, { manual.advance(byNanoseconds: $0) }, 0),
        ]
        for (name, source, step, slackMilliseconds) in subjects {
            var last = source.uptimeNanoseconds
            for _ in 0..<1_000 {
                let now = source.uptimeNanoseconds
                XCTAssertGreaterThanOrEqual(now, last, "\(name): the monotonic clock went back")
                last = now
            }
            XCTAssertGreaterThan(source.unixMilliseconds, 1_577_836_800_000, "\(name): after 2020")
            let (uptime, wall) = (source.uptimeNanoseconds, source.unixMilliseconds)
            step(20_000_000)
            let movedUp = (source.uptimeNanoseconds - uptime) / 1_000_000
            let movedWall = source.unixMilliseconds - wall
            XCTAssertGreaterThanOrEqual(movedUp, 20, name)
            XCTAssertLessThanOrEqual(movedUp, 20 + slackMilliseconds, name)
            XCTAssertGreaterThanOrEqual(movedWall, 19, name)
            XCTAssertLessThanOrEqual(movedWall, 21 + slackMilliseconds, name)
        }
    }
}
