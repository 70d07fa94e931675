import Logging
import NIOConcurrencyHelpers
import NIOCore
import RWACrypto
import RWASession
import RWAWire

/// Splits the byte stream into record payloads (proto/README.md, "TCP records"). The length is
/// checked against the limit before the payload is buffered, so a hostile length costs nothing:
/// until the handshake completes the limit is the largest handshake frame, after it the largest
/// record. A listener's connections also share one budget for the bytes of records not yet
/// complete.
struct TCPRecordDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    let allowance: RecordAllowance
    let budget: RecordBudget?
    /// What this connection holds against `budget` now.
    private var held = 0
    /// A partial record this small is never the reason to close a connection.
    static let smallRecordBytes = 4_096

    init(allowance: RecordAllowance, budget: RecordBudget? = nil) {
        self.allowance = allowance
        self.budget = budget
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let payload = try TCPRecord.readPayload(&buffer, maximum: allowance.recordBytesMax) else {
            try account(buffer.readableBytes)
            return .needMoreData
        }
        try account(buffer.readableBytes)
        context.fireChannelRead(Self.wrapInboundOut(payload))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }

    mutating func decoderRemoved(context: ChannelHandlerContext) {
        budget?.release(held)
        held = 0
    }

    private mutating func account(_ bytes: Int) throws {
        guard let budget, bytes != held else { return }
        let total = budget.adjust(by: bytes - held)
        held = bytes
        if total > budget.limit && held > Self.smallRecordBytes {
            throw SessionError(
                .overloaded, "\(held) bytes of an unfinished record while the listener holds \(total) in all")
        }
    }
}

/// The record limit of one connection: small until its handshake completes. Confined to the
/// connection's event loop.
final class RecordAllowance: @unchecked Sendable {
    var recordBytesMax = WireLimits.handshakeFrameBytesMax

    func handshakeCompleted() { recordBytesMax = WireLimits.tcpRecordBytesMax }
}

/// Bytes a listener's connections hold in records not yet complete.
final class RecordBudget: Sendable {
    let limit: Int
    private let used = NIOLockedValueBox(0)

    init(limit: Int) { self.limit = limit }

    /// Adds `delta` (negative to release); returns the new total.
    func adjust(by delta: Int) -> Int {
        used.withLockedValue {
            $0 += delta
            return $0
        }
    }

    func release(_ bytes: Int) { _ = adjust(by: -bytes) }
}

/// What `PeerSession` and `Inbox` ask of the handler, sent through the pipeline.
enum TCPSessionCommand: Sendable {
    case close(SessionError?)
    case resumeReading
}

/// Runs the handshake and then the encrypted session over one TCP connection: the NIO shell
/// around `HandshakeStateMachine`, `RecordCipher` and `SessionCore`, which make every decision.
final class TCPSessionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Message
    typealias OutboundOut = ByteBuffer

    private enum State {
        case handshaking(HandshakeStateMachine)
        case established(RecordCipher, SessionCore)
        case closed
    }

    private var state: State
    private let configuration: SessionConfiguration
    private let isInitiator: Bool
    /// Completed once, then dropped: the session it carries must not be kept alive by the handler.
    private var established: EventLoopPromise<PeerSession>?
    private let logger: Logger
    private var inbox: Inbox?
    /// Reading stops while the consumer's inbox is full, and while the socket cannot take our
    /// writes (a peer that does not read must not make us queue answers without end).
    private var inboxFull = false
    private var outboundBlocked = false
    private var readingPaused: Bool { inboxFull || outboundBlocked }
    private var readPending = false
    private var timer: Scheduled<Void>?
    /// When the connection became active, its first handshake message arrived and this side last
    /// wrote one (loop time, ns): a handshake slower than `slowHandshakeNanoseconds` is logged
    /// with where its time went, for an operator (or `rwa-fuzz`) chasing a slow answer.
    private var handshakeTimes: (active: UInt64, firstRead: UInt64?, lastWrite: UInt64?) = (0, nil, nil)
    static let slowHandshakeNanoseconds: UInt64 = 100_000_000
    /// A listener's record of when this connection last delivered something (nil for a dialer).
    private let activity: ConnectionActivity?
    /// The decoder's record limit, raised once the handshake completes.
    private let allowance: RecordAllowance

    init(
        configuration: SessionConfiguration, isInitiator: Bool, ephemeral: KeyExchangeKeyPair,
        established: EventLoopPromise<PeerSession>, logger: Logger, allowance: RecordAllowance,
        activity: ConnectionActivity? = nil
    ) {
        self.activity = activity
        self.allowance = allowance
        self.configuration = configuration
        self.isInitiator = isInitiator
        self.established = established
        self.logger = logger
        self.state = .handshaking(
            isInitiator
                ? HandshakeStateMachine(initiator: configuration.handshake, ephemeral: ephemeral)
                : HandshakeStateMachine(responder: configuration.handshake, ephemeral: ephemeral))
    }

    func channelActive(context: ChannelHandlerContext) {
        handshakeTimes.active = Self.now(context)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: configuration.handshakeTimeout) {
            let (handler, context) = loopBound.value
            if case .handshaking = handler.state {
                handler.fail(
                    context: context,
                    SessionError(.handshakeTimeout, "no handshake within \(handler.configuration.handshakeTimeout)"))
            }
        }
        if isInitiator, case .handshaking(var machine) = state {
            let hello = machine.start()
            state = .handshaking(machine)
            writePlaintext(context: context, hello)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        switch state {
        case .handshaking(var machine):
            do {
                let message: Message
                do { message = try Message.decode(frame: payload) } catch { throw SessionError(error) }
                let output = try machine.receive(message)
                state = .handshaking(machine)
                activity?.touch(Self.now(context))
                if handshakeTimes.firstRead == nil { handshakeTimes.firstRead = Self.now(context) }
                switch output {
                case .send(let reply):
                    writePlaintext(context: context, reply)
                    handshakeTimes.lastWrite = Self.now(context)
                case .sendAndEstablish(let finish, let session):
                    writePlaintext(context: context, finish)
                    establish(context: context, session)
                case .establish(let session):
                    establish(context: context, session)
                }
            } catch let error as SessionError {
                fail(context: context, error)
            } catch {
                fail(context: context, SessionError(.malformedFrame, "\(error)"))
            }
        case .established(var cipher, var core):
            let message: Message
            do {
                let frame = try cipher.openRecord(payload)
                do { message = try Message.decode(frame: frame) } catch { throw SessionError(error) }
            } catch let error as SessionError {
                return fail(context: context, error)
            } catch {
                return fail(context: context, SessionError(.malformedFrame, "\(error)"))
            }
            NodeMetrics.received(message)
            let actions = core.receive(message, now: Self.now(context))
            state = .established(cipher, core)
            if let activity, actions.contains(where: { if case .deliver = $0 { true } else { false } }) {
                activity.touch(Self.now(context), deliveringApplicationMessage: true)
            }
            perform(context: context, actions)
        case .closed:
            return
        }
    }

    /// The event loop's clock: real time on a real loop, virtual time on `EmbeddedEventLoop`.
    static func now(_ context: ChannelHandlerContext) -> UInt64 { context.eventLoop.now.uptimeNanoseconds }

    private func logIfSlowHandshake(now: UInt64) {
        let times = handshakeTimes
        guard now &- times.active >= Self.slowHandshakeNanoseconds else { return }
        func ms(_ from: UInt64?, _ to: UInt64?) -> String {
            guard let from, let to else { return "-" }
            return "\((to &- from) / 1_000_000) ms"
        }
        logger.notice(
            "slow handshake: \(ms(times.active, now)) in all; first message \(ms(times.active, times.firstRead)) after the connection, this side's last reply \(ms(times.firstRead, times.lastWrite)) after it, the end \(ms(times.lastWrite, now)) after that"
        )
    }

    /// Carries out what the session core decided, in order.
    private func perform(context: ChannelHandlerContext, _ actions: [SessionCore.Action]) {
        var lastWrite: EventLoopFuture<Void>?
        for action in actions {
            switch action {
            case .send(let message):
                lastWrite = context.writeAndFlush(wrapOutboundOut(seal(context: context, message)))
            case .deliver(let message):
                guard let inbox else { continue }
                if !inbox.push(message) { inboxFull = true }
            case .warn(let report):
                logger.warning("peer warning", metadata: ["code": "\(report.code)", "text": "\(report.text)"])
            case .close(let error):
                finishClosing(context: context, error, after: lastWrite)
            }
        }
    }

    private func establish(context: ChannelHandlerContext, _ session: EstablishedSession) {
        let timing = SessionCore.Timing(
            keepaliveNanoseconds: UInt64(configuration.keepaliveInterval.nanoseconds),
            idleTimeoutNanoseconds: UInt64(configuration.idleTimeout.nanoseconds))
        state = .established(RecordCipher(session), SessionCore(timing: timing, now: Self.now(context)))
        allowance.handshakeCompleted()
        logIfSlowHandshake(now: Self.now(context))
        configuration.keyLog?.record(session)
        timer?.cancel()
        // The closures below reach the handler only through the pipeline, never by reference,
        // so a finished session leaves no cycle behind.
        let channel = context.channel
        let flushPending = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
        let inbox = Inbox(capacity: configuration.inboxCapacity) {
            channel.triggerUserOutboundEvent(TCPSessionCommand.resumeReading, promise: nil)
        }
        self.inbox = inbox
        scheduleKeepalive(context: context)
        let peer = PeerSession(
            peerIdentity: session.peerIdentity, peerFeatures: session.peerFeatures, transport: .tcp,
            remoteAddress: channel.remoteAddress, inbox: inbox, eventLoop: channel.eventLoop,
            closeFuture: channel.closeFuture,
            send: { message in
                // On the loop, writes of one turn share one flush (one system call), however many
                // messages a consumer sends from it; off the loop, each send is its own turn anyway.
                guard channel.eventLoop.inEventLoop else { return channel.writeAndFlush(message) }
                let written = channel.write(message)
                if !flushPending.value {
                    flushPending.value = true
                    channel.eventLoop.execute {
                        flushPending.value = false
                        channel.flush()
                    }
                }
                return written
            },
            close: { error in channel.triggerUserOutboundEvent(TCPSessionCommand.close(error), promise: nil) },
            protect: { [activity] in activity?.protect() })
        established?.succeed(peer)
        established = nil
    }

    /// Wakes the core at its next deadline (a keepalive ping or the idle timeout).
    private func scheduleKeepalive(context: ChannelHandlerContext) {
        guard case .established(_, let core) = state, let deadline = core.nextDeadline else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        // Never in the past: a deadline the core did not act on must not spin the loop.
        let wake = max(NIODeadline.uptimeNanoseconds(deadline), context.eventLoop.now + .milliseconds(1))
        timer = context.eventLoop.scheduleTask(deadline: wake) {
            let (handler, context) = loopBound.value
            guard case .established(let cipher, var core) = handler.state else { return }
            // A consumer slow enough to fill its inbox pauses reading; that is not the peer's silence.
            let actions = core.tick(now: Self.now(context), readingPaused: handler.inboxFull)
            handler.state = .established(cipher, core)
            handler.perform(context: context, actions)
            handler.scheduleKeepalive(context: context)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let message = unwrapOutboundIn(data)
        guard case .established = state else {
            promise?.fail(SessionError(.closed, "session is not open"))
            return
        }
        do {
            var frame = ByteBuffer()
            message.encodeFrame(into: &frame)
            guard case .established(var cipher, var core) = state else { return }
            NodeMetrics.sent(message)
            var out = context.channel.allocator.buffer(capacity: frame.readableBytes + 20)
            try cipher.sealRecord(frame: frame, into: &out)
            core.sent(now: Self.now(context))
            state = .established(cipher, core)
            context.write(wrapOutboundOut(out), promise: promise)
        } catch {
            promise?.fail(error)
        }
    }

    private func seal(context: ChannelHandlerContext, _ message: Message) -> ByteBuffer {
        guard case .established(var cipher, var core) = state else {
            preconditionFailure("sealing needs an established session")
        }
        var out = context.channel.allocator.buffer(capacity: 64)
        NodeMetrics.sent(message)
        try! cipher.sealRecord(message, into: &out)
        core.sent(now: Self.now(context))
        state = .established(cipher, core)
        return out
    }

    @discardableResult
    private func writePlaintext(context: ChannelHandlerContext, _ message: Message) -> EventLoopFuture<Void> {
        var out = context.channel.allocator.buffer(capacity: 256)
        out.writeInteger(UInt32(0), endianness: .big)
        message.encodeFrame(into: &out)
        out.setInteger(UInt32(out.readableBytes - 4), at: out.readerIndex, endianness: .big)
        return context.writeAndFlush(wrapOutboundOut(out))
    }

    /// Reports `error` to the peer (unless the peer reported it), ends the inbox and closes.
    private func fail(context: ChannelHandlerContext, _ error: SessionError, notify: Bool = true) {
        switch state {
        case .closed:
            return
        case .handshaking:
            var lastWrite: EventLoopFuture<Void>? = nil
            if notify && !error.fromPeer {
                lastWrite = writePlaintext(context: context, .error(ErrorReport(code: error.code, text: error.reason)))
            }
            finishClosing(context: context, error, after: lastWrite)
        case .established(let cipher, var core):
            let actions = core.close(error, notifyingPeer: notify)
            state = .established(cipher, core)
            perform(context: context, actions)
        }
    }

    /// Ends the inbox and closes the connection once `lastWrite` (the error frame, behind every
    /// record queued before it) is written, or after a grace period if a peer that does not read
    /// keeps it from being written.
    private func finishClosing(
        context: ChannelHandlerContext, _ error: SessionError, after lastWrite: EventLoopFuture<Void>?
    ) {
        logger.log(
            level: error.fromPeer || error.code == .closed ? .debug : .info, "closing TCP session",
            metadata: ["error": "\(error)", "remote": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")"])
        state = .closed
        timer?.cancel()
        inbox?.finish(error)
        inbox = nil
        if established != nil { NodeMetrics.handshakeFailed(.tcp) }
        established?.fail(error)
        established = nil
        let channel = context.channel
        if let lastWrite {
            lastWrite.whenComplete { _ in channel.close(promise: nil) }
            let deadline = SessionCore.lingerDeadline(for: error, now: Self.now(context))
            context.eventLoop.scheduleTask(deadline: .uptimeNanoseconds(deadline)) { channel.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let session = (error as? SessionError)
            ?? (error as? ByteToMessageDecoderError).flatMap({ e -> SessionError? in
                if case .dataReceivedInErrorState(let inner, _) = e {
                    return inner as? SessionError
                } else {
                    return nil
                }
            })
        {
            fail(context: context, session)
        } else if let wire = error as? WireError {
            fail(context: context, SessionError(wire))
        } else if let wire = (error as? ByteToMessageDecoderError).flatMap({ e -> WireError? in
            if case .dataReceivedInErrorState(let inner, _) = e { return inner as? WireError } else { return nil }
        }) {
            fail(context: context, SessionError(wire))
        } else {
            fail(context: context, SessionError(.closed, "connection error: \(error)"), notify: false)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .closed = state {
        } else {
            state = .closed
            timer?.cancel()
            let error = SessionError(.closed, "connection closed", fromPeer: true)
            inbox?.finish(error)
            inbox = nil
            if established != nil { NodeMetrics.handshakeFailed(.tcp) }
            established?.fail(error)
            established = nil
        }
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if readingPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        outboundBlocked = !context.channel.isWritable
        if !outboundBlocked { resumeReading(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        switch event as? TCPSessionCommand {
        case .close(let error):
            fail(context: context, error ?? SessionError(.closed, "session closed by the peer"))
            promise?.succeed()
        case .resumeReading:
            inboxFull = false
            resumeReading(context: context)
            promise?.succeed()
        case nil:
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }

    private func resumeReading(context: ChannelHandlerContext) {
        guard !readingPaused else { return }
        if readPending {
            readPending = false
            context.read()
        }
    }
}
