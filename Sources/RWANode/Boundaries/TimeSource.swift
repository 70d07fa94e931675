import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// Where a shell reads the time it hands its core: a monotonic clock for delays and deadlines,
/// and the wall clock for what is written down (a block's time). The cores never read a clock.
/// `ManualTimeSource` stands in for the system's in tests; `TimeSourceConformanceTests` holds
/// both to the same contract.
public protocol TimeSource: Sendable {
    /// Nanoseconds on a clock that never goes back (its origin means nothing).
    var uptimeNanoseconds: UInt64 { get }
    /// Milliseconds since the Unix epoch.
    var unixMilliseconds: UInt64 { get }
}

/// The machine's clocks.
public struct SystemTimeSource: TimeSource {
    public init() {}
    public var uptimeNanoseconds: UInt64 { NIODeadline.now().uptimeNanoseconds }
    public var unixMilliseconds: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }
}

/// Clocks that move only when told to, both by the same amount.
public final class ManualTimeSource: TimeSource {
    private let state: NIOLockedValueBox<(uptime: UInt64, unix: UInt64)>

    public init(uptimeNanoseconds: UInt64 = 1_000_000_000, unixMilliseconds: UInt64 = 1_800_000_000_000) {
        state = NIOLockedValueBox((uptimeNanoseconds, unixMilliseconds))
    }

    public var uptimeNanoseconds: UInt64 { state.withLockedValue { $0.uptime } }
    /// The wall time of the last whole millisecond passed.
    public var unixMilliseconds: UInt64 { state.withLockedValue { $0.unix } }

    public func advance(byNanoseconds nanoseconds: UInt64) {
        state.withLockedValue { state in
            let before = state.uptime / 1_000_000
            state.uptime += nanoseconds
            state.unix += state.uptime / 1_000_000 - before
        }
    }
}
