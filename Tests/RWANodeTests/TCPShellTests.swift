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

    func makePair() throws -> Pair {
        func channel(initiator: Bool) throws -> (EmbeddedChannel, EventLoopFuture<PeerSession>) {
            let channel = EmbeddedChannel()
            var configuration = try SessionConfiguration(
                handshake: HandshakeConfiguration(identity: .generate(), chainID: ChainIDs.devnet))
            configuration.keyLog = nil
            configuration.keepaliveInterval = .milliseconds(50)
            configuration.idleTimeout = .milliseconds(400)
            let promise = channel.eventLoop.makePromise(of: PeerSession.self)
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(TCPRecordDecoder()))
            try channel.pipeline.syncOperations.addHandler(
                TCPSessionHandler(
                    configuration: configuration, isInitiator: initiator, ephemeral: .generate(), established: promise,
                    logger: Logger(label: "test")))
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
}
