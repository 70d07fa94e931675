import ArgumentParser
import Foundation
import RWACommandLine
import RWALedger
import RWAMarket
import RWANode
import RWAWire

struct Quote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Quote a swap, in base units with the 0.3% fee: offline against given reserves, or from the exchange.",
        discussion: """
            Exactly one of --amount-in (how much you get for that input) or --amount-out (how much \
            you must pay for that output). Amounts are decimal integers of base units.
            Offline, for planning: rwa-amm quote --reserve-in 5000000000000000000 \
            --reserve-out 10000000000000000000 --amount-in 1000000000000000000 --json
            From the exchange: rwa-amm quote --token 1 --side buy --amount-in 1000000; it answers \
            against the confirmed reserves and after the orders it has in flight.
            """)

    @Option(help: "Offline: reserve of the token you pay, in base units.")
    var reserveIn: String?
    @Option(help: "Offline: reserve of the token you receive, in base units.")
    var reserveOut: String?
    @Option(help: "Exact amount you pay: prints the most you receive.")
    var amountIn: String?
    @Option(help: "Exact amount you receive: prints the least you pay.")
    var amountOut: String?
    @Option(help: "From the exchange: licence token id.")
    var token: TokenID?
    @Option(help: "From the exchange: buy or sell licence tokens.")
    var side: TradeSide?
    @OptionGroup var trader: TraderOptions

    var offline: Bool { reserveIn != nil || reserveOut != nil }

    func validate() throws {
        guard (amountIn == nil) != (amountOut == nil) else {
            throw ValidationError("give exactly one of --amount-in and --amount-out")
        }
        if offline {
            guard reserveIn != nil, reserveOut != nil else {
                throw ValidationError("an offline quote needs both --reserve-in and --reserve-out")
            }
            guard token == nil, side == nil else {
                throw ValidationError("--token and --side ask the exchange; --reserve-in/--reserve-out do not")
            }
        } else {
            guard token != nil, side != nil else {
                throw ValidationError("give --reserve-in and --reserve-out, or --token and --side for the exchange")
            }
        }
    }

    func run() async throws {
        let exactOutput = amountOut != nil
        let given = try parseAmount(amountIn ?? amountOut!, exactOutput ? "--amount-out" : "--amount-in")
        if offline {
            try quoteOffline(given, exactOutput: exactOutput)
            return
        }
        let quote: ExchangeQuote
        do {
            quote = try await trader.withExchange { exchange, _ in
                try await exchange.quote(token: token!, side: side!, exactOutput: exactOutput, amount: given)
            }
        } catch let rejection as Rejection {
            throw trader.refuse(rejection)
        }
        guard let confirmed = quote.confirmed else {
            throw trader.refuse(Rejection(.insufficientLiquidity, "the pool cannot fill \(given)"))
        }
        if trader.json {
            var value: [String: Any] = [
                "height": quote.height, "amount_in": confirmed.amountIn, "amount_out": confirmed.amountOut,
                "orders_in_flight": quote.ordersInFlight,
            ]
            if let expected = quote.expected {
                value["expected_amount_in"] = expected.amountIn
                value["expected_amount_out"] = expected.amountOut
            }
            emit(JSON.render(value))
        } else {
            var line = "at block \(quote.height): pay \(confirmed.amountIn), receive \(confirmed.amountOut)"
            if let expected = quote.expected, quote.ordersInFlight > 0 {
                line +=
                    "; after \(quote.ordersInFlight) orders in flight: pay \(expected.amountIn), receive \(expected.amountOut)"
            }
            emit(line)
        }
    }

    private func quoteOffline(_ given: UInt128, exactOutput: Bool) throws {
        let reserveIn = try parseAmount(self.reserveIn!, "--reserve-in")
        let reserveOut = try parseAmount(self.reserveOut!, "--reserve-out")
        do {
            let (input, output, sentence): (UInt128, UInt128, String)
            if !exactOutput {
                let quoted = try ConstantProduct.amountOut(
                    amountIn: given, reserveIn: reserveIn, reserveOut: reserveOut)
                (input, output, sentence) = (given, quoted, "pay \(given), receive at most \(quoted)")
            } else {
                let quoted = try ConstantProduct.amountIn(
                    amountOut: given, reserveIn: reserveIn, reserveOut: reserveOut)
                (input, output, sentence) = (quoted, given, "receive \(given), pay at least \(quoted)")
            }
            emit(trader.json ? #"{"amount_in":"\#(input)","amount_out":"\#(output)"}"# : sentence)
        } catch {
            throw ValidationError("no quote: \(error)")
        }
    }
}
