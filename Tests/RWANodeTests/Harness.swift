import Foundation
import NIOCore
import RWACrypto
import RWASession
import RWATestSupport
import RWAWire
import XCTest

@testable import RWANode

/// The real `rwa-peer` executable, built by `swift test` next to the test bundle.
final class PeerProcess: ToolProcess {
    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        try super.init(tool: "rwa-peer", arguments, environment: environment)
    }
}

/// A deliberately primitive TCP client on blocking POSIX sockets, to send what no well-behaved
/// peer would and read exactly what comes back.
final class RawTCPClient {
    let fd: Int32
    private var pending: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else { throw SessionError(.closed, "connect failed: errno \(errno)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            throw SessionError(.closed, "no receive timeout: errno \(errno)")
        }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func sendRecord(_ message: Message) {
        let frame = message.frameBytes()
        send(withUnsafeBytes(of: UInt32(frame.count).bigEndian, Array.init) + frame)
    }

    /// Reads one record payload; nil when the server closed the connection (or after 10 s).
    func readPayload() -> [UInt8]? {
        while true {
            if pending.count >= 4 {
                let length = Int(pending[0]) << 24 | Int(pending[1]) << 16 | Int(pending[2]) << 8 | Int(pending[3])
                if pending.count >= 4 + length {
                    let payload = Array(pending[4..<4 + length])
                    pending.removeFirst(4 + length)
                    return payload
                }
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return nil }
            pending += chunk.prefix(count)
        }
    }

    /// True when the server has closed the connection (after draining what it sent), within 20 s.
    func isClosedByServer() -> Bool {
        let deadline = Date().addingTimeInterval(20)
        while readPayload() != nil {
            if Date() > deadline { return false }
        }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    /// Runs the initiator's side of the handshake; returns the established session keys, or
    /// throws saying what went wrong.
    func handshake(identity: SigningKeyPair, tamperFinish: Bool = false) throws -> EstablishedSession {
        var machine = HandshakeStateMachine(
            initiator: HandshakeConfiguration(identity: identity, chainID: ChainIDs.devnet), ephemeral: .generate())
        sendRecord(machine.start())
        guard let payload = readPayload() else { throw ToolOutputError("no hello_reply within 10 s") }
        let reply = try Message.decode(frame: ByteBuffer(bytes: payload))
        guard case .sendAndEstablish(let finish, let session) = try machine.receive(reply) else {
            throw ToolOutputError("the hello_reply did not establish the session: \(reply.type)")
        }
        if tamperFinish, case .helloFinish(var f) = finish {
            var bytes = f.signature.bytes
            bytes[10] ^= 1
            f.signature = try Signature(bytes: bytes)
            sendRecord(.helloFinish(f))
        } else {
            sendRecord(finish)
        }
        return session
    }
}

func decodeError(_ payload: [UInt8]?, cipher: inout RecordCipher?) -> ErrorCode? {
    guard let payload else { return nil }
    var frame = ByteBuffer(bytes: payload)
    if cipher != nil {
        guard let opened = try? cipher!.openRecord(frame) else { return nil }
        frame = opened
    }
    guard case .error(let report)? = try? Message.decode(frame: frame) else { return nil }
    return report.code
}

/// Everything a session's inbox hands its consumer, in order. For sessions on an
/// `EmbeddedEventLoop`, whose consumer runs on the test's own thread.
final class InboxEvents: @unchecked Sendable {
    var all: [Inbox.Event] = []
    init(_ session: PeerSession) { session.inbox.consumeOnEventLoop { [self] in all.append($0) } }

    var messages: [Message] {
        all.compactMap { event in
            if case .message(let message) = event { message } else { nil }
        }
    }

    /// The error the session ended with, if it has ended abnormally.
    var endError: SessionError? {
        if case .finished(let error)? = all.last { error } else { nil }
    }
}
