import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RWACrypto
import RWASession
import RWAWire

/// A listening endpoint: authenticated sessions arrive on `sessions` once their handshake is done.
public final class SessionListener: Sendable {
    public let localAddress: SocketAddress
    public let transport: TransportKind
    public let sessions: AsyncStream<PeerSession>
    private let closeOperation: @Sendable () -> EventLoopFuture<Void>
    /// A UDP listener's cookie step (`UDPHelloResponder`), for its counters.
    let helloResponder: UDPHelloResponder?

    init(
        localAddress: SocketAddress, transport: TransportKind, sessions: AsyncStream<PeerSession>,
        helloResponder: UDPHelloResponder? = nil, close: @escaping @Sendable () -> EventLoopFuture<Void>
    ) {
        self.localAddress = localAddress
        self.transport = transport
        self.sessions = sessions
        self.helloResponder = helloResponder
        self.closeOperation = close
    }

    public var port: Int { localAddress.port ?? 0 }

    /// Stops listening and ends every session this listener accepted.
    public func close() async {
        try? await closeOperation().get()
    }
}

/// When a listener's connection last delivered something (uptime nanoseconds): its handler
/// writes it, the listener reads it to pick whom to evict under pressure.
final class ConnectionActivity: Sendable {
    private let box: NIOLockedValueBox<(last: UInt64, delivered: Bool, protected: Bool)>

    init(now: UInt64) { box = NIOLockedValueBox((now, false, false)) }

    /// What the listener weighs when it is full (`SessionConfiguration.evictionChoice`); nil if
    /// the connection is protected.
    func candidate<Key>(_ key: Key) -> EvictionCandidate<Key>? {
        box.withLockedValue {
            $0.protected ? nil : EvictionCandidate(key: key, lastActivity: $0.last, hasDelivered: $0.delivered)
        }
    }

    /// It delivered something at `now`: a handshake step, or an application message.
    func touch(_ now: UInt64, deliveringApplicationMessage: Bool = false) {
        box.withLockedValue {
            $0.last = max($0.last, now)
            $0.delivered = $0.delivered || deliveringApplicationMessage
        }
    }

    func protect() { box.withLockedValue { $0.protected = true } }
}

/// TCP listener and dialer (proto/README.md, "TCP records").
public enum TCPTransport {
    /// One socket read (at most 64 KiB, or `listenerReadBytesMax`) per readiness event: once a
    /// session's inbox is full, at most the records of that one read still reach it, which is
    /// what bounds its memory.
    static let readsPerEvent: UInt = 1
    /// A listener's connections read at most this much at a time (the default grows to 64 KiB).
    /// A flooding peer's read is decrypted and handled before the loop turns to anyone else, so
    /// this bounds how long each flooder delays a legitimate session's every step.
    static let listenerReadBytesMax = 2_048

    public static func listen(
        host: String, port: Int, configuration: SessionConfiguration, group: EventLoopGroup,
        logger: Logger = Logger(label: "rwanet.tcp")
    ) async throws -> SessionListener {
        let (stream, continuation) = AsyncStream.makeStream(of: PeerSession.self)
        // Every admitted connection and when it last delivered something, so the bound can be
        // counted, the idlest evicted under pressure, and closing the listener ends them all.
        let connections = NIOLockedValueBox([ObjectIdentifier: (channel: Channel, activity: ConnectionActivity)]())
        let budget = RecordBudget(limit: configuration.partialRecordBytesBudget)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: true)
            .childChannelOption(.maxMessagesPerRead, value: TCPTransport.readsPerEvent)
            .childChannelOption(
                .recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(
                    minimum: 64, initial: TCPTransport.listenerReadBytesMax,
                    maximum: TCPTransport.listenerReadBytesMax)
            )
            .childChannelInitializer { channel in
                let now = NIODeadline.now().uptimeNanoseconds
                let activity = ConnectionActivity(now: now)
                let (admitted, evicted) = connections.withLockedValue { open -> (Bool, Channel?) in
                    var evicted: Channel?
                    if open.count >= configuration.sessionsMax {
                        // Full: a silent or idle connection makes room, if one has been so long enough.
                        guard
                            let chosen = configuration.evictionChoice(
                                among: open.lazy.compactMap { $0.value.activity.candidate($0.key) }, now: now)
                        else { return (false, nil) }
                        evicted = open.removeValue(forKey: chosen)?.channel
                    }
                    open[ObjectIdentifier(channel)] = (channel, activity)
                    return (true, evicted)
                }
                if let evicted {
                    logger.info("evicting the idlest session to admit a new one", metadata: ["listener": "tcp"])
                    evicted.close(promise: nil)
                }
                guard admitted else {
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            RejectionHandler(
                                report: ErrorReport(
                                    code: .overloaded, text: "listener holds \(configuration.sessionsMax) sessions")))
                    }
                }
                channel.closeFuture.whenComplete { _ in
                    connections.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(channel)) }
                }
                let promise = channel.eventLoop.makePromise(of: PeerSession.self)
                promise.futureResult.whenSuccess { session in
                    // Nobody will ever take a session handed over after the listener closed.
                    if case .terminated = continuation.yield(session) { session.beginClose() }
                }
                return channel.eventLoop.makeCompletedFuture {
                    let allowance = RecordAllowance()
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(TCPRecordDecoder(allowance: allowance, budget: budget)))
                    try channel.pipeline.syncOperations.addHandler(
                        TCPSessionHandler(
                            configuration: configuration, isInitiator: false, ephemeral: .generate(),
                            established: promise, logger: logger, allowance: allowance, activity: activity))
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        channel.closeFuture.whenComplete { _ in
            continuation.finish()
            for connection in connections.withLockedValue({ Array($0.values) }) {
                connection.channel.close(promise: nil)
            }
        }
        return SessionListener(localAddress: channel.localAddress!, transport: .tcp, sessions: stream) {
            channel.close()
        }
    }

    public static func dial(
        host: String, port: Int, configuration: SessionConfiguration, group: EventLoopGroup,
        logger: Logger = Logger(label: "rwanet.tcp")
    ) async throws -> PeerSession {
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: PeerSession.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.maxMessagesPerRead, value: TCPTransport.readsPerEvent)
            .connectTimeout(configuration.handshakeTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let allowance = RecordAllowance()
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(TCPRecordDecoder(allowance: allowance)))
                    try channel.pipeline.syncOperations.addHandler(
                        TCPSessionHandler(
                            configuration: configuration, isInitiator: true, ephemeral: .generate(),
                            established: promise, logger: logger, allowance: allowance))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            promise.fail(error)
            throw error
        }
        _ = channel
        return try await promise.futureResult.get()
    }
}

/// Tells a connection over the session bound why it is refused, then closes it.
final class RejectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let report: ErrorReport

    init(report: ErrorReport) { self.report = report }

    func channelActive(context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: 64)
        out.writeInteger(UInt32(0), endianness: .big)
        Message.error(report).encodeFrame(into: &out)
        out.setInteger(UInt32(out.readableBytes - 4), at: out.readerIndex, endianness: .big)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
