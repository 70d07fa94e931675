import CoreMetrics
import RWAWire

/// What every daemon counts, recorded by the shells (the pure cores stay free of global state)
/// through swift-metrics. Without `--metrics` no backend is bootstrapped and each call goes to
/// swift-metrics' no-op handler. The handlers are made once, on first use, so a daemon must
/// bootstrap its backend before it starts serving (`MetricsEndpoint.start`). Names and labels
/// are listed in the README ("Metrics"); each name always carries the same label names, as
/// Prometheus requires.
enum NodeMetrics {
    // MARK: Sessions

    static func sessionOpened(_ transport: TransportKind) {
        handshakes[transport]?.increment()
        sessionsOpen[transport]?.increment()
    }

    static func sessionClosed(_ transport: TransportKind) { sessionsOpen[transport]?.decrement() }

    static func handshakeFailed(_ transport: TransportKind) { failedHandshakes[transport]?.increment() }

    /// A frame that arrived in an established session, decrypted and decoded.
    static func received(_ message: Message) {
        (framesReceived[message.type.rawValue] ?? unknownReceived).increment()
        if case .error(let report) = message {
            (errorsReceived[report.code.rawValue] ?? unknownErrorReceived).increment()
        }
    }

    /// A frame sealed and handed to the transport.
    static func sent(_ message: Message) {
        (framesSent[message.type.rawValue] ?? unknownSent).increment()
        if case .error(let report) = message { (errorsSent[report.code.rawValue] ?? unknownErrorSent).increment() }
    }

    private static let sessionsOpen = byTransport { Meter(label: "rwanet_sessions_open", dimensions: $0) }
    private static let handshakes = byTransport {
        Counter(label: "rwanet_handshakes_total", dimensions: $0 + [("result", "completed")])
    }
    private static let failedHandshakes = byTransport {
        Counter(label: "rwanet_handshakes_total", dimensions: $0 + [("result", "failed")])
    }
    private static let framesReceived = byType("rwanet_frames_received_total")
    private static let framesSent = byType("rwanet_frames_sent_total")
    private static let unknownReceived = Counter(
        label: "rwanet_frames_received_total", dimensions: [("type", "unknown")])
    private static let unknownSent = Counter(label: "rwanet_frames_sent_total", dimensions: [("type", "unknown")])
    private static let errorsReceived = byCode(direction: "received")
    private static let errorsSent = byCode(direction: "sent")
    private static let unknownErrorReceived = Counter(
        label: "rwanet_errors_total", dimensions: [("code", "unknown"), ("direction", "received")])
    private static let unknownErrorSent = Counter(
        label: "rwanet_errors_total", dimensions: [("code", "unknown"), ("direction", "sent")])

    private static func byTransport<Handler>(_ make: ([(String, String)]) -> Handler) -> [TransportKind: Handler] {
        Dictionary(uniqueKeysWithValues: TransportKind.allCases.map { ($0, make([("transport", $0.rawValue)])) })
    }

    private static func byType(_ label: String) -> [UInt16: Counter] {
        MessageType.names.mapValues { Counter(label: label, dimensions: [("type", $0)]) }
    }

    private static func byCode(direction: String) -> [UInt16: Counter] {
        Dictionary(
            uniqueKeysWithValues: ErrorCode.Known.allCases.map {
                (
                    $0.rawValue,
                    Counter(
                        label: "rwanet_errors_total",
                        dimensions: [("code", ErrorCode($0).name), ("direction", direction)])
                )
            })
    }

    // MARK: The arbiter

    /// A submission answered: `committed`, or the rejection's code name.
    static func transactionAnswered(_ result: String, nanoseconds: UInt64) {
        if result == "committed" {
            committedTransactions.increment()
        } else {
            Counter(label: "rwanet_transactions_total", dimensions: [("result", result)]).increment()
        }
        transactionLatency.recordNanoseconds(Int64(clamping: nanoseconds))
    }

    static func blockCommitted(transactions: Int) {
        blocks.increment()
        blockTransactions.increment(by: transactions)
    }

    /// Submissions the sequencer found waiting when it last looked.
    static func arbiterQueue(depth: Int) { queueDepth.record(depth) }

    private static let committedTransactions = Counter(
        label: "rwanet_transactions_total", dimensions: [("result", "committed")])
    private static let transactionLatency = Timer(label: "rwanet_transaction_seconds")
    private static let blocks = Counter(label: "rwanet_blocks_committed_total")
    private static let blockTransactions = Counter(label: "rwanet_block_transactions_total")
    private static let queueDepth = Gauge(label: "rwanet_arbiter_queue_depth")

    // MARK: The exchange

    /// An order answered: `filled`, or the rejection's code name; a filled swap also counts as a swap.
    static func orderAnswered(_ result: String, swap: Bool) {
        Counter(label: "rwanet_exchange_orders_total", dimensions: [("result", result)]).increment()
        if swap { swaps.increment() }
    }

    private static let swaps = Counter(label: "rwanet_swaps_total")

    // MARK: Lease channels

    /// A co-signed state stored by this side: one per update, whichever side proposed it.
    static func channelUpdated(asLessor: Bool) { (asLessor ? lessorUpdates : lesseeUpdates).increment() }

    /// A payment from the CLI until both sides hold the new state.
    static func paymentCompleted(nanoseconds: UInt64) {
        paymentLatency.recordNanoseconds(Int64(clamping: nanoseconds))
    }

    /// This daemon registered its latest state on the chain (a unilateral close).
    static func disputeSubmitted() { disputes.increment() }

    /// This daemon answered a registration of an older state with its newer one.
    static func challengeSubmitted() { challenges.increment() }

    private static let lessorUpdates = Counter(label: "rwanet_channel_updates_total", dimensions: [("role", "lessor")])
    private static let lesseeUpdates = Counter(label: "rwanet_channel_updates_total", dimensions: [("role", "lessee")])
    private static let paymentLatency = Timer(label: "rwanet_channel_update_seconds")
    private static let disputes = Counter(label: "rwanet_channel_disputes_total")
    private static let challenges = Counter(label: "rwanet_channel_challenges_total")
}
