// Goal: the paths users take, with real processes on loopback. Two `rwa-peer` processes handshake
// over TCP and over UDP and exchange 10,000 signed notes each way, every one checked by both
// sides (author, signature, consecutive numbers, reply hash); UDP does it again with 20% loss,
// duplication and reordering injected by the transport's test hook on both sides. Then a
// listener is attacked with malformed input while a well-behaved client is served.
import Foundation
import NIOCore
import RWACrypto
import RWATestSupport
import RWAWire
import XCTest

@testable import RWANode

final class ProcessTests: XCTestCase {
    func exchange(transport: String, count: Int, faults: String? = nil) throws {
        let scratch = try Scratch()
        let server = try scratch.key("server")
        let client = try scratch.key("client")
        let environment = faults.map { ["RWANET_UDP_FAULTS": $0] } ?? [:]
        let listener = try PeerProcess(
            ["listen", "--key", server.path, "--transport", transport, "--sessions", "1"], environment: environment)
        defer { listener.stop() }
        let ready = try XCTUnwrap(listener.nextLine(), "listener did not start")
        let fields = ready.split(separator: " ")
        XCTAssertEqual(fields.first, "listening")
        XCTAssertEqual(String(fields[4]), server.pair.publicKey.description)
        let sender = try PeerProcess(
            [
                "send", "--key", client.path, "--transport", transport, "--port", String(fields[3]),
                "--count", String(count), "--expect-peer", server.pair.publicKey.description,
            ], environment: environment)
        let summary = try XCTUnwrap(sender.nextLine(timeout: 240), "sender printed nothing")
        XCTAssertEqual(sender.waitForExit(), 0, summary)
        let json = try JSONSerialization.jsonObject(with: Data(summary.utf8)) as? [String: Any]
        XCTAssertEqual(json?["sent"] as? Int, count)
        XCTAssertEqual(json?["verified"] as? Int, count, "every answer checked")
        XCTAssertEqual(
            listener.nextLine(timeout: 30), "session \(client.pair.publicKey) verified \(count) answered \(count)")
        XCTAssertEqual(listener.waitForExit(timeout: 30), 0)
    }

    func testTCPExchangesTenThousandSignedNotesEachWay() throws {
        try exchange(transport: "tcp", count: 10_000)
    }

    func testUDPExchangesTenThousandSignedNotesEachWay() throws {
        try exchange(transport: "udp", count: 10_000)
    }

    func testUDPDeliversEverythingOnceInOrderUnderLossDuplicationAndReordering() throws {
        try exchange(transport: "udp", count: 10_000, faults: "loss=0.2,dup=0.1,reorder=0.1,seed=11")
    }

    func testMalformedInputGetsItsErrorAndOthersAreServedThroughout() throws {
        let scratch = try Scratch()
        let server = try scratch.key("server")
        let good = try scratch.key("good")
        let attacker = try scratch.key("attacker")
        let listener = try PeerProcess(["listen", "--key", server.path, "--transport", "tcp"])
        defer { listener.stop() }
        let port = Int(try XCTUnwrap(listener.nextLine()).split(separator: " ")[3])!
        // The well-behaved client runs strict request/response for the whole attack.
        let wellBehaved = try PeerProcess([
            "send", "--key", good.path, "--port", String(port), "--count", "3000", "--window", "1",
        ])
        usleep(200_000)
        let memoryBefore = listener.residentBytes

        func expectError(_ code: ErrorCode, _ name: String, _ attack: (RawTCPClient) throws -> RecordCipher?) throws {
            let client = try RawTCPClient(port: port)
            var cipher = try attack(client)
            XCTAssertEqual(decodeError(client.readPayload(), cipher: &cipher), code, name)
            XCTAssertTrue(client.isClosedByServer(), "\(name): connection dropped")
        }

        for _ in 0..<20 {
            try expectError(.malformedFrame, "truncated frame") { client in
                client.send([0, 0, 0, 5, 0x00, 0x10, 0x00, 0x01, 0x00])
                return nil
            }
            try expectError(.frameTooLarge, "length of 4 GiB") { client in
                client.send([0xff, 0xff, 0xff, 0xff, 1, 2, 3])
                return nil
            }
            try expectError(.unknownRequiredMessage, "unknown even type") { client in
                client.send([0, 0, 0, 3, 0x08, 0x00, 0xaa])  // 0x0800: unassigned
                return nil
            }
            try expectError(.unexpectedMessage, "wrong type for the handshake") { client in
                client.sendRecord(.ping(Ping(nonce: 1)))
                return nil
            }
            try expectError(.badSignature, "bad handshake signature") { client in
                _ = try client.handshake(identity: attacker.pair, tamperFinish: true)
                return nil
            }
            try expectError(.decryptionFailed, "forged AEAD tag") { client in
                let session = try XCTUnwrap(try client.handshake(identity: attacker.pair))
                var cipher = RecordCipher(session)
                var record = ByteBuffer()
                try cipher.sealRecord(.ping(Ping(nonce: 7)), into: &record)
                var bytes = Array(record.readableBytesView)
                bytes[bytes.count - 1] ^= 0x01
                client.send(bytes)
                return cipher
            }
            try expectError(.decryptionFailed, "replayed record") { client in
                let session = try XCTUnwrap(try client.handshake(identity: attacker.pair))
                var cipher = RecordCipher(session)
                var record = ByteBuffer()
                try cipher.sealRecord(.ping(Ping(nonce: 7)), into: &record)
                client.send(Array(record.readableBytesView))
                var copy: RecordCipher? = cipher
                let pong = client.readPayload()
                XCTAssertNotNil(pong)
                _ = try? copy!.openRecord(ByteBuffer(bytes: pong!))
                client.send(Array(record.readableBytesView))  // the same bytes again
                return copy
            }
            try expectError(.badSignature, "note with a bad signature") { client in
                let session = try XCTUnwrap(try client.handshake(identity: attacker.pair))
                var cipher = RecordCipher(session)
                var note = SignedNote(signedBy: attacker.pair, chainID: ChainIDs.devnet, number: 0, body: [1, 2, 3])
                note.body = [1, 2, 4]
                var record = ByteBuffer()
                try cipher.sealRecord(.signedNote(note), into: &record)
                client.send(Array(record.readableBytesView))
                return cipher
            }
        }
        let memoryAfter = listener.residentBytes
        XCTAssertLessThan(
            memoryAfter - memoryBefore, 32 << 20, "memory grew from \(memoryBefore) to \(memoryAfter) bytes")

        let summary = try XCTUnwrap(wellBehaved.nextLine(timeout: 240))
        XCTAssertEqual(wellBehaved.waitForExit(), 0, summary)
        XCTAssertTrue(summary.contains(#""verified":3000"#), summary)
    }

    func testUDPGarbageGetsAnErrorDatagramNoLargerThanItself() throws {
        let scratch = try Scratch()
        let server = try scratch.key("server")
        let listener = try PeerProcess(["listen", "--key", server.path, "--transport", "udp"])
        defer { listener.stop() }
        let port = Int(try XCTUnwrap(listener.nextLine()).split(separator: " ")[3])!
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        func send(_ bytes: [UInt8]) {
            _ = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                    bytes.withUnsafeBytes {
                        sendto(
                            fd, $0.baseAddress, $0.count, 0, sockaddrPointer, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        }
        let padding = [UInt8](repeating: 0, count: 60)
        let ping = Message.ping(Ping(nonce: 1, padding: padding)).frameBytes()
        for (garbage, code) in [
            ([UInt8](arrayLiteral: 0x01, 0x00, 0x10) + padding, ErrorCode.malformedFrame),  // truncated hello
            ([0x7f] + padding, .malformedFrame),  // unknown packet kind
            ([0x01] + ping, .unexpectedMessage),
        ] {  // no session for a ping
            send(garbage)
            var reply = [UInt8](repeating: 0, count: 2048)
            let count = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            XCTAssertGreaterThan(count, 1)
            XCTAssertLessThanOrEqual(
                count, garbage.count, "never more bytes back than came in (source addresses can be forged)")
            XCTAssertEqual(reply.first, UDPPacketKind.handshake.rawValue)
            guard count > 1, case .error(let report)? = try? Message.decode(frame: ByteBuffer(bytes: reply[1..<count]))
            else {
                XCTFail("no error frame for \(garbage)")
                continue
            }
            XCTAssertEqual(report.code, code)
        }
        // Too short for even a bare error frame: no answer at all.
        timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        send([0x7f, 1, 2])
        var reply = [UInt8](repeating: 0, count: 64)
        XCTAssertEqual(reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }, -1)
    }
}
