import ArgumentParser
import Foundation
import RWAMarket

/// `rwa-amm`: the purchase-mode exchange. This first part is the offline planner: quotes computed
/// with Uniswap v2's exact integer arithmetic against reserves given on the command line. The
/// exchange daemon and the signed-order subcommands come with the arbiter (issue 4).
@main
struct RWAAMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwa-amm",
        abstract: "Constant-product market for licence tokens against the stablecoin.",
        subcommands: [Quote.self])
}

struct Quote: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quote a swap against given reserves, in base units, with the 0.3% fee.",
        discussion: """
            Exactly one of --amount-in (how much you get for that input) or --amount-out (how much \
            you must pay for that output). Amounts are decimal integers of base units.
            Example: rwa-amm quote --reserve-in 5000000000000000000 --reserve-out 10000000000000000000 \
            --amount-in 1000000000000000000 --json
            """)

    @Option(help: "Reserve of the token you pay, in base units.")
    var reserveIn: String
    @Option(help: "Reserve of the token you receive, in base units.")
    var reserveOut: String
    @Option(help: "Exact amount you pay: prints the most you receive.")
    var amountIn: String?
    @Option(help: "Exact amount you receive: prints the least you pay.")
    var amountOut: String?
    @Flag(help: "Print one JSON object; amounts are decimal strings of base units.")
    var json = false

    func validate() throws {
        guard (amountIn == nil) != (amountOut == nil) else {
            throw ValidationError("give exactly one of --amount-in and --amount-out")
        }
    }

    static func baseUnits(_ text: String, _ name: String) throws -> UInt128 {
        guard let value = UInt128(text) else {
            throw ValidationError("\(name) must be a decimal integer of base units below 2^128, not '\(text)'")
        }
        return value
    }

    func run() throws {
        let reserveIn = try Self.baseUnits(self.reserveIn, "--reserve-in")
        let reserveOut = try Self.baseUnits(self.reserveOut, "--reserve-out")
        do {
            let (input, output, sentence): (UInt128, UInt128, String)
            if let amountIn {
                let given = try Self.baseUnits(amountIn, "--amount-in")
                let quoted = try ConstantProduct.amountOut(
                    amountIn: given, reserveIn: reserveIn, reserveOut: reserveOut)
                (input, output, sentence) = (given, quoted, "pay \(given), receive at most \(quoted)")
            } else {
                let given = try Self.baseUnits(amountOut!, "--amount-out")  // validate() demands one of the two
                let quoted = try ConstantProduct.amountIn(
                    amountOut: given, reserveIn: reserveIn, reserveOut: reserveOut)
                (input, output, sentence) = (quoted, given, "receive \(given), pay at least \(quoted)")
            }
            print(json ? #"{"amount_in":"\#(input)","amount_out":"\#(output)"}"# : sentence)
        } catch let error as MarketError {
            throw ValidationError("no quote: \(error)")
        }
    }
}
