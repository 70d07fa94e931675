// Goal: the transports' bounds, in-process on loopback: the session bound, the handshake
// timeout and the per-peer inbox bound under a flood, on TCP and UDP; and the TCP record decoder
// fed whole, byte by byte and many at once. (Keepalive and idle run on virtual time elsewhere.)
import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOTestUtils
import RWACrypto
import RWASession
import RWATestSupport
import RWAWire
import XCTest

@testable import RWANode

final class TransportTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup.singleton

    func configuration(
        _ identity: SigningKeyPair = .generate(), _ adjust: (inout SessionConfiguration) -> Void = { _ in }
    ) throws -> SessionConfiguration {
        var configuration = try SessionConfiguration(
            handshake: HandshakeConfiguration(identity: identity, chainID: ChainIDs.devnet))
        configuration.keyLog = nil
        configuration.udpFaults = nil
        adjust(&configuration)
        return configuration
    }

    func listen(_ transport: TransportKind, _ configuration: SessionConfiguration) async throws -> SessionListener {
        try await transport.listen(host: "127.0.0.1", port: 0, configuration: configuration, group: group)
    }

    func dial(_ transport: TransportKind, _ port: Int, _ configuration: SessionConfiguration) async throws
        -> PeerSession
    {
        try await transport.dial(host: "127.0.0.1", port: port, configuration: configuration, group: group)
    }

    func testSessionBoundRefusesTheNextPeerWithOverloaded() async throws {
        try await withTimeout(60, "testSessionBoundRefusesTheNextPeerWithOverloaded") { [self] in
            for transport in TransportKind.allCases {
                let listener = try await listen(transport, configuration { $0.sessionsMax = 1 })
                let first = try await dial(transport, listener.port, configuration())
                do {
                    _ = try await dial(transport, listener.port, configuration { $0.handshakeTimeout = .seconds(2) })
                    XCTFail("\(transport): second session admitted")
                } catch let error as SessionError {
                    XCTAssertEqual(error.code, .overloaded, "\(transport)")
                    XCTAssertTrue(error.fromPeer)
                }
                await first.close()
                await listener.close()
            }
        }
    }

    /// A full listener evicts its idlest session for a newcomer once that one has been silent
    /// for `evictionIdleMinimum`: silent sessions cannot hold every slot.
    func testAFullListenerEvictsItsIdlestSessionForANewcomer() async throws {
        try await withTimeout(60, "testAFullListenerEvictsItsIdlestSessionForANewcomer") { [self] in
            for transport in TransportKind.allCases {
                let listenerKey = SigningKeyPair.generate()
                let listener = try await listen(
                    transport,
                    configuration(listenerKey) {
                        $0.sessionsMax = 1
                        $0.evictionIdleMinimum = .milliseconds(100)
                    })
                let silent = try await dial(transport, listener.port, configuration())
                try await Task.sleep(for: .milliseconds(300))
                let newcomer = try await dial(transport, listener.port, configuration())
                try await withTimeout(10, "\(transport): the silent session is evicted") {
                    try? await silent.closeFuture.get()
                }
                XCTAssertEqual(newcomer.peerIdentity, listenerKey.publicKey, "\(transport)")
                await newcomer.close()
                await listener.close()
            }
        }
    }

    /// A session that never said anything after its handshake is evicted sooner
    /// (`evictionSilentMinimum`) than one that has talked (`evictionIdleMinimum`): holding slots
    /// takes renewing every one of them that fast.
    func testAFullListenerEvictsASilentSessionBeforeOneThatTalked() async throws {
        try await withTimeout(60, "testAFullListenerEvictsASilentSessionBeforeOneThatTalked") { [self] in
            for transport in TransportKind.allCases {
                let listener = try await listen(
                    transport,
                    configuration {
                        $0.sessionsMax = 2
                        $0.evictionIdleMinimum = .seconds(30)
                        $0.evictionSilentMinimum = .milliseconds(100)
                    })
                var accepted = listener.sessions.makeAsyncIterator()
                let author = SigningKeyPair.generate()
                let talker = try await dial(transport, listener.port, configuration())
                try await talker.send(
                    .signedNote(SignedNote(signedBy: author, chainID: ChainIDs.devnet, number: 1, body: [])))
                let talkerAtListener = await accepted.next()
                for try await case .signedNote in try XCTUnwrap(talkerAtListener).inbox { break }
                let silent = try await dial(transport, listener.port, configuration())
                try await Task.sleep(for: .milliseconds(300))

                let newcomer = try await dial(transport, listener.port, configuration())
                try await withTimeout(10, "\(transport): the silent session is evicted") {
                    try? await silent.closeFuture.get()
                }
                try await talker.send(
                    .signedNote(SignedNote(signedBy: author, chainID: ChainIDs.devnet, number: 2, body: [])))
                for try await case .signedNote(let note) in try XCTUnwrap(talkerAtListener).inbox {
                    XCTAssertEqual(note.number, 2, "\(transport): the session that talked is still served")
                    break
                }
                await newcomer.close()
                await talker.close()
                await listener.close()
            }
        }
    }

    func testHandshakeTimeoutDropsASilentPeer() async throws {
        try await withTimeout(60, "testHandshakeTimeoutDropsASilentPeer") { [self] in
            let listener = try await listen(.tcp, configuration { $0.handshakeTimeout = .milliseconds(200) })
            let client = try RawTCPClient(port: listener.port)
            var noCipher: RecordCipher? = nil
            XCTAssertEqual(decodeError(client.readPayload(), cipher: &noCipher), .handshakeTimeout)
            XCTAssertTrue(client.isClosedByServer())
            await listener.close()
        }
    }

    // Keepalive and the idle timeout are tested on virtual time, for both transports:
    // SessionCoreTests (the rules), TCPShellTests and UDPShellTests (the shells carrying them out).

    func testInboxStaysBoundedUnderAFloodAndLosesNothing() async throws {
        try await withTimeout(60, "testInboxStaysBoundedUnderAFloodAndLosesNothing") { [self] in
            for transport in TransportKind.allCases {
                let capacity = 16
                let listener = try await listen(transport, configuration { $0.inboxCapacity = capacity })
                let author = SigningKeyPair.generate()
                let session = try await dial(transport, listener.port, configuration(author))
                var accepted = listener.sessions.makeAsyncIterator()
                let acceptedSession = await accepted.next()
                let server = try XCTUnwrap(acceptedSession)
                let total = 2_000
                let flood = Task {
                    for n in 0..<total {
                        try await session.send(
                            .signedNote(
                                SignedNote(signedBy: author, chainID: ChainIDs.devnet, number: UInt64(n), body: []))
                        )
                    }
                }
                // The consumer does not read: the inbox fills to its bound (waited for, not slept
                // for) and no further, however long it waits. (The exact bound, one record per
                // socket read, is TCPShellTests' on virtual time.)
                var maximum = 0
                let filled = ContinuousClock.now + .seconds(20)
                while server.inbox.bufferedCount < capacity {
                    guard ContinuousClock.now < filled else { break }
                    try await Task.sleep(for: .milliseconds(2))
                }
                for _ in 0..<10 {
                    maximum = max(maximum, server.inbox.bufferedCount)
                    try await Task.sleep(for: .milliseconds(10))
                }
                // Full, and over by at most what was already in flight when it filled: the records of
                // one 64 KiB socket read (TCP, notes of 160 bytes), or one window of frames (UDP).
                XCTAssertGreaterThanOrEqual(
                    maximum, capacity, "\(transport): the consumer did not read, so the inbox filled")
                let slack = transport == .tcp ? 65_536 / 160 : ReliabilityConfiguration().windowFrames
                XCTAssertLessThanOrEqual(maximum, capacity + slack, "\(transport): inbox bound")
                var next: UInt64 = 0
                for try await message in server.inbox {
                    guard case .signedNote(let note) = message else { continue }
                    XCTAssertEqual(note.number, next, "\(transport): in order, exactly once")
                    next += 1
                    if next == total { break }
                }
                try await flood.value
                XCTAssertEqual(next, UInt64(total))
                await session.close()
                await listener.close()
            }
        }
    }

    func testAnAnswerToNothingClosesTheSessionInsteadOfCrashing() async throws {
        try await withTimeout(60, "testAnAnswerToNothingClosesTheSessionInsteadOfCrashing") { [self] in
            let serverIdentity = SigningKeyPair.generate()
            let listener = try await listen(.tcp, configuration(serverIdentity))
            let clientIdentity = SigningKeyPair.generate()
            let client = try await dial(.tcp, listener.port, configuration(clientIdentity))
            var accepted = listener.sessions.makeAsyncIterator()
            let acceptedSession = await accepted.next()
            let server = try XCTUnwrap(acceptedSession)
            let exchange = NoteExchange.exchange(
                client, identity: clientIdentity, chainID: ChainIDs.devnet, count: 1, window: 1)
            var inbox = server.inbox.makeAsyncIterator()
            guard case .signedNote(let note)? = try await inbox.next() else { return XCTFail("no note") }
            // Two answers to one note: the first completes the exchange, the second answers nothing.
            for number: UInt64 in [0, 1] {
                try await server.send(
                    .signedNote(
                        SignedNote(
                            signedBy: serverIdentity, chainID: ChainIDs.devnet, number: number, inReplyTo: note.hash,
                            body: [])))
            }
            let summary = try await exchange.get()
            XCTAssertEqual(summary.verified, 1)
            do {
                while try await inbox.next() != nil {}
                XCTFail("the client should have closed with an error")
            } catch let error as SessionError {
                XCTAssertEqual(error.code, .unexpectedMessage)
                XCTAssertTrue(error.fromPeer)
            }
            await listener.close()
        }
    }

    func testKeyLogRecordsEachSessionOnceOnEachSideAndIsPrivate() async throws {
        try await withTimeout(60, "testKeyLogRecordsEachSessionOnceOnEachSideAndIsPrivate") { [self] in
            let scratch = try Scratch()
            let path = scratch.directory.appendingPathComponent("keys.log").path
            for transport in TransportKind.allCases {
                let listener = try await listen(transport, configuration { $0.keyLog = KeyLog(path: path) })
                let session = try await dial(transport, listener.port, configuration { $0.keyLog = KeyLog(path: path) })
                var accepted = listener.sessions.makeAsyncIterator()
                _ = await accepted.next()
                await session.close()
                await listener.close()
            }
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
            guard lines.count == 4 else { return XCTFail("two sessions, logged by both sides: \(lines)") }
            XCTAssertEqual(lines[0], lines[1], "both sides log the same line for a session")
            XCTAssertEqual(lines[2], lines[3])
            XCTAssertNotEqual(lines[0], lines[2])
            for line in lines {
                let fields = line.split(separator: " ")
                XCTAssertEqual(fields.count, 4)
                XCTAssertEqual(fields[0], "RWANET_SESSION")
                XCTAssertTrue(fields.dropFirst().allSatisfy { $0.count == 64 && [UInt8](hex: String($0)) != nil }, line)
            }
            let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            XCTAssertEqual(mode & 0o777, 0o600)
            // Off unless the environment asks for it, whatever this test process's environment is.
            XCTAssertNil(KeyLog.fromEnvironment([:]))
            XCTAssertNil(KeyLog.fromEnvironment(["RWANET_KEYLOG": ""]))
            XCTAssertEqual(KeyLog.fromEnvironment(["RWANET_KEYLOG": path])?.path, path)
        }
    }

    func testClosingAListenerEndsTheSessionsItAccepted() async throws {
        try await withTimeout(60, "testClosingAListenerEndsTheSessionsItAccepted") { [self] in
            for transport in TransportKind.allCases {
                let listener = try await listen(transport, configuration())
                let client = try await dial(transport, listener.port, configuration())
                var accepted = listener.sessions.makeAsyncIterator()
                let acceptedSession = await accepted.next()
                let server = try XCTUnwrap(acceptedSession)
                await listener.close()
                try await server.closeFuture.get()
                var inbox = server.inbox.makeAsyncIterator()
                do {
                    _ = try await inbox.next()
                    XCTFail("\(transport): the inbox should end with the session")
                } catch let error as SessionError {
                    XCTAssertEqual(error.code, .closed, "\(transport)")
                }
                await client.close()
            }
        }
    }

    func testRecordDecoderWholeDripFedAndBatched() throws {
        let records: [[UInt8]] = [[0x00, 0x23, 1], [0x00, 0x21], Array(repeating: 7, count: 300)]
        let pairs = records.map { payload -> (ByteBuffer, [ByteBuffer]) in
            var input = ByteBuffer()
            input.writeInteger(UInt32(payload.count))
            input.writeBytes(payload)
            return (input, [ByteBuffer(bytes: payload)])
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            TCPRecordDecoder(allowance: RecordAllowance())
        }
    }

    /// Before the handshake a record may be no longer than the largest handshake frame; after it,
    /// up to the record limit. The length alone decides, before any payload is buffered.
    func testRecordsBeforeTheHandshakeAreSmall() throws {
        let allowance = RecordAllowance()
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(TCPRecordDecoder(allowance: allowance)))
        var big = ByteBuffer()
        big.writeInteger(UInt32(WireLimits.handshakeFrameBytesMax + 1))
        XCTAssertThrowsError(try channel.writeInbound(big)) { error in
            XCTAssertEqual((error as? WireError)?.className, "record_too_large", "\(error)")
        }
        let after = RecordAllowance()
        after.handshakeCompleted()
        let established = EmbeddedChannel(handler: ByteToMessageHandler(TCPRecordDecoder(allowance: after)))
        var record = ByteBuffer()
        record.writeInteger(UInt32(20_000))
        record.writeBytes([UInt8](repeating: 1, count: 20_000))
        try established.writeInbound(record)
        XCTAssertEqual(try established.readInbound(as: ByteBuffer.self)?.readableBytes, 20_000)
    }

    /// Connections share one budget for unfinished records: the one that takes the total above
    /// it while holding more than a small record is refused with `overloaded`; releasing its
    /// bytes (the connection closing) frees the budget.
    func testUnfinishedRecordsShareOneBudget() throws {
        let budget = RecordBudget(limit: 10_000)
        func connection() -> EmbeddedChannel {
            let allowance = RecordAllowance()
            allowance.handshakeCompleted()
            return EmbeddedChannel(
                handler: ByteToMessageHandler(TCPRecordDecoder(allowance: allowance, budget: budget)))
        }
        var partial = ByteBuffer()
        partial.writeInteger(UInt32(60_000))
        partial.writeBytes([UInt8](repeating: 2, count: 6_000))
        let first = connection()
        try first.writeInbound(partial)
        XCTAssertEqual(budget.adjust(by: 0), 6_004)
        let second = connection()
        XCTAssertThrowsError(try second.writeInbound(partial)) { error in
            XCTAssertEqual((error as? SessionError)?.code, .overloaded, "\(error)")
        }
        _ = try? first.finish()
        _ = try? second.finish()
        XCTAssertEqual(budget.adjust(by: 0), 0, "closed connections hold nothing")
    }
}
