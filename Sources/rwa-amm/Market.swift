import ArgumentParser
import Foundation
import RWACommandLine
import RWALedger
import RWAMarket
import RWANode
import RWAWire

struct Price: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A pool's reserves, spot price, time-weighted average price and depth.",
        discussion: """
            Prices are stablecoin base units per licence base unit. The average is over the \
            --twap-seconds before the last block (shorter if the pool is younger). Depth lists, for \
            each --depth size of licence units, what buying it costs and what selling it brings.
            """)
    @OptionGroup var trader: TraderOptions
    @Option(help: "Licence token id.") var token: TokenID
    @Option(help: "Window of the time-weighted average, in seconds (0: none).") var twapSeconds: UInt32 = 3600
    @Option(
        help: "Comma-separated sizes in licence base units, at most \(WireLimits.depthSizesMax).",
        transform: { text in
            try text.split(separator: ",").map { try parseAmount(String($0), "--depth") }
        })
    var depth: [UInt128] = []

    func validate() throws {
        guard depth.count <= WireLimits.depthSizesMax else {
            throw ValidationError("at most \(WireLimits.depthSizesMax) --depth sizes")
        }
    }

    func run() async throws {
        let market: MarketData
        do {
            market = try await trader.withExchange { exchange, _ in
                try await exchange.market(token: token, twapSeconds: twapSeconds, sizes: depth)
            }
        } catch let rejection as Rejection {
            throw trader.refuse(rejection)
        }
        let spot = market.licenceReserve == 0 ? 0 : Double(market.stablecoinReserve) / Double(market.licenceReserve)
        var value: [String: Any] = [
            "token": token, "height": market.height, "time_ms": market.timeMilliseconds,
            "licence_reserve": market.licenceReserve,
            "stablecoin_reserve": market.stablecoinReserve, "total_shares": market.totalShares, "price": spot,
            "twap_seconds": market.twapSeconds,
            "depth": market.depth.map {
                ["size": $0.size, "buy_cost": $0.buyCost, "sell_proceeds": $0.sellProceeds] as [String: Any]
            },
        ]
        if let twap = market.twap {
            value["twap"] = Pool.approximate(twap)
            value["twap_uq112x112"] = "\(twap)"
        }
        if trader.json {
            emit(JSON.render(value))
            return
        }
        var lines = [
            "pool of token \(token) at block \(market.height): \(market.licenceReserve) licence, "
                + "\(market.stablecoinReserve) stablecoin, \(market.totalShares) shares",
            "price \(String(format: "%.6f", spot)) stablecoin per licence unit",
        ]
        if let twap = market.twap {
            lines.append(
                "average over \(market.twapSeconds) s: \(String(format: "%.6f", Pool.approximate(twap)))")
        }
        for level in market.depth {
            lines.append("size \(level.size): buy for \(level.buyCost), sell for \(level.sellProceeds)")
        }
        emit(lines.joined(separator: "\n"))
    }
}

struct Trades: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A pool's most recent swaps, newest first.")
    @OptionGroup var trader: TraderOptions
    @Option(help: "Licence token id.") var token: TokenID
    @Option(help: "How many, at most \(WireLimits.tradesPerAnswerMax).") var limit = WireLimits.tradesPerAnswerMax

    func run() async throws {
        let trades = try await trader.withExchange { exchange, _ in
            try await exchange.trades(token: token, limit: limit)
        }
        let rows: [[String: Any]] = trades.map {
            [
                "height": $0.height, "index": $0.index, "hash": "\($0.hash)", "trader": "\($0.trader)",
                "side": $0.side == TradeSide.buy.rawValue ? "buy" : "sell", "amount_in": $0.amountIn,
                "amount_out": $0.amountOut,
            ]
        }
        if trader.json {
            emit(JSON.render(["token": token, "trades": rows]))
        } else if trades.isEmpty {
            emit("no trades")
        } else {
            for trade in trades {
                let side = trade.side == TradeSide.buy.rawValue ? "buy " : "sell"
                emit(
                    "block \(trade.height) #\(trade.index) \(side) in \(trade.amountIn) out \(trade.amountOut) by \(trade.trader)"
                )
            }
        }
    }
}
