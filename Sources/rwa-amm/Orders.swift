import ArgumentParser
import Foundation
import RWACommandLine
import RWACrypto
import RWALedger
import RWANode
import RWAWire

extension TraderOptions {
    /// Signs `operation` at the trader's next sequence number (asked of the arbiter), sends it
    /// through the exchange, waits for its block and prints the fill. A rejection exits 1.
    func place(_ operation: LedgerOperation) async throws {
        do throws(Rejection) { try operation.checkLimits() } catch { throw CLIError(error.reason) }
        guard let key else { throw ValidationError("orders are signed: give --key") }
        let identity = try readKey(key)
        let genesis = try connection.chain.genesis()
        let arbiter = try await connection.connect(as: identity)
        let sequence: UInt64
        do {
            sequence = try await arbiter.account(identity.publicKey)?.nextSequence ?? 0
            await arbiter.close()
        } catch {
            await arbiter.close()
            throw CLIError("the arbiter did not answer: \(error)")
        }
        let transaction = try Transaction(
            signedBy: identity, chainID: genesis.chainID, sequence: sequence, operation: operation)
        let fill: OrderFill
        do {
            fill = try await withExchange { exchange, _ in try await exchange.submit(transaction) }
        } catch let rejection as Rejection {
            throw refuse(rejection)
        }
        var value: [String: Any] = [
            "ok": true, "operation": operation.name, "hash": "\(fill.hash)", "height": fill.height, "index": fill.index,
            "licence": fill.licence, "stablecoin": fill.stablecoin,
        ]
        let line: String
        switch operation {
        case .swapExactIn(_, let side, _, _, _), .swapExactOut(_, let side, _, _, _):
            let (paid, received) = side == .buy ? (fill.stablecoin, fill.licence) : (fill.licence, fill.stablecoin)
            let (paidName, receivedName) = side == .buy ? ("stablecoin", "licence") : ("licence", "stablecoin")
            value["amount_in"] = paid
            value["amount_out"] = received
            line = "paid \(paid) \(paidName), received \(received) \(receivedName)"
        case .addLiquidity:
            value["shares"] = fill.shares
            line = "deposited \(fill.licence) licence and \(fill.stablecoin) stablecoin for \(fill.shares) shares"
        case .removeLiquidity:
            value["shares"] = fill.shares
            line = "burned \(fill.shares) shares for \(fill.licence) licence and \(fill.stablecoin) stablecoin"
        case .transfer, .mint, .burn, .setFrozen, .freezePartial, .unfreezePartial, .forcedTransfer, .recoverWallet,
            .setPaused, .setCompliance, .registerIdentity, .linkWallet, .addClaim, .revokeClaim, .registerResource,
            .createPool, .openChannel, .closeChannel, .registerState, .challenge, .settleChannel, .claimRent:
            line = "applied"  // not an order: the exchange refuses these before they get here
        }
        emit(json ? JSON.render(value) : "\(operation.name) filled in block \(fill.height) as \(fill.hash): \(line)")
    }
}

/// When an order stops being valid: `--deadline-seconds` from now, in the ledger's milliseconds.
struct DeadlineOptions: ParsableArguments {
    @Option(help: "Seconds the order stays valid; a block after that refuses it.")
    var deadlineSeconds: UInt64 = 60

    var deadline: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) + deadlineSeconds * 1000 }
}

struct PoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool", abstract: "Open a licence token's market (its agent).", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the pool of a licence token against the stablecoin; prints its share token.",
            discussion: """
                Signed by an agent of the token who is a trusted claim issuer (the regulator that \
                registered the licence). The pool's account gets an identity of --country holding the \
                claims the token requires, so that it can hold the token under its rules.
                """)
        @OptionGroup var options: SubmitOptions
        @Option(help: "Licence token id.") var token: TokenID
        @Option(help: "ISO 3166 numeric country of the pool's identity.") var country: CountryCode

        func run() async throws {
            try await options.submit(.createPool(token: token, country: country), createdName: "share_token")
        }
    }
}

struct AddLiquidity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deposit licence tokens and stablecoin at the pool's price for shares.",
        discussion: """
            The first deposit sets the price. Later ones take as much of --licence and --stablecoin \
            as fits the pool's price (Uniswap v2's router) and refuse if that falls below a minimum.
            """)
    @OptionGroup var trader: TraderOptions
    @OptionGroup var deadline: DeadlineOptions
    @Option(help: "Licence token id.") var token: TokenID
    @Option(help: "Most licence base units to deposit.") var licence: String
    @Option(help: "Most stablecoin base units to deposit.") var stablecoin: String
    @Option(help: "Least licence base units to deposit.") var minLicence = "0"
    @Option(help: "Least stablecoin base units to deposit.") var minStablecoin = "0"

    func run() async throws {
        try await trader.place(
            .addLiquidity(
                token: token, licenceDesired: try parseAmount(licence, "--licence"),
                stablecoinDesired: try parseAmount(stablecoin, "--stablecoin"),
                licenceMinimum: try parseAmount(minLicence, "--min-licence"),
                stablecoinMinimum: try parseAmount(minStablecoin, "--min-stablecoin"),
                deadlineMilliseconds: deadline.deadline))
    }
}

struct RemoveLiquidity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Burn shares for their part of both reserves.")
    @OptionGroup var trader: TraderOptions
    @OptionGroup var deadline: DeadlineOptions
    @Option(help: "Licence token id.") var token: TokenID
    @Option(help: "Shares to burn.") var shares: String
    @Option(help: "Least licence base units to receive.") var minLicence = "0"
    @Option(help: "Least stablecoin base units to receive.") var minStablecoin = "0"

    func run() async throws {
        try await trader.place(
            .removeLiquidity(
                token: token, shares: try parseAmount(shares, "--shares"),
                licenceMinimum: try parseAmount(minLicence, "--min-licence"),
                stablecoinMinimum: try parseAmount(minStablecoin, "--min-stablecoin"),
                deadlineMilliseconds: deadline.deadline))
    }
}

struct Swap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Buy or sell licence tokens against the stablecoin.",
        discussion: """
            Exactly one of --amount-in (pay exactly that) or --amount-out (receive exactly that). \
            The signed limit is --min-out or --max-in if given; otherwise the exchange's quote \
            (after the orders it has in flight) moved against you by --slippage-bps.
            """)
    @OptionGroup var trader: TraderOptions
    @OptionGroup var deadline: DeadlineOptions
    @Option(help: "Licence token id.") var token: TokenID
    @Option(help: "buy (pay stablecoin) or sell (pay licence tokens).") var side: TradeSide
    @Option(help: "Exact base units to pay.") var amountIn: String?
    @Option(help: "Exact base units to receive.") var amountOut: String?
    @Option(help: "Least base units to receive (with --amount-in).") var minOut: String?
    @Option(help: "Most base units to pay (with --amount-out).") var maxIn: String?
    @Option(help: "Tolerance against the quote, in hundredths of a percent.") var slippageBps: UInt32 = 50

    func validate() throws {
        guard (amountIn == nil) != (amountOut == nil) else {
            throw ValidationError("give exactly one of --amount-in and --amount-out")
        }
        if minOut != nil && amountIn == nil { throw ValidationError("--min-out goes with --amount-in") }
        if maxIn != nil && amountOut == nil { throw ValidationError("--max-in goes with --amount-out") }
        guard slippageBps <= 10_000 else { throw ValidationError("--slippage-bps is at most 10000") }
    }

    func run() async throws {
        let exactOutput = amountOut != nil
        let amount = try parseAmount(amountIn ?? amountOut!, exactOutput ? "--amount-out" : "--amount-in")
        var limit = try (exactOutput ? maxIn : minOut).map {
            try parseAmount($0, exactOutput ? "--max-in" : "--min-out")
        }
        if limit == nil {
            let quote = try await trader.withExchange { exchange, _ in
                try await exchange.quote(token: token, side: side, exactOutput: exactOutput, amount: amount)
            }
            guard let amounts = quote.expected ?? quote.confirmed else {
                throw trader.refuse(Rejection(.insufficientLiquidity, "the pool cannot fill \(amount)"))
            }
            let bps = UInt128(slippageBps)
            limit =
                exactOutput
                ? amounts.amountIn + (amounts.amountIn * bps + 9_999) / 10_000
                : amounts.amountOut - amounts.amountOut * bps / 10_000
        }
        try await trader.place(
            exactOutput
                ? .swapExactOut(
                    token: token, side: side, amountOut: amount, maximumIn: limit!,
                    deadlineMilliseconds: deadline.deadline)
                : .swapExactIn(
                    token: token, side: side, amountIn: amount, minimumOut: limit!,
                    deadlineMilliseconds: deadline.deadline))
    }
}
