// Goal: every daemon survives `rwa-fuzz`, the network fuzzer, in a bounded run: `rwa-arbiter run`
// (with legitimate transfers alongside whose balances must come out exact), `rwa-amm run` (with
// legitimate swaps, each fill exact), `rwa-lessor run`, `rwa-lessee run` (which dials rwa-fuzz
// as its hostile lessor) and `rwa-peer listen`, each over TCP (and
// UDP where it listens), each still answering afterwards with its resident memory under 128 MiB;
// the arbiter also through silent sessions that hold every slot and unfinished records that would
// fill its memory. The full runs (100,000 frames and more) are the README's "Fuzzing" commands.
import Foundation
import NIOPosix
import RWACrypto
import RWALedger
import RWANode
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

    /// The lessor verified and owning a fresh licence, the lessee verified and funded; the
    /// licence's id.
    func leasingWorld(dir: String, arbiterPort: Int, lessor: SigningPublicKey, lessee: SigningPublicKey) async throws
        -> TokenID
    {
        let genesis = try Genesis(decoding: [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/genesis.bin"))))
        let regulator = try KeyFile.read(from: "\(dir)/regulator.key")
        let issuer = try KeyFile.read(from: "\(dir)/stablecoin-issuer.key")
        let admin = try await ArbiterClient.connect(
            host: "127.0.0.1", port: arbiterPort, identity: regulator, chainID: genesis.chainID,
            arbiter: genesis.arbiter, group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await admin.close() } }
        for key in [lessor, lessee] {
            let identity = try await admin.sign(.registerIdentity(account: key, country: 840), with: regulator)
            _ = try await admin.sign(.addClaim(identity: identity.createdID, topic: ClaimTopic.kyc), with: regulator)
        }
        _ = try await admin.sign(.mint(token: 0, to: lessee, amount: 1_000_000), with: issuer)
        return try await admin.sign(
            .registerResource(
                ResourceRegistration(
                    kind: .radioSpectrum, owner: lessor, name: "fuzzed lessor's", valuation: 1_000_000,
                    spectrum: SpectrumLicence(
                        centreHz: 3_700_000_000, widthHz: 10_000_000, country: 840, region: "fuzz",
                        validFrom: 1_700_000_000, validUntil: 4_000_000_000),
                    compliance: ComplianceRules())), with: regulator
        ).createdID
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

            // A lease alongside the lessor's: the lessor owns a licence it offers, and a lessee
            // daemon, verified and funded, pays it all through the attack.
            let lessorHome = scratch.directory.appendingPathComponent("lessor").path
            let payerHome = scratch.directory.appendingPathComponent("payer").path
            let (lessorKey, payerKey) = (SigningKeyPair.generate(), SigningKeyPair.generate())
            for (home, key) in [(lessorHome, lessorKey), (payerHome, payerKey)] {
                try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
                try KeyFile.write(key, to: home + "/identity.key")
            }
            let licence = try await leasingWorld(
                dir: dir, arbiterPort: arbiterTCP, lessor: lessorKey.publicKey, lessee: payerKey.publicKey)
            let lessor = try ToolProcess(
                tool: "rwa-lessor",
                ["run", "--home", lessorHome, "--port", "0", "--udp-port", "0", "--offer", "\(licence):0-99:10:100"]
                    + connection)
            defer { lessor.stop() }
            let (lessorTCP, lessorUDP) = try ports(lessor, udp: true)
            let payer = try ToolProcess(tool: "rwa-lessee", ["run", "--home", payerHome] + connection)
            defer { payer.stop() }
            while try payer.requireLine("the payer's ready line") != "ready" {}
            try fuzz(
                "lessor", process: lessor, port: lessorTCP, udpPort: lessorUDP, dir: dir,
                extra: ["--arbiter-port", "\(arbiterTCP)", "--lessee-control", payerHome + "/control.sock"],
                legitimate: "payments exact: true")

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
