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
import RWASession
import RWAStore
import RWATestSupport
import RWAWire
import XCTest

final class ArbiterProcessTests: XCTestCase {
    /// Starts `rwa-arbiter run` on free ports; returns the process and its TCP port.
    func startArbiter(dir: String, extra: [String] = []) throws -> (ArbiterProcess, Int) {
        let process = try ArbiterProcess(["run", "--dir", dir, "--port", "0", "--no-udp"] + extra)
        let chainLine = try process.requireLine("the chain line")
        XCTAssertTrue(chainLine.hasPrefix("chain "), chainLine)
        return (process, try process.requireListening("tcp").port)
    }

    func testCommandLineFlowFromInitToVerify() throws {
        let scratch = try Scratch()
        let dir = scratch.directory.appendingPathComponent("chain").path
        let initialized = try ArbiterProcess.run(["init", "--dir", dir])
        XCTAssertEqual(initialized.status, 0, initialized.errors.joined(separator: "\n"))
        XCTAssertTrue(initialized.output.first?.hasPrefix("chain ") ?? false)
        let again = try ArbiterProcess.run(["init", "--dir", dir])
        XCTAssertEqual(again.status, 1, "init never overwrites")
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
        XCTAssertEqual(badAmount.status, 64, "a usage error, refused before anything is sent")
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
        XCTAssertEqual(noKey.status, 1, "an error, not a crash")
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

    /// What the clients saw across the kills: receipts by epoch (the arbiter process they came
    /// from), the port of the arbiter currently running, and every error, sorted by cause.
    actor CrashLedger {
        var receipts: [(transaction: Digest32, receipt: Receipt, epoch: Int)] = []
        var port = 0
        var epoch = 0
        var done = false
        /// Errors a kill explains: the session ended, or the new arbiter was not listening yet.
        var sessionEnds = 0
        var refusedConnections = 0
        var unexplained: [String] = []

        func record(_ transaction: Digest32, _ receipt: Receipt) {
            receipts.append((transaction, receipt, epoch))
        }
        func receiptCount(epoch: Int) -> Int { receipts.lazy.filter { $0.epoch == epoch }.count }
        func restarted(port: Int) {
            self.port = port
            epoch += 1
        }
        func started(port: Int) { self.port = port }
        func finish() { done = true }
        func failed(_ error: Error, connecting: Bool) {
            // A connection refused (no arbiter listening yet) or reset (killed mid-handshake).
            let killedErrnos: Set<Int32> = [ECONNREFUSED, ECONNRESET, EPIPE]
            switch error {
            case is SessionError: sessionEnds += 1
            case let failure as ArbiterRequestError where failure.code == .closed: sessionEnds += 1
            case let failure as IOError where connecting && killedErrnos.contains(failure.errnoCode):
                refusedConnections += 1
            case let failure as NIOConnectionError
            where connecting
                && failure.connectionErrors.allSatisfy({
                    ($0.error as? IOError).map { killedErrnos.contains($0.errnoCode) } ?? false
                }):
                refusedConnections += 1
            default: unexplained.append("\(connecting ? "connecting: " : "")\(type(of: error)): \(error)")
            }
        }
    }

    func testEveryReceiptedTransactionSurvivesTwentyKills() async throws {
        let seed = testSeed()
        var schedule = SplitMix(seed: seed)
        let scratch = try Scratch()
        let dir = scratch.directory.appendingPathComponent("chain").path
        XCTAssertEqual(try ArbiterProcess.run(["init", "--dir", dir]).status, 0)
        let genesis = try Genesis(decoding: [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/genesis.bin"))))
        let issuer = try KeyFile.read(from: "\(dir)/stablecoin-issuer.key")
        let senders = (0..<4).map { _ in SigningKeyPair.generate() }
        var (arbiter, port) = try startArbiter(dir: dir, extra: ["--block-interval-ms", "2"])
        defer { arbiter.kill() }
        let group = MultiThreadedEventLoopGroup.singleton
        @Sendable func connect(_ identity: SigningKeyPair, port: Int) async throws -> ArbiterClient {
            try await ArbiterClient.connect(
                host: "127.0.0.1", port: port, identity: identity, chainID: genesis.chainID, arbiter: genesis.arbiter,
                group: group)
        }
        try await withTimeout(30, "funding the senders") {
            let setup = try await connect(issuer, port: port)
            for sender in senders {
                _ = try await setup.sign(.mint(token: 0, to: sender.publicKey, amount: 1_000_000_000), with: issuer)
            }
            await setup.close()
        }

        let ledger = CrashLedger()
        await ledger.started(port: port)
        // Each client sends transfers in windows of 8 until told to stop; a dead session means
        // the arbiter was killed: it reconnects to the new port and reads its sequence again.
        // Every receipt must name the transaction the client computed itself.
        let clients = Task {
            await withTaskGroup(of: Void.self) { tasks in
                for (index, sender) in senders.enumerated() {
                    tasks.addTask {
                        let receiver = senders[(index + 1) % senders.count].publicKey
                        while await !ledger.done {
                            let client: ArbiterClient
                            do {
                                client = try await connect(sender, port: await ledger.port)
                            } catch {
                                await ledger.failed(error, connecting: true)
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
                                    for (transaction, future) in zip(window, futures) {
                                        let receipt = try await future.get()
                                        await ledger.record(transaction.hash, receipt)
                                    }
                                }
                            } catch {
                                await ledger.failed(error, connecting: false)
                            }
                            await client.close()
                        }
                    }
                }
            }
        }
        let kills = 20
        var killFailure: String?
        for kill in 0..<kills {
            // Each arbiter process serves under load before it dies: at least a few receipts
            // come from it (waiting at most 30 s), then it lives a seeded while longer.
            let epoch = await ledger.epoch
            let deadline = Date().addingTimeInterval(30)
            while await ledger.receiptCount(epoch: epoch) < 8 && Date() < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...300, using: &schedule)))
            arbiter.kill()
            do {
                (arbiter, port) = try startArbiter(dir: dir, extra: ["--block-interval-ms", "2"])
            } catch {
                killFailure = "restart after kill \(kill + 1): \(error)"
                break
            }
            await ledger.restarted(port: port)
        }
        let lastEpoch = await ledger.epoch
        let deadline = Date().addingTimeInterval(30)
        while await ledger.receiptCount(epoch: lastEpoch) < 8 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        await ledger.finish()
        try await withTimeout(60, "the clients stopping") { await clients.value }
        arbiter.kill()
        XCTAssertNil(killFailure, "seed \(seed)")

        let receipts = await ledger.receipts
        let epochs = await ledger.epoch
        let perEpoch = (0...epochs).map { epoch in receipts.lazy.filter { $0.epoch == epoch }.count }
        print("receipts per arbiter process: \(perEpoch)")
        XCTAssertEqual(epochs, kills, "seed \(seed)")
        XCTAssertFalse(
            perEpoch.contains(0), "every arbiter process served receipts before its kill: \(perEpoch), seed \(seed)")
        let sessionEnds = await ledger.sessionEnds
        let refused = await ledger.refusedConnections
        let unexplained = await ledger.unexplained
        print("client errors: \(sessionEnds) sessions ended by a kill, \(refused) connections refused or reset by one")
        XCTAssertEqual(unexplained, [], "client errors no kill explains (seed \(seed))")
        XCTAssertGreaterThanOrEqual(sessionEnds, kills, "each kill ended the sessions open at the time")

        for entry in receipts {
            XCTAssertEqual(entry.receipt.hash, entry.transaction, "a receipt names the transaction that was sent")
        }
        let store = try LedgerStore.open(path: "\(dir)/chain.sqlite", readonly: true)
        var missing = 0
        var misplaced: [String] = []
        for entry in receipts {
            guard let located = try store.transaction(hash: entry.transaction) else {
                missing += 1
                continue
            }
            if located.height != entry.receipt.height || located.index != entry.receipt.index {
                misplaced.append(
                    "receipt \(entry.receipt.height)/\(entry.receipt.index), stored \(located.height)/\(located.index)")
            }
        }
        XCTAssertEqual(missing, 0, "every transaction that got a receipt is in the chain (seed \(seed))")
        XCTAssertEqual(misplaced, [], "every receipt's height and index are where the store has it (seed \(seed))")
        XCTAssertEqual(
            Set(receipts.map(\.transaction)).count, receipts.count, "no transaction was receipted twice (seed \(seed))")
        let verified = try ArbiterProcess.run(["verify", "--dir", dir])
        XCTAssertEqual(verified.status, 0, verified.transcript)
    }
}
