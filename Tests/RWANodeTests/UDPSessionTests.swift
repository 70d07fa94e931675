// Goal: an established UDP session cannot be disturbed by packets that do not authenticate: a
// forged sealed packet, a plaintext error (anyone can spoof one), an oversized datagram, a replayed
// packet. Method: a hand-driven peer on a raw UDP socket performs the handshake with the pure
// state machine, seals its own packets, and checks the real listener still answers afterwards.
import Foundation
import NIOCore
import NIOPosix
import RWACrypto
import RWASession
import RWATestSupport
import RWAWire
import XCTest

@testable import RWANode

final class RawUDPPeer {
    let fd: Int32
    var address = sockaddr_in()

    init(port: Int) {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { target in
                bytes.withUnsafeBytes {
                    sendto(fd, $0.baseAddress, $0.count, 0, target, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// The next datagram, or nil after 300 ms of silence.
    func receive() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return count > 0 ? Array(buffer.prefix(count)) : nil
    }
}

final class UDPSessionTests: XCTestCase {
    func testEstablishedSessionIgnoresEverythingThatDoesNotAuthenticate() async throws {
        try await withTimeout(60, "testEstablishedSessionIgnoresEverythingThatDoesNotAuthenticate") { [self] in
            var configuration = try SessionConfiguration(
                handshake: HandshakeConfiguration(identity: .generate(), chainID: ChainIDs.devnet))
            configuration.udpFaults = nil
            configuration.keyLog = nil
            let listener = try await UDPTransport.listen(
                host: "127.0.0.1", port: 0, configuration: configuration, group: MultiThreadedEventLoopGroup.singleton)
            let peer = RawUDPPeer(port: listener.port)

            // Handshake by hand.
            var machine = HandshakeStateMachine(
                initiator: HandshakeConfiguration(identity: .generate(), chainID: ChainIDs.devnet),
                ephemeral: .generate())
            peer.send([UDPPacketKind.handshake.rawValue] + machine.start().frameBytes())
            let replyDatagram = try XCTUnwrap(peer.receive())
            let reply = try Message.decode(frame: ByteBuffer(bytes: replyDatagram.dropFirst()))
            guard case .sendAndEstablish(let finish, let session) = try machine.receive(reply) else { return XCTFail() }
            peer.send([UDPPacketKind.handshake.rawValue] + finish.frameBytes())

            var packetNumber: UInt64 = 0
            var sequence: UInt64 = 0
            var listenerAckNext: UInt64 = 0  // the listener's frames we have received
            func sealed(_ frame: Message?) -> [UInt8] {
                let content = UDPSealedContent(
                    acknowledgement: Acknowledgement(ackNext: listenerAckNext, selectiveAcks: 0),
                    sequencedFrame: frame.map { (sequence, ByteBuffer(bytes: $0.frameBytes())) })
                var plaintext = ByteBuffer()
                content.encode(into: &plaintext)
                let header = UDPSealedContent.header(kind: content.kind, packetNumber: packetNumber)
                defer {
                    packetNumber += 1
                    if frame != nil { sequence += 1 }
                }
                return header
                    + session.sendKey.seal(
                        Array(plaintext.readableBytesView), associatedData: header, counter: packetNumber)
            }
            func sealedPing(_ nonce: UInt64) -> [UInt8] { sealed(.ping(Ping(nonce: nonce))) }
            /// Reads until a new (not retransmitted) pong with `nonce` arrives, acknowledging it (true),
            /// or until the listener falls silent (false).
            func awaitPong(_ nonce: UInt64) -> Bool {
                let deadline = Date().addingTimeInterval(10)
                while Date() < deadline, let datagram = peer.receive() {
                    guard datagram.count > 9, let kind = UDPPacketKind(rawValue: datagram[0]), kind != .handshake else {
                        continue
                    }
                    let number = datagram[1..<9].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    guard
                        let opened = try? session.receiveKey.open(
                            Array(datagram.dropFirst(9)), associatedData: Array(datagram.prefix(9)), counter: number),
                        let content = try? UDPSealedContent.decode(kind: kind, plaintext: ByteBuffer(bytes: opened)),
                        let (frameSequence, frame) = content.sequencedFrame, frameSequence == listenerAckNext
                    else { continue }
                    listenerAckNext += 1
                    peer.send(sealed(nil))  // acknowledge, so it is not retransmitted
                    if case .pong(let pong)? = try? Message.decode(frame: frame), pong.nonce == nonce { return true }
                }
                return false
            }

            let firstPing = sealedPing(1)
            peer.send(firstPing)
            XCTAssertTrue(awaitPong(1), "the session works")

            // Noise that must change nothing.
            var forged = sealedPing(99)
            forged[forged.count - 1] ^= 1  // tag no longer authenticates
            sequence -= 1  // the forged frame never counted
            peer.send(forged)
            peer.send(
                [UDPPacketKind.handshake.rawValue]
                    + Message.error(ErrorReport(code: .closed, text: "spoofed")).frameBytes()
            )
            peer.send([UDPPacketKind.data.rawValue] + [UInt8](repeating: 7, count: 1_300))
            peer.send(firstPing)  // replayed: its packet number was seen
            XCTAssertFalse(awaitPong(1), "a replayed ping is not answered again")

            peer.send(sealedPing(2))
            XCTAssertTrue(awaitPong(2), "the session survived the noise")
            await listener.close()
        }
    }

    /// Under load (here: from the first `hello`), a `hello` gets a 17-byte cookie and no session;
    /// the same `hello` back with the cookie gets its `hello_reply`; a wrong cookie gets the right
    /// one again; and a real dialer goes through the cookie step on its own.
    func testUnderLoadAHelloMustBringBackItsCookie() async throws {
        try await withTimeout(60, "testUnderLoadAHelloMustBringBackItsCookie") {
            var configuration = try SessionConfiguration(
                handshake: HandshakeConfiguration(identity: .generate(), chainID: ChainIDs.devnet))
            configuration.udpFaults = nil
            configuration.keyLog = nil
            configuration.handshakesBeforeCookie = 0
            let listener = try await UDPTransport.listen(
                host: "127.0.0.1", port: 0, configuration: configuration, group: MultiThreadedEventLoopGroup.singleton)
            defer { Task { await listener.close() } }
            let peer = RawUDPPeer(port: listener.port)
            var machine = HandshakeStateMachine(
                initiator: HandshakeConfiguration(identity: .generate(), chainID: ChainIDs.devnet),
                ephemeral: .generate())
            let hello = machine.start().frameBytes()
            peer.send([UDPPacketKind.handshake.rawValue] + hello)
            let answer = try XCTUnwrap(peer.receive(), "a cookie answers the hello")
            XCTAssertEqual(answer.first, UDPPacketKind.cookie.rawValue)
            XCTAssertEqual(answer.count, 1 + WireLimits.udpCookieBytes, "smaller than the hello: no amplification")
            let cookie = Array(answer.dropFirst())

            // A wrong cookie (a spoofer may plant one) gets a fresh cookie, not a session.
            var wrong = cookie
            wrong[0] ^= 1
            peer.send([UDPPacketKind.cookieHandshake.rawValue] + wrong + hello)
            XCTAssertEqual(peer.receive(), answer, "a wrong cookie gets the right one again")

            peer.send([UDPPacketKind.cookieHandshake.rawValue] + cookie + hello)
            let replyDatagram = try XCTUnwrap(peer.receive(), "the right cookie gets the hello_reply")
            XCTAssertEqual(replyDatagram.first, UDPPacketKind.handshake.rawValue)
            let reply = try Message.decode(frame: ByteBuffer(bytes: replyDatagram.dropFirst()))
            guard case .sendAndEstablish = try machine.receive(reply) else { return XCTFail("\(reply)") }

            // A real dialer: its hello is answered with a cookie, which it brings back.
            var dialing = configuration
            dialing.handshake = HandshakeConfiguration(identity: .generate(), chainID: ChainIDs.devnet)
            let session = try await UDPTransport.dial(
                host: "127.0.0.1", port: listener.port, configuration: dialing,
                group: MultiThreadedEventLoopGroup.singleton)
            XCTAssertEqual(session.peerIdentity, configuration.handshake.identity.publicKey)
            await session.close()
        }
    }

    /// The port's filter hands plain `hello`s, and only them, to the cookie step's own socket
    /// (`UDPHelloResponder`): under load they are answered there, while a dialer's cookie echo
    /// and its session's packets go to the channel; without load, and for a datagram the filter
    /// cannot read whole, the cookie step hands the datagram to the endpoint.
    func testPlainHellosAndOnlyThemReachTheCookieStep() async throws {
        try await withTimeout(60, "testPlainHellosAndOnlyThemReachTheCookieStep") {
            func eventually(_ what: String, within seconds: TimeInterval = 5, _ condition: () -> Bool) {
                let deadline = Date().addingTimeInterval(seconds)
                while !condition() && Date() < deadline { usleep(1_000) }
                XCTAssertTrue(condition(), what)
            }
            func configuration(cookiesFromTheFirstHello: Bool) throws -> SessionConfiguration {
                var configuration = try SessionConfiguration(
                    handshake: HandshakeConfiguration(identity: .generate(), chainID: ChainIDs.devnet))
                configuration.udpFaults = nil
                configuration.keyLog = nil
                if cookiesFromTheFirstHello { configuration.handshakesBeforeCookie = 0 }
                return configuration
            }
            let group = MultiThreadedEventLoopGroup.singleton
            func listenAndDial(cookiesFromTheFirstHello: Bool) async throws -> (
                SessionListener, UDPHelloResponder, PeerSession
            ) {
                let listener = try await UDPTransport.listen(
                    host: "127.0.0.1", port: 0,
                    configuration: configuration(cookiesFromTheFirstHello: cookiesFromTheFirstHello), group: group)
                let session = try await UDPTransport.dial(
                    host: "127.0.0.1", port: listener.port,
                    configuration: configuration(cookiesFromTheFirstHello: cookiesFromTheFirstHello), group: group)
                return (listener, try XCTUnwrap(listener.helloResponder), session)
            }

            let (loaded, responder, session) = try await listenAndDial(cookiesFromTheFirstHello: true)
            var accepted = loaded.sessions.makeAsyncIterator()
            let acceptedSession = await accepted.next()
            let server = try XCTUnwrap(acceptedSession)
            let author = SigningKeyPair.generate()
            for number in 0..<2 {
                try await session.send(
                    .signedNote(
                        SignedNote(signedBy: author, chainID: ChainIDs.devnet, number: UInt64(number), body: [])))
            }
            var notes = 0
            for try await case .signedNote in server.inbox {
                notes += 1
                if notes == 2 { break }
            }
            eventually("the dialer's hello got its cookie from the cookie step") { responder.cookiesSent == 1 }
            XCTAssertEqual(
                responder.datagramsForwarded, 0, "the cookie echo and the session's packets went to the channel")

            let peer = RawUDPPeer(port: loaded.port)
            var machine = HandshakeStateMachine(
                initiator: HandshakeConfiguration(identity: .generate(), chainID: ChainIDs.devnet),
                ephemeral: .generate())
            let hello = [UDPPacketKind.handshake.rawValue] + machine.start().frameBytes()
            for _ in 0..<50 {
                peer.send(hello)
                XCTAssertEqual(peer.receive()?.first, UDPPacketKind.cookie.rawValue)
            }
            eventually("50 more cookies, all from the cookie step") { responder.cookiesSent == 51 }
            peer.send([UDPPacketKind.handshake.rawValue, 0x00])  // too short for the filter to read its type
            eventually("a datagram the filter cannot read whole is handed to the endpoint") {
                responder.datagramsForwarded == 1
            }
            XCTAssertNil(peer.receive(), "and the endpoint does not answer 2 bytes")
            peer.send([UDPPacketKind.handshake.rawValue] + Array(hello.dropFirst().prefix(2)))  // `01 0001`
            eventually("a hello shorter than the cookie packet earns no cookie: it is handed over") {
                responder.datagramsForwarded == 2
            }
            XCTAssertNil(peer.receive(), "and nothing answers 3 bytes (no amplification)")
            XCTAssertEqual(responder.cookiesSent, 51)
            await session.close()
            let port = loaded.port
            await loaded.close()
            // At once: within the cookie step's poll timeout (1 s) would mean `stop()` did not wake it.
            eventually("closing the listener frees its port, the cookie step's socket included", within: 0.5) {
                let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
                defer { close(fd) }
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = UInt16(port).bigEndian
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                return withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                    }
                }
            }

            let (quiet, quietResponder, direct) = try await listenAndDial(cookiesFromTheFirstHello: false)
            XCTAssertEqual(quietResponder.cookiesSent, 0, "no load, no cookie")
            XCTAssertEqual(
                quietResponder.datagramsForwarded, 1, "the hello was handed to the endpoint, which answered it")
            await direct.close()
            await quiet.close()
        }
    }
}
