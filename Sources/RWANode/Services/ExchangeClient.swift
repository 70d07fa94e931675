import Logging
import NIOCore
import RWACrypto
import RWALedger
import RWASession
import RWAWire

/// A quote: against the confirmed reserves, and after the orders the exchange has in flight.
public struct ExchangeQuote: Sendable, Equatable {
    public var height: UInt64
    public var confirmed: SwapAmounts?
    public var expected: SwapAmounts?
    public var ordersInFlight: UInt32
}

/// A trader's session with the exchange peer: quotes, market data, and orders that come back
/// filled or rejected. Requests may be pipelined; answers are matched by request id.
public final class ExchangeClient: Sendable {
    public let session: PeerSession
    private let requests: PendingRequests<ExchangeMessage>

    /// Wraps an established session with the exchange. Takes over the session's inbox.
    public init(session: PeerSession) async {
        self.session = session
        let requests = PendingRequests<ExchangeMessage>(session: session)
        self.requests = requests
        try? await session.eventLoop.submit {
            session.inbox.consumeOnEventLoop { event in
                switch event {
                case .message(.exchange(let message)):
                    requests.answer(message.requestID, message)
                case .message:
                    return
                case .finished(let error):
                    requests.end(error ?? SessionError(.closed, "the exchange closed the session", fromPeer: true))
                }
            }
        }.get()
    }

    /// Dials the exchange (whose key, if given, the handshake must prove).
    public static func connect(
        host: String, port: Int, transport: TransportKind = .tcp, identity: SigningKeyPair, chainID: Digest32,
        exchange: SigningPublicKey? = nil, group: EventLoopGroup, logger: Logger = Logger(label: "rwanet.trader")
    ) async throws -> ExchangeClient {
        let session = try await transport.dialService(
            host: host, port: port, identity: identity, chainID: chainID, expectedPeer: exchange, group: group,
            logger: logger)
        return await ExchangeClient(session: session)
    }

    public func close() async { await session.close() }

    private func request(_ build: @escaping @Sendable (UInt64) -> ExchangeMessage) -> EventLoopFuture<ExchangeMessage> {
        requests.send { .exchange(build($0)) }
    }

    private static func unexpected(_ answer: ExchangeMessage, _ what: String) -> Error {
        if case .failed(_, let code, let reason) = answer { return Rejection(code, reason) }
        return Rejection(.unexpectedMessage, "\(answer.type) answers \(what)")
    }

    /// Asks for a quote; callable on the session's event loop, where it costs no thread hop.
    public func quotePipelined(token: TokenID, side: TradeSide, exactOutput: Bool, amount: UInt128)
        -> EventLoopFuture<ExchangeQuote>
    {
        request { .quote(requestID: $0, token: token, side: side.rawValue, exactOutput: exactOutput, amount: amount) }
            .flatMapThrowing { answer in
                guard case .quoteAnswer(_, let height, let confirmed, let expected, let inFlight) = answer else {
                    throw Self.unexpected(answer, "a quote")
                }
                return ExchangeQuote(
                    height: height, confirmed: confirmed, expected: expected, ordersInFlight: inFlight)
            }
    }

    public func quote(token: TokenID, side: TradeSide, exactOutput: Bool, amount: UInt128) async throws
        -> ExchangeQuote
    {
        try await quotePipelined(token: token, side: side, exactOutput: exactOutput, amount: amount).get()
    }

    public func market(token: TokenID, twapSeconds: UInt32 = 0, sizes: [UInt128] = []) async throws -> MarketData {
        let answer = try await request {
            .getMarket(requestID: $0, token: token, twapSeconds: twapSeconds, sizes: sizes)
        }.get()
        guard case .marketAnswer(_, let market) = answer else { throw Self.unexpected(answer, "get_market") }
        return market
    }

    public func trades(token: TokenID, limit: Int = WireLimits.tradesPerAnswerMax) async throws -> [TradeRecord] {
        let limit = UInt8(min(limit, WireLimits.tradesPerAnswerMax))
        let answer = try await request { .getTrades(requestID: $0, token: token, limit: limit) }.get()
        guard case .tradesAnswer(_, let trades) = answer else { throw Self.unexpected(answer, "get_trades") }
        return trades
    }

    /// Sends a signed order; the future succeeds with its fill once its block is durable, and
    /// fails with the ledger's (or the exchange's) `Rejection`, or the session's error.
    public func submitPipelined(_ transaction: Transaction) -> EventLoopFuture<OrderFill> {
        let bytes = transaction.encoded
        return request { .submitOrder(requestID: $0, transaction: bytes) }.flatMapThrowing { answer in
            switch answer {
            case .orderFilled(_, let fill): return fill
            case .orderRejected(_, _, let code, let reason): throw Rejection(code, reason)
            case .quote, .getMarket, .getTrades, .submitOrder, .quoteAnswer, .marketAnswer, .tradesAnswer, .failed:
                throw Self.unexpected(answer, "an order")
            }
        }
    }

    public func submit(_ transaction: Transaction) async throws -> OrderFill {
        try await submitPipelined(transaction).get()
    }
}
