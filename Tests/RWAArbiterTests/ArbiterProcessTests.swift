// Goal: `rwa-arbiter` as users run it. The CLI creates a chain, serves it, signs and submits
// admin transactions, reports rejections with exit status 1, verifies and inspects. Then the
// crash test: the arbiter process is SIGKILLed at random moments under a stream of transfers from
// several clients, restarted each time, and afterwards every receipted transaction is in the
// chain and `rwa-arbiter verify` passes.
import Foundation
import NIOCore
import NIOPosix
import RWACrypto
import RWALedger
import RWANode
import RWAStore
import RWATestSupport
import RWAWire
import XCTest

final class ArbiterProcessTests: XCTestCase {
    /// Starts `rwa-arbiter run` on free ports; returns the process and its TCP port.
    func startArbiter(dir: String, extra: [String] = []) throws -> (ArbiterProcess, Int) {
        let process = try ArbiterProcess(["run", "--dir", dir, "--port", "0", "--no-udp"] + extra)
        let chainLine = try XCTUnwrap(process.nextLine(timeout: 30), "arbiter did not start")
        XCTAssertTrue(chainLine.hasPrefix("chain "), chainLine)
        let ready = try XCTUnwrap(process.nextLine(timeout: 30), "arbiter did not listen")
        let fields = ready.split(separator: " ")
        XCTAssertEqual(fields.first, "listening", ready)
        return (process, Int(fields[3])!)
    }

    func testCommandLineFlowFromInitToVerify() throws {
        let scratch = try Scratch()
        let dir = scratch.directory.appendingPathComponent("chain").path
        let initialized = try ArbiterProcess.run(["init", "--dir", dir])
        XCTAssertEqual(initialized.status, 0, initialized.errors.joined(separator: "\n"))
        XCTAssertTrue(initialized.output.first?.hasPrefix("chain ") ?? false)
        let again = try ArbiterProcess.run(["init", "--dir", dir])
        XCTAssertNotEqual(again.status, 0, "init never overwrites")
        XCTAssertTrue(again.errors.joined().contains("exists"), again.errors.joined())

        let (arbiter, port) = try startArbiter(dir: dir)
        defer { arbiter.stop() }
        let address = ["--dir", dir, "--arbiter", "127.0.0.1:\(port)"]
        let regulator = ["--key", "\(dir)/regulator.key"] + address
        let user = try scratch.key("user")
        let account = user.pair.publicKey.description

        let registered = try ArbiterProcess.run(
            ["identity", "register"] + regulator + ["--account", account, "--country", "826", "--json"])
        XCTAssertEqual(registered.status, 0, registered.errors.joined())
        let receipt = try JSONSerialization.jsonObject(with: Data(registered.output.joined().utf8)) as? [String: Any]
        XCTAssertEqual(receipt?["identity"] as? Int, 1)
        XCTAssertEqual(
            try ArbiterProcess.run(["claim", "add"] + regulator + ["--identity", "1", "--topic", "kyc"]).status, 0)
        let licence = try ArbiterProcess.run(
            ["resource", "register"] + regulator + [
                "--owner", account, "--kind", "radio-spectrum", "--name", "n78 Leeds", "--valuation", "5000000000",
                "--centre-hz", "3500000000", "--width-hz", "10000000", "--country", "826", "--region", "Leeds",
                "--valid-from", "1767225600", "--valid-until", "1924992000",
            ])
        XCTAssertEqual(licence.status, 0, licence.errors.joined())
        XCTAssertTrue(licence.output.joined().contains("resource 1"), licence.output.joined())
        let minted = try ArbiterProcess.run(
            ["stablecoin", "mint", "--key", "\(dir)/stablecoin-issuer.key"] + address + [
                "--to", account, "--amount", "2500",
            ])
        XCTAssertEqual(minted.status, 0, minted.errors.joined())

        // A rejection: the user is no agent of its licence token. Exit 1, code and reason on stderr.
        let refused = try ArbiterProcess.run(
            ["token", "pause", "--key", user.path] + address + ["--token", "1"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.errors.joined().contains("not_authorized"), refused.errors.joined())
        // Bad input never reaches the arbiter: a clear message and a non-zero exit.
        let badAmount = try ArbiterProcess.run(
            ["transfer", "--key", user.path] + address + ["--to", account, "--amount", "-3"])
        XCTAssertNotEqual(badAmount.status, 0)
        XCTAssertTrue(badAmount.errors.joined().contains("--amount"), badAmount.errors.joined())
        let longName = try ArbiterProcess.run(
            ["resource", "register"] + regulator + [
                "--owner", account, "--kind", "bandwidth", "--name", String(repeating: "n", count: 65),
                "--valuation", "1",
            ])
        XCTAssertEqual(longName.status, 1, "a name above its limit is an error, not a crash")
        XCTAssertTrue(longName.errors.joined().contains("65 bytes"), longName.errors.joined())
        let noKey = try ArbiterProcess.run(
            ["transfer", "--key", "/nonexistent.key"] + address + ["--to", account, "--amount", "1"])
        XCTAssertNotEqual(noKey.status, 0)
        XCTAssertTrue(noKey.errors.joined().contains("/nonexistent.key"), noKey.errors.joined())

        let account1 = try ArbiterProcess.run(["inspect", "account", "--dir", dir, account, "--json"])
        XCTAssertEqual(account1.status, 0, account1.errors.joined())
        let json = try JSONSerialization.jsonObject(with: Data(account1.output.joined().utf8)) as? [String: Any]
        let holdings = json?["holdings"] as? [[String: Any]]
        XCTAssertEqual(holdings?.first { $0["token"] as? Int == 0 }?["balance"] as? String, "2500")
        XCTAssertEqual(holdings?.first { $0["token"] as? Int == 1 }?["balance"] as? String, "100000000")
        let resource = try ArbiterProcess.run(["inspect", "resource", "--dir", dir, "1", "--json"])
        let resourceJSON = try JSONSerialization.jsonObject(with: Data(resource.output.joined().utf8)) as? [String: Any]
        let slices = (resourceJSON?["spectrum"] as? [String: Any])?["slices"] as? [[String: Any]]
        XCTAssertEqual(slices?.count, 100)
        XCTAssertEqual(slices?.last?["high_hz"] as? Int, 3_505_000_000)

        // `watch` prints the stored blocks through the subscription: here the four committed so far.
        let watched = try ArbiterProcess.run(
            ["watch", "--dir", dir, "--arbiter", "127.0.0.1:\(port)", "--count", "4", "--json"])
        XCTAssertEqual(watched.status, 0, watched.errors.joined())
        let heights = try watched.output.map { line in
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])["height"] as? Int
        }
        XCTAssertEqual(heights, [1, 2, 3, 4])

        let verified = try ArbiterProcess.run(["verify", "--dir", dir, "--json"])
        XCTAssertEqual(verified.status, 0, verified.output.joined() + verified.errors.joined())
        XCTAssertTrue(verified.output.joined().contains("\"transactions\":4"), verified.output.joined())
    }

    /// Receipts collected by the clients, and the port of the arbiter currently running.
    actor CrashLedger {
        var receipted: [Digest32] = []
        var port = 0
        var done = false
        func record(_ hash: Digest32) { receipted.append(hash) }
        func setPort(_ value: Int) { port = value }
        func finish() { done = true }
    }

    func testEveryReceiptedTransactionSurvivesTwentyKills() async throws {
        let scratch = try Scratch()
        let dir = scratch.directory.appendingPathComponent("chain").path
        XCTAssertEqual(try ArbiterProcess.run(["init", "--dir", dir]).status, 0)
        let genesis = try Genesis(decoding: [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/genesis.bin"))))
        let issuer = try KeyFile.read(from: "\(dir)/stablecoin-issuer.key")
        let senders = (0..<4).map { _ in SigningKeyPair.generate() }
        var (arbiter, port) = try startArbiter(dir: dir, extra: ["--block-interval-ms", "2"])
        let group = MultiThreadedEventLoopGroup.singleton
        func connect(_ identity: SigningKeyPair, port: Int) async throws -> ArbiterClient {
            try await ArbiterClient.connect(
                host: "127.0.0.1", port: port, identity: identity, chainID: genesis.chainID, arbiter: genesis.arbiter,
                group: group)
        }
        let setup = try await connect(issuer, port: port)
        for sender in senders {
            _ = try await setup.sign(.mint(token: 0, to: sender.publicKey, amount: 1_000_000_000), with: issuer)
        }
        await setup.close()

        let ledger = CrashLedger()
        await ledger.setPort(port)
        // Each client sends transfers in windows of 8 until told to stop; a dead session means
        // the arbiter was killed: it reconnects to the new port and reads its sequence again.
        let clients = Task {
            await withTaskGroup(of: Void.self) { tasks in
                for (index, sender) in senders.enumerated() {
                    tasks.addTask {
                        let receiver = senders[(index + 1) % senders.count].publicKey
                        while await !ledger.done {
                            guard let client = try? await connect(sender, port: await ledger.port) else {
                                try? await Task.sleep(for: .milliseconds(20))
                                continue
                            }
                            do {
                                while await !ledger.done {
                                    let next = try await client.account(sender.publicKey)?.nextSequence ?? 0
                                    let window = try (0..<8).map { offset in
                                        try Transaction(
                                            signedBy: sender, chainID: genesis.chainID, sequence: next + UInt64(offset),
                                            operation: .transfer(token: 0, to: receiver, amount: 1))
                                    }
                                    let futures = window.map { client.submitPipelined($0) }
                                    for future in futures {
                                        let receipt = try await future.get()
                                        await ledger.record(receipt.hash)
                                    }
                                }
                            } catch {}
                            await client.close()
                        }
                    }
                }
            }
        }
        var generator = SystemRandomNumberGenerator()
        let kills = 20
        for _ in 0..<kills {
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...400, using: &generator)))
            arbiter.kill()
            (arbiter, port) = try startArbiter(dir: dir, extra: ["--block-interval-ms", "2"])
            await ledger.setPort(port)
        }
        try await Task.sleep(for: .milliseconds(300))
        await ledger.finish()
        await clients.value
        arbiter.kill()

        let receipted = await ledger.receipted
        XCTAssertGreaterThan(receipted.count, 200, "the clients kept the arbiter busy")
        let store = try LedgerStore.open(path: "\(dir)/chain.sqlite", readonly: true)
        var missing = 0
        for hash in receipted where try store.transaction(hash: hash) == nil { missing += 1 }
        XCTAssertEqual(missing, 0, "every transaction that got a receipt is in the chain")
        XCTAssertEqual(Set(receipted).count, receipted.count, "no transaction was receipted twice")
        let verified = try ArbiterProcess.run(["verify", "--dir", dir])
        XCTAssertEqual(verified.status, 0, verified.output.joined() + verified.errors.joined())
    }
}
