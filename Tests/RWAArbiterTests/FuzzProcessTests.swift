// Goal: every daemon survives `rwa-fuzz`, the network fuzzer, in a bounded run: `rwa-arbiter run`
// (with legitimate transfers alongside whose balances must come out exact), `rwa-amm run` (with
// legitimate swaps, each fill exact), `rwa-lessor run`, `rwa-lessee run` (which dials rwa-fuzz
// as its hostile lessor) and `rwa-peer listen`, each over TCP (and
// UDP where it listens), each still answering afterwards with its resident memory under 128 MiB;
// the arbiter also through silent sessions that hold every slot and unfinished records that would
// fill its memory. The full runs (100,000 frames and more) are the README's "Fuzzing" commands.
import Foundation
import RWATestSupport
import XCTest

final class FuzzProcessTests: XCTestCase {
    /// Runs `rwa-fuzz` against one daemon and checks its verdict.
    func fuzz(
        _ role: String, process: ToolProcess, port: Int, udpPort: Int?, dir: String?, extra: [String] = [],
        legitimate: String? = nil, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        var arguments = [
            "--role", role, "--port", "\(port)", "--pid", "\(process.process.processIdentifier)", "--frames", "3000",
            "--seconds", "15", "--idle-connections", "100", "--slow-writers", "20", "--seed", "\(testSeed())",
        ]
        if let udpPort { arguments += ["--udp-port", "\(udpPort)"] }
        if let dir { arguments += ["--dir", dir] }
        arguments += extra
        let result = try ToolProcess.run(tool: "rwa-fuzz", arguments, timeout: 120)
        print(result.output.joined(separator: "\n"))
        XCTAssertEqual(result.status, 0, "rwa-fuzz against \(role):\n\(result.transcript)", file: file, line: line)
        XCTAssertTrue(
            result.output.last?.contains("the daemon survived") == true, result.transcript, file: file, line: line)
        XCTAssertTrue(process.process.isRunning, "\(role) still runs", file: file, line: line)
        if let legitimate {
            XCTAssertTrue(
                result.output.contains { $0.contains(legitimate) }, "legitimate traffic: \(result.transcript)",
                file: file, line: line)
        }
    }

    /// Reads a daemon's lines until it has said where it listens over TCP and, if asked, UDP.
    func ports(_ process: ToolProcess, udp: Bool) throws -> (tcp: Int, udp: Int?) {
        var tcp: Int?
        var udpPort: Int?
        while tcp == nil || (udp && udpPort == nil) {
            let line = try process.requireLine("the listening lines")
            if line.hasPrefix("listening tcp") { tcp = try ToolProcess.parseListening(line).port }
            if line.hasPrefix("listening udp") { udpPort = try ToolProcess.parseListening(line).port }
        }
        return (tcp!, udpPort)
    }

    func testEveryDaemonSurvivesABoundedFuzzRun() async throws {
        try await withTimeout(600, "testEveryDaemonSurvivesABoundedFuzzRun") { [self] in
            let scratch = try Scratch()
            let dir = scratch.directory.appendingPathComponent("chain").path
            XCTAssertEqual(try ArbiterProcess.run(["init", "--dir", dir]).status, 0)
            let arbiter = try ArbiterProcess(["run", "--dir", dir, "--port", "0", "--udp-port", "0"])
            defer { arbiter.stop() }
            let (arbiterTCP, arbiterUDP) = try ports(arbiter, udp: true)
            // The arbiter also under pressure: 1,024 silent sessions re-taking every freed slot
            // (evicted for the legitimate clients), and 1,000 sessions each holding an
            // unfinished 64 KiB record (closed past the listener's budget).
            try fuzz(
                "arbiter", process: arbiter, port: arbiterTCP, udpPort: arbiterUDP, dir: dir,
                extra: ["--pressure", "slots,records", "--pressure-seconds", "5"], legitimate: "transfers exact: true")

            let connection = ["--dir", dir, "--arbiter", "127.0.0.1:\(arbiterTCP)"]
            let exchange = try ToolProcess(
                tool: "rwa-amm",
                [
                    "run", "--key", scratch.directory.appendingPathComponent("amm.key").path, "--port", "0",
                    "--udp-port", "0",
                ]
                    + connection)
            defer { exchange.stop() }
            let (exchangeTCP, exchangeUDP) = try ports(exchange, udp: true)
            // Swaps through the exchange alongside, each fill exact, on a pool of their own.
            try fuzz(
                "exchange", process: exchange, port: exchangeTCP, udpPort: exchangeUDP, dir: dir,
                extra: ["--arbiter-port", "\(arbiterTCP)"], legitimate: "swaps exact: true")

            let lessor = try ToolProcess(
                tool: "rwa-lessor",
                [
                    "run", "--home", scratch.directory.appendingPathComponent("lessor").path, "--port", "0",
                    "--udp-port",
                    "0", "--offer", "1:0-99:10:100",
                ] + connection)
            defer { lessor.stop() }
            let (lessorTCP, lessorUDP) = try ports(lessor, udp: true)
            try fuzz("lessor", process: lessor, port: lessorTCP, udpPort: lessorUDP, dir: dir)

            // The lessee listens nowhere: rwa-fuzz listens as a hostile lessor and has it dial
            // through its control socket; it must answer every ask in time, keep no channel with
            // that lessor and stop dialling it afterwards.
            let lesseeHome = scratch.directory.appendingPathComponent("lessee").path
            let lessee = try ToolProcess(tool: "rwa-lessee", ["run", "--home", lesseeHome] + connection)
            defer { lessee.stop() }
            while try lessee.requireLine("the ready line") != "ready" {}
            try fuzz(
                "lessee", process: lessee, port: 0, udpPort: nil, dir: dir,
                extra: [
                    "--control", lesseeHome + "/control.sock", "--pressure", "unread,forged", "--pressure-seconds", "3",
                ])

            let key = scratch.directory.appendingPathComponent("peer.key").path
            XCTAssertEqual(try ToolProcess.run(tool: "rwa-peer", ["keygen", "--out", key]).status, 0)
            let peer = try ToolProcess(tool: "rwa-peer", ["listen", "--key", key, "--transport", "tcp", "--port", "0"])
            defer { peer.stop() }
            try fuzz("peer", process: peer, port: try ports(peer, udp: false).tcp, udpPort: nil, dir: nil)
        }
    }
}
