// Goal: every input a fuzz target ever crashed on stays fixed: the suite replays each reproducer
// in Reproducers/<target>/ through the same property checks the libFuzzer targets run
// (Tools/fuzz/Checks), and runs each check over a bounded number of seeded random inputs, so a
// property that breaks on ordinary input fails here without a fuzzing build.
import Foundation
import RWAFuzzChecks
import RWATestSupport
import XCTest

final class FuzzRegressionTests: XCTestCase {
    static let checks: [(String, @Sendable ([UInt8]) -> Void)] = [
        ("wire", WireChecks.check), ("session", SessionChecks.check), ("ledger", LedgerChecks.check),
        ("market", MarketChecks.check), ("channel", ChannelChecks.check),
    ]

    static let reproducers = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Reproducers")

    func testEveryReproducerStaysFixed() throws {
        var replayed = 0
        for (target, check) in Self.checks {
            let folder = Self.reproducers.appendingPathComponent(target)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            for file in files.sorted() {
                check([UInt8](try Data(contentsOf: folder.appendingPathComponent(file))))
                replayed += 1
            }
        }
        print("replayed \(replayed) fuzz reproducers")
    }

    /// A bounded smoke run of each property on seeded random inputs (RWANET_TEST_SEED reruns one).
    func testEachPropertyHoldsOnRandomInputs() {
        var random = SplitMix(seed: testSeed())
        for (_, check) in Self.checks {
            for _ in 0..<200 {
                let count = Int(random.next() % 256)
                check((0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            }
        }
    }
}
