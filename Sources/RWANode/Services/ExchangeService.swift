import Logging
import NIOConcurrencyHelpers
import NIOCore
import RWACrypto
import RWAExchange
import RWALedger
import RWASession
import RWAWire

/// The exchange peer (`rwa-amm run`): it follows the chain through the arbiter's block
/// subscription, replaying every block into its own `Ledger` (trusting the arbiter's signed
/// headers, not re-verifying each signature), and so knows every pool's confirmed reserves,
/// price history and trades. It answers quotes and market data from that replica and relays
/// traders' signed orders to the arbiter, reporting each order's fill once the block that holds
/// it is durable and replayed, or the arbiter's rejection.
///
/// The exchange holds no one's keys: an order is a transaction its trader signed, with the
/// trader's own limit and deadline, so the exchange can neither change nor front-run its terms.
public final class ExchangeService: Sendable {
    public let chainID: Digest32
    private let arbiter: any ArbiterLink
    /// The pure book (`RWAExchange`); this class only carries out what it decides.
    private let book: NIOLockedValueBox<ExchangeBook<FillWaiter>>
    private let sessions = ServedSessions(service: "the exchange")
    private let logger: Logger

    typealias FillWaiter = @Sendable (Result<OrderFill, Rejection>) -> Void

    /// `arbiter` is the link to the arbiter (a session, or an `InMemoryArbiter`), which the
    /// exchange uses for submissions and for its one block subscription.
    public init(genesis: Genesis, arbiter: any ArbiterLink, logger: Logger = Logger(label: "rwanet.exchange")) {
        precondition(genesis.chainID == arbiter.chainID)
        self.chainID = genesis.chainID
        self.arbiter = arbiter
        self.book = NIOLockedValueBox(ExchangeBook(genesis: genesis))
        self.logger = logger
    }

    /// The height of the last block replayed.
    public var height: UInt64 { book.withLockedValue { $0.ledger.height } }

    /// Follows the chain from the first block. Returns once the replica has reached the height
    /// the arbiter reported at the call, so nothing is quoted from a stale state; following goes
    /// on in the background until the session ends.
    public func start() async throws {
        let target = try await arbiter.status().height
        let blocks = arbiter.subscribe(from: 1)
        let caughtUp = AsyncStream<Void>.makeStream()
        Task { [self] in
            var signalled = false
            do {
                for try await block in blocks {
                    try follow(block)
                    if !signalled && block.header.height >= target {
                        signalled = true
                        caughtUp.continuation.finish()
                    }
                }
                fail("the arbiter ended the block subscription")
            } catch {
                fail("\(error)")
            }
            caughtUp.continuation.finish()
        }
        if target == 0 { caughtUp.continuation.finish() }
        for await _ in caughtUp.stream {}
        if let failure = book.withLockedValue({ $0.failure }) { throw ExchangeFailure(failure) }
    }

    private func fail(_ reason: String) {
        logger.error("stopped following the chain", metadata: ["reason": "\(reason)"])
        for (waiter, rejection) in book.withLockedValue({ $0.fail(reason) }) { waiter(.failure(rejection)) }
    }

    /// Replays one block and settles the orders it holds.
    private func follow(_ block: Block) throws {
        let settled = try book.withLockedValue { book in try book.follow(block) }
        for (waiter, fill) in settled { waiter(.success(fill)) }
    }

    /// Answers `session` until it closes.
    public func serve(_ session: PeerSession) {
        sessions.serve(
            session,
            route: { message in
                if case .exchange(let request) = message { return request }
                return nil
            },
            handle: { [self] request in handle(request, from: session) })
    }

    private func reply(_ session: PeerSession, _ message: ExchangeMessage) {
        sessions.send([.exchange(message)], to: session)
    }

    private func handle(_ message: ExchangeMessage, from session: PeerSession) {
        switch message {
        case .quote(let id, let token, let side, let exactOutput, let amount):
            guard let side = TradeSide(rawValue: side) else {
                return reply(session, .failed(requestID: id, code: .badQuery, reason: "side \(side) is not 1 or 2"))
            }
            reply(
                session,
                book.withLockedValue {
                    $0.quote(id, token: token, side: side, exactOutput: exactOutput, amount: amount)
                })
        case .getMarket(let id, let token, let twapSeconds, let sizes):
            reply(
                session, book.withLockedValue { $0.market(id, token: token, twapSeconds: twapSeconds, sizes: sizes) })
        case .getTrades(let id, let token, let limit):
            let trades = book.withLockedValue { $0.trades(token: token, limit: Int(limit)) }
            reply(session, .tradesAnswer(requestID: id, trades: trades))
        case .submitOrder(let id, let bytes):
            submit(bytes) { [self] result in
                switch result {
                case .success(let fill):
                    NodeMetrics.orderAnswered("filled", swap: fill.shares == 0)
                    reply(session, .orderFilled(requestID: id, fill: fill))
                case .failure(let rejection):
                    NodeMetrics.orderAnswered(rejection.code.name, swap: false)
                    reply(
                        session,
                        .orderRejected(
                            requestID: id, hash: Blake2b.hash256(bytes), code: rejection.code, reason: rejection.reason)
                    )
                }
            }
        case .quoteAnswer, .marketAnswer, .tradesAnswer, .orderFilled, .orderRejected, .failed:
            session.beginClose(
                reporting: SessionError(.unexpectedMessage, "\(message.type) is not a request to the exchange"))
        }
    }

    /// Relays a signed order to the arbiter; `completion` gets its fill once the block holding it
    /// has been replayed here, or the arbiter's rejection.
    func submit(_ bytes: [UInt8], completion: @escaping FillWaiter) {
        switch book.withLockedValue({ $0.admit(bytes) }) {
        case .answer(let result):
            completion(result)
        case .relay(let transaction, let hash):
            arbiter.submit(transaction) { [self] result in
                switch result {
                case .success(let receipt):
                    // Committed: the fill is known once the subscription delivers its block (which
                    // may already have happened).
                    let known = book.withLockedValue {
                        $0.committed(hash, height: receipt.height, index: receipt.index, waiter: completion)
                    }
                    if let known { completion(known) }
                case .failure(let error):
                    book.withLockedValue { $0.refused(hash) }
                    completion(
                        .failure(
                            error as? Rejection
                                ?? Rejection(.exchangeUnavailable, "the arbiter did not take the order: \(error)")))
                }
            }
        }
    }
}

public struct ExchangeFailure: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
