// Goal: the UDP shell carries out reliable delivery and the session core's decisions, on virtual
// time: two `UDPEndpointHandler`s in `EmbeddedChannel`s exchange datagrams that the test moves
// by hand (and drops when it wants a loss), while it advances both clocks. A lost note is
// retransmitted and delivered once; a silent peer is closed for idleness after the keepalive
// pings go unanswered, and told why. No sockets, no sleeps.
import Logging
import NIOCore
import NIOEmbedded
import RWACrypto
import RWASession
import RWAWire
import XCTest

@testable import RWANode

final class UDPShellTests: XCTestCase {
    final class Link {
        let dialer = EmbeddedChannel()
        let listener = EmbeddedChannel()
        let dialerAddress = try! SocketAddress(ipAddress: "127.0.0.1", port: 40001)
        let listenerAddress = try! SocketAddress(ipAddress: "127.0.0.1", port: 40002)
        var accepted: [PeerSession] = []
        /// Decides, for each datagram in flight, whether it is lost (true drops it).
        var lose: (_ fromDialer: Bool, _ datagram: ByteBuffer) -> Bool = { _, _ in false }
        var delivered = 0

        /// Moves every datagram each side wrote to the other, until neither has one left.
        func pump() throws {
            var moved = true
            while moved {
                moved = false
                for (from, to, source, fromDialer) in [
                    (dialer, listener, dialerAddress, true), (listener, dialer, listenerAddress, false),
                ] {
                    while let envelope = try from.readOutbound(as: AddressedEnvelope<ByteBuffer>.self) {
                        moved = true
                        if lose(fromDialer, envelope.data) { continue }
                        delivered += 1
                        try to.writeInbound(AddressedEnvelope(remoteAddress: source, data: envelope.data))
                    }
                }
            }
        }

        func advance(by amount: TimeAmount) throws {
            var left = amount
            while left > .zero {
                let step = min(left, .milliseconds(5))
                dialer.embeddedEventLoop.advanceTime(by: step)
                listener.embeddedEventLoop.advanceTime(by: step)
                try pump()
                left = left - step
            }
        }
    }

    /// Keepalive every 50 ms, except where a test needs the line quiet (`quiet`: every 10 s).
    func configuration(quiet: Bool) throws -> SessionConfiguration {
        var configuration = try SessionConfiguration(
            handshake: HandshakeConfiguration(identity: .generate(), chainID: ChainIDs.devnet))
        configuration.keyLog = nil
        configuration.udpFaults = nil
        configuration.keepaliveInterval = quiet ? .seconds(10) : .milliseconds(50)
        configuration.idleTimeout = quiet ? .seconds(40) : .milliseconds(400)
        return configuration
    }

    /// A link with an established session at each end.
    func connect(quiet: Bool = false) throws -> (Link, client: PeerSession, server: PeerSession) {
        let link = Link()
        let listenerHandler = UDPEndpointHandler(
            configuration: try configuration(quiet: quiet), acceptsPeers: true, logger: Logger(label: "test"),
            accepted: { [link] in link.accepted.append($0) })
        try link.listener.pipeline.syncOperations.addHandler(listenerHandler)
        let dialerHandler = UDPEndpointHandler(
            configuration: try configuration(quiet: quiet), acceptsPeers: false, logger: Logger(label: "test"),
            accepted: { _ in })
        try link.dialer.pipeline.syncOperations.addHandler(dialerHandler)
        let established = link.dialer.eventLoop.makePromise(of: PeerSession.self)
        dialerHandler.dial(link.listenerAddress, established: established)
        link.dialer.flush()
        try link.pump()
        try link.advance(by: .milliseconds(10))
        let client = try XCTUnwrap(try? established.futureResult.wait(), "the dialer established")
        let server = try XCTUnwrap(link.accepted.first, "the listener accepted")
        return (link, client, server)
    }

    func note(_ number: UInt64) -> Message {
        .signedNote(SignedNote(signedBy: .generate(), chainID: ChainIDs.devnet, number: number, body: [1]))
    }

    func testALostNoteIsRetransmittedAtItsTimeoutAndDeliveredOnce() throws {
        let (link, client, server) = try connect(quiet: true)  // no pings to repair the loss sooner
        let received = InboxEvents(server)
        // Lose the note's first transmission: the dialer's first data packet (not an ack) from here.
        var lostOne = false
        link.lose = { fromDialer, datagram in
            guard fromDialer, !lostOne, datagram.getInteger(at: datagram.readerIndex) == UDPPacketKind.data.rawValue
            else { return false }
            lostOne = true
            return true
        }
        let sent = note(0)
        _ = client.sendPipelined(sent)
        link.dialer.flush()
        try link.pump()
        XCTAssertTrue(lostOne, "the first transmission was dropped")
        XCTAssertEqual(received.messages, [], "nothing arrived yet")
        // The initial timeout is 50 ms (no round trip measured yet): resent then, not before.
        try link.advance(by: .milliseconds(45))
        XCTAssertEqual(received.messages, [])
        try link.advance(by: .milliseconds(10))
        XCTAssertEqual(received.messages, [sent], "retransmitted at the timeout, delivered once")
        try link.advance(by: .milliseconds(200))
        XCTAssertEqual(received.messages, [sent], "and never again")
    }

    func testALaterFrameArrivingRepairsALossAtOnce() throws {
        let (link, client, server) = try connect()
        let received = InboxEvents(server)
        var dataPackets = 0
        link.lose = { fromDialer, datagram in
            guard fromDialer, datagram.getInteger(at: datagram.readerIndex) == UDPPacketKind.data.rawValue else {
                return false
            }
            dataPackets += 1
            return dataPackets == 1  // the first note's first transmission
        }
        let (first, second) = (note(0), note(1))
        _ = client.sendPipelined(first)
        link.dialer.flush()
        try link.pump()
        try link.advance(by: .milliseconds(5))
        _ = client.sendPipelined(second)
        link.dialer.flush()
        try link.pump()
        // The listener acknowledges the second with a gap before it; the dialer resends the
        // first at once (RACK), long before its 50 ms timer.
        XCTAssertEqual(received.messages, [first, second])
    }

    func testASilentPeerIsClosedForIdlenessAndTold() throws {
        let (link, client, server) = try connect()
        let clientEvents = InboxEvents(client)
        let serverEvents = InboxEvents(server)
        // Ten idle periods of keepalive: both stay open.
        try link.advance(by: .milliseconds(4_000))
        XCTAssertNil(clientEvents.endError)
        XCTAssertTrue(serverEvents.all.isEmpty)
        // The listener's datagrams are lost from now on: the dialer hears nothing for 400 ms and
        // ends with idle_timeout, sending its error frame (which still reaches the listener).
        link.lose = { fromDialer, _ in !fromDialer }
        try link.advance(by: .milliseconds(390))
        XCTAssertNil(clientEvents.endError, "not yet")
        try link.advance(by: .milliseconds(40))
        XCTAssertEqual(clientEvents.endError?.code, .idleTimeout)
        XCTAssertEqual(serverEvents.endError?.code, .idleTimeout, "the listener was told why")
        XCTAssertEqual(serverEvents.endError?.fromPeer, true)
    }
}
