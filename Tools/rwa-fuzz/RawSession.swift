import Foundation
import NIOCore
import RWACrypto
import RWALeaseDaemon
import RWASession
import RWAWire

#if canImport(Glibc)
    import Glibc
#endif

struct FuzzError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A blocking TCP socket to loopback with timeouts: the attacker's side needs full control of
/// every byte (lying length prefixes, half records), which a session library would not allow.
final class RawTCP: @unchecked Sendable {
    private(set) var fd: Int32

    init(host: String, port: Int, timeoutMilliseconds: Int = 2_000) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FuzzError("socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw FuzzError("connect to \(host):\(port): \(reason)")
        }
    }

    /// A connection a `RawListener` accepted.
    init(accepted fd: Int32, timeoutMilliseconds: Int = 2_000) {
        self.fd = fd
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// False once a write failed (the peer closed, or stopped reading past the send timeout).
    private(set) var writable = true

    func setReadTimeout(milliseconds: Int) {
        var timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes everything; false once the peer has closed or the write timed out.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 {
                writable = false
                return false
            }
            sent += n
        }
        return true
    }

    /// Up to `maximum` bytes; [] on a timeout, nil once the peer has closed.
    func read(maximum: Int = 65_536) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: maximum)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, maximum, 0) }
        if n > 0 { return Array(buffer[..<n]) }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return [] }
        return nil
    }

    /// Whether the peer has closed the connection (waits up to the read timeout for it).
    func peerClosed() -> Bool {
        while true {
            guard let bytes = read() else { return true }
            if bytes.isEmpty { return false }
        }
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}

/// A listening TCP socket on loopback, for the attacks where the daemon dials (a hostile lessor).
final class RawListener {
    private let fd: Int32
    let port: Int

    init(host: String, port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FuzzError("socket: \(String(cString: strerror(errno)))") }
        self.fd = fd
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 128) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw FuzzError("listen on \(host):\(port): \(reason)")
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// The next connection, or nil when none comes within `timeoutMilliseconds`.
    func accept(timeoutMilliseconds: Int32) -> RawTCP? {
        var waiting = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&waiting, 1, timeoutMilliseconds) == 1 else { return nil }
        let connection = Glibc.accept(fd, nil, nil)
        return connection >= 0 ? RawTCP(accepted: connection) : nil
    }

    func close() { Glibc.close(fd) }
}

/// An authenticated session over `RawTCP`: a real handshake from the pure state machine, then
/// records sealed with `RecordCipher`, so the attacker can seal any bytes as a frame.
final class RawSession {
    let tcp: RawTCP
    private var cipher: RecordCipher
    private var incoming = ByteBuffer()
    /// The sealed records sent so far, for replays.
    private(set) var sentRecords: [[UInt8]] = []

    /// The peer's identity, proven in the handshake.
    let peerIdentity: SigningPublicKey
    /// How long the TCP connection and then the handshake took (dialled sessions; 0 otherwise),
    /// so a slow legitimate answer says where its time went.
    private(set) var connectMilliseconds = 0.0
    private(set) var handshakeMilliseconds = 0.0

    init(host: String, port: Int, identity: SigningKeyPair, chainID: Digest32) throws {
        let start = ContinuousClock.now
        tcp = try RawTCP(host: host, port: port)
        let connected = ContinuousClock.now
        var machine = HandshakeStateMachine(
            initiator: HandshakeConfiguration(identity: identity, chainID: chainID), ephemeral: .generate())
        guard tcp.write(Self.plaintextRecord(machine.start())) else {
            throw FuzzError("the daemon closed during hello")
        }
        var buffer = ByteBuffer()
        var reply: Message?
        while reply == nil {
            guard let bytes = tcp.read(), !bytes.isEmpty else { throw FuzzError("no hello_reply") }
            buffer.writeBytes(bytes)
            if let payload = try TCPRecord.readPayload(&buffer) { reply = try Message.decode(frame: payload) }
        }
        guard case .sendAndEstablish(let finish, let session) = try machine.receive(reply!) else {
            throw FuzzError("the handshake did not complete")
        }
        guard tcp.write(Self.plaintextRecord(finish)) else { throw FuzzError("the daemon closed during hello_finish") }
        cipher = RecordCipher(session)
        incoming = buffer
        peerIdentity = session.peerIdentity
        connectMilliseconds = (connected - start) / .milliseconds(1)
        handshakeMilliseconds = (ContinuousClock.now - connected) / .milliseconds(1)
    }

    /// The responder's side, on a connection the daemon made (the fuzzer as a lessor).
    init(accepting tcp: RawTCP, identity: SigningKeyPair, chainID: Digest32) throws {
        self.tcp = tcp
        var machine = HandshakeStateMachine(
            responder: HandshakeConfiguration(identity: identity, chainID: chainID), ephemeral: .generate())
        var buffer = ByteBuffer()
        func nextMessage() throws -> Message {
            while true {
                if let payload = try TCPRecord.readPayload(&buffer) { return try Message.decode(frame: payload) }
                guard let bytes = tcp.read(), !bytes.isEmpty else { throw FuzzError("the daemon left the handshake") }
                buffer.writeBytes(bytes)
            }
        }
        guard case .send(let reply) = try machine.receive(try nextMessage()) else {
            throw FuzzError("no hello from the daemon")
        }
        guard tcp.write(Self.plaintextRecord(reply)) else { throw FuzzError("the daemon closed during hello_reply") }
        guard case .establish(let session) = try machine.receive(try nextMessage()) else {
            throw FuzzError("the handshake did not complete")
        }
        cipher = RecordCipher(session)
        incoming = buffer
        peerIdentity = session.peerIdentity
    }

    static func plaintextRecord(_ message: Message) -> [UInt8] {
        let frame = message.frameBytes()
        return withUnsafeBytes(of: UInt32(frame.count).bigEndian, Array.init) + frame
    }

    /// Seals `frame` (any bytes, up to the frame limit) as the next record.
    @discardableResult
    func send(frame: [UInt8]) -> Bool {
        var record = ByteBuffer()
        do { try cipher.sealRecord(frame: ByteBuffer(bytes: frame), into: &record) } catch { return false }
        let bytes = Array(record.readableBytesView)
        sentRecords.append(bytes)
        if sentRecords.count > 64 { sentRecords.removeFirst() }
        return tcp.write(bytes)
    }

    @discardableResult
    func send(_ message: Message) -> Bool { send(frame: message.frameBytes()) }

    /// The next message the daemon sends (pings answered on the way); nil on a close or timeout.
    func receive() -> Message? {
        guard case .message(let message) = receive(waitingMilliseconds: 2_000) else { return nil }
        return message
    }

    enum Received {
        case message(Message)
        case nothing
        case closed
    }

    /// The next message within `waitingMilliseconds` (pings answered on the way), nothing, or
    /// the end of the session (closed, or a record that does not open).
    func receive(waitingMilliseconds: Int) -> Received {
        tcp.setReadTimeout(milliseconds: waitingMilliseconds)
        while true {
            if let payload = try? TCPRecord.readPayload(&incoming) {
                guard let frame = try? cipher.openRecord(payload) else { return .closed }
                guard let message = try? Message.decode(frame: frame) else { continue }
                if case .ping(let ping) = message {
                    send(.pong(Pong(nonce: ping.nonce)))
                    continue
                }
                return .message(message)
            }
            guard let bytes = tcp.read() else { return .closed }
            if bytes.isEmpty { return .nothing }
            incoming.writeBytes(bytes)
        }
    }

    func close() { tcp.close() }
}

/// One request on a lease daemon's control socket; an answer that is not ok is an error.
func controlRequest(_ control: String, _ request: [String: Any]) throws -> [String: Any] {
    let client = try ControlClient(path: control)
    try client.send(request)
    guard let answer = try client.receive() else { throw FuzzError("the daemon hung up on \(request)") }
    guard answer["ok"] as? Bool == true else { throw FuzzError("the daemon refused \(request): \(answer)") }
    return answer
}

/// One datagram from a chosen loopback source address (as a spoofing attacker would send it).
func sendDatagram(_ bytes: [UInt8], from source: String, to host: String, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return }
    defer { Glibc.close(fd) }
    var local = sockaddr_in()
    local.sin_family = sa_family_t(AF_INET)
    inet_pton(AF_INET, source, &local.sin_addr)
    _ = withUnsafePointer(to: &local) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var remote = sockaddr_in()
    remote.sin_family = sa_family_t(AF_INET)
    remote.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host, &remote.sin_addr)
    _ = bytes.withUnsafeBytes { data in
        withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, data.baseAddress, data.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
}

/// The resident memory of process `pid` in MiB, from /proc (nil if it is gone).
func residentMebibytes(_ pid: Int32) -> Double? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kilobytes = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kilobytes / 1024
    }
    return nil
}
