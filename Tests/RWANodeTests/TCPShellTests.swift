// Goal: the TCP shell carries out the session core's decisions, on virtual time: two
// `TCPSessionHandler`s in `EmbeddedChannel`s, their bytes pumped from one to the other by hand,
// handshake, exchange a note, stay alive through keepalive pings for many idle periods, and the
// side whose peer falls silent closes with `idle_timeout` exactly when the core says so, after
// telling the peer. No sockets, no sleeps.
import Logging
import NIOCore
import NIOEmbedded
import RWACrypto
import RWASession
import RWAWire
import XCTest

@testable import RWANode

final class TCPShellTests: XCTestCase {
    struct Pair {
        let initiator: EmbeddedChannel
        let responder: EmbeddedChannel
        let initiatorSession: EventLoopFuture<PeerSession>
        let responderSession: EventLoopFuture<PeerSession>

        /// Moves every byte each side wrote to the other, until neither has anything left.
        /// `silence` drops what that side writes instead, as if its packets were lost.
        func pump(silencing silence: EmbeddedChannel? = nil) throws {
            var moved = true
            while moved {
                moved = false
                for (from, to) in [(initiator, responder), (responder, initiator)] {
                    while let bytes = try from.readOutbound(as: ByteBuffer.self) {
                        moved = true
                        if from === silence { continue }
                        try to.writeInbound(bytes)
                    }
                }
            }
        }

        func advance(by amount: TimeAmount, silencing silence: EmbeddedChannel? = nil) throws {
            // Both loops keep the same virtual time, advanced in small steps so each side's timers
            // fire in order and their output is delivered before the next step.
            var left = amount
            while left > .zero {
                let step = min(left, .milliseconds(5))
                initiator.embeddedEventLoop.advanceTime(by: step)
                responder.embeddedEventLoop.advanceTime(by: step)
                try pump(silencing: silence)
                left = left - step
            }
        }
    }

    /// Counts the reads the shell asks of the socket, and lets a test deliver bytes only against
    /// them: as the kernel does, a shell that stops asking gets nothing more.
    final class ReadGate: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = Any
        var requested = 0
        func read(context: ChannelHandlerContext) { requested += 1 }
    }

    func makePair(inboxCapacity: Int? = nil, gate: ReadGate? = nil) throws -> Pair {
        func channel(initiator: Bool) throws -> (EmbeddedChannel, EventLoopFuture<PeerSession>) {
            let channel = EmbeddedChannel()
            if !initiator, let gate { try channel.pipeline.syncOperations.addHandler(gate) }
            var configuration = try SessionConfiguration(
                handshake: HandshakeConfiguration(identity: .generate(), chainID: ChainIDs.devnet))
            configuration.keyLog = nil
            configuration.keepaliveInterval = .milliseconds(50)
            configuration.idleTimeout = .milliseconds(400)
            if !initiator, let inboxCapacity { configuration.inboxCapacity = inboxCapacity }
            let promise = channel.eventLoop.makePromise(of: PeerSession.self)
            let allowance = RecordAllowance()
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(TCPRecordDecoder(allowance: allowance)))
            try channel.pipeline.syncOperations.addHandler(
                TCPSessionHandler(
                    configuration: configuration, isInitiator: initiator, ephemeral: .generate(), established: promise,
                    logger: Logger(label: "test"), allowance: allowance))
            return (channel, promise.futureResult)
        }
        let (initiator, initiatorSession) = try channel(initiator: true)
        let (responder, responderSession) = try channel(initiator: false)
        let pair = Pair(
            initiator: initiator, responder: responder, initiatorSession: initiatorSession,
            responderSession: responderSession)
        try responder.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try initiator.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        try pair.pump()
        return pair
    }

    func testHandshakeNoteKeepaliveAndIdleTimeoutOnVirtualTime() throws {
        let pair = try makePair()
        let client = try XCTUnwrap(try? pair.initiatorSession.wait(), "the initiator established")
        let server = try XCTUnwrap(try? pair.responderSession.wait(), "the responder established")
        let clientEvents = InboxEvents(client)
        let serverEvents = InboxEvents(server)

        let note = Message.signedNote(SignedNote(signedBy: .generate(), chainID: ChainIDs.devnet, number: 0, body: [7]))
        _ = client.sendPipelined(note)
        pair.initiator.flush()
        try pair.pump()
        guard case .message(let received)? = serverEvents.all.first else { return XCTFail("the note did not arrive") }
        XCTAssertEqual(received, note)

        // Five idle periods with nothing to say: the keepalive pings keep both sides open.
        try pair.advance(by: .milliseconds(2_000))
        XCTAssertTrue(pair.initiator.isActive)
        XCTAssertTrue(pair.responder.isActive)

        // The responder falls silent (its writes are lost). 400 ms after the initiator last heard
        // from it, the initiator reports idle_timeout and closes; not a step before.
        try pair.advance(by: .milliseconds(395), silencing: pair.responder)
        XCTAssertTrue(pair.initiator.isActive, "not yet: the last pong came less than 400 ms ago")
        try pair.advance(by: .milliseconds(60), silencing: pair.responder)
        XCTAssertFalse(pair.initiator.isActive, "closed for idleness")
        guard case .finished(let error?)? = clientEvents.all.last else { return XCTFail("the inbox did not end") }
        XCTAssertEqual(error.code, .idleTimeout)
        // The error frame reached the responder (the pump still carries the initiator's bytes).
        guard case .finished(let reported?)? = serverEvents.all.last else {
            return XCTFail("the responder was not told: \(serverEvents.all)")
        }
        XCTAssertEqual(reported.code, .idleTimeout)
        XCTAssertTrue(reported.fromPeer)
    }

    /// A consumer that does not read: the inbox fills to its bound, the shell stops asking the
    /// socket for more, and what the peer sent waits outside; once the consumer reads, the rest
    /// arrives, in order, exactly once. One record per socket read, so the bound is exact.
    func testAFullInboxStopsTheReadsOnVirtualTime() throws {
        let gate = ReadGate()
        let pair = try makePair(inboxCapacity: 16, gate: gate)
        let client = try XCTUnwrap(try? pair.initiatorSession.wait())
        let server = try XCTUnwrap(try? pair.responderSession.wait())
        let author = SigningKeyPair.generate()
        let total = 200
        for number in 0..<total {
            _ = client.sendPipelined(
                .signedNote(SignedNote(signedBy: author, chainID: ChainIDs.devnet, number: UInt64(number), body: [])))
        }
        pair.initiator.flush()
        var waiting: [ByteBuffer] = []
        while let bytes = try pair.initiator.readOutbound(as: ByteBuffer.self) { waiting.append(bytes) }
        XCTAssertGreaterThanOrEqual(waiting.count, total, "one record per write")
        /// Delivers one waiting chunk per read the responder asked for, until it asks no more.
        func deliverAgainstReads() throws {
            while gate.requested > 0 && !waiting.isEmpty {
                gate.requested -= 1
                try pair.responder.writeInbound(waiting.removeFirst())
                pair.responder.pipeline.fireChannelReadComplete()
                pair.responder.read()  // what autoRead does after every read; the shell may hold it
                XCTAssertLessThanOrEqual(server.inbox.bufferedCount, 16, "the inbox never holds more than its bound")
            }
        }
        pair.responder.read()
        try deliverAgainstReads()
        XCTAssertEqual(server.inbox.bufferedCount, 16, "full")
        XCTAssertEqual(gate.requested, 0, "and the shell asks the socket for nothing more")
        XCTAssertGreaterThan(waiting.count, total - 20, "the rest waits at the sender")
        pair.responder.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertEqual(gate.requested, 0, "time alone does not resume reading")

        // The consumer reads everything as it comes: the shell asks again, the rest arrives.
        let events = InboxEvents(server)
        for _ in 0..<(total * 2) where !waiting.isEmpty {
            pair.responder.embeddedEventLoop.run()
            try deliverAgainstReads()
        }
        XCTAssertTrue(waiting.isEmpty, "everything was delivered once reading resumed")
        let numbers = events.messages.compactMap { message -> UInt64? in
            if case .signedNote(let note) = message { return note.number }
            return nil
        }
        XCTAssertEqual(numbers, (0..<UInt64(total)).map { $0 }, "in order, exactly once")
    }
}
