// Goal: the paths users take, with real processes on loopback. Two `rwa-peer` processes handshake
// over TCP and over UDP and exchange 10,000 signed notes each way, every one checked by both
// sides (author, signature, consecutive numbers, reply hash); UDP does it again with 20% loss,
// duplication and reordering injected by the transport's test hook on both sides. Then a
// listener is attacked with malformed input while a well-behaved client is served.
import Foundation
import NIOCore
import RWACrypto
import RWASession
import RWATestSupport
import RWAWire
import XCTest

@testable import RWANode

final class ProcessTests: XCTestCase {
    /// Runs a listener and a sender of `count` notes; returns the listener's session line and the
    /// sender's JSON summary.
    @discardableResult
    func exchange(transport: String, count: Int, faults: String? = nil) throws -> (
        session: String, summary: [String: Any]
    ) {
        let scratch = try Scratch()
        let server = try scratch.key("server")
        let client = try scratch.key("client")
        let environment = faults.map { ["RWANET_UDP_FAULTS": $0] } ?? [:]
        let listener = try PeerProcess(
            ["listen", "--key", server.path, "--transport", transport, "--sessions", "1"], environment: environment)
        defer { listener.stop() }
        let ready = try listener.requireListening(transport)
        XCTAssertEqual(ready.publicKey, server.pair.publicKey.description)
        let sender = try PeerProcess(
            [
                "send", "--key", client.path, "--transport", transport, "--port", String(ready.port),
                "--count", String(count), "--expect-peer", server.pair.publicKey.description,
            ], environment: environment)
        defer { sender.stop() }
        let summaryLine = try sender.requireLine("the sender's summary", timeout: 240)
        XCTAssertEqual(sender.waitForExit(), 0, summaryLine)
        let summary = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(summaryLine.utf8)) as? [String: Any], summaryLine)
        XCTAssertEqual(summary["sent"] as? Int, count)
        XCTAssertEqual(summary["verified"] as? Int, count, "every answer checked")
        let session = try listener.requireLine("the listener's session line")
        XCTAssertTrue(
            session.hasPrefix("session \(client.pair.publicKey) verified \(count) answered \(count)"), session)
        XCTAssertEqual(listener.waitForExit(timeout: 30), 0)
        return (session, summary)
    }

    func testTCPExchangesTenThousandSignedNotesEachWay() throws {
        try exchange(transport: "tcp", count: 10_000)
    }

    func testUDPExchangesTenThousandSignedNotesEachWay() throws {
        let (_, summary) = try exchange(transport: "udp", count: 10_000)
        // Nothing is lost on loopback: retransmissions are spurious timeouts of a busy machine.
        // They must stay a minority; before the timeout kept its backoff (RFC 6298 5.5), nearly
        // every frame went twice.
        let counts = try XCTUnwrap(summary["udp"] as? [String: Int], "the sender reports its UDP counters")
        XCTAssertEqual(counts["dropped"], 0)
        XCTAssertLessThan(counts["retransmitted"] ?? .max, 10_000 / 2, "spurious retransmissions: \(counts)")
    }

    func testUDPDeliversEverythingOnceInOrderUnderLossDuplicationAndReordering() throws {
        let (session, summary) = try exchange(
            transport: "udp", count: 10_000, faults: "loss=0.2,dup=0.1,reorder=0.1,seed=11")
        // Both peers report what their fault hook did: the faults really happened, and reliable
        // delivery repaired them (the notes were all checked in order above).
        var listenerCounts: [String: Int] = [:]
        for field in session.split(separator: " ") where field.contains("=") {
            let parts = field.split(separator: "=")
            listenerCounts[String(parts[0])] = parts.count == 2 ? Int(parts[1]) : nil
        }
        let senderCounts = try XCTUnwrap(summary["udp"] as? [String: Int], "the sender reports its UDP counters")
        for (peer, counts) in [("listener", listenerCounts), ("sender", senderCounts)] {
            let datagrams = try XCTUnwrap(counts["datagrams"], "\(peer): \(counts)")
            let dropped = try XCTUnwrap(counts["dropped"], "\(peer): \(counts)")
            XCTAssertGreaterThan(datagrams, 10_000, "\(peer): every note went out at least once")
            let lossRate = Double(dropped) / Double(datagrams)
            XCTAssertEqual(lossRate, 0.2, accuracy: 0.03, "\(peer) dropped \(dropped) of \(datagrams)")
            XCTAssertGreaterThan(counts["duplicated"] ?? 0, datagrams / 20, "\(peer): \(counts)")
            XCTAssertGreaterThan(counts["reordered"] ?? 0, datagrams / 20, "\(peer): \(counts)")
            XCTAssertGreaterThan(counts["retransmitted"] ?? 0, dropped / 4, "\(peer) repaired losses: \(counts)")
            XCTAssertGreaterThan(counts["duplicates_received"] ?? 0, 0, "\(peer) saw duplicates: \(counts)")
        }
    }

    func testAMalformedFaultSettingIsRefused() throws {
        let scratch = try Scratch()
        let server = try scratch.key("server")
        for (faults, complaint) in [
            ("loss=0.2,lost=0.1", "unknown key `lost`"), ("loss=high", "loss=high"), ("loss=1.5", "loss=1.5"),
            ("seed=-1", "seed=-1"), ("loss=0.1,loss=0.2", "`loss` given twice"), ("loss", "`loss` is not key=value"),
        ] {
            let refused = try ToolProcess.run(
                tool: "rwa-peer", ["listen", "--key", server.path, "--transport", "udp"],
                environment: ["RWANET_UDP_FAULTS": faults], timeout: 30)
            XCTAssertEqual(refused.status, 1, "\(faults): \(refused.transcript)")
            XCTAssertTrue(refused.errors.joined().contains(complaint), "\(faults): \(refused.transcript)")
            XCTAssertFalse(refused.output.joined().contains("listening"), "\(faults): it must not start")
        }
    }

    func testMalformedInputGetsItsErrorAndOthersAreServedThroughout() throws {
        let scratch = try Scratch()
        let server = try scratch.key("server")
        let attacker = try scratch.key("attacker")
        let listener = try PeerProcess(["listen", "--key", server.path, "--transport", "tcp"])
        defer { listener.stop() }
        let port = try listener.requireListening("tcp").port
        // The well-behaved client runs strict request/response for the whole attack, timing each.
        let wellBehaved = try WellBehavedClient(port: port, identity: .generate(), server: server.pair.publicKey)
        usleep(200_000)
        var memory: [Int] = []

        func expectError(_ code: ErrorCode, _ name: String, _ attack: (RawTCPClient) throws -> RecordCipher?) throws {
            let client = try RawTCPClient(port: port)
            var cipher = try attack(client)
            XCTAssertEqual(decodeError(client.readPayload(), cipher: &cipher), code, name)
            XCTAssertTrue(client.isClosedByServer(), "\(name): connection dropped")
        }

        let attackStart = Date()
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
                let session = try client.handshake(identity: attacker.pair)
                var cipher = RecordCipher(session)
                var record = ByteBuffer()
                try cipher.sealRecord(.ping(Ping(nonce: 7)), into: &record)
                var bytes = Array(record.readableBytesView)
                bytes[bytes.count - 1] ^= 0x01
                client.send(bytes)
                return cipher
            }
            try expectError(.decryptionFailed, "replayed record") { client in
                let session = try client.handshake(identity: attacker.pair)
                var cipher = RecordCipher(session)
                var record = ByteBuffer()
                try cipher.sealRecord(.ping(Ping(nonce: 7)), into: &record)
                client.send(Array(record.readableBytesView))
                let pong = try XCTUnwrap(client.readPayload(), "the ping is answered")
                guard case .pong(let answer) = try Message.decode(frame: try cipher.openRecord(ByteBuffer(bytes: pong)))
                else { throw ToolOutputError("the ping was not answered by a pong") }
                XCTAssertEqual(answer.nonce, 7)
                client.send(Array(record.readableBytesView))  // the same bytes again
                return cipher
            }
            try expectError(.badSignature, "note with a bad signature") { client in
                let session = try client.handshake(identity: attacker.pair)
                var cipher = RecordCipher(session)
                var note = SignedNote(signedBy: attacker.pair, chainID: ChainIDs.devnet, number: 0, body: [1, 2, 3])
                note.body = [1, 2, 4]
                var record = ByteBuffer()
                try cipher.sealRecord(.signedNote(note), into: &record)
                client.send(Array(record.readableBytesView))
                return cipher
            }
            memory.append(try XCTUnwrap(listener.residentBytes, "the listener is still running"))
        }
        let attackEnd = Date()
        let served = wellBehaved.stop()
        XCTAssertNil(served.failure, "the well-behaved client's session failed")

        // Served throughout: exchanges in every tenth of the attack, none of them slow.
        let attack = attackEnd.timeIntervalSince(attackStart)
        let during = served.exchanges.filter { $0.finished >= attackStart && $0.finished <= attackEnd }
        let tenths = Set(during.map { Int($0.finished.timeIntervalSince(attackStart) / attack * 10) })
        XCTAssertEqual(
            tenths.union([10]), Set(0...10), "exchanges in every tenth of the \(attack) s attack: \(tenths.sorted())")
        let worst = during.map(\.seconds).max() ?? .infinity
        print("well-behaved client: \(during.count) exchanges during the \(attack) s attack, worst \(worst * 1000) ms")
        XCTAssertLessThan(worst, 1.0, "worst round trip during the attack")
        // Memory: one sample per round of attacks; after the first round it must stay flat.
        let growth = (memory.dropFirst().max() ?? 0) - (memory.first ?? 0)
        print("listener resident memory per round (MiB): \(memory.map { $0 >> 20 })")
        XCTAssertLessThan(growth, 16 << 20, "memory per round (bytes): \(memory)")
    }

    func testUDPGarbageGetsAnErrorDatagramNoLargerThanItself() throws {
        let scratch = try Scratch()
        let server = try scratch.key("server")
        let listener = try PeerProcess(["listen", "--key", server.path, "--transport", "udp"])
        defer { listener.stop() }
        let port = try listener.requireListening("udp").port
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
        XCTAssertTrue(errno == EAGAIN || errno == EWOULDBLOCK, "silence, not a socket error: errno \(errno)")
        // And the listener is alive and still answers garbage it can afford to answer.
        send([0x7f] + padding)
        XCTAssertGreaterThan(reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }, 1)
    }
}

/// A client that exchanges signed notes strictly one at a time on its own thread, timing each
/// round trip, until stopped: the well-behaved user of a listener under attack.
final class WellBehavedClient: @unchecked Sendable {
    struct Exchange {
        var finished: Date
        var seconds: Double
    }

    private let lock = NSLock()
    private var stopping = false
    private var exchanges: [Exchange] = []
    private var failure: String?
    private let done = DispatchSemaphore(value: 0)

    init(port: Int, identity: SigningKeyPair, server: SigningPublicKey) throws {
        // Used by the thread alone once the handshake is done.
        nonisolated(unsafe) let client = try RawTCPClient(port: port)
        let session = try client.handshake(identity: identity)
        XCTAssertEqual(session.peerIdentity, server)
        let thread = Thread { [self] in
            defer { done.signal() }
            var cipher = RecordCipher(session)
            var number: UInt64 = 0
            while !isStopping {
                let note = SignedNote(signedBy: identity, chainID: ChainIDs.devnet, number: number, body: [1])
                let started = Date()
                do {
                    var record = ByteBuffer()
                    try cipher.sealRecord(.signedNote(note), into: &record)
                    client.send(Array(record.readableBytesView))
                    guard let payload = client.readPayload() else {
                        throw ToolOutputError("no answer to note \(number)")
                    }
                    guard
                        case .signedNote(let answer) = try Message.decode(
                            frame: try cipher.openRecord(ByteBuffer(bytes: payload))),
                        answer.inReplyTo == note.hash, answer.author == server
                    else { throw ToolOutputError("note \(number) was not answered by the server's note") }
                } catch {
                    record(failure: "\(error)")
                    return
                }
                record(Exchange(finished: Date(), seconds: Date().timeIntervalSince(started)))
                number += 1
            }
        }
        thread.start()
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    private func record(_ exchange: Exchange) {
        lock.lock()
        exchanges.append(exchange)
        lock.unlock()
    }

    private func record(failure: String) {
        lock.lock()
        self.failure = failure
        lock.unlock()
    }

    /// Stops after the exchange in progress (waiting at most 15 s) and returns what it saw.
    func stop() -> (exchanges: [Exchange], failure: String?) {
        lock.lock()
        stopping = true
        lock.unlock()
        if done.wait(timeout: .now() + 15) == .timedOut { record(failure: "did not stop within 15 s") }
        lock.lock()
        defer { lock.unlock() }
        return (exchanges, failure)
    }
}
