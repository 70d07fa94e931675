// Goal: every daemon's `--metrics host:port` with real processes on loopback. The arbiter, the
// exchange, a lessor and a lessee each serve Prometheus's text exposition; the test scrapes each
// before and after traffic it sends itself, checks that the exposition parses (names, labels,
// values, a TYPE for every sample), and that the counters for that traffic moved by exactly the
// right amounts: transactions committed and rejected, blocks, frames by type, a swap, channel
// updates on both sides and the payment latency histogram. (It also reads the lease CLI's readable
// answer, which the traffic left in a known state.)
import Foundation
import RWACrypto
import RWALedger
import RWATestSupport
import RWAWire
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

final class MetricsProcessTests: XCTestCase {
    /// One scrape: each sample (`name{labels}`, labels as written) with its value.
    struct Exposition {
        var samples: [String: Double] = [:]

        subscript(_ name: String, _ labels: String = "") -> Double {
            samples[labels.isEmpty ? name : "\(name){\(labels)}"] ?? 0
        }

        /// How much a sample grew since `earlier`.
        func growth(since earlier: Exposition, _ name: String, _ labels: String = "") -> Double {
            self[name, labels] - earlier[name, labels]
        }

        /// Parses the text format, failing on any line that is not a comment, a TYPE, or a sample
        /// of a declared metric with a numeric value.
        init(parsing text: String) throws {
            var types: [String: String] = [:]
            let name = #/[a-zA-Z_:][a-zA-Z0-9_:]*/#
            let sample =
                #/([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*)?\})? (\S+)/#
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix("# TYPE ") {
                    let parts = line.split(separator: " ")
                    guard parts.count == 4, (try? name.wholeMatch(in: parts[2])) != nil,
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3])
                    else { throw ParseError("bad TYPE line: \(line)") }
                    types[String(parts[2])] = String(parts[3])
                    continue
                }
                if line.hasPrefix("#") { continue }
                guard let match = try sample.wholeMatch(in: line) else { throw ParseError("bad sample: \(line)") }
                let metric = String(match.output.1)
                let base = ["_bucket", "_sum", "_count"].reduce(metric) { name, suffix in
                    name.hasSuffix(suffix) && types[String(name.dropLast(suffix.count))] == "histogram"
                        ? String(name.dropLast(suffix.count)) : name
                }
                guard types[base] != nil else { throw ParseError("sample of an undeclared metric: \(line)") }
                guard let value = Double(match.output.5) else { throw ParseError("not a number: \(line)") }
                samples[String(line[..<line.lastIndex(of: " ")!])] = value
            }
        }
    }

    struct ParseError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    func scrape(_ port: Int) async throws -> Exposition {
        let url = try XCTUnwrap(URL(string: "http://127.0.0.1:\(port)/metrics"))
        var request = URLRequest(url: url)
        request.timeoutInterval = 10
        let (data, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 200)
        XCTAssertTrue(
            ((response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Content-Type") ?? "").hasPrefix("text/plain"))
        return try Exposition(parsing: String(decoding: data, as: UTF8.self))
    }

    /// Starts a daemon with `--metrics 127.0.0.1:0`; reads its lines up to `last` (inclusive);
    /// returns it with its metrics port and the TCP port it listens on, if any.
    func startWithMetrics(_ tool: String, _ arguments: [String], until last: String) throws
        -> (LeaseDaemonProcess, metrics: Int, port: Int?)
    {
        let process = try LeaseDaemonProcess(tool, arguments + ["--metrics", "127.0.0.1:0"])
        var metrics: Int?
        var port: Int?
        while true {
            let line = try process.requireLine("\(tool)'s start-up lines")
            if line.hasPrefix("metrics 127.0.0.1 ") { metrics = Int(line.split(separator: " ")[2]) }
            if line.hasPrefix("listening tcp") { port = try ToolProcess.parseListening(line).port }
            if line.hasPrefix(last) { break }
        }
        return (process, try XCTUnwrap(metrics, "\(tool) printed its metrics line first"), port)
    }

    func testEveryDaemonServesMetricsThatCountItsTraffic() async throws {
        try await withTimeout(180, "testEveryDaemonServesMetricsThatCountItsTraffic") { [self] in
            let world = try await LeaseProcessTests.makeWorld(arbiterArguments: ["--metrics", "127.0.0.1:0"])
            defer { world.arbiter.stop() }
            let arbiterMetrics = try XCTUnwrap(world.arbiterMetricsPort)
            let issuer = try KeyFile.read(from: "\(world.chainDir)/stablecoin-issuer.key")

            // The arbiter: 5 mints committed and one transfer refused, nothing else running.
            let arbiterBefore = try await scrape(arbiterMetrics)
            for _ in 0..<5 {
                _ = try await world.admin.sign(.mint(token: 0, to: world.carol.publicKey, amount: 1), with: issuer)
            }
            do {
                _ = try await world.admin.sign(
                    .transfer(token: 0, to: world.lessorKey.publicKey, amount: 1_000_000_000), with: world.carol)
                XCTFail("a transfer above the balance was accepted")
            } catch let rejection as Rejection {
                XCTAssertEqual(rejection.code, .insufficientBalance)
            }
            let arbiterAfter = try await scrape(arbiterMetrics)
            func arbiterDelta(_ name: String, _ labels: String = "") -> Double {
                arbiterAfter.growth(since: arbiterBefore, name, labels)
            }
            XCTAssertEqual(arbiterDelta("rwanet_transactions_total", #"result="committed""#), 5)
            XCTAssertEqual(arbiterDelta("rwanet_transactions_total", #"result="insufficient_balance""#), 1)
            XCTAssertEqual(arbiterDelta("rwanet_frames_received_total", #"type="submit_transaction""#), 6)
            XCTAssertEqual(arbiterDelta("rwanet_frames_sent_total", #"type="transaction_receipt""#), 5)
            XCTAssertEqual(arbiterDelta("rwanet_frames_sent_total", #"type="transaction_rejected""#), 1)
            XCTAssertEqual(arbiterDelta("rwanet_block_transactions_total"), 5, "refused transactions are in no block")
            XCTAssertGreaterThanOrEqual(arbiterDelta("rwanet_blocks_committed_total"), 1)
            XCTAssertEqual(arbiterDelta("rwanet_transaction_seconds_count"), 6, "each answer's latency")
            XCTAssertGreaterThanOrEqual(
                arbiterAfter["rwanet_sessions_open", #"transport="tcp""#], 1, "the test's session")

            // The exchange: one swap by dave.
            let daveKey = world.scratch.directory.appendingPathComponent("dave.key").path
            try KeyFile.write(world.dave, to: daveKey)
            let (exchange, exchangeMetrics, exchangePort) = try startWithMetrics(
                "rwa-amm",
                [
                    "run", "--key", world.scratch.directory.appendingPathComponent("amm.key").path, "--port", "0",
                    "--no-udp",
                ]
                    + world.connection, until: "listening tcp")
            defer { exchange.stop() }
            let exchangeBefore = try await scrape(exchangeMetrics)
            let swap = try ToolProcess.run(
                tool: "rwa-amm",
                [
                    "swap", "--amm", "127.0.0.1:\(try XCTUnwrap(exchangePort))", "--key", daveKey, "--token",
                    "\(world.licence)", "--side", "buy", "--amount-in", "1000",
                ] + world.connection, timeout: 60)
            XCTAssertEqual(swap.status, 0, swap.errors.joined())
            let exchangeAfter = try await scrape(exchangeMetrics)
            XCTAssertEqual(exchangeAfter.growth(since: exchangeBefore, "rwanet_swaps_total"), 1)
            XCTAssertEqual(
                exchangeAfter.growth(since: exchangeBefore, "rwanet_exchange_orders_total", #"result="filled""#), 1)
            XCTAssertEqual(
                exchangeAfter.growth(
                    since: exchangeBefore, "rwanet_frames_received_total", #"type="exchange_submit_order""#), 1)

            // A lease: 12 payments, each counted once by both daemons.
            let (lessor, lessorMetrics, lessorPort) = try startWithMetrics(
                "rwa-lessor",
                [
                    "run", "--home", world.lessorHome, "--port", "0", "--no-udp", "--offer",
                    "\(world.licence):0-99:10:100",
                ]
                    + world.connection, until: "ready")
            defer { lessor.stop() }
            let (lessee, lesseeMetrics, _) = try startWithMetrics(
                "rwa-lessee", ["run", "--home", world.lesseeHome] + world.connection, until: "ready")
            defer { lessee.stop() }
            let start = (UInt64(Date().timeIntervalSince1970) / 2 + 600) * 2  // no payment falls due meanwhile
            let opened = try LeaseDaemonProcess.json(
                "rwa-lessee",
                [
                    "open", "--home", world.lesseeHome, "--lessor", "127.0.0.1:\(try XCTUnwrap(lessorPort))",
                    "--lessor-key", "\(world.lessorKey.publicKey)", "--licence", "\(world.licence)", "--slices", "0-0",
                    "--start", "\(start)", "--hours", "10", "--deposit", "100", "--increment", "1",
                ])
            let channel = try XCTUnwrap(opened["channel"] as? String)
            let lessorBefore = try await scrape(lessorMetrics)
            let lesseeBefore = try await scrape(lesseeMetrics)
            _ = try LeaseDaemonProcess.json(
                "rwa-lessee", ["pay", "--home", world.lesseeHome, channel, "1", "--count", "12"])
            let lessorAfter = try await scrape(lessorMetrics)
            let lesseeAfter = try await scrape(lesseeMetrics)
            XCTAssertEqual(
                lessorAfter.growth(since: lessorBefore, "rwanet_channel_updates_total", #"role="lessor""#), 12)
            XCTAssertEqual(
                lesseeAfter.growth(since: lesseeBefore, "rwanet_channel_updates_total", #"role="lessee""#), 12)
            XCTAssertEqual(
                lesseeAfter.growth(since: lesseeBefore, "rwanet_channel_update_seconds_count"),
                12)
            XCTAssertEqual(
                lessorAfter.growth(since: lessorBefore, "rwanet_frames_received_total", #"type="lease_update""#), 12)
            XCTAssertEqual(
                lesseeAfter.growth(since: lesseeBefore, "rwanet_frames_received_total", #"type="lease_countersign""#),
                12)
            XCTAssertGreaterThanOrEqual(
                lesseeAfter["rwanet_sessions_open", #"transport="tcp""#], 2, "to the arbiter and to the lessor")
            XCTAssertEqual(lesseeAfter["rwanet_channel_disputes_total"], 0)
            // Without --json the CLI answers in one readable line.
            let status = try ToolProcess.run(
                tool: "rwa-lessee", ["status", "--home", world.lesseeHome, channel], timeout: 60)
            XCTAssertEqual(
                status.output,
                [
                    "channel \(channel) (lessee, open): licence \(world.licence) slices 0-0, 10 hours from \(start) at "
                        + "10 per slice-hour, deposit 100; state 12: paid 12 through \(start + 2 * 12 / 10)"
                ])
            await world.admin.close()
        }
    }
}
