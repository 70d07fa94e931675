import NIOCore
import RWACrypto
import RWAMarket

extension MessageType {
    public static let exchangeQuote = MessageType(rawValue: 0x0600)
    public static let exchangeGetMarket = MessageType(rawValue: 0x0602)
    public static let exchangeGetTrades = MessageType(rawValue: 0x0604)
    public static let exchangeSubmitOrder = MessageType(rawValue: 0x0606)
    public static let exchangeQuoteAnswer = MessageType(rawValue: 0x0700)
    public static let exchangeMarketAnswer = MessageType(rawValue: 0x0702)
    public static let exchangeTradesAnswer = MessageType(rawValue: 0x0704)
    public static let exchangeOrderFilled = MessageType(rawValue: 0x0706)
    public static let exchangeOrderRejected = MessageType(rawValue: 0x0708)
    public static let exchangeFailed = MessageType(rawValue: 0x070A)
}

extension WireLimits {
    /// Depth sizes one market request may ask for, and trades one answer carries: both keep the
    /// answer inside one UDP frame (proto/README.md, "Exchange messages").
    public static let depthSizesMax = 8
    public static let tradesPerAnswerMax = 10
}

/// A swap's two amounts, in base units.
public struct SwapAmounts: Equatable, Sendable {
    public var amountIn: UInt128
    public var amountOut: UInt128

    public init(amountIn: UInt128, amountOut: UInt128) {
        self.amountIn = amountIn
        self.amountOut = amountOut
    }
}

/// What trading a given size of licence tokens costs right now, both ways.
public struct DepthLevel: Equatable, Sendable {
    public var size: UInt128
    /// Stablecoin needed to buy `size` licence units; 0 if the pool cannot deliver them.
    public var buyCost: UInt128
    /// Stablecoin received for selling `size` licence units.
    public var sellProceeds: UInt128

    public init(size: UInt128, buyCost: UInt128, sellProceeds: UInt128) {
        self.size = size
        self.buyCost = buyCost
        self.sellProceeds = sellProceeds
    }
}

/// A pool's state as the exchange last confirmed it from the chain.
public struct MarketData: Equatable, Sendable {
    public var height: UInt64
    /// The time of block `height`, in Unix milliseconds.
    public var timeMilliseconds: UInt64
    public var licenceReserve: UInt128
    public var stablecoinReserve: UInt128
    public var totalShares: UInt128
    /// The time-weighted average price of one licence unit in stablecoin units (UQ112x112) over
    /// the last `twapSeconds` seconds; absent when no window was asked for or none has elapsed.
    public var twapSeconds: UInt32
    public var twap: UInt256?
    public var depth: [DepthLevel]

    public init(
        height: UInt64, timeMilliseconds: UInt64, licenceReserve: UInt128, stablecoinReserve: UInt128,
        totalShares: UInt128,
        twapSeconds: UInt32, twap: UInt256?, depth: [DepthLevel]
    ) {
        self.height = height
        self.timeMilliseconds = timeMilliseconds
        self.licenceReserve = licenceReserve
        self.stablecoinReserve = stablecoinReserve
        self.totalShares = totalShares
        self.twapSeconds = twapSeconds
        self.twap = twap
        self.depth = depth
    }
}

/// One committed swap.
public struct TradeRecord: Equatable, Sendable {
    public var height: UInt64
    public var index: UInt32
    public var hash: Digest32
    public var trader: SigningPublicKey
    /// 1: bought licence units with the stablecoin; 2: sold them.
    public var side: UInt8
    public var amountIn: UInt128
    public var amountOut: UInt128

    public init(
        height: UInt64, index: UInt32, hash: Digest32, trader: SigningPublicKey, side: UInt8, amountIn: UInt128,
        amountOut: UInt128
    ) {
        self.height = height
        self.index = index
        self.hash = hash
        self.trader = trader
        self.side = side
        self.amountIn = amountIn
        self.amountOut = amountOut
    }
}

/// A committed order and what it moved.
public struct OrderFill: Equatable, Sendable {
    public var hash: Digest32
    public var height: UInt64
    public var index: UInt32
    /// The operation's tag (proto/README.md, "Operations").
    public var operation: UInt8
    public var licence: UInt128
    public var stablecoin: UInt128
    /// Shares minted (`add_liquidity`) or burned (`remove_liquidity`); 0 for swaps.
    public var shares: UInt128

    public init(
        hash: Digest32, height: UInt64, index: UInt32, operation: UInt8, licence: UInt128, stablecoin: UInt128,
        shares: UInt128
    ) {
        self.hash = hash
        self.height = height
        self.index = index
        self.operation = operation
        self.licence = licence
        self.stablecoin = stablecoin
        self.shares = shares
    }
}

/// The messages between traders and the exchange peer (`rwa-amm run`), family 0x0600–0x07FF:
/// the same request-id envelope as the arbiter's. The exchange answers quotes and market data
/// from its replica of the chain, and relays signed orders to the arbiter, reporting each fill
/// or rejection once its block is durable.
public enum ExchangeMessage: Equatable, Sendable {
    /// `side` 1 buys licence units, 2 sells them; `exactOutput` false quotes an exact input.
    case quote(requestID: UInt64, token: UInt64, side: UInt8, exactOutput: Bool, amount: UInt128)
    case getMarket(requestID: UInt64, token: UInt64, twapSeconds: UInt32, sizes: [UInt128])
    case getTrades(requestID: UInt64, token: UInt64, limit: UInt8)
    /// A signed pool transaction for the exchange to submit.
    case submitOrder(requestID: UInt64, transaction: [UInt8])
    /// Against the confirmed reserves, and against them after the orders in flight (nil where the
    /// pool cannot fill the amount).
    case quoteAnswer(
        requestID: UInt64, height: UInt64, confirmed: SwapAmounts?, expected: SwapAmounts?, ordersInFlight: UInt32)
    case marketAnswer(requestID: UInt64, market: MarketData)
    case tradesAnswer(requestID: UInt64, trades: [TradeRecord])
    case orderFilled(requestID: UInt64, fill: OrderFill)
    case orderRejected(requestID: UInt64, hash: Digest32, code: ErrorCode, reason: String)
    /// A request the exchange cannot answer: an unknown pool, an impossible quote, not ready.
    case failed(requestID: UInt64, code: ErrorCode, reason: String)

    public var type: MessageType {
        switch self {
        case .quote: return .exchangeQuote
        case .getMarket: return .exchangeGetMarket
        case .getTrades: return .exchangeGetTrades
        case .submitOrder: return .exchangeSubmitOrder
        case .quoteAnswer: return .exchangeQuoteAnswer
        case .marketAnswer: return .exchangeMarketAnswer
        case .tradesAnswer: return .exchangeTradesAnswer
        case .orderFilled: return .exchangeOrderFilled
        case .orderRejected: return .exchangeOrderRejected
        case .failed: return .exchangeFailed
        }
    }

    public var requestID: UInt64 {
        switch self {
        case .quote(let id, _, _, _, _), .getMarket(let id, _, _, _), .getTrades(let id, _, _),
            .submitOrder(let id, _), .quoteAnswer(let id, _, _, _, _), .marketAnswer(let id, _),
            .tradesAnswer(let id, _), .orderFilled(let id, _), .orderRejected(let id, _, _, _), .failed(let id, _, _):
            return id
        }
    }

    static func decode(type: MessageType, body: inout ByteBuffer) throws(WireError) -> ExchangeMessage? {
        let name = "\(type)"
        func requestID() throws(WireError) -> UInt64 { try body.readInteger(field: "\(name).request_id") }
        func amount(_ field: String) throws(WireError) -> UInt128 { try body.readUInt128(field: "\(name).\(field)") }
        func side() throws(WireError) -> UInt8 {
            let side: UInt8 = try body.readInteger(field: "\(name).side")
            guard side == 1 || side == 2 else {
                throw .invalidValue(field: "\(name).side", reason: "1 (buy) or 2 (sell), not \(side)")
            }
            return side
        }
        func amounts(_ field: String) throws(WireError) -> SwapAmounts? {
            try body.readOptional(field: "\(name).\(field)") { (b) throws(WireError) in
                SwapAmounts(
                    amountIn: try b.readUInt128(field: "\(name).\(field).amount_in"),
                    amountOut: try b.readUInt128(field: "\(name).\(field).amount_out"))
            }
        }
        switch type {
        case .exchangeQuote:
            return .quote(
                requestID: try requestID(), token: try body.readInteger(field: "\(name).token"), side: try side(),
                exactOutput: try body.readBool(field: "\(name).exact_output"), amount: try amount("amount"))
        case .exchangeGetMarket:
            return .getMarket(
                requestID: try requestID(), token: try body.readInteger(field: "\(name).token"),
                twapSeconds: try body.readInteger(field: "\(name).twap_seconds"),
                sizes: try body.readList(field: "\(name).sizes", maximum: WireLimits.depthSizesMax) {
                    (b) throws(WireError) in try b.readUInt128(field: "\(name).size")
                })
        case .exchangeGetTrades:
            let id = try requestID()
            let token: UInt64 = try body.readInteger(field: "\(name).token")
            let limit: UInt8 = try body.readInteger(field: "\(name).limit")
            guard limit <= WireLimits.tradesPerAnswerMax else {
                throw .lengthAboveMaximum(
                    field: "\(name).limit", length: Int(limit), maximum: WireLimits.tradesPerAnswerMax)
            }
            return .getTrades(requestID: id, token: token, limit: limit)
        case .exchangeSubmitOrder:
            return .submitOrder(
                requestID: try requestID(),
                transaction: try body.readVariableBytes(
                    field: "\(name).transaction", maximum: WireLimits.ledgerTransactionBytesMax))
        case .exchangeQuoteAnswer:
            return .quoteAnswer(
                requestID: try requestID(), height: try body.readInteger(field: "\(name).height"),
                confirmed: try amounts("confirmed"), expected: try amounts("expected"),
                ordersInFlight: try body.readInteger(field: "\(name).orders_in_flight"))
        case .exchangeMarketAnswer:
            let id = try requestID()
            let market = MarketData(
                height: try body.readInteger(field: "\(name).height"),
                timeMilliseconds: try body.readInteger(field: "\(name).time"),
                licenceReserve: try amount("licence_reserve"), stablecoinReserve: try amount("stablecoin_reserve"),
                totalShares: try amount("total_shares"),
                twapSeconds: try body.readInteger(field: "\(name).twap_seconds"),
                twap: try body.readOptional(field: "\(name).twap") { (b) throws(WireError) in
                    UInt256(
                        high: try b.readUInt128(field: "\(name).twap"), low: try b.readUInt128(field: "\(name).twap"))
                },
                depth: try body.readList(field: "\(name).depth", maximum: WireLimits.depthSizesMax) {
                    (b) throws(WireError) in
                    DepthLevel(
                        size: try b.readUInt128(field: "\(name).depth.size"),
                        buyCost: try b.readUInt128(field: "\(name).depth.buy_cost"),
                        sellProceeds: try b.readUInt128(field: "\(name).depth.sell_proceeds"))
                })
            return .marketAnswer(requestID: id, market: market)
        case .exchangeTradesAnswer:
            return .tradesAnswer(
                requestID: try requestID(),
                trades: try body.readList(field: "\(name).trades", maximum: WireLimits.tradesPerAnswerMax) {
                    (b) throws(WireError) in
                    TradeRecord(
                        height: try b.readInteger(field: "trade.height"),
                        index: try b.readInteger(field: "trade.index"), hash: try b.readDigest(field: "trade.hash"),
                        trader: try b.readPublicKey(field: "trade.trader"),
                        side: try b.readInteger(field: "trade.side"),
                        amountIn: try b.readUInt128(field: "trade.amount_in"),
                        amountOut: try b.readUInt128(field: "trade.amount_out"))
                })
        case .exchangeOrderFilled:
            return .orderFilled(
                requestID: try requestID(),
                fill: OrderFill(
                    hash: try body.readDigest(field: "\(name).hash"),
                    height: try body.readInteger(field: "\(name).height"),
                    index: try body.readInteger(field: "\(name).index"),
                    operation: try body.readInteger(field: "\(name).operation"), licence: try amount("licence"),
                    stablecoin: try amount("stablecoin"), shares: try amount("shares")))
        case .exchangeOrderRejected:
            return .orderRejected(
                requestID: try requestID(), hash: try body.readDigest(field: "\(name).hash"),
                code: ErrorCode(rawValue: try body.readInteger(field: "\(name).code")),
                reason: try body.readText(field: "\(name).reason", maximum: WireLimits.errorTextBytesMax))
        case .exchangeFailed:
            return .failed(
                requestID: try requestID(), code: ErrorCode(rawValue: try body.readInteger(field: "\(name).code")),
                reason: try body.readText(field: "\(name).reason", maximum: WireLimits.errorTextBytesMax))
        default:
            return nil
        }
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(requestID, endianness: .big)
        func amounts(_ value: SwapAmounts?) {
            buffer.writeOptional(value) {
                $0.writeUInt128($1.amountIn)
                $0.writeUInt128($1.amountOut)
            }
        }
        switch self {
        case .quote(_, let token, let side, let exactOutput, let amount):
            buffer.writeInteger(token, endianness: .big)
            buffer.writeInteger(side)
            buffer.writeBool(exactOutput)
            buffer.writeUInt128(amount)
        case .getMarket(_, let token, let twapSeconds, let sizes):
            buffer.writeInteger(token, endianness: .big)
            buffer.writeInteger(twapSeconds, endianness: .big)
            buffer.writeList(sizes, maximum: WireLimits.depthSizesMax) { $0.writeUInt128($1) }
        case .getTrades(_, let token, let limit):
            buffer.writeInteger(token, endianness: .big)
            buffer.writeInteger(limit)
        case .submitOrder(_, let transaction):
            buffer.writeVariableBytes(transaction, maximum: WireLimits.ledgerTransactionBytesMax)
        case .quoteAnswer(_, let height, let confirmed, let expected, let ordersInFlight):
            buffer.writeInteger(height, endianness: .big)
            amounts(confirmed)
            amounts(expected)
            buffer.writeInteger(ordersInFlight, endianness: .big)
        case .marketAnswer(_, let market):
            buffer.writeInteger(market.height, endianness: .big)
            buffer.writeInteger(market.timeMilliseconds, endianness: .big)
            buffer.writeUInt128(market.licenceReserve)
            buffer.writeUInt128(market.stablecoinReserve)
            buffer.writeUInt128(market.totalShares)
            buffer.writeInteger(market.twapSeconds, endianness: .big)
            buffer.writeOptional(market.twap) {
                $0.writeUInt128($1.high)
                $0.writeUInt128($1.low)
            }
            buffer.writeList(market.depth, maximum: WireLimits.depthSizesMax) {
                $0.writeUInt128($1.size)
                $0.writeUInt128($1.buyCost)
                $0.writeUInt128($1.sellProceeds)
            }
        case .tradesAnswer(_, let trades):
            buffer.writeList(trades, maximum: WireLimits.tradesPerAnswerMax) {
                $0.writeInteger($1.height, endianness: .big)
                $0.writeInteger($1.index, endianness: .big)
                $0.writeDigest($1.hash)
                $0.writePublicKey($1.trader)
                $0.writeInteger($1.side)
                $0.writeUInt128($1.amountIn)
                $0.writeUInt128($1.amountOut)
            }
        case .orderFilled(_, let fill):
            buffer.writeDigest(fill.hash)
            buffer.writeInteger(fill.height, endianness: .big)
            buffer.writeInteger(fill.index, endianness: .big)
            buffer.writeInteger(fill.operation)
            buffer.writeUInt128(fill.licence)
            buffer.writeUInt128(fill.stablecoin)
            buffer.writeUInt128(fill.shares)
        case .orderRejected(_, let hash, let code, let reason):
            buffer.writeDigest(hash)
            buffer.writeInteger(code.rawValue, endianness: .big)
            buffer.writeText(ErrorReport(code: code, text: reason).text, maximum: WireLimits.errorTextBytesMax)
        case .failed(_, let code, let reason):
            buffer.writeInteger(code.rawValue, endianness: .big)
            buffer.writeText(ErrorReport(code: code, text: reason).text, maximum: WireLimits.errorTextBytesMax)
        }
    }
}
