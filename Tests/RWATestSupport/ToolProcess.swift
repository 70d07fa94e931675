import Foundation
import RWACrypto

/// A test failure with a message, for output that does not look as expected: it fails one test
/// instead of trapping the whole test process.
public struct ToolOutputError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Starts one of the package's executables, built by `swift build` next to the test bundle, and
/// collects its standard output and standard error line by line until they end.
///
/// Every child dies with the test process, also when that process is killed: it is started
/// through `setpriv --pdeathsig KILL`, from one thread that lives as long as the test process
/// (the kernel sends the parent-death signal when the *thread* that started the child ends).
open class ToolProcess {
    public static func binary(_ tool: String) -> URL {
        let candidates = [
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".build/debug"),
        ]
        for directory in candidates
        where FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent(tool).path) {
            return directory.appendingPathComponent(tool)
        }
        fatalError("\(tool) not built next to the tests; run `swift build` first")
    }

    /// Where `setpriv` is (util-linux, essential on Debian); nil if this system lacks it.
    static let setpriv: String? = ["/usr/bin/setpriv", "/bin/setpriv"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    public let process = Process()
    public let tool: String
    private let lines: LineCollector
    private let errorLines: LineCollector

    public init(tool: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        self.tool = tool
        let binary = Self.binary(tool).path
        if let setpriv = Self.setpriv {
            process.executableURL = URL(fileURLWithPath: setpriv)
            process.arguments = ["--pdeathsig", "KILL", "--", binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let errorOutput = Pipe()
        process.standardOutput = output
        process.standardError = errorOutput
        // `run()` closes our copies of the write ends, so the readers see the end of the output.
        try SpawnThread.shared.run { [process] in try process.run() }
        lines = LineCollector(reading: output.fileHandleForReading)
        errorLines = LineCollector(reading: errorOutput.fileHandleForReading)
    }

    deinit {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }

    /// What a subcommand run to its end printed, and how it exited.
    public struct Outcome {
        /// nil when the command did not end within its time and was killed.
        public var status: Int32?
        public var output: [String]
        public var errors: [String]

        /// Both outputs, for assertion messages.
        public var transcript: String { (output + errors).joined(separator: "\n") }
    }

    /// Runs `tool` with `arguments` to its end, collecting every line of both outputs.
    public static func run(
        tool: String, _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60
    ) throws -> Outcome {
        let process = try ToolProcess(tool: tool, arguments, environment: environment)
        let status = process.waitForExit(timeout: timeout)
        return Outcome(status: status, output: process.remainingLines(), errors: process.remainingErrorLines())
    }

    /// The next line printed, waiting at most `timeout` seconds; nil at the end of the output.
    public func nextLine(timeout: TimeInterval = 30) -> String? { lines.next(timeout: timeout) }

    /// The next line printed on standard error, waiting at most `timeout` seconds.
    public func nextErrorLine(timeout: TimeInterval = 30) -> String? { errorLines.next(timeout: timeout) }

    /// Every line not read yet, once the output has ended (waiting at most `timeout` for its end).
    public func remainingLines(timeout: TimeInterval = 10) -> [String] { lines.drain(timeout: timeout) }
    public func remainingErrorLines(timeout: TimeInterval = 10) -> [String] { errorLines.drain(timeout: timeout) }

    /// The next line, which must exist: a missing line fails the test with `what` and standard error.
    public func requireLine(_ what: String, timeout: TimeInterval = 30) throws -> String {
        if let line = nextLine(timeout: timeout) { return line }
        let status = process.isRunning ? "still running" : "exited with \(process.terminationStatus)"
        throw ToolOutputError(
            "\(tool): \(what): no line within \(timeout) s (\(status)); stderr: "
                + errorLines.drain(timeout: 0.5).joined(separator: " | "))
    }

    /// Reads the `listening <transport> <host> <port> <public key>` line a daemon prints when ready.
    public func requireListening(_ transport: String? = nil, timeout: TimeInterval = 30) throws -> (
        transport: String, port: Int, publicKey: String
    ) {
        let line = try requireLine("the `listening` line", timeout: timeout)
        return try Self.parseListening(line, transport: transport)
    }

    /// Parses `listening <transport> <host> <port> <public key>`, failing with the line on a surprise.
    public static func parseListening(_ line: String, transport: String? = nil) throws -> (
        transport: String, port: Int, publicKey: String
    ) {
        let fields = line.split(separator: " ").map(String.init)
        guard fields.count == 5, fields[0] == "listening", let port = Int(fields[3]), (1...65535).contains(port),
            transport == nil || fields[1] == transport
        else {
            throw ToolOutputError(
                "expected `listening \(transport ?? "<transport>") <host> <port> <key>`, got `\(line)`")
        }
        return (fields[1], port, fields[4])
    }

    /// Sends SIGKILL: the process gets no chance to flush or clean up.
    public func kill() {
        guard process.isRunning else { return }  // once reaped, its pid may belong to another process
        Glibc.kill(process.processIdentifier, SIGKILL)
        _ = waitForExit(timeout: 30)
    }

    /// Waits for the process to end and returns its exit status (128 + the signal's number if a
    /// signal ended it); after `timeout` seconds it is killed and the result is nil.
    public func waitForExit(timeout: TimeInterval = 120) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            while process.isRunning { usleep(10_000) }
            return nil
        }
        // A crash is not an ordinary failure: like a shell, 128 + the signal's number.
        return process.terminationReason == .uncaughtSignal
            ? 128 + process.terminationStatus : process.terminationStatus
    }

    /// Asks the process to end (SIGTERM), and kills it if it has not within `timeout` seconds.
    public func stop(timeout: TimeInterval = 10) {
        if process.isRunning { process.terminate() }
        _ = waitForExit(timeout: timeout)
    }

    /// Resident memory of the process, from /proc; nil once it has gone.
    public var residentBytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
        return kilobytes * 1024
    }
}

/// The one thread every child process is started from. It never ends, so the parent-death signal
/// of a child fires only when the test process itself ends.
final class SpawnThread: @unchecked Sendable {
    static let shared = SpawnThread()
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        let thread = Thread { [unowned self] in
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
        thread.name = "rwanet-test-spawn"
        thread.start()
    }

    func run(_ body: @escaping () throws -> Void) throws {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: Error?
        condition.lock()
        jobs.append {
            do { try body() } catch { failure = error }
            done.signal()
        }
        condition.signal()
        condition.unlock()
        done.wait()
        if let failure { throw failure }
    }
}

/// The lines of one output, read by a thread of its own until the output ends, so no line is
/// lost, the last one included even without its newline.
public final class LineCollector: @unchecked Sendable {
    private let condition = NSCondition()
    private var buffer: [UInt8] = []
    private var lines: [String] = []
    private var ended = false

    init(reading handle: FileHandle) {
        let thread = Thread { [self] in
            let descriptor = handle.fileDescriptor
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                append(chunk[0..<count])
            }
            try? handle.close()
            finish()
        }
        thread.start()
    }

    private func append(_ data: ArraySlice<UInt8>) {
        condition.lock()
        buffer.append(contentsOf: data)
        while let newline = buffer.firstIndex(of: 0x0a) {
            lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
            buffer.removeSubrange(...newline)
        }
        condition.broadcast()
        condition.unlock()
    }

    private func finish() {
        condition.lock()
        if !buffer.isEmpty { lines.append(String(decoding: buffer, as: UTF8.self)) }
        buffer.removeAll()
        ended = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next line; nil after `timeout` seconds, or at once when the output has ended.
    public func next(timeout: TimeInterval) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while lines.isEmpty && !ended {
            if !condition.wait(until: deadline) { break }
        }
        return lines.isEmpty ? nil : lines.removeFirst()
    }

    /// Every line left, after waiting at most `timeout` seconds for the output to end.
    public func drain(timeout: TimeInterval) -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !ended {
            if !condition.wait(until: deadline) { break }
        }
        defer { lines.removeAll() }
        return lines
    }
}

/// A temporary directory with key files.
public final class Scratch {
    public let directory: URL

    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rwanet-test-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    public func key(_ name: String, _ pair: SigningKeyPair = .generate()) throws -> (path: String, pair: SigningKeyPair)
    {
        let path = directory.appendingPathComponent("\(name).key").path
        try KeyFile.write(pair, to: path)
        return (path, pair)
    }
}
