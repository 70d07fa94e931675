// Goal: the handshake and record layer, pure and back to back: both roles agree on keys, every
// failure the spec lists is detected with its code, and proto/vectors/handshake.json pins the
// whole exchange (frames, transcript, keys, first TCP record, first UDP packet) from fixed seeds.
import Foundation
import NIOCore
import RWACrypto
import XCTest

@testable import RWASession
@testable import RWAWire

enum Seeds {
    static let initiator = try! SigningKeyPair(seed: [UInt8](repeating: 0x01, count: 32))
    static let responder = try! SigningKeyPair(seed: [UInt8](repeating: 0x02, count: 32))
    static func initiatorEphemeral() -> KeyExchangeKeyPair {
        try! KeyExchangeKeyPair(seed: [UInt8](repeating: 0x03, count: 32))
    }
    static func responderEphemeral() -> KeyExchangeKeyPair {
        try! KeyExchangeKeyPair(seed: [UInt8](repeating: 0x04, count: 32))
    }
}

/// Runs a whole handshake between two machines, returning the frames and both sessions.
func runHandshake(
    initiator: HandshakeConfiguration = HandshakeConfiguration(identity: Seeds.initiator, chainID: ChainIDs.devnet),
    responder: HandshakeConfiguration = HandshakeConfiguration(identity: Seeds.responder, chainID: ChainIDs.devnet),
    tamper: (inout Message) -> Void = { _ in }
) throws -> (frames: [Message], initiator: EstablishedSession, responder: EstablishedSession) {
    var i = HandshakeStateMachine(initiator: initiator, ephemeral: Seeds.initiatorEphemeral())
    var r = HandshakeStateMachine(responder: responder, ephemeral: Seeds.responderEphemeral())
    var hello = i.start()
    tamper(&hello)
    guard case .send(var reply) = try r.receive(hello) else { throw SessionError(.unexpectedMessage, "no reply") }
    tamper(&reply)
    guard case .sendAndEstablish(var finish, let initiatorSession) = try i.receive(reply) else {
        throw SessionError(.unexpectedMessage, "no finish")
    }
    tamper(&finish)
    guard case .establish(let responderSession) = try r.receive(finish) else {
        throw SessionError(.unexpectedMessage, "not established")
    }
    return ([hello, reply, finish], initiatorSession, responderSession)
}

final class HandshakeTests: XCTestCase {
    func testBothRolesAgreeOnIdentitiesAndKeys() throws {
        let (_, i, r) = try runHandshake()
        XCTAssertEqual(i.peerIdentity, Seeds.responder.publicKey)
        XCTAssertEqual(r.peerIdentity, Seeds.initiator.publicKey)
        XCTAssertEqual(i.transcriptHash, r.transcriptHash)
        XCTAssertEqual(i.sendKey.exposedBytes(), r.receiveKey.exposedBytes())
        XCTAssertEqual(i.receiveKey.exposedBytes(), r.sendKey.exposedBytes())
        XCTAssertNotEqual(i.sendKey.exposedBytes(), i.receiveKey.exposedBytes())
    }

    func testVersionNegotiationSettlesOnTheLowerVersion() throws {
        // An initiator offering a future version 7 gets this responder's version 1.
        var responder = HandshakeStateMachine(
            responder: HandshakeConfiguration(identity: Seeds.responder, chainID: ChainIDs.devnet),
            ephemeral: Seeds.responderEphemeral())
        let hello = Hello(
            protocolVersion: 7, features: FeatureBits(), chainID: ChainIDs.devnet, identity: Seeds.initiator.publicKey,
            ephemeralKey: Seeds.initiatorEphemeral().publicKey)
        guard case .send(.helloReply(let reply)) = try responder.receive(.hello(hello)) else {
            return XCTFail("no reply")
        }
        XCTAssertEqual(reply.protocolVersion, 1)
        let (_, i, r) = try runHandshake()
        XCTAssertEqual(i.protocolVersion, 1)
        XCTAssertEqual(r.protocolVersion, 1)
    }

    func testEachHandshakeFailureHasItsCode() {
        /// How the handshake ended: its code, or "established"; any other error is named as such,
        /// so it can never pass for a success.
        enum Ending: Equatable {
            case established
            case failed(ErrorCode)
            case otherError(String)
        }
        func code(_ body: () throws -> Void) -> Ending {
            do {
                try body()
                return .established
            } catch let error as SessionError {
                return .failed(error.code)
            } catch {
                return .otherError("\(type(of: error)): \(error)")
            }
        }
        let other = Blake2b.hash256(Array("another chain".utf8))
        XCTAssertEqual(
            code { _ = try runHandshake(responder: HandshakeConfiguration(identity: Seeds.responder, chainID: other)) },
            .failed(.wrongChain))
        XCTAssertEqual(
            code {
                _ = try runHandshake(
                    initiator: HandshakeConfiguration(
                        identity: Seeds.initiator, chainID: ChainIDs.devnet, expectedPeer: Seeds.initiator.publicKey))
            }, .failed(.unexpectedPeer))
        XCTAssertEqual(
            code {
                _ = try runHandshake {
                    if case .hello(var h) = $0 {
                        h.protocolVersion = 0
                        $0 = .hello(h)
                    }
                }
            }, .failed(.unsupportedVersion))
        XCTAssertEqual(
            code {
                _ = try runHandshake {
                    if case .hello(var h) = $0 {
                        h.features = FeatureBits([4])
                        $0 = .hello(h)
                    }
                }
            }, .failed(.unknownRequiredFeature))
        XCTAssertEqual(
            code {
                _ = try runHandshake(
                    initiator: HandshakeConfiguration(
                        identity: Seeds.initiator, chainID: ChainIDs.devnet, features: FeatureBits([5])))
            }, .established,
            "an unknown odd feature is fine")
        // Any change to a frame in transit breaks the transcript signatures.
        XCTAssertEqual(
            code {
                _ = try runHandshake {
                    if case .hello(var h) = $0 {
                        h.features = FeatureBits([5])
                        $0 = .hello(h)
                    }
                }
            }, .failed(.badSignature))
        XCTAssertEqual(
            code {
                _ = try runHandshake {
                    if case .helloReply(var r) = $0 {
                        r.ephemeralKey[0] ^= 1
                        $0 = .helloReply(r)
                    }
                }
            }, .failed(.badSignature))
        XCTAssertEqual(
            code {
                _ = try runHandshake {
                    if case .helloFinish = $0 {
                        $0 = .helloFinish(HelloFinish(signature: Seeds.initiator.signRaw([1])))
                    }
                }
            }, .failed(.badSignature))
        // A message out of turn.
        var responder = HandshakeStateMachine(
            responder: HandshakeConfiguration(identity: Seeds.responder, chainID: ChainIDs.devnet),
            ephemeral: Seeds.responderEphemeral())
        XCTAssertEqual(code { _ = try responder.receive(.ping(Ping(nonce: 1))) }, .failed(.unexpectedMessage))
        // The peer's own error ends the handshake as reported by the peer.
        var initiator = HandshakeStateMachine(
            initiator: HandshakeConfiguration(identity: Seeds.initiator, chainID: ChainIDs.devnet),
            ephemeral: Seeds.initiatorEphemeral())
        _ = initiator.start()
        XCTAssertThrowsError(try initiator.receive(.error(ErrorReport(code: .overloaded, text: "busy")))) {
            XCTAssertEqual($0 as? SessionError, SessionError(.overloaded, "busy", fromPeer: true))
        }
    }

    func testRecordCipherRejectsReplayReorderAndForgery() throws {
        let (_, i, r) = try runHandshake()
        var sender = RecordCipher(i)
        var receiver = RecordCipher(r)
        var records: [ByteBuffer] = []
        for n in 0..<3 {
            var out = ByteBuffer()
            try sender.sealRecord(.ping(Ping(nonce: UInt64(n))), into: &out)
            var payload = out
            payload.moveReaderIndex(forwardBy: 4)
            records.append(payload)
        }
        XCTAssertEqual(try Message.decode(frame: try receiver.openRecord(records[0])), .ping(Ping(nonce: 0)))
        // Replay of record 0, then record 2 before 1: both fail.
        XCTAssertThrowsError(try receiver.openRecord(records[0])) {
            XCTAssertEqual(($0 as? SessionError)?.code, .decryptionFailed)
        }
        XCTAssertThrowsError(try receiver.openRecord(records[2])) {
            XCTAssertEqual(($0 as? SessionError)?.code, .decryptionFailed)
        }
        var forged = records[1]
        forged.setInteger(
            forged.getInteger(at: forged.writerIndex - 1, as: UInt8.self)! ^ 1, at: forged.writerIndex - 1)
        XCTAssertThrowsError(try receiver.openRecord(forged))
        XCTAssertEqual(
            try Message.decode(frame: try receiver.openRecord(records[1])), .ping(Ping(nonce: 1)),
            "failures consume nothing")
    }

    func testReplayWindow() {
        var window = ReplayWindow()
        for n: UInt64 in [5, 3, 70] {
            XCTAssertEqual(window.check(n), .fresh)
            window.record(n)
        }
        XCTAssertEqual(window.check(70), .duplicate)
        XCTAssertEqual(window.check(5), .tooOld, "70 - 5 >= 64")
        XCTAssertEqual(window.check(6), .tooOld)
        XCTAssertEqual(window.check(7), .fresh, "70 - 7 < 64")
        XCTAssertEqual(window.check(69), .fresh)
    }

    // MARK: Vectors

    struct HandshakeVector: Codable, Equatable {
        var description: String
        var initiator_identity_seed: String
        var responder_identity_seed: String
        var initiator_ephemeral_seed: String
        var responder_ephemeral_seed: String
        var chain_id: String
        var hello: String
        var hello_reply: String
        var hello_finish: String
        var transcript_hash: String
        var initiator_to_responder_key: String
        var responder_to_initiator_key: String
        var first_tcp_record: String
        var first_tcp_record_plaintext: String
        var first_udp_packet: String
        var first_udp_packet_plaintext: String
        /// A loaded responder's cookie packet (the cookie itself is the responder's own: here
        /// sixteen 0x5a bytes), and the `hello` sent again with it (proto/README.md, "UDP cookies").
        var udp_cookie_packet: String
        var udp_cookie_hello_packet: String
    }

    func builtVector() throws -> HandshakeVector {
        let (frames, i, _) = try runHandshake()
        var cipher = RecordCipher(i)
        let note = SignedNote(signedBy: Seeds.initiator, chainID: ChainIDs.devnet, number: 0, body: Array("first".utf8))
        var record = ByteBuffer()
        try cipher.sealRecord(.signedNote(note), into: &record)
        // The initiator's first UDP data packet: packet number 0, nothing received yet, frame 0 = ping 1.
        let content = UDPSealedContent(
            acknowledgement: Acknowledgement(ackNext: 0, selectiveAcks: 0),
            sequencedFrame: (0, ByteBuffer(bytes: Message.ping(Ping(nonce: 1)).frameBytes())))
        var plaintext = ByteBuffer()
        content.encode(into: &plaintext)
        let header = UDPSealedContent.header(kind: .data, packetNumber: 0)
        let sealed = i.sendKey.seal(Array(plaintext.readableBytesView), associatedData: header, counter: 0)
        let cookie = [UInt8](repeating: 0x5a, count: WireLimits.udpCookieBytes)
        return HandshakeVector(
            description:
                "A whole handshake from fixed seeds, the initiator's first TCP record (a signed_note) and its first UDP data packet (a ping), as in proto/README.md",
            initiator_identity_seed: [UInt8](repeating: 1, count: 32).hexString,
            responder_identity_seed: [UInt8](repeating: 2, count: 32).hexString,
            initiator_ephemeral_seed: [UInt8](repeating: 3, count: 32).hexString,
            responder_ephemeral_seed: [UInt8](repeating: 4, count: 32).hexString,
            chain_id: ChainIDs.devnet.bytes.hexString,
            hello: frames[0].frameBytes().hexString, hello_reply: frames[1].frameBytes().hexString,
            hello_finish: frames[2].frameBytes().hexString,
            transcript_hash: i.transcriptHash.bytes.hexString,
            initiator_to_responder_key: i.sendKey.exposedBytes().hexString,
            responder_to_initiator_key: i.receiveKey.exposedBytes().hexString,
            first_tcp_record: Array(record.readableBytesView).hexString,
            first_tcp_record_plaintext: Message.signedNote(note).frameBytes().hexString,
            first_udp_packet: (header + sealed).hexString,
            first_udp_packet_plaintext: Array(plaintext.readableBytesView).hexString,
            udp_cookie_packet: ([UDPPacketKind.cookie.rawValue] + cookie).hexString,
            udp_cookie_hello_packet: ([UDPPacketKind.cookieHandshake.rawValue] + cookie + frames[0].frameBytes())
                .hexString)
    }

    func testHandshakeVectorBothWays() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("proto/vectors/handshake.json")
        let built = try builtVector()
        if ProcessInfo.processInfo.environment["RWANET_WRITE_VECTORS"] == "1" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try (encoder.encode(built) + Data("\n".utf8)).write(to: url)
        }
        let file = try JSONDecoder().decode(HandshakeVector.self, from: Data(contentsOf: url))
        // Encode: running the machines from the seeds reproduces every byte of the file.
        XCTAssertEqual(built, file)
        // Decode: the responder, fed the file's frames, accepts them and derives the same keys;
        // the file's record and packet open under those keys to the file's plaintext.
        var responder = HandshakeStateMachine(
            responder: HandshakeConfiguration(identity: Seeds.responder, chainID: ChainIDs.devnet),
            ephemeral: Seeds.responderEphemeral())
        let hello = try Message.decode(frame: ByteBuffer(bytes: [UInt8](hex: file.hello)!))
        guard case .send(let reply) = try responder.receive(hello) else { return XCTFail("no reply") }
        XCTAssertEqual(reply.frameBytes().hexString, file.hello_reply)
        guard
            case .establish(let session) = try responder.receive(
                try Message.decode(frame: ByteBuffer(bytes: [UInt8](hex: file.hello_finish)!)))
        else {
            return XCTFail("not established")
        }
        XCTAssertEqual(session.receiveKey.exposedBytes().hexString, file.initiator_to_responder_key)
        var cipher = RecordCipher(session)
        var record = ByteBuffer(bytes: [UInt8](hex: file.first_tcp_record)!)
        let payload = try XCTUnwrap(try TCPRecord.readPayload(&record))
        XCTAssertEqual(
            Array(try cipher.openRecord(payload).readableBytesView).hexString, file.first_tcp_record_plaintext)
        let packet = [UInt8](hex: file.first_udp_packet)!
        XCTAssertEqual(
            try session.receiveKey.open(Array(packet.dropFirst(9)), associatedData: Array(packet.prefix(9)), counter: 0)
                .hexString,
            file.first_udp_packet_plaintext)
        // The cookie packets: kind, the 16 cookie bytes, and (kind 5) the vectors' hello.
        let cookiePacket = [UInt8](hex: file.udp_cookie_packet)!
        XCTAssertEqual(cookiePacket.count, 1 + WireLimits.udpCookieBytes)
        XCTAssertEqual(UDPPacketKind(rawValue: cookiePacket[0]), .cookie)
        let cookieHello = [UInt8](hex: file.udp_cookie_hello_packet)!
        XCTAssertEqual(UDPPacketKind(rawValue: cookieHello[0]), .cookieHandshake)
        XCTAssertEqual(Array(cookieHello[1...WireLimits.udpCookieBytes]), Array(cookiePacket.dropFirst()))
        XCTAssertEqual(
            try Message.decode(frame: ByteBuffer(bytes: cookieHello.dropFirst(1 + WireLimits.udpCookieBytes))), hello)
    }
}
