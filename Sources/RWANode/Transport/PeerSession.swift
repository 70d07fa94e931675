import Logging
import NIOCore
import RWACrypto
import RWASession
import RWAWire

/// Which transport a session runs over.
public enum TransportKind: String, Sendable, CaseIterable {
    case tcp
    case udp
}

/// An authenticated, encrypted session with one peer, whatever the transport. Messages arrive in
/// order on `inbox`; the session layer itself answers pings and handles error frames, so the
/// consumer sees only application messages. The inbox ends (with a `SessionError`) when the
/// session closes.
public final class PeerSession: Sendable {
    public let peerIdentity: SigningPublicKey
    public let peerFeatures: FeatureBits
    public let transport: TransportKind
    public let remoteAddress: SocketAddress?
    public let inbox: Inbox
    /// The event loop that runs this session; `Inbox.consumeOnEventLoop` consumers run on it.
    public let eventLoop: EventLoop
    private let sendOperation: @Sendable (Message) -> EventLoopFuture<Void>
    private let closeOperation: @Sendable (SessionError?) -> Void
    private let statisticsOperation: (@Sendable () -> EventLoopFuture<UDPStatistics>)?
    private let protectOperation: @Sendable () -> Void
    /// Completes when the session has closed, for whatever reason.
    public let closeFuture: EventLoopFuture<Void>

    init(
        peerIdentity: SigningPublicKey, peerFeatures: FeatureBits, transport: TransportKind,
        remoteAddress: SocketAddress?,
        inbox: Inbox, eventLoop: EventLoop, closeFuture: EventLoopFuture<Void>,
        send: @escaping @Sendable (Message) -> EventLoopFuture<Void>,
        close: @escaping @Sendable (SessionError?) -> Void,
        statistics: (@Sendable () -> EventLoopFuture<UDPStatistics>)? = nil,
        protect: @escaping @Sendable () -> Void = {}
    ) {
        self.protectOperation = protect
        self.peerIdentity = peerIdentity
        self.peerFeatures = peerFeatures
        self.transport = transport
        self.remoteAddress = remoteAddress
        self.inbox = inbox
        self.eventLoop = eventLoop
        self.closeFuture = closeFuture
        self.sendOperation = send
        self.closeOperation = close
        self.statisticsOperation = statistics
        NodeMetrics.sessionOpened(transport)
        closeFuture.whenComplete { _ in NodeMetrics.sessionClosed(transport) }
    }

    /// What the UDP endpoint carrying this session has seen so far (nil over TCP). Readable after
    /// the session has closed, as long as its event loop runs.
    public func udpStatistics() async -> UDPStatistics? {
        try? await statisticsOperation?().get()
    }

    /// Sends one message. Returns when the transport has taken it: written to the socket (TCP) or
    /// admitted to the retransmission window (UDP), which is the sender's backpressure.
    public func send(_ message: Message) async throws {
        try await sendOperation(message).get()
    }

    /// Sends without waiting, for pipelining; the future reports the outcome.
    public func sendPipelined(_ message: Message) -> EventLoopFuture<Void> { sendOperation(message) }

    /// Closes the session and waits until it is closed. The peer is sent an error frame with
    /// `error`, or with code `closed` for a normal end.
    public func close(reporting error: SessionError? = nil) async {
        beginClose(reporting: error)
        try? await closeFuture.get()
    }

    /// Exempts this session from eviction when its listener is full (`evictionIdleMinimum`): for
    /// a session that is silent on purpose, such as a block subscriber that only listens. A
    /// service that calls it bounds how many sessions it protects.
    public func protectFromEviction() { protectOperation() }

    /// Starts closing without waiting, for code running on the event loop; see `closeFuture`.
    public func beginClose(reporting error: SessionError? = nil) { closeOperation(error) }
}

/// What one UDP endpoint (one socket, every session on it) did: the faults its test hook
/// injected into outgoing datagrams, and the repairs of reliable delivery. Tests read it to show
/// that the faults they ask for really happened and were repaired.
public struct UDPStatistics: Sendable, Equatable {
    /// Datagrams handed to the socket (or to the fault hook, when one is set).
    public var datagrams = 0
    /// Outgoing datagrams the fault hook dropped, sent twice, or held back behind a later one.
    public var dropped = 0
    public var duplicated = 0
    public var reordered = 0
    /// Frames sent again, because their timer expired or a frame sent after them arrived first.
    public var retransmitted = 0
    /// Frames that arrived again after they had been delivered, or as a replayed packet.
    public var duplicatesReceived = 0

    public init() {}

    /// `datagrams=… dropped=… duplicated=… reordered=… retransmitted=… duplicates_received=…`
    public var summary: String {
        "datagrams=\(datagrams) dropped=\(dropped) duplicated=\(duplicated) reordered=\(reordered) "
            + "retransmitted=\(retransmitted) duplicates_received=\(duplicatesReceived)"
    }
}

extension TransportKind {
    /// Listens on this transport: `TCPTransport.listen` or `UDPTransport.listen`.
    public func listen(
        host: String, port: Int, configuration: SessionConfiguration, group: EventLoopGroup,
        logger: Logger = Logger(label: "rwanet.session")
    ) async throws -> SessionListener {
        switch self {
        case .tcp:
            try await TCPTransport.listen(
                host: host, port: port, configuration: configuration, group: group, logger: logger)
        case .udp:
            try await UDPTransport.listen(
                host: host, port: port, configuration: configuration, group: group, logger: logger)
        }
    }

    /// Dials a peer on this transport: `TCPTransport.dial` or `UDPTransport.dial`.
    public func dial(
        host: String, port: Int, configuration: SessionConfiguration, group: EventLoopGroup,
        logger: Logger = Logger(label: "rwanet.session")
    ) async throws -> PeerSession {
        switch self {
        case .tcp:
            try await TCPTransport.dial(
                host: host, port: port, configuration: configuration, group: group, logger: logger)
        case .udp:
            try await UDPTransport.dial(
                host: host, port: port, configuration: configuration, group: group, logger: logger)
        }
    }
}
