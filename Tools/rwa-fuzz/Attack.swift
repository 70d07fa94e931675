import Foundation
import NIOConcurrencyHelpers
import NIOPosix
import RWACrypto
import RWALeaseDaemon
import RWALedger
import RWANode
import RWASession
import RWASim
import RWAWire

#if canImport(Glibc)
    import Glibc
#endif

extension Role {
    /// The question a daemon of this role answers.
    func validRequest(requestID: UInt64) -> Message {
        switch self {
        case .arbiter: return .arbiter(.getStatus(requestID: requestID))
        case .exchange: return .exchange(.getMarket(requestID: requestID, token: 1, twapSeconds: 60, sizes: [1_000]))
        case .lessor, .lessee: return .lease(.getOffers(requestID: requestID))
        case .peer: return .ping(Ping(nonce: requestID))
        }
    }
}

/// `frame` bit-flipped, truncated, extended, retyped (any type: unknown even, unknown odd, or
/// known), or replaced by garbage.
func spoil(_ frame: [UInt8], using random: inout some RandomNumberGenerator) -> [UInt8] {
    var frame = frame
    func number(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) } }
    switch number(0...4) {
    case 0:
        for _ in 0..<number(1...4) {
            let bit = number(0...(frame.count * 8 - 1))
            frame[bit / 8] ^= 1 << (bit % 8)
        }
    case 1: frame = Array(frame.prefix(number(0...max(0, frame.count - 1))))
    case 2: frame += bytes(number(1...64))
    case 3:
        frame[0] = UInt8(number(0...255))
        frame[1] = UInt8(number(0...255))
    default: frame = bytes(number(2...1_200))
    }
    return frame
}

/// The hostile streams, sent one kind after another until the frame budget or the time runs out.
final class Attack {
    let host: String
    let port: Int
    let udpPort: Int?
    let role: Role
    let chainID: Digest32
    let frameBudget: Int
    let deadline: Date
    var random: SeededGenerator

    private(set) var framesSent = 0
    private(set) var datagramsSent = 0
    private(set) var sessionsOpened = 0
    private(set) var sessionsClosedByDaemon = 0
    private(set) var connectionsOpened = 0
    private(set) var findings: [String] = []

    init(
        host: String, port: Int, udpPort: Int?, role: Role, chainID: Digest32, seed: UInt64, frameBudget: Int,
        deadline: Date
    ) {
        self.host = host
        self.port = port
        self.udpPort = udpPort
        self.role = role
        self.chainID = chainID
        self.frameBudget = frameBudget
        self.deadline = deadline
        random = SeededGenerator(seed: seed)
    }

    var exhausted: Bool { framesSent + datagramsSent >= frameBudget || Date() >= deadline }

    func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) } }

    func number(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }

    // MARK: Connections held open

    /// Idle connections (nothing sent), half-open ones (half a `hello`), and writers that announce
    /// the largest record and send all of it but its last byte; all stay open until the end.
    func holdConnections(idle: Int, slow: Int) -> [RawTCP] {
        var held: [RawTCP] = []
        let hello = Message.hello(
            Hello(
                protocolVersion: 1, features: FeatureBits(), chainID: chainID,
                identity: SigningKeyPair.generate().publicKey,
                ephemeralKey: KeyExchangeKeyPair.generate().publicKey)
        ).frameBytes()
        for index in 0..<(idle + slow) {
            guard let connection = try? RawTCP(host: host, port: port) else {
                findings.append("connection \(index + 1) of \(idle + slow) held open was refused")
                break
            }
            connectionsOpened += 1
            if index >= idle {
                let length = UInt32(WireLimits.tcpRecordBytesMax)
                connection.write(withUnsafeBytes(of: length.bigEndian, Array.init) + bytes(Int(length) - 1))
            } else if index % 2 == 1 {
                let record = withUnsafeBytes(of: UInt32(hello.count).bigEndian, Array.init) + hello
                connection.write(Array(record.prefix(record.count / 2)))
            }
            held.append(connection)
        }
        return held
    }

    // MARK: The streams

    func run() {
        var round = 0
        while !exhausted {
            round += 1
            beforeHandshake()
            for _ in 0..<10 where !exhausted { insideSessions() }
            if udpPort != nil { overUDP() }
        }
        print("rwa-fuzz: \(round) rounds")
    }

    /// Fresh connections that never complete a handshake: garbage, lying length prefixes (up to
    /// 4 GiB), records cut short. The daemon must close each, or at least not choke on it.
    func beforeHandshake() {
        for kind in 0..<3 {
            guard !exhausted, let connection = try? RawTCP(host: host, port: port, timeoutMilliseconds: 500) else {
                return
            }
            connectionsOpened += 1
            switch kind {
            case 0:
                connection.write(bytes(number(1...2_048)))
            case 1:
                let length = UInt32.random(in: 0...UInt32.max, using: &random)
                connection.write(withUnsafeBytes(of: length.bigEndian, Array.init) + bytes(number(0...64)))
            default:
                connection.write(withUnsafeBytes(of: UInt32(200).bigEndian, Array.init) + bytes(100))
            }
            framesSent += 1
            connection.close()
        }
    }

    /// A real session, then hostile frames until the daemon closes it or the batch ends.
    func insideSessions() {
        let session: RawSession
        do {
            session = try RawSession(host: host, port: port, identity: .generate(), chainID: chainID)
        } catch {
            findings.append("a handshake failed during the attack: \(error)")
            return
        }
        sessionsOpened += 1
        defer { session.close() }
        var history: [[UInt8]] = []
        for _ in 0..<number(20...200) {
            guard !exhausted else { return }
            let frame = hostileFrame()
            history.append(frame)
            if history.count > 8 { history.removeFirst() }
            framesSent += 1
            let sent: Bool
            if number(0...30) == 0, let old = session.sentRecords.randomElement(using: &random) {
                sent = session.tcp.write(old)  // a replayed record: it fails authentication
            } else {
                sent = session.send(frame: frame)
            }
            if !sent {
                sessionsClosedByDaemon += 1
                return
            }
        }
        // A flood of valid requests, then the answers are read: the session still works.
        for requestID in 0..<UInt64(50) where !exhausted {
            framesSent += 1
            guard session.send(validRequest(requestID: 1_000 + requestID)) else {
                sessionsClosedByDaemon += 1
                return
            }
        }
    }

    /// A frame from the daemon's own protocol, valid or spoiled one of many ways.
    func hostileFrame() -> [UInt8] {
        var frame = validRequest(requestID: UInt64.random(in: 1...UInt64.max, using: &random)).frameBytes()
        switch number(0...8) {
        case 0...4:
            frame = spoil(frame, using: &random)
        case 5:  // oversized: up to the frame limit
            frame += bytes(number(1_000...(WireLimits.frameBytesMax - frame.count)))
        case 6:  // a transaction with a forged signature
            frame = forgedSubmission().frameBytes()
        default:
            break  // valid, out of order among the rest
        }
        return frame
    }

    func validRequest(requestID: UInt64) -> Message { role.validRequest(requestID: requestID) }

    /// A transfer signed by a fresh key whose signature is then spoiled.
    func forgedSubmission() -> Message {
        let key = SigningKeyPair.generate()
        let transaction = try! Transaction(
            signedBy: key, chainID: chainID, sequence: 0,
            operation: .transfer(token: 0, to: key.publicKey, amount: 1))
        var bytes = transaction.encoded
        bytes[bytes.count - 1 - number(0...63)] ^= 0x40
        switch role {
        case .exchange: return .exchange(.submitOrder(requestID: 7, transaction: bytes))
        default: return .arbiter(.submitTransaction(requestID: 7, transaction: bytes))
        }
    }

    // MARK: Pressure

    func apply(_ pressure: Pressure, seconds: Int) {
        let until = Date().addingTimeInterval(Double(seconds))
        switch pressure {
        case .slots: holdSlots(1_024, until: until)
        case .unread: unreadRequests(sessions: 20, until: until)
        case .forged: forgedFlood(sessions: 2, until: until)
        case .records: unfinishedRecords(1_000, until: until)
        case .hellos: helloFlood(until: until)
        }
    }

    private func openSession() -> RawSession? {
        guard let session = try? RawSession(host: host, port: port, identity: .generate(), chainID: chainID) else {
            return nil
        }
        sessionsOpened += 1
        return session
    }

    /// Silent authenticated sessions up to `count`; each one the daemon closes is opened again.
    func holdSlots(_ count: Int, until: Date) {
        var sessions: [RawSession] = []
        while Date() < until {
            sessions.removeAll { session in
                session.tcp.setReadTimeout(milliseconds: 1)
                if session.tcp.read(maximum: 4_096) == nil {
                    sessionsClosedByDaemon += 1
                    return true
                }
                return false
            }
            while sessions.count < count && Date() < until {
                guard let session = openSession() else { break }
                sessions.append(session)
            }
            usleep(100_000)
        }
        for session in sessions { session.close() }
    }

    /// Requests without reading an answer: for an arbiter, subscriptions from block 1 too.
    func unreadRequests(sessions count: Int, until: Date) {
        var sessions = (0..<count).compactMap { _ in openSession() }
        // An arbiter allows one subscription per session: each subscribes from block 1 first.
        if role == .arbiter {
            for session in sessions { session.send(.arbiter(.subscribeBlocks(requestID: 1, fromHeight: 1))) }
        }
        var requestID: UInt64 = 1
        while Date() < until && !sessions.isEmpty {
            for session in sessions {
                requestID += 1
                session.send(validRequest(requestID: requestID))
                framesSent += 1
            }
            let before = sessions.count
            sessions.removeAll { !$0.tcp.writable }
            sessionsClosedByDaemon += before - sessions.count
            // A persistent attacker comes back at once.
            while sessions.count < count && Date() < until, let session = openSession() {
                if role == .arbiter { session.send(.arbiter(.subscribeBlocks(requestID: 1, fromHeight: 1))) }
                sessions.append(session)
            }
        }
        for session in sessions { session.close() }
    }

    /// Transactions with forged signatures as fast as the daemon takes them.
    func forgedFlood(sessions count: Int, until: Date) {
        var sessions = (0..<count).compactMap { _ in openSession() }
        let frames = (0..<64).map { _ in forgedSubmission().frameBytes() }
        var index = 0
        while Date() < until {
            var sent = false
            for slot in sessions.indices where sessions[slot].tcp.writable {
                if sessions[slot].send(frame: frames[index % frames.count]) {
                    framesSent += 1
                    sent = true
                } else {
                    // Closed (the refusal budget spent) or stalled past the write timeout: the
                    // attacker comes back at once on a fresh session.
                    sessions[slot].close()
                    sessionsClosedByDaemon += 1
                    if let fresh = openSession() { sessions[slot] = fresh }
                }
                index += 1
            }
            if !sent { usleep(1_000) }  // the daemon reads no faster: wait for it
        }
        for session in sessions { session.close() }
    }

    /// `hello`s from many source addresses, each never followed up, as fast as they can be sent
    /// (a few distinct `hello`s, re-sent: signing each would slow the attacker, not the daemon).
    func helloFlood(until: Date) {
        guard let udpPort else { return }
        let hellos = (0..<16).map { _ -> [UInt8] in
            var machine = HandshakeStateMachine(
                initiator: HandshakeConfiguration(identity: .generate(), chainID: chainID), ephemeral: .generate())
            return [UDPPacketKind.handshake.rawValue] + machine.start().frameBytes()
        }
        var index = 0
        while Date() < until && datagramsSent < 2_000_000 {
            sendDatagram(
                hellos[index % hellos.count], from: "127.\(number(1...9)).\(number(0...255)).\(number(1...254))",
                to: host, port: udpPort)
            index += 1
            datagramsSent += 1
        }
    }

    /// Authenticated sessions that each announce the largest record and send all of it but the
    /// last byte.
    func unfinishedRecords(_ count: Int, until: Date) {
        var sessions: [RawSession] = []
        let length = UInt32(WireLimits.tcpRecordBytesMax)
        let record = withUnsafeBytes(of: length.bigEndian, Array.init) + bytes(Int(length) - 1)
        for _ in 0..<count where Date() < until {
            guard let session = openSession() else { break }
            session.tcp.write(record)
            sessions.append(session)
        }
        while Date() < until { usleep(100_000) }
        for session in sessions { session.close() }
    }

    /// Garbage datagrams, and `hello`s from many loopback source addresses.
    func overUDP() {
        guard let udpPort else { return }
        for index in 0..<20 where !exhausted {
            let source = "127.0.\(number(0...3)).\(number(2...254))"
            if index % 4 == 0 {
                sendDatagram(bytes(number(1...1_300)), from: source, to: host, port: udpPort)
            } else {
                var machine = HandshakeStateMachine(
                    initiator: HandshakeConfiguration(identity: .generate(), chainID: chainID), ephemeral: .generate())
                let hello = machine.start().frameBytes()
                sendDatagram([UDPPacketKind.handshake.rawValue] + hello, from: source, to: host, port: udpPort)
            }
            datagramsSent += 1
        }
    }
}

/// A legitimate client, on its own thread: every 50 ms a fresh session asks the daemon a valid
/// question; it records the worst latency and every failure.
final class Prober: @unchecked Sendable {
    let host: String
    let port: Int
    let udpPort: Int?
    let role: Role
    let chainID: Digest32
    /// A lessee's control socket: what is probed there (a lessee listens nowhere).
    let control: String?
    private let state = NIOLockedValueBox((answers: 0, failures: 0, worst: 0.0, worstUDP: 0.0, running: true))
    private var thread: Thread?

    init(host: String, port: Int, udpPort: Int?, role: Role, chainID: Digest32, control: String? = nil) {
        self.control = control
        self.host = host
        self.port = port
        self.udpPort = udpPort
        self.role = role
        self.chainID = chainID
    }

    var answers: Int { state.withLockedValue { $0.answers } }
    var failures: Int { state.withLockedValue { $0.failures } }
    var worstMilliseconds: Double { state.withLockedValue { $0.worst } }
    /// The worst of the probes over UDP alone (their detail starts with "udp").
    var worstUDPMilliseconds: Double { state.withLockedValue { $0.worstUDP } }

    private var child: Process?

    /// Probes from a process of its own (this executable with `--probe-only`), so that the
    /// attack's threads, busy on the same cores, do not starve the measurement; each of its
    /// lines is one probe. In-process if the executable cannot be found.
    func start() {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        guard FileManager.default.isExecutableFile(atPath: executable.path) else { return startThread() }
        let process = Process()
        process.executableURL = executable
        process.arguments =
            ["--probe-only", "--role", role.rawValue, "--host", host, "--port", "\(port)", "--chain-id", "\(chainID)"]
            + (udpPort.map { ["--udp-port", "\($0)"] } ?? []) + (control.map { ["--control", $0] } ?? [])
        let output = Pipe()
        process.standardOutput = output
        do { try process.run() } catch { return startThread() }
        child = process
        let reading = output.fileHandleForReading
        Thread { [self] in
            var pending = Data()
            while true {
                let chunk = reading.availableData
                if chunk.isEmpty { break }
                pending += chunk
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending = pending[pending.index(after: newline)...]
                    if let result = Self.parse(line) { record(result) }
                }
            }
        }.start()
    }

    typealias Result = (ok: Bool, milliseconds: Double, detail: String)
    /// A probe this slow is reported with where its time went.
    static let slowMilliseconds = 100.0

    /// One probe as the child writes it: `ok MILLISECONDS` or `failed MILLISECONDS DETAIL`.
    static func line(_ result: Result) -> String {
        "\(result.ok ? "ok" : "failed") \(result.milliseconds) \(result.detail.replacingOccurrences(of: "\n", with: " "))"
    }

    static func parse(_ line: String) -> Result? {
        let fields = line.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2, let milliseconds = Double(fields[1]) else { return nil }
        return (fields[0] == "ok", milliseconds, fields.count > 2 ? String(fields[2]) : "")
    }

    private func record(_ result: Result) {
        state.withLockedValue {
            if result.ok { $0.answers += 1 } else { $0.failures += 1 }
            $0.worst = max($0.worst, result.milliseconds)
            if result.detail.hasPrefix("udp") { $0.worstUDP = max($0.worstUDP, result.milliseconds) }
        }
        if !result.ok { print("rwa-fuzz: a legitimate request failed: \(result.detail)") }
        if result.ok && result.milliseconds >= Self.slowMilliseconds {
            // With the wall-clock time, to line it up with a trace of the daemon or the machine.
            print(
                String(format: "rwa-fuzz: a slow legitimate answer: %.0f ms", result.milliseconds), result.detail,
                "(at \(Date().formatted(.iso8601.time(includingFractionalSeconds: true))))")
        }
    }

    private func startThread() {
        let thread = Thread { [self] in probeUntilStopped(record) }
        self.thread = thread
        thread.start()
    }

    /// Probes every 50 ms, over TCP and UDP in turn, until stopped.
    func probeUntilStopped(_ report: (Result) -> Void) {
        var round = 0
        while state.withLockedValue({ $0.running }) {
            round += 1
            report(udpPort != nil && round % 2 == 0 ? probeOverUDP() : probeOnce())
            usleep(50_000)
        }
    }

    func stop() {
        state.withLockedValue { $0.running = false }
        if let child, child.isRunning {
            child.terminate()
            child.waitUntilExit()
        }
        usleep(200_000)
    }

    /// The same question over a real UDP session (the transport's own dialer).
    func probeOverUDP() -> (ok: Bool, milliseconds: Double, detail: String) {
        guard let udpPort else { return (true, 0, "") }
        let start = Date()
        let outcome = NIOLockedValueBox<(Bool, String)?>(nil)
        let done = DispatchSemaphore(value: 0)
        let (host, role, chainID) = (host, role, chainID)
        Task {
            defer { done.signal() }
            do {
                let configuration = try SessionConfiguration(
                    handshake: HandshakeConfiguration(identity: .generate(), chainID: chainID))
                let session = try await TransportKind.udp.dial(
                    host: host, port: udpPort, configuration: configuration,
                    group: MultiThreadedEventLoopGroup.singleton)
                let request = role.validRequest(requestID: 43)
                if case .ping = request {
                    outcome.withLockedValue { $0 = (true, "udp") }  // the handshake is the answer
                } else {
                    try await session.send(request)
                    for try await _ in session.inbox {
                        outcome.withLockedValue { $0 = (true, "udp") }
                        break
                    }
                }
                await session.close()
            } catch {
                outcome.withLockedValue { $0 = (false, "udp: \(error)") }
            }
        }
        let timedOut = done.wait(timeout: .now() + 10) == .timedOut
        let milliseconds = Date().timeIntervalSince(start) * 1000
        if timedOut { return (false, milliseconds, "udp: no answer in 10 s") }
        let (ok, detail) = outcome.withLockedValue { $0 } ?? (false, "udp: no answer")
        return (ok, milliseconds, detail)
    }

    func probeOnce() -> (ok: Bool, milliseconds: Double, detail: String) {
        let start = Date()
        func elapsed() -> Double { Date().timeIntervalSince(start) * 1000 }
        if let control {
            do {
                _ = try controlRequest(control, ["command": "channels"])
                return (true, elapsed(), "")
            } catch {
                return (false, elapsed(), "control: \(error)")
            }
        }
        do {
            let session = try RawSession(host: host, port: port, identity: .generate(), chainID: chainID)
            defer { session.close() }
            guard session.send(role.validRequest(requestID: 42)) else { return (false, elapsed(), "the send failed") }
            while let answer = session.receive() {
                switch (role, answer) {
                case (.arbiter, .arbiter(.statusAnswer)), (.exchange, .exchange), (.lessor, .lease(.offers)),
                    (.peer, .pong):
                    let total = elapsed()
                    return (
                        true, total,
                        String(
                            format: "tcp: connect %.0f ms, handshake %.0f ms, answer %.0f ms",
                            session.connectMilliseconds, session.handshakeMilliseconds,
                            total - session.connectMilliseconds - session.handshakeMilliseconds)
                    )
                default:
                    continue
                }
            }
            return (false, elapsed(), "no answer")
        } catch {
            return (false, elapsed(), "\(error)")
        }
    }
}

/// Samples the daemon's resident memory every 100 ms.
final class Watch: @unchecked Sendable {
    let pid: Int32?
    private let state = NIOLockedValueBox((peak: 0.0, running: true))

    init(pid: Int32?) { self.pid = pid }

    var peakMebibytes: Double { state.withLockedValue { $0.peak } }

    func start() {
        guard let pid else { return }
        Thread { [self] in
            while state.withLockedValue({ $0.running }) {
                if let rss = residentMebibytes(pid) { state.withLockedValue { $0.peak = max($0.peak, rss) } }
                usleep(100_000)
            }
        }.start()
    }

    func stop() { state.withLockedValue { $0.running = false } }
}
