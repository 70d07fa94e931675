// Goal: leasing with real processes on loopback: `rwa-arbiter run` on a chain whose hours last
// two seconds, `rwa-lessor run` with an offer, `rwa-lessee run`, and the lessee's CLI opening a
// channel, paying in steps and closing it; the lessor's CLI collecting its rent. Every balance on
// the ledger is exact to the base unit, the licence's two holders receive the rent pro rata, the
// lessee's store survives a restart of its daemon with the channel as both sides left it, and
// `rwa-arbiter verify` replays the chain.
import Foundation
import NIOPosix
import RWACrypto
import RWALedger
import RWANode
import RWATestSupport
import RWAWire
import XCTest

final class LeaseDaemonProcess: ToolProcess {
    init(_ tool: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        try super.init(tool: tool, arguments, environment: environment)
    }

    /// Runs a CLI subcommand with `--json`; returns its answer, failing the test on a non-zero exit.
    static func json(_ tool: String, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws
        -> [String: Any]
    {
        let result = try run(tool: tool, arguments + ["--json"], timeout: 60)
        XCTAssertEqual(
            result.status, 0, "\(tool) \(arguments): \(result.errors.joined(separator: "\n"))", file: file, line: line)
        return try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(result.output.joined().utf8)) as? [String: Any],
            "\(tool) \(arguments): \(result.output.joined())", file: file, line: line)
    }
}

final class LeaseProcessTests: XCTestCase {
    func testALeaseBetweenDaemonsFromTheCLI() async throws {
        try await withTimeout(180, "testALeaseBetweenDaemonsFromTheCLI") {
            try await self.lease(over: .tcp)
        }
    }

    /// The whole flow on an arbiter run with the paper's block rules (10 transactions or 5 s).
    func testALeaseOnThePapersBlockRules() async throws {
        try await withTimeout(240, "testALeaseOnThePapersBlockRules") {
            try await self.lease(over: .tcp, profile: "paper", updates: 100)
        }
    }

    /// The same lease over UDP with 20% loss, duplication and reordering injected into every
    /// datagram both daemons send: the sessions repair it, and every balance is exact.
    func testALeaseOverUDPWithLossDuplicationAndReordering() async throws {
        try await withTimeout(240, "testALeaseOverUDPWithLossDuplicationAndReordering") {
            let seed = testSeed()
            try await self.lease(
                over: .udp, environment: ["RWANET_UDP_FAULTS": "loss=0.2,dup=0.1,reorder=0.1,seed=\(seed)"],
                updates: 50)
        }
    }

    /// A chain whose hours last two seconds, served by `rwa-arbiter run`; the lessor's and lessee's
    /// keys made in their homes and verified; the lessor's licence, of whose 100 slices carol
    /// holds 25, its pool 30 and dave 10, bought through the pool (the lessor keeps 35); and the
    /// lessee funded with 1,000,000.
    struct World {
        let scratch: Scratch
        let chainDir: String
        let arbiter: ArbiterProcess
        let arbiterPort: Int
        let genesis: Genesis
        let admin: ArbiterClient
        let lessorKey: SigningKeyPair
        let lesseeKey: SigningKeyPair
        let carol: SigningKeyPair
        let dave: SigningKeyPair
        let licence: UInt64
        let lessorHome: String
        let lesseeHome: String
        /// The arbiter's metrics port, when `arbiterArguments` asked for `--metrics`.
        var arbiterMetricsPort: Int? = nil
        var connection: [String] { ["--dir", chainDir, "--arbiter", "127.0.0.1:\(arbiterPort)"] }
    }

    /// Starts a daemon and waits for its `ready`; returns it with the TCP port it listens on, if any.
    static func startDaemon(_ tool: String, _ arguments: [String]) throws -> (LeaseDaemonProcess, Int?) {
        let process = try LeaseDaemonProcess(tool, arguments)
        var port: Int?
        while true {
            let line = try process.requireLine("the ready line")
            if line.hasPrefix("listening tcp") { port = try ToolProcess.parseListening(line).port }
            if line == "ready" { return (process, port) }
        }
    }

    static func makeWorld(profile: String = "standard", arbiterArguments: [String] = []) async throws -> World {
        let scratch = try Scratch()
        let chainDir = scratch.directory.appendingPathComponent("chain").path
        XCTAssertEqual(try ArbiterProcess.run(["init", "--dir", chainDir, "--period-seconds", "2"]).status, 0)
        let arbiter = try ArbiterProcess(
            ["run", "--dir", chainDir, "--port", "0", "--no-udp", "--profile", profile] + arbiterArguments)
        var madeIt = false
        defer { if !madeIt { arbiter.stop() } }  // the caller stops it once it has it
        var firstLine = try arbiter.requireLine("the chain line")
        var arbiterMetricsPort: Int?
        if firstLine.hasPrefix("metrics ") {
            arbiterMetricsPort = Int(firstLine.split(separator: " ")[2])
            firstLine = try arbiter.requireLine("the chain line")
        }
        XCTAssertTrue(firstLine.hasPrefix("chain "), firstLine)
        let arbiterPort = try arbiter.requireListening("tcp").port
        let genesis = try Genesis(
            decoding: [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(chainDir)/genesis.bin"))))
        XCTAssertEqual(genesis.periodSeconds, 2)

        // The daemons' keys, made first so the regulator can verify them.
        let lessorHome = scratch.directory.appendingPathComponent("lessor").path
        let lesseeHome = scratch.directory.appendingPathComponent("lessee").path
        let lessorKey = SigningKeyPair.generate()
        let lesseeKey = SigningKeyPair.generate()
        let carol = SigningKeyPair.generate()
        let dave = SigningKeyPair.generate()
        for (home, key) in [(lessorHome, lessorKey), (lesseeHome, lesseeKey)] {
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            try KeyFile.write(key, to: home + "/identity.key")
        }
        let regulator = try KeyFile.read(from: "\(chainDir)/regulator.key")
        let issuer = try KeyFile.read(from: "\(chainDir)/stablecoin-issuer.key")
        let admin = try await ArbiterClient.connect(
            host: "127.0.0.1", port: arbiterPort, identity: regulator, chainID: genesis.chainID,
            arbiter: genesis.arbiter, group: MultiThreadedEventLoopGroup.singleton)
        for key in [lessorKey, lesseeKey, carol, dave] {
            let identity = try await admin.sign(
                .registerIdentity(account: key.publicKey, country: 840), with: regulator)
            _ = try await admin.sign(
                .addClaim(identity: identity.createdID, topic: ClaimTopic.kyc), with: regulator)
        }
        let licence = try await admin.sign(
            .registerResource(
                ResourceRegistration(
                    kind: .radioSpectrum, owner: lessorKey.publicKey, name: "CBRS", valuation: 1_000_000,
                    spectrum: SpectrumLicence(
                        centreHz: 3_500_000_000, widthHz: 10_000_000, country: 840, region: "test",
                        validFrom: 1_700_000_000, validUntil: 2_000_000_000),
                    compliance: ComplianceRules())), with: regulator
        ).createdID
        _ = try await admin.sign(.mint(token: 0, to: lesseeKey.publicKey, amount: 1_000_000), with: issuer)
        _ = try await admin.sign(
            .transfer(token: licence, to: carol.publicKey, amount: 25_000_000), with: lessorKey)
        // The licence's market: 40 slices against 4,000,000 in the pool; dave buys 10 slices.
        _ = try await admin.sign(.mint(token: 0, to: lessorKey.publicKey, amount: 4_000_000), with: issuer)
        _ = try await admin.sign(.mint(token: 0, to: dave.publicKey, amount: 2_000_000), with: issuer)
        _ = try await admin.sign(.createPool(token: licence, country: 840), with: regulator)
        let far = UInt64(Date().timeIntervalSince1970 + 3_600) * 1000
        _ = try await admin.sign(
            .addLiquidity(
                token: licence, licenceDesired: 40_000_000, stablecoinDesired: 4_000_000, licenceMinimum: 0,
                stablecoinMinimum: 0, deadlineMilliseconds: far), with: lessorKey)
        _ = try await admin.sign(
            .swapExactOut(
                token: licence, side: .buy, amountOut: 10_000_000, maximumIn: 2_000_000,
                deadlineMilliseconds: far), with: dave)
        let daveSlices = try await admin.holding(token: licence, account: dave.publicKey).balance
        XCTAssertEqual(daveSlices, 10_000_000, "dave bought 10 slices through the pool")

        madeIt = true
        return World(
            scratch: scratch, chainDir: chainDir, arbiter: arbiter, arbiterPort: arbiterPort, genesis: genesis,
            admin: admin, lessorKey: lessorKey, lesseeKey: lesseeKey, carol: carol, dave: dave, licence: licence,
            lessorHome: lessorHome, lesseeHome: lesseeHome, arbiterMetricsPort: arbiterMetricsPort)
    }

    func lease(
        over transport: TransportKind, environment: [String: String] = [:], profile: String = "standard",
        updates: Int = 1_000
    ) async throws {
        do {
            let world = try await Self.makeWorld(profile: profile)
            let (scratch, chainDir, arbiter, arbiterPort, genesis, admin) = (
                world.scratch, world.chainDir, world.arbiter, world.arbiterPort, world.genesis, world.admin
            )
            defer { arbiter.stop() }
            let (lessorKey, lesseeKey, carol, licence) = (world.lessorKey, world.lesseeKey, world.carol, world.licence)
            let (lessorHome, lesseeHome) = (world.lessorHome, world.lesseeHome)
            let connection = ["--dir", chainDir, "--arbiter", "127.0.0.1:\(arbiterPort)"]
            let lessor = try LeaseDaemonProcess(
                "rwa-lessor",
                ["run", "--home", lessorHome, "--port", "0", "--udp-port", "0", "--offer", "\(licence):0-99:10:100"]
                    + connection, environment: environment)
            defer { lessor.stop() }
            let tcpPort = try lessor.requireListening("tcp").port
            let udpPort = try lessor.requireListening("udp").port
            let lessorPort = transport == .udp ? udpPort : tcpPort
            XCTAssertEqual(try lessor.requireLine("identity"), "identity \(lessorKey.publicKey)")
            _ = try lessor.requireLine("control")
            XCTAssertEqual(try lessor.requireLine("ready"), "ready")
            var lessee = try LeaseDaemonProcess(
                "rwa-lessee", ["run", "--home", lesseeHome] + connection, environment: environment)
            defer { lessee.stop() }
            _ = try lessee.requireLine("identity")
            _ = try lessee.requireLine("control")
            XCTAssertEqual(try lessee.requireLine("ready"), "ready")

            // Two slices for five hours, starting a minute from now (so the daemon does not pay
            // ahead on its own during the test): 100 in all, paid in steps of 10.
            // Enough hours that 100 + `updates` units fit the price (20 per hour at 10 per slice-hour);
            // paid in 10 steps of 10, then `updates` steps of 1.
            let deposit = 100 + updates
            let hours = (deposit + 19) / 20
            let start = (UInt64(Date().timeIntervalSince1970) / 2 + 30) * 2
            let open = [
                "open", "--home", lesseeHome, "--lessor", "127.0.0.1:\(lessorPort)", "--transport",
                transport.rawValue, "--lessor-key",
                "\(lessorKey.publicKey)", "--licence", "\(licence)", "--slices", "20-21", "--start", "\(start)",
                "--hours", "\(hours)", "--challenge-ms", "2000",
            ]
            let refused = try ToolProcess.run(
                tool: "rwa-lessee",
                open + ["--rate", "9", "--deposit", "\(18 * hours)", "--increment", "9", "--nonce", "2"],
                timeout: 60)
            XCTAssertEqual(refused.status, 1, "a rate below the offer")
            XCTAssertTrue(refused.errors.joined().contains("not_offered"), refused.errors.joined())
            // The lessee asks the lessor what it offers, over the network, then opens at the offer.
            let lessorAddress = [
                "--lessor", "127.0.0.1:\(lessorPort)", "--transport", transport.rawValue, "--lessor-key",
                "\(lessorKey.publicKey)",
            ]
            let offered = try LeaseDaemonProcess.json("rwa-lessee", ["offers", "--home", lesseeHome] + lessorAddress)
            let offers = try XCTUnwrap(offered["offers"] as? [[String: Any]])
            XCTAssertEqual(offers.count, 1)
            XCTAssertEqual(offers.first?["licence"] as? Int, Int(licence))
            XCTAssertEqual(offers.first?["rate_per_slice_hour"] as? String, "10")
            XCTAssertEqual(offers.first?["max_hours"] as? Int, 100)
            XCTAssertEqual((offered["taken"] as? [Any])?.count, 0, "nothing leased yet")
            let opened = try LeaseDaemonProcess.json(
                "rwa-lessee", open + ["--deposit", "\(deposit)", "--increment", "10"])
            let channel = try XCTUnwrap(opened["channel"] as? String)
            // Once the lessor has seen the open's block, the lease is listed as taken.
            var taken: [[String: Any]] = []
            let seenBy = Date().addingTimeInterval(15)
            while taken.isEmpty && Date() < seenBy {
                let answer = try LeaseDaemonProcess.json(
                    "rwa-lessee", ["offers", "--home", lesseeHome] + lessorAddress)
                taken = try XCTUnwrap(answer["taken"] as? [[String: Any]])
                if taken.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
            }
            XCTAssertEqual(taken.count, 1, "the lease just opened is taken")
            XCTAssertEqual(taken.first?["first_slice"] as? Int, 20)
            XCTAssertEqual(taken.first?["slice_count"] as? Int, 2)
            XCTAssertEqual(taken.first?["start_seconds"] as? Int, Int(start))
            XCTAssertEqual(taken.first?["hours"] as? Int, hours)
            let lessorChannel = try LeaseDaemonProcess.json("rwa-lessor", ["status", "--home", lessorHome, channel])
            XCTAssertEqual(
                (lessorChannel["channel"] as? [String: Any])?["rate_per_slice_hour"] as? String, "10",
                "opened at the offered rate")
            let lesseeBalance = try await admin.holding(token: 0, account: lesseeKey.publicKey).balance
            XCTAssertEqual(lesseeBalance, 1_000_000 - UInt128(deposit), "the deposit is in the channel")

            for step in 1...5 {
                let paid = try LeaseDaemonProcess.json("rwa-lessee", ["pay", "--home", lesseeHome, channel, "10"])
                let state = try XCTUnwrap(paid["state"] as? [String: Any])
                XCTAssertEqual(state["nonce"] as? Int, step)
                XCTAssertEqual(state["paid"] as? String, "\(step * 10)")
            }
            // The lessee's daemon restarts: the channel comes back from its store, and the lessee
            // goes back to the lessor and goes on paying where both left off.
            lessee.stop()
            lessee = try LeaseDaemonProcess(
                "rwa-lessee", ["run", "--home", lesseeHome] + connection, environment: environment)
            _ = try lessee.requireLine("ready")
            for step in 6...10 {
                let paid = try LeaseDaemonProcess.json("rwa-lessee", ["pay", "--home", lesseeHome, channel, "10"])
                XCTAssertEqual((paid["state"] as? [String: Any])?["nonce"] as? Int, step)
            }
            // Then `updates` more of 1 each, one after another, through one CLI call.
            let many = try LeaseDaemonProcess.json(
                "rwa-lessee", ["pay", "--home", lesseeHome, channel, "1", "--count", "\(updates)"])
            XCTAssertEqual((many["state"] as? [String: Any])?["nonce"] as? Int, 10 + updates)
            XCTAssertEqual((many["state"] as? [String: Any])?["paid"] as? String, "\(deposit)")
            let over = try ToolProcess.run(
                tool: "rwa-lessee", ["pay", "--home", lesseeHome, channel, "1"], timeout: 60)
            XCTAssertEqual(over.status, 1)
            XCTAssertTrue(over.errors.joined().contains("payment_above_deposit"), over.errors.joined())
            let lessorView = try LeaseDaemonProcess.json("rwa-lessor", ["status", "--home", lessorHome, channel])
            XCTAssertEqual(
                ((lessorView["channel"] as? [String: Any])?["state"] as? [String: Any])?["paid"] as? String,
                "\(deposit)")

            // The usage-right proof, checked offline with only the arbiter's key.
            let proofPath = scratch.directory.appendingPathComponent("usage.proof").path
            XCTAssertEqual(
                try ToolProcess.run(
                    tool: "rwa-lessee", ["proof", "--home", lesseeHome, channel, "--out", proofPath], timeout: 60
                ).status, 0)
            let arbiterKey = "\(genesis.arbiter)"
            func verify(_ file: String, at time: UInt64, _ extra: [String] = []) throws -> ToolProcess.Outcome {
                try ToolProcess.run(
                    tool: "rwa-lessee",
                    ["verify-proof", file, "--at", "\(time)", "--arbiter-key", arbiterKey] + extra, timeout: 60)
            }
            let inside = try verify(proofPath, at: start + 1)
            XCTAssertEqual(inside.status, 0, inside.output.joined() + inside.errors.joined())
            XCTAssertTrue(
                inside.output.joined().hasPrefix("yes: licence \(licence) slices 20-21"), inside.output.joined())
            XCTAssertTrue(inside.output.joined().contains("3497000000-3497100000 Hz"), inside.output.joined())
            // Paid through the start plus deposit × 2 s / 20 per period (rounded down).
            let after = try verify(proofPath, at: start + UInt64(deposit * 2 / 20))
            XCTAssertEqual(after.status, 1, "paid through the end of the lease, not beyond")
            XCTAssertTrue(after.output.joined().hasPrefix("no: paid through"), after.output.joined())
            var tampered = [UInt8](try Data(contentsOf: URL(fileURLWithPath: proofPath)))
            tampered[tampered.count - 16 - 65] ^= 1  // a bit of the state's signatures
            let tamperedPath = proofPath + ".tampered"
            try Data(tampered).write(to: URL(fileURLWithPath: tamperedPath))
            XCTAssertEqual(try verify(tamperedPath, at: start + 1).status, 1, "a tampered proof")
            let otherArbiter = try ToolProcess.run(
                tool: "rwa-lessee",
                [
                    "verify-proof", proofPath, "--at", "\(start + 1)", "--arbiter-key",
                    "\(SigningKeyPair.generate().publicKey)",
                ],
                timeout: 60)
            XCTAssertEqual(otherArbiter.status, 1, "another arbiter's key")

            let poolAccount = PoolRecord.account(for: licence, chainID: genesis.chainID)
            let poolBefore = try await admin.holding(token: 0, account: poolAccount).balance
            _ = try LeaseDaemonProcess.json("rwa-lessee", ["close", "--home", lesseeHome, channel])
            let deadline = Date().addingTimeInterval(30)
            while true {
                let channels = try LeaseDaemonProcess.json("rwa-lessor", ["channels", "--home", lessorHome])
                let status = ((channels["channels"] as? [[String: Any]])?.first)?["status"] as? String
                if status == "closed" { break }
                guard Date() < deadline else { return XCTFail("the channel did not settle: \(channels)") }
                try await Task.sleep(for: .milliseconds(50))
            }
            // Every holder of the licence collects its share of the rent, pro rata to the base
            // unit (rounded down); the pool's share went into its stablecoin reserve.
            let daveBefore = try await admin.holding(token: 0, account: world.dave.publicKey).balance
            _ = try LeaseDaemonProcess.json("rwa-lessor", ["claim-rent", "--home", lessorHome, "\(licence)"])
            _ = try await admin.sign(.claimRent(token: licence), with: carol)
            _ = try await admin.sign(.claimRent(token: licence), with: world.dave)
            let lessorRent = try await admin.holding(token: 0, account: lessorKey.publicKey).balance
            let carolRent = try await admin.holding(token: 0, account: carol.publicKey).balance
            let daveRent = try await admin.holding(token: 0, account: world.dave.publicKey).balance - daveBefore
            let poolRent = try await admin.holding(token: 0, account: poolAccount).balance - poolBefore
            let lesseeAfter = try await admin.holding(token: 0, account: lesseeKey.publicKey).balance
            let revenue = UInt128(deposit)
            XCTAssertEqual(lessorRent, revenue * 35 / 100, "the lessor's 35 of the 100 slices")
            XCTAssertEqual(carolRent, revenue * 25 / 100, "carol's 25")
            XCTAssertEqual(daveRent, revenue * 10 / 100, "dave's 10, bought through the pool")
            XCTAssertEqual(poolRent, revenue * 30 / 100, "the pool's 30, into its reserve")
            let collected = lessorRent + carolRent + daveRent + poolRent
            XCTAssertTrue(
                collected <= revenue && revenue - collected < 4, "the rent adds up: \(collected) of \(revenue)")
            XCTAssertEqual(lesseeAfter, 1_000_000 - UInt128(deposit), "all of the deposit was paid")
            let settled = try verify(
                proofPath, at: start + 1,
                ["--check-settled", "--arbiter", "127.0.0.1:\(arbiterPort)", "--dir", chainDir])
            XCTAssertEqual(settled.status, 1)
            XCTAssertTrue(
                settled.output.joined().contains("settled"), settled.output.joined() + settled.errors.joined())
            await admin.close()
            arbiter.stop()
            XCTAssertEqual(try ArbiterProcess.run(["verify", "--dir", chainDir]).status, 0)
        }
    }

    /// A stream of payments while the lessor, then the lessee, is killed with SIGKILL at random
    /// moments (ten times each) and restarted: the lease goes on from the last co-signed state,
    /// and no update either side acknowledged is lost: every payment the lessee's CLI saw
    /// succeed is in the state both daemons hold at the end, and the two states are the same.
    func testLeaseDaemonsKilledMidStreamLoseNothingAcknowledged() async throws {
        try await withTimeout(300, "testLeaseDaemonsKilledMidStreamLoseNothingAcknowledged") { [self] in
            let world = try await Self.makeWorld()
            defer { world.arbiter.stop() }
            var schedule = SplitMix(seed: testSeed())
            func lessorArguments(port: Int) -> [String] {
                [
                    "run", "--home", world.lessorHome, "--port", "\(port)", "--no-udp", "--offer",
                    "\(world.licence):0-99:1:1000", "--log-level", "debug",
                ]
                    + world.connection
            }
            let lesseeArguments = ["run", "--home", world.lesseeHome, "--log-level", "debug"] + world.connection
            // The first run picks a free port; every restart of the lessor takes the same one, so
            // the lessee finds it again.
            var (lessor, picked) = try Self.startDaemon("rwa-lessor", lessorArguments(port: 0))
            let pinnedPort = try XCTUnwrap(picked)
            var (lessee, _) = try Self.startDaemon("rwa-lessee", lesseeArguments)
            defer {
                lessor.stop()
                lessee.stop()
            }
            let leaseStart = (UInt64(Date().timeIntervalSince1970) / 2 + 300) * 2
            let opened = try LeaseDaemonProcess.json(
                "rwa-lessee",
                [
                    "open", "--home", world.lesseeHome, "--lessor", "127.0.0.1:\(pinnedPort)", "--lessor-key",
                    "\(world.lessorKey.publicKey)", "--licence", "\(world.licence)", "--slices", "0-9", "--start",
                    "\(leaseStart)", "--hours", "100", "--rate", "1", "--deposit", "1000", "--increment", "1",
                ])
            let channel = try XCTUnwrap(opened["channel"] as? String)
            /// What the daemons logged, for a payment that failed or hung.
            func daemonLogs() -> String {
                "lessor:\n" + lessor.remainingErrorLines(timeout: 0.5).joined(separator: "\n") + "\nlessee:\n"
                    + lessee.remainingErrorLines(timeout: 0.5).joined(separator: "\n")
            }
            func pay() throws -> [String: Any] {
                let result = try ToolProcess.run(
                    tool: "rwa-lessee", ["pay", "--home", world.lesseeHome, channel, "1", "--json"], timeout: 60)
                guard result.status == 0,
                    let answer = try? JSONSerialization.jsonObject(with: Data(result.output.joined().utf8))
                        as? [String: Any]
                else {
                    throw TestFailure(
                        "pay: status \(result.status.map(String.init) ?? "timed out"): "
                            + "\(result.errors.joined(separator: "\n"))\n\(daemonLogs())")
                }
                return answer
            }
            var acknowledged: UInt64 = 0
            for victim in ["rwa-lessor", "rwa-lessee"] {
                for _ in 0..<10 {
                    // A few payments, then the kill at a random moment of the next one.
                    for _ in 0..<Int(schedule.next() % 3) {
                        let paid = try pay()
                        acknowledged = max(
                            acknowledged, UInt64((paid["state"] as? [String: Any])?["nonce"] as? Int ?? 0))
                    }
                    let inFlight = try ToolProcess(
                        tool: "rwa-lessee", ["pay", "--home", world.lesseeHome, channel, "1", "--json"])
                    usleep(UInt32(schedule.next() % 40_000))
                    if victim == "rwa-lessor" {
                        lessor.kill()
                        _ = lessor.waitForExit(timeout: 10)
                        (lessor, picked) = try Self.startDaemon("rwa-lessor", lessorArguments(port: pinnedPort))
                    } else {
                        lessee.kill()
                        _ = lessee.waitForExit(timeout: 10)
                        (lessee, _) = try Self.startDaemon("rwa-lessee", lesseeArguments)
                    }
                    // The payment in flight either completed (and counts) or failed with the
                    // daemon (and must then not be counted); either way it never hangs.
                    let inFlightStatus = inFlight.waitForExit(timeout: 60)
                    if inFlightStatus == nil { XCTFail("a payment in flight hung:\n\(daemonLogs())") }
                    if inFlightStatus == 0,
                        let line = inFlight.remainingLines(timeout: 1).first,
                        let answer = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                        let nonce = (answer["state"] as? [String: Any])?["nonce"] as? Int
                    {
                        acknowledged = max(acknowledged, UInt64(nonce))
                    }
                }
            }
            // Once both are up, one more payment goes through, and both hold the same state,
            // which holds every acknowledged payment.
            let last = try pay()
            let lastNonce = UInt64((last["state"] as? [String: Any])?["nonce"] as? Int ?? 0)
            XCTAssertGreaterThan(lastNonce, acknowledged, "nothing acknowledged was lost")
            let lesseeView = try LeaseDaemonProcess.json("rwa-lessee", ["status", "--home", world.lesseeHome, channel])
            let lessorView = try LeaseDaemonProcess.json("rwa-lessor", ["status", "--home", world.lessorHome, channel])
            let lesseeState = (lesseeView["channel"] as? [String: Any])?["state"] as? [String: Any]
            let lessorState = (lessorView["channel"] as? [String: Any])?["state"] as? [String: Any]
            XCTAssertEqual(lesseeState?["nonce"] as? Int, Int(lastNonce))
            XCTAssertEqual(lessorState?["nonce"] as? Int, Int(lastNonce))
            XCTAssertEqual(lesseeState?["paid"] as? String, "\(lastNonce)", "one unit per update")
            XCTAssertEqual(lessorState?["paid"] as? String, "\(lastNonce)")
            print("crash test: \(acknowledged) acknowledged payments across 20 kills; final nonce \(lastNonce)")
            await world.admin.close()
        }
    }
}
