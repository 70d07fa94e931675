import Foundation
import RWACrypto

/// Starts one of the package's executables, built by `swift build` next to the test bundle, and
/// collects its standard output line by line.
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

    public let process = Process()
    private let output = Pipe()
    private let errorOutput = Pipe()
    private let lines = LineCollector()
    private let errorLines = LineCollector()

    public init(tool: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = Self.binary(tool)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = output
        process.standardError = errorOutput
        let lines = self.lines
        output.fileHandleForReading.readabilityHandler = { handle in lines.append(handle.availableData) }
        let errorLines = self.errorLines
        errorOutput.fileHandleForReading.readabilityHandler = { handle in errorLines.append(handle.availableData) }
        try process.run()
    }

    /// What a subcommand run to its end printed, and how it exited.
    public struct Outcome {
        public var status: Int32?
        public var output: [String]
        public var errors: [String]
    }

    /// Runs `tool` with `arguments` to its end, collecting both outputs.
    public static func run(tool: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> Outcome {
        let process = try ToolProcess(tool: tool, arguments)
        let status = process.waitForExit(timeout: timeout)
        var output: [String] = []
        while let line = process.nextLine(timeout: 0.2) { output.append(line) }
        var errors: [String] = []
        while let line = process.nextErrorLine(timeout: 0.2) { errors.append(line) }
        return Outcome(status: status, output: output, errors: errors)
    }

    /// The next line printed on standard error, waiting at most `timeout` seconds.
    public func nextErrorLine(timeout: TimeInterval = 30) -> String? { errorLines.next(timeout: timeout) }

    /// Sends SIGKILL: the process gets no chance to flush or clean up.
    public func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The next line printed, waiting at most `timeout` seconds.
    public func nextLine(timeout: TimeInterval = 30) -> String? { lines.next(timeout: timeout) }

    public func waitForExit(timeout: TimeInterval = 120) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            return nil
        }
        return process.terminationStatus
    }

    public func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    /// Resident memory of the process, from /proc.
    public var residentBytes: Int {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        else { return 0 }
        return kilobytes * 1024
    }
}

public final class LineCollector: @unchecked Sendable {
    private let condition = NSCondition()
    private var buffer = Data()
    private var lines: [String] = []

    public func append(_ data: Data) {
        condition.lock()
        buffer.append(data)
        while let newline = buffer.firstIndex(of: 0x0a) {
            lines.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
            buffer.removeSubrange(buffer.startIndex...newline)
        }
        condition.broadcast()
        condition.unlock()
    }

    public func next(timeout: TimeInterval) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while lines.isEmpty {
            if !condition.wait(until: deadline) { return nil }
        }
        return lines.removeFirst()
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
