import Logging
import NIOCore
import NIOPosix
import RWACrypto
import RWASession
import RWAWire

/// UDP listener and dialer (proto/README.md, "UDP packets" and "UDP reliability"). One socket
/// serves every peer of a listener; each peer is identified by its address and has its own
/// handshake, keys, replay window, reliable sender and receiver.
public enum UDPTransport {
    /// How often retransmissions, delayed acknowledgements and timeouts are checked.
    static let tickInterval = TimeAmount.milliseconds(5)
    /// Room for a whole window of datagrams in the kernel while the event loop is busy (the
    /// kernel caps it at net.core.rmem_max).
    static let receiveBufferBytes: SocketOptionValue = 2 << 20
    static let datagramsPerRead = 64

    /// Sets "don't fragment" on an IPv4 socket. Every datagram of ours fits 1 200 bytes, so none
    /// needs fragmenting, and with DF set the kernel gives each packet a zero IP id instead of
    /// hashing one from a shared table: a listener answering a `hello` flood with cookies spent
    /// about 7% of its loop choosing ids (perf, on loopback).
    static func setDontFragment(_ channel: Channel) async throws {
        guard channel.localAddress?.protocol == .inet else { return }
        try await channel.setOption(
            ChannelOptions.Types.SocketOption(level: .ip, name: .init(rawValue: IP_MTU_DISCOVER)),
            value: Int(IP_PMTUDISC_DO)
        ).get()
    }

    public static func listen(
        host: String, port: Int, configuration: SessionConfiguration, group: EventLoopGroup,
        logger: Logger = Logger(label: "rwanet.udp")
    ) async throws -> SessionListener {
        let (stream, continuation) = AsyncStream.makeStream(of: PeerSession.self)
        // The cookie step's socket binds the port first; the channel joins it (SO_REUSEPORT).
        let requested = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let cookies = HelloCookies()
        let helloResponder = try UDPHelloResponder(binding: requested, cookies: cookies)
        let bootstrap = DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(ChannelOptions.socketOption(.init(rawValue: SO_REUSEPORT)), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: UDPTransport.receiveBufferBytes)
            // Many datagrams per system call: a listener under a flood must drain its socket
            // faster than an attacker fills it, or legitimate packets are lost in the kernel.
            .channelOption(.datagramVectorReadMessageCount, value: UDPTransport.datagramsPerRead)
            // The receive buffer is split evenly between the datagrams of one read: 2 KiB each, so
            // none is cut (a datagram above 1 200 bytes is refused whole).
            .channelOption(
                .recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: UDPTransport.datagramsPerRead * 2_048)
            )
            .channelOption(.maxMessagesPerRead, value: 4)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        UDPEndpointHandler(
                            configuration: configuration, acceptsPeers: true, logger: logger, cookies: cookies,
                            helloResponder: helloResponder, accepted: { continuation.yield($0) }))
                }
            }
        let channel: Channel
        do {
            var shared = requested
            shared.port = helloResponder.port
            channel = try await bootstrap.bind(to: shared).get()
        } catch {
            helloResponder.stop()
            throw error
        }
        do {
            try await setDontFragment(channel)
            try helloResponder.steerHellosHere()
        } catch {
            try? await channel.close()
            throw error
        }
        channel.closeFuture.whenComplete { _ in continuation.finish() }
        return SessionListener(
            localAddress: channel.localAddress!, transport: .udp, sessions: stream, helloResponder: helloResponder
        ) {
            channel.close()
        }
    }

    public static func dial(
        host: String, port: Int, configuration: SessionConfiguration, group: EventLoopGroup,
        logger: Logger = Logger(label: "rwanet.udp")
    ) async throws -> PeerSession {
        let remote = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let isLoopback = host == "localhost" || host.hasPrefix("127.") || host == "::1"
        let bindHost = remote.protocol == .inet6 ? (isLoopback ? "::1" : "::") : (isLoopback ? "127.0.0.1" : "0.0.0.0")
        let channel = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_rcvbuf), value: UDPTransport.receiveBufferBytes)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        UDPEndpointHandler(
                            configuration: configuration, acceptsPeers: false, logger: logger, accepted: { _ in }))
                }
            }
            .bind(host: bindHost, port: 0).get()
        do {
            try await setDontFragment(channel)
        } catch {
            try? await channel.close()
            throw error
        }
        let promise = channel.eventLoop.makePromise(of: PeerSession.self)
        channel.eventLoop.execute {
            do {
                try channel.pipeline.syncOperations.handler(type: UDPEndpointHandler.self).dial(
                    remote, established: promise)
            } catch {
                promise.fail(error)
            }
        }
        do {
            let session = try await promise.futureResult.get()
            session.closeFuture.whenComplete { _ in channel.close(promise: nil) }
            return session
        } catch {
            try? await channel.close()
            throw error
        }
    }
}

/// One remote peer of a UDP endpoint; confined to the endpoint's event loop.
final class UDPPeer {
    enum Phase {
        case handshaking(HandshakeStateMachine)
        case established(EstablishedSession)
        case closed
    }

    let address: SocketAddress
    let isInitiator: Bool
    var phase: Phase
    var sendPacketNumber: UInt64 = 0
    var replay = ReplayWindow()
    var sender: ReliableSender
    var receiver: ReliableReceiver
    var sendPromises: [EventLoopPromise<Void>?] = []
    var inbox: Inbox?
    /// The established session's rules (ping, keepalive, idle, close), once the handshake is done.
    var core: SessionCore?
    /// When the handshake times out and its last frame is due again.
    var handshake: HandshakeRepetition
    /// The last handshake frame we sent, repeated until the peer's next step shows it arrived.
    var handshakeFrameToRepeat: Message?
    /// The `hello` a responder answered, to recognise its retransmissions.
    var helloFrame: [UInt8] = []
    /// When it last delivered something (a handshake step, an application frame): the idlest
    /// is evicted to admit a newcomer when the endpoint is full.
    var lastActivity: UInt64
    /// Whether it ever delivered an application message (silent ones are evicted sooner).
    var hasDelivered = false
    /// Initiator: the cookie a loaded responder gave; every later `hello` carries it.
    var cookie: [UInt8]?
    /// Responder: counted among the handshakes in progress that trigger cookies.
    var countedAsHandshake = false
    /// Never evicted (`PeerSession.protectFromEviction`).
    var isProtected = false
    /// The dialer's promise, dropped once completed so the peer does not keep its session alive.
    var established: EventLoopPromise<PeerSession>?
    let closed: EventLoopPromise<Void>
    /// Set once the session is closing: its error frame is queued behind everything sent before,
    /// and the session ends when all of it is acknowledged or at the deadline.
    var closing: (error: SessionError, deadline: NIODeadline)?

    init(
        address: SocketAddress, machine: HandshakeStateMachine, isInitiator: Bool, configuration: SessionConfiguration,
        established: EventLoopPromise<PeerSession>?, closed: EventLoopPromise<Void>, now: NIODeadline
    ) {
        self.address = address
        self.isInitiator = isInitiator
        self.phase = .handshaking(machine)
        self.sender = ReliableSender(configuration: configuration.reliability)
        self.receiver = ReliableReceiver(windowFrames: configuration.reliability.windowFrames)
        self.handshake = HandshakeRepetition(
            startedAt: now.uptimeNanoseconds, timeoutNanoseconds: UInt64(configuration.handshakeTimeout.nanoseconds),
            initialNanoseconds: configuration.reliability.initialRetransmitNanoseconds)
        self.established = established
        self.closed = closed
        self.lastActivity = now.uptimeNanoseconds
    }
}

/// Stateless cookies for `hello`s under load (proto/README.md, "UDP cookies"): a keyed hash of
/// the source address and the current 30-second period, under a secret drawn at start. One from
/// the current or the previous period is accepted.
struct HelloCookies {
    static let periodNanoseconds: UInt64 = 30_000_000_000
    private let secret: [UInt8] = (0..<32).map { _ in UInt8.random(in: 0...255) }

    func cookie(for address: SocketAddress, now: UInt64) -> [UInt8] {
        cookie(for: address, period: now / Self.periodNanoseconds)
    }

    func isValid(_ cookie: [UInt8], for address: SocketAddress, now: UInt64) -> Bool {
        let period = now / Self.periodNanoseconds
        return cookie == self.cookie(for: address, period: period)
            || (period > 0 && cookie == self.cookie(for: address, period: period - 1))
    }

    /// Whether a handshake packet's frame (what follows its kind byte) gets a cookie under load
    /// without being decoded: a `hello` by its type, in a datagram at least as long as the cookie
    /// packet (never an amplified answer) and no longer than an endpoint reads. The endpoint and
    /// its cookie step both decide by this.
    static func earnsCookie(frame: UnsafeRawBufferPointer) -> Bool {
        let datagramBytes = 1 + frame.count
        return datagramBytes >= 1 + WireLimits.udpCookieBytes && datagramBytes <= WireLimits.udpDatagramBytesMax
            && UInt16(frame[0]) << 8 | UInt16(frame[1]) == MessageType.hello.rawValue
    }

    /// The cookie for raw source bytes (`source(address:port:)`), as the hello responder's
    /// thread computes it without a `SocketAddress`.
    func cookie(source: [UInt8], now: UInt64) -> [UInt8] {
        cookie(source: source, period: now / Self.periodNanoseconds)
    }

    /// The bytes a cookie is bound to: the address's own bytes, then the port, in network order
    /// (formatting the address as text cost as much as the hash under a flood).
    static func source<Address>(address: Address, port: in_port_t) -> [UInt8] {
        withUnsafeBytes(of: address) { Array($0) } + withUnsafeBytes(of: port) { Array($0) }
    }

    private func cookie(for address: SocketAddress, period: UInt64) -> [UInt8] {
        switch address {
        case .v4(let v4):
            return cookie(source: Self.source(address: v4.address.sin_addr, port: v4.address.sin_port), period: period)
        case .v6(let v6):
            return cookie(
                source: Self.source(address: v6.address.sin6_addr, port: v6.address.sin6_port), period: period)
        case .unixDomainSocket:
            return cookie(source: Array("\(address)".utf8), period: period)
        }
    }

    private func cookie(source: [UInt8], period: UInt64) -> [UInt8] {
        let digest = Blake2b.hash256(parts: [source, withUnsafeBytes(of: period.bigEndian, Array.init)], key: secret)
        return Array(digest.bytes.prefix(WireLimits.udpCookieBytes))
    }
}

/// Counters of datagrams the endpoint refused without closing anything (UDP is spoofable, so a
/// forged or replayed datagram must not be able to end a session).
public struct UDPDropCounters: Sendable, Equatable {
    public var replayed = 0
    public var unauthenticated = 0
    public var inboxFull = 0
    public var unknownPeer = 0
    /// `hello`s with a cookie this endpoint did not give to that address (or gave too long ago).
    public var badCookie = 0
}

final class UDPEndpointHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let configuration: SessionConfiguration
    private let acceptsPeers: Bool
    private let logger: Logger
    private let accepted: (PeerSession) -> Void
    private var peers: [SocketAddress: UDPPeer] = [:]
    /// Responder handshakes in progress (peers with `countedAsHandshake`).
    private var responderHandshakes = 0 {
        didSet { helloResponder?.load.isLoaded = isLoaded }
    }
    private let cookies: HelloCookies
    /// A listener's cookie step on its own socket and thread (`UDPHelloResponder`).
    private let helloResponder: UDPHelloResponder?
    private var faults: FaultInjection?
    private var context: ChannelHandlerContext?
    private var ticker: RepeatedTask?
    private(set) var drops = UDPDropCounters()
    private var statistics = UDPStatistics()
    /// The event loop's clock: real time on a real loop, virtual time on `EmbeddedEventLoop`.
    private var now: NIODeadline { context?.eventLoop.now ?? .now() }

    init(
        configuration: SessionConfiguration, acceptsPeers: Bool, logger: Logger,
        cookies: HelloCookies = HelloCookies(), helloResponder: UDPHelloResponder? = nil,
        accepted: @escaping (PeerSession) -> Void
    ) {
        self.configuration = configuration
        self.acceptsPeers = acceptsPeers
        self.logger = logger
        self.cookies = cookies
        self.helloResponder = helloResponder
        self.accepted = accepted
        self.faults = configuration.udpFaults.map(FaultInjection.init)
        helloResponder?.load.isLoaded = isLoaded
    }

    /// Under load, a `hello` from a new address must prove it: a cookie, and no state.
    private var isLoaded: Bool { responderHandshakes >= configuration.handshakesBeforeCookie }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ticker = context.eventLoop.scheduleRepeatedTask(
            initialDelay: UDPTransport.tickInterval, delay: UDPTransport.tickInterval
        ) { _ in
            loopBound.value.tick()
        }
        let eventLoop = context.eventLoop
        helloResponder?.start { datagram, address in
            eventLoop.execute {
                let handler = loopBound.value
                guard let context = handler.context else { return }  // removed meanwhile
                handler.receive(datagram, from: address)
                context.flush()
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ticker?.cancel()
        helloResponder?.stop()
        for peer in Array(peers.values) { fail(peer, SessionError(.closed, "endpoint closed"), notify: false) }
        self.context = nil
    }

    func dial(_ remote: SocketAddress, established: EventLoopPromise<PeerSession>) {
        guard let context else { return established.fail(SessionError(.closed, "endpoint closed")) }
        var machine = HandshakeStateMachine(initiator: configuration.handshake, ephemeral: .generate())
        let hello = machine.start()
        let peer = UDPPeer(
            address: remote, machine: machine, isInitiator: true, configuration: configuration,
            established: established, closed: context.eventLoop.makePromise(), now: now)
        peers[remote] = peer
        peer.handshakeFrameToRepeat = hello
        sendHandshake(hello, to: remote)
        context.flush()
    }

    // MARK: Receiving

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        receive(envelope.data, from: envelope.remoteAddress)
    }

    /// One datagram, read by the channel or handed over by the hello responder.
    private func receive(_ datagram: ByteBuffer, from address: SocketAddress) {
        var datagram = datagram
        guard datagram.readableBytes <= WireLimits.udpDatagramBytesMax else {
            return reject(
                address,
                SessionError(
                    .frameTooLarge,
                    "datagram of \(datagram.readableBytes) bytes is above \(WireLimits.udpDatagramBytesMax)"),
                replyBytesMax: datagram.readableBytes)
        }
        guard let kindByte: UInt8 = datagram.readInteger() else { return }  // empty: nothing to answer
        let received = datagram.readableBytes + 1
        switch UDPPacketKind(rawValue: kindByte) {
        case .handshake:
            receiveHandshake(datagram, from: address, receivedBytes: received)
        case .cookie:
            receiveCookie(datagram, from: address)
        case .cookieHandshake:
            guard let cookie = datagram.readBytes(length: WireLimits.udpCookieBytes) else {
                drops.badCookie += 1
                return
            }
            // A wrong or stale cookie (perhaps planted by a spoofer) costs the initiator one more
            // round trip, never its handshake: under load it gets a fresh cookie, otherwise its
            // hello is taken as a plain one.
            let valid = cookies.isValid(cookie, for: address, now: now.uptimeNanoseconds)
            if !valid {
                drops.badCookie += 1
                if peers[address] == nil && isLoaded {
                    return sendCookie(to: address)
                }
            }
            receiveHandshake(datagram, from: address, receivedBytes: received, cookieChecked: valid)
        case .data, .ack:
            guard let peer = peers[address] else {
                drops.unknownPeer += 1
                return
            }
            receiveSealed(kind: UDPPacketKind(rawValue: kindByte)!, datagram, peer: peer)
        case nil:
            reject(
                address, SessionError(.malformedFrame, "unknown UDP packet kind 0x\(String(kindByte, radix: 16))"),
                replyBytesMax: received)
        }
    }

    /// Answers go out once per read of the socket (up to `datagramsPerRead` datagrams), in one
    /// batch, not one system call per datagram.
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    /// Answers garbage with an error frame and forgets the sender, unless it is an established
    /// peer: those are only closed by authenticated packets. Since a UDP source address can be
    /// forged, the answer to an address without a session is never larger than what provoked it
    /// (its reason is cut to fit, and a datagram too short for a bare error gets no answer), so
    /// the endpoint cannot be used to amplify traffic towards a victim.
    private func reject(_ address: SocketAddress, _ error: SessionError, replyBytesMax: Int) {
        if let peer = peers[address] {
            if case .established = peer.phase {
                drops.unauthenticated += 1
                return
            }
            fail(peer, error)
        } else {
            let bareErrorBytes = 1 + 2 + 2 + 2  // kind, type, code, empty text
            guard replyBytesMax >= bareErrorBytes else { return }
            let text = String(decoding: Array(error.reason.utf8.prefix(replyBytesMax - bareErrorBytes)), as: UTF8.self)
            var report = ErrorReport(code: error.code, text: text)
            while 1 + Message.error(report).frameBytes().count > replyBytesMax { report.text.removeLast() }  // a cut character may grow in repair
            sendHandshake(.error(report), to: address)
        }
    }

    /// A loaded responder's cookie for our `hello`: send the `hello` again with it.
    private func receiveCookie(_ datagram: ByteBuffer, from address: SocketAddress) {
        guard let peer = peers[address], peer.isInitiator, case .handshaking = peer.phase,
            datagram.readableBytes == WireLimits.udpCookieBytes, let hello = peer.handshakeFrameToRepeat,
            case .hello = hello
        else { return }
        peer.cookie = datagram.getBytes(at: datagram.readerIndex, length: WireLimits.udpCookieBytes)
        sendHandshake(hello, to: address, cookie: peer.cookie)
    }

    /// Makes room for one more peer when the endpoint is full: the idlest goes, if it has been
    /// idle long enough. False if none may go.
    private func admitOneMore() -> Bool {
        guard peers.count >= configuration.sessionsMax else { return true }
        let now = self.now.uptimeNanoseconds
        let candidates = peers.values.lazy.filter { !$0.isProtected }.map {
            EvictionCandidate(key: $0, lastActivity: $0.lastActivity, hasDelivered: $0.hasDelivered)
        }
        guard let idlest = configuration.evictionChoice(among: candidates, now: now) else { return false }
        logger.info("evicting the idlest session to admit a new one", metadata: ["remote": "\(idlest.address)"])
        fail(idlest, SessionError(.overloaded, "evicted: idle while the endpoint is full"))
        if peers[idlest.address] === idlest { finish(idlest, SessionError(.overloaded, "evicted")) }
        return true
    }

    private func receiveHandshake(
        _ frame: ByteBuffer, from address: SocketAddress, receivedBytes: Int, cookieChecked: Bool = false
    ) {
        // Under load, a new address's `hello` gets a cookie and no state: its type is all that
        // decides that, so the frame is not decoded (a flood of them is what load means here).
        if !cookieChecked && acceptsPeers && isLoaded && peers[address] == nil
            && frame.withUnsafeReadableBytes(HelloCookies.earnsCookie(frame:))
        {
            return sendCookie(to: address)
        }
        let message: Message
        do {
            message = try Message.decode(frame: frame)
        } catch {
            return reject(address, SessionError(error), replyBytesMax: receivedBytes)
        }
        guard let peer = peers[address] else {
            guard case .hello = message, acceptsPeers else {
                if case .error = message { return }  // never answer an error with an error
                return reject(
                    address, SessionError(.unexpectedMessage, "\(message.type) without a session"),
                    replyBytesMax: receivedBytes)
            }
            // Under load, a hello must prove its source address: a cookie, and no state, until then.
            if !cookieChecked && isLoaded {
                return sendCookie(to: address)
            }
            guard admitOneMore() else {
                return sendHandshake(
                    .error(
                        ErrorReport(code: .overloaded, text: "endpoint holds \(configuration.sessionsMax) sessions")),
                    to: address)
            }
            let machine = HandshakeStateMachine(responder: configuration.handshake, ephemeral: .generate())
            let peer = UDPPeer(
                address: address, machine: machine, isInitiator: false, configuration: configuration,
                established: nil, closed: context!.eventLoop.makePromise(), now: now)
            peer.helloFrame = message.frameBytes()
            peer.countedAsHandshake = true
            responderHandshakes += 1
            peers[address] = peer
            return advanceHandshake(peer, message)
        }
        switch peer.phase {
        case .handshaking:
            if case .hello = message, !peer.isInitiator {
                // A retransmitted hello: our reply was lost.
                if message.frameBytes() == peer.helloFrame, let reply = peer.handshakeFrameToRepeat {
                    sendHandshake(reply, to: address)
                }
                return
            }
            advanceHandshake(peer, message)
        case .established:
            // A repeated hello_reply means our hello_finish was lost; answer it again. Anything
            // else in plaintext is unauthenticated and cannot touch an established session.
            if case .helloReply = message, peer.isInitiator, let finish = peer.handshakeFrameToRepeat {
                sendHandshake(finish, to: address)
            } else if case .helloFinish = message, !peer.isInitiator {
                sendAck(peer)
            }
        case .closed:
            return
        }
    }

    private func advanceHandshake(_ peer: UDPPeer, _ message: Message) {
        guard case .handshaking(var machine) = peer.phase else { return }
        do {
            let output = try machine.receive(message)
            peer.phase = .handshaking(machine)
            peer.lastActivity = now.uptimeNanoseconds
            switch output {
            case .send(let reply):
                peer.handshakeFrameToRepeat = reply
                peer.handshake.sentNewFrame(now: now.uptimeNanoseconds)
                sendHandshake(reply, to: peer.address)
            case .sendAndEstablish(let finish, let session):
                peer.handshakeFrameToRepeat = finish
                peer.handshake.sentNewFrame(now: now.uptimeNanoseconds)
                sendHandshake(finish, to: peer.address)
                establish(peer, session)
            case .establish(let session):
                peer.handshakeFrameToRepeat = nil
                establish(peer, session)
                sendAck(peer)  // confirms hello_finish arrived, so the initiator stops repeating it
            }
        } catch {
            fail(peer, error)
        }
    }

    private func establish(_ peer: UDPPeer, _ session: EstablishedSession) {
        peer.phase = .established(session)
        if peer.countedAsHandshake {
            peer.countedAsHandshake = false
            responderHandshakes -= 1
        }
        peer.core = SessionCore(
            timing: SessionCore.Timing(
                keepaliveNanoseconds: UInt64(configuration.keepaliveInterval.nanoseconds),
                idleTimeoutNanoseconds: UInt64(configuration.idleTimeout.nanoseconds)),
            now: now.uptimeNanoseconds)
        configuration.keyLog?.record(session)
        let loopBound = NIOLoopBound((self, peer), eventLoop: context!.eventLoop)
        let inbox = Inbox(capacity: configuration.inboxCapacity) {}  // a full UDP inbox just stops acknowledging
        peer.inbox = inbox
        let session = PeerSession(
            peerIdentity: session.peerIdentity, peerFeatures: session.peerFeatures, transport: .udp,
            remoteAddress: peer.address,
            inbox: inbox, eventLoop: loopBound.eventLoop, closeFuture: peer.closed.futureResult,
            send: { message in
                let promise = loopBound.eventLoop.makePromise(of: Void.self)
                if loopBound.eventLoop.inEventLoop {
                    let (handler, peer) = loopBound.value
                    handler.send(message, peer: peer, promise: promise)
                } else {
                    loopBound.eventLoop.execute {
                        let (handler, peer) = loopBound.value
                        handler.send(message, peer: peer, promise: promise)
                    }
                }
                return promise.futureResult
            },
            close: { error in
                // On the event loop (a consumer refusing a message), close at once, so nothing that
                // arrived after the refused message is handed over.
                let closeNow: @Sendable () -> Void = {
                    let (handler, peer) = loopBound.value
                    // A second request to close keeps the first one's wait for acknowledgements.
                    guard peer.closing == nil else { return }
                    handler.fail(peer, error ?? SessionError(.closed, "session closed by the peer"))
                }
                if loopBound.eventLoop.inEventLoop { closeNow() } else { loopBound.eventLoop.execute(closeNow) }
            },
            statistics: {
                loopBound.eventLoop.submit {
                    let (handler, _) = loopBound.value
                    var statistics = handler.statistics
                    if let faults = handler.faults {
                        (statistics.dropped, statistics.duplicated, statistics.reordered) = (
                            faults.dropped, faults.duplicated, faults.reordered
                        )
                    }
                    return statistics
                }
            },
            protect: {
                loopBound.eventLoop.execute { loopBound.value.1.isProtected = true }
            })
        if let established = peer.established {
            established.succeed(session)
            peer.established = nil
        } else {
            accepted(session)
        }
    }

    private func receiveSealed(kind: UDPPacketKind, _ datagram: ByteBuffer, peer: UDPPeer) {
        guard case .established(let session) = peer.phase else {
            drops.unknownPeer += 1  // data before hello_finish arrived: the sender will retransmit
            return
        }
        var datagram = datagram
        guard let packetNumber: UInt64 = datagram.readInteger(), datagram.readableBytes >= WireLimits.aeadTagBytes
        else {
            drops.unauthenticated += 1
            return
        }
        switch peer.replay.check(packetNumber) {
        case .fresh: break
        case .duplicate, .tooOld:
            drops.replayed += 1
            statistics.duplicatesReceived += 1
            return
        }
        let header = UDPSealedContent.header(kind: kind, packetNumber: packetNumber)
        var plaintext = ByteBufferAllocator().buffer(capacity: datagram.readableBytes)
        let plaintextBytes = datagram.readableBytes - WireLimits.aeadTagBytes
        var opened = false
        plaintext.writeWithUnsafeMutableBytes(minimumWritableBytes: max(plaintextBytes, 1)) { out in
            opened = datagram.withUnsafeReadableBytes { ciphertext in
                header.withUnsafeBytes { ad in
                    (try? session.receiveKey.open(
                        ciphertext: ciphertext, associatedData: ad, counter: packetNumber, into: out)) != nil
                }
            }
            return opened ? plaintextBytes : 0
        }
        guard opened else {
            drops.unauthenticated += 1
            return
        }
        peer.replay.record(packetNumber)
        peer.core?.heard(now: now.uptimeNanoseconds)
        peer.handshakeFrameToRepeat = nil  // an authenticated packet proves the handshake completed
        do {
            let content: UDPSealedContent
            do { content = try UDPSealedContent.decode(kind: kind, plaintext: plaintext) } catch {
                throw SessionError(error)
            }
            try peer.sender.receive(content.acknowledgement, now: now.uptimeNanoseconds)
            if let (sequence, frame) = content.sequencedFrame {
                guard let inbox = peer.inbox, inbox.hasRoom else {
                    drops.inboxFull += 1  // not acknowledged: the peer retransmits once we have room
                    return
                }
                let outcome = peer.receiver.receive(sequence: sequence, frame: frame)
                if peer.receiver.acknowledgeAtOnce(after: outcome) { sendAck(peer) }
                switch outcome {
                case .deliver(let frames):
                    for frame in frames {
                        let message: Message
                        do { message = try Message.decode(frame: frame) } catch { throw SessionError(error) }
                        guard var core = peer.core, core.isOpen else { break }  // nothing after a close
                        NodeMetrics.received(message)
                        let actions = core.receive(message, now: now.uptimeNanoseconds)
                        peer.core = core
                        perform(actions, peer: peer)
                    }
                case .duplicate:
                    statistics.duplicatesReceived += 1
                case .beyondWindow:
                    break
                }
                if peer.receiver.acknowledgementDue { sendAck(peer) }
            }
            try flush(peer)
            finishClosingIfDone(peer)
        } catch let error as SessionError {
            if error.fromPeer { sendAck(peer) }  // lets a closing peer stop waiting for us
            fail(peer, error)
        } catch {
            fail(peer, SessionError(.malformedFrame, "\(error)"))
        }
    }

    /// Carries out what the session core decided, in order. Its close report (an error frame) is
    /// queued behind everything sent before, and the session lingers until the peer has
    /// acknowledged all of it, or a deadline passes, so a close loses nothing already sent.
    private func perform(_ actions: [SessionCore.Action], peer: UDPPeer) {
        var reported = false
        for action in actions {
            switch action {
            case .send(.error(let report)):
                var frame = ByteBuffer()
                Message.error(report).encodeFrame(into: &frame)
                NodeMetrics.sent(.error(report))
                peer.sender.enqueue(frame)
                peer.sendPromises.append(nil)
                reported = true
            case .send(let message):
                send(message, peer: peer, promise: nil)
            case .deliver(let message):
                peer.lastActivity = now.uptimeNanoseconds
                peer.hasDelivered = true
                peer.inbox?.push(message)
            case .warn(let report):
                logger.warning("peer warning", metadata: ["code": "\(report.code)", "text": "\(report.text)"])
            case .close(let error):
                if error.fromPeer { sendAck(peer) }  // lets a closing peer stop waiting for us
                guard reported else {
                    finish(peer, error)
                    continue
                }
                peer.closing = (
                    error, .uptimeNanoseconds(SessionCore.lingerDeadline(for: error, now: now.uptimeNanoseconds))
                )
                peer.inbox?.finish(error)
                do {
                    try flush(peer)
                    context?.flush()
                } catch {
                    finish(peer, error)  // the peer is unreachable: end now
                }
            }
        }
    }

    // MARK: Sending

    private func send(_ message: Message, peer: UDPPeer, promise: EventLoopPromise<Void>?) {
        guard case .established = peer.phase, peer.closing == nil else {
            promise?.fail(SessionError(.closed, "session is not open"))
            return
        }
        var frame = ByteBuffer()
        message.encodeFrame(into: &frame)
        guard frame.readableBytes <= WireLimits.udpFrameBytesMax else {
            promise?.fail(
                SessionError(
                    .frameTooLarge,
                    "frame of \(frame.readableBytes) bytes is above the UDP limit \(WireLimits.udpFrameBytesMax)"))
            return
        }
        guard peer.sender.pendingCount < configuration.reliability.pendingFramesMax else {
            promise?.fail(
                SessionError(
                    .overloaded, "\(configuration.reliability.pendingFramesMax) frames already wait for the window"))
            return
        }
        NodeMetrics.sent(message)
        peer.sender.enqueue(frame)
        peer.sendPromises.append(promise)
        do {
            try flush(peer)
            context?.flush()
        } catch {
            fail(peer, error)
        }
    }

    /// Sends what the reliable sender has due now and completes the promises of frames admitted.
    private func flush(_ peer: UDPPeer) throws(SessionError) {
        let transmissions = try peer.sender.poll(now: now.uptimeNanoseconds)
        for transmission in transmissions {
            sendSealed(
                UDPSealedContent(
                    acknowledgement: peer.receiver.acknowledgement,
                    sequencedFrame: (transmission.sequence, transmission.frame)), peer: peer)
            if transmission.isRetransmission { statistics.retransmitted += 1 }
            if !transmission.isRetransmission, !peer.sendPromises.isEmpty {
                peer.sendPromises.removeFirst()?.succeed()
            }
        }
    }

    private func sendAck(_ peer: UDPPeer) {
        guard case .established = peer.phase else { return }
        sendSealed(UDPSealedContent(acknowledgement: peer.receiver.acknowledgement, sequencedFrame: nil), peer: peer)
    }

    private func sendSealed(_ content: UDPSealedContent, peer: UDPPeer) {
        guard let context, case .established(let session) = peer.phase else { return }
        let packetNumber = peer.sendPacketNumber
        peer.sendPacketNumber += 1
        peer.receiver.acknowledgementSent()
        peer.core?.sent(now: now.uptimeNanoseconds)
        var plaintext = ByteBuffer()
        content.encode(into: &plaintext)
        let header = UDPSealedContent.header(kind: content.kind, packetNumber: packetNumber)
        var datagram = context.channel.allocator.buffer(
            capacity: header.count + plaintext.readableBytes + WireLimits.aeadTagBytes)
        datagram.writeBytes(header)
        let sealedBytes = plaintext.readableBytes + WireLimits.aeadTagBytes
        datagram.writeWithUnsafeMutableBytes(minimumWritableBytes: sealedBytes) { out in
            plaintext.withUnsafeReadableBytes { p in
                header.withUnsafeBytes { ad in
                    session.sendKey.seal(plaintext: p, associatedData: ad, counter: packetNumber, into: out)
                }
            }
            return sealedBytes
        }
        write(AddressedEnvelope(remoteAddress: peer.address, data: datagram))
    }

    private func sendHandshake(_ message: Message, to address: SocketAddress, cookie: [UInt8]? = nil) {
        guard let context else { return }
        var datagram = context.channel.allocator.buffer(capacity: 256)
        if let cookie, case .hello = message {
            datagram.writeInteger(UDPPacketKind.cookieHandshake.rawValue)
            datagram.writeBytes(cookie)
        } else {
            datagram.writeInteger(UDPPacketKind.handshake.rawValue)
        }
        message.encodeFrame(into: &datagram)
        write(AddressedEnvelope(remoteAddress: address, data: datagram))
    }

    /// `04 | cookie`: 17 bytes, smaller than any `hello`, and no state kept.
    private func sendCookie(to address: SocketAddress) {
        guard let context else { return }
        var datagram = context.channel.allocator.buffer(capacity: 1 + WireLimits.udpCookieBytes)
        datagram.writeInteger(UDPPacketKind.cookie.rawValue)
        datagram.writeBytes(cookies.cookie(for: address, now: now.uptimeNanoseconds))
        write(AddressedEnvelope(remoteAddress: address, data: datagram))
    }

    private func write(_ envelope: AddressedEnvelope<ByteBuffer>) {
        guard let context else { return }
        statistics.datagrams += 1
        if faults != nil {
            for disturbed in faults!.apply(envelope) { context.write(wrapOutboundOut(disturbed), promise: nil) }
        } else {
            context.write(wrapOutboundOut(envelope), promise: nil)
        }
    }

    // MARK: Time and failure

    private func tick() {
        guard let context else { return }
        let now = self.now
        for peer in Array(peers.values) {
            switch peer.phase {
            case .handshaking:
                if peer.handshake.timedOut(now: now.uptimeNanoseconds) {
                    fail(peer, SessionError(.handshakeTimeout, "no handshake within \(configuration.handshakeTimeout)"))
                } else if peer.isInitiator {
                    repeatHandshakeFrameIfDue(peer, now: now)
                }
            case .established:
                repeatHandshakeFrameIfDue(peer, now: now)
                if var core = peer.core {
                    let actions = core.tick(now: now.uptimeNanoseconds)
                    peer.core = core
                    perform(actions, peer: peer)
                    guard case .established = peer.phase else { continue }
                }
                do {
                    try flush(peer)
                } catch {
                    fail(peer, error)
                    continue
                }
                if peer.receiver.acknowledgementsOwed > 0 { sendAck(peer) }
                finishClosingIfDone(peer)
            case .closed:
                continue
            }
        }
        context.flush()
    }

    private func repeatHandshakeFrameIfDue(_ peer: UDPPeer, now: NIODeadline) {
        guard let frame = peer.handshakeFrameToRepeat, peer.handshake.repeatDue(now: now.uptimeNanoseconds) else {
            return
        }
        sendHandshake(frame, to: peer.address, cookie: peer.cookie)
    }

    /// Ends a session. An error we detected (or a normal local close, code `closed`) is first
    /// reported to the peer, as the session core decides; a session already closing (or one
    /// failing again while it lingers) ends at once.
    private func fail(_ peer: UDPPeer, _ error: SessionError, notify: Bool = true) {
        switch peer.phase {
        case .closed:
            return
        case .handshaking:
            if notify && !error.fromPeer {
                sendHandshake(.error(ErrorReport(code: error.code, text: error.reason)), to: peer.address)
            }
            finish(peer, error)
        case .established:
            guard var core = peer.core, core.isOpen else { return finish(peer, error) }
            let actions = core.close(error, notifyingPeer: notify)
            peer.core = core
            perform(actions, peer: peer)
        }
    }

    private func finishClosingIfDone(_ peer: UDPPeer) {
        guard let closing = peer.closing, case .established = peer.phase else { return }
        if peer.sender.isIdle || now >= closing.deadline { finish(peer, closing.error) }
    }

    private func finish(_ peer: UDPPeer, _ error: SessionError) {
        logger.log(
            level: error.fromPeer || error.code == .closed ? .debug : .info, "closing UDP session",
            metadata: ["error": "\(error)", "remote": "\(peer.address)", "drops": "\(drops)"])
        peer.phase = .closed
        if peer.countedAsHandshake {
            peer.countedAsHandshake = false
            responderHandshakes -= 1
        }
        if peers[peer.address] === peer { peers[peer.address] = nil }
        peer.inbox?.finish(error)
        peer.inbox = nil
        if peer.established != nil { NodeMetrics.handshakeFailed(.udp) }
        peer.established?.fail(error)
        peer.established = nil
        for promise in peer.sendPromises { promise?.fail(error) }
        peer.sendPromises.removeAll()
        // Drop the frames still held for this peer: the session value may outlive it.
        peer.sender = ReliableSender(configuration: configuration.reliability)
        peer.receiver = ReliableReceiver(windowFrames: configuration.reliability.windowFrames)
        context?.flush()  // before `closed`: a dialer closes its socket when that completes
        peer.closed.succeed()
    }
}
