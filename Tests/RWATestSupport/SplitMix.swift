import Foundation
import RWASim

/// The randomized tests' seeded generator: the simulator's SplitMix64, so a failing run repeats.
public typealias SplitMix = SeededGenerator

/// A randomized test's seed: `RWANET_TEST_SEED` when set, to rerun a failure, and a fresh one
/// otherwise, so every run explores new cases. Printed either way, so any failure can be rerun.
public func testSeed(_ test: String = #function) -> UInt64 {
    let seed: UInt64
    if let given = ProcessInfo.processInfo.environment["RWANET_TEST_SEED"], let value = UInt64(given) {
        seed = value
    } else {
        var system = SystemRandomNumberGenerator()
        seed = system.next()
    }
    print("\(test): seed \(seed) (rerun with RWANET_TEST_SEED=\(seed))")
    return seed
}
