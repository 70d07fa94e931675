// Goal: `rwa-amm quote`, run as a process, prints v2's exact amounts as decimal strings and
// refuses bad input with a clear message and a non-zero exit.
import Foundation
import RWATestSupport
import XCTest

final class QuoteCommandTests: XCTestCase {
    func run(_ arguments: [String]) throws -> (status: Int32?, output: String, error: String) {
        let outcome = try ToolProcess.run(tool: "rwa-amm", ["quote"] + arguments, timeout: 30)
        return (
            outcome.status, outcome.output.joined(separator: "\n"), outcome.errors.joined(separator: "\n")
        )
    }

    func testOfflineQuotesAreExactDecimalStrings() throws {
        let exactIn = try run([
            "--reserve-in", "5000000000000000000", "--reserve-out", "10000000000000000000",
            "--amount-in", "1000000000000000000", "--json",
        ])
        XCTAssertEqual(exactIn.status, 0, exactIn.error)
        let object = try JSONSerialization.jsonObject(with: Data(exactIn.output.utf8)) as? [String: String]
        XCTAssertEqual(object?["amount_out"], "1662497915624478906")
        let exactOut = try run(["--reserve-in", "100", "--reserve-out", "100", "--amount-out", "1", "--json"])
        XCTAssertEqual(
            try JSONSerialization.jsonObject(with: Data(exactOut.output.utf8)) as? [String: String],
            ["amount_in": "2", "amount_out": "1"])
    }

    func testBadInputIsRefusedClearly() throws {
        let drained = try run(["--reserve-in", "100", "--reserve-out", "100", "--amount-out", "100"])
        XCTAssertEqual(drained.status, 64, "refused as bad input, not crashed")
        XCTAssertTrue(drained.error.contains("not enough liquidity"), drained.error)
        let garbage = try run(["--reserve-in", "12x", "--reserve-out", "100", "--amount-in", "1"])
        XCTAssertEqual(garbage.status, 64, "a usage error")
        XCTAssertTrue(garbage.error.contains("--reserve-in must be a decimal integer"), garbage.error)
        let both = try run(["--reserve-in", "1", "--reserve-out", "1", "--amount-in", "1", "--amount-out", "1"])
        XCTAssertEqual(both.status, 64, "a usage error")
        XCTAssertEqual(both.output, "")
    }
}
