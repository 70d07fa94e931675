// rwa-fuzz: a network fuzzer for rwanet's daemons. Given one daemon on loopback and its role, it
// sends bounded streams of hostile input over TCP (and UDP when given the port): garbage, lying
// length prefixes up to 4 GiB, half-open and idle connections, writers that never finish a
// record, and, inside real authenticated sessions, bit-flipped, truncated, extended and retyped
// frames, unknown types, oversized frames, replayed records, forged signatures and request
// floods; over UDP, garbage datagrams and `hello` floods from many loopback source addresses.
// Meanwhile a legitimate client keeps asking the daemon a valid question (its worst latency is
// reported, from a process of its own) and, for an arbiter given its chain directory, makes
// transfers (for an exchange given its arbiter too, swaps; for a lessor given a lessee daemon,
// lease payments) whose balances must come out exact. At the end the daemon must still answer,
// and its resident memory must have stayed under the bound. Every finding is printed with the
// bytes that preceded it. A lessee listens nowhere: against it, rwa-fuzz listens as a hostile
// lessor and has the lessee dial it through its control socket (HostileLessor.swift).
import ArgumentParser
import Foundation
import NIOPosix
import RWACrypto
import RWALeaseDaemon
import RWALedger
import RWANode
import RWAWire

#if canImport(Glibc)
    import Glibc
#endif

enum Role: String, ExpressibleByArgument, CaseIterable {
    case arbiter, exchange, peer, lessor, lessee
}

/// The attacks besides the basic streams, each found by a hostile run against the daemons.
enum Pressure: String, ExpressibleByArgument, CaseIterable {
    /// 1,024 authenticated sessions that stay silent, each closed one taken again at once.
    case slots
    /// Sessions that send requests (subscriptions from block 1, for an arbiter) and never read.
    case unread
    /// Two sessions sending transactions (orders, to an exchange) with forged signatures as fast
    /// as the daemon takes them; each one the daemon closes is opened again at once.
    case forged
    /// Authenticated sessions that announce a whole record and never finish it.
    case records
    /// UDP `hello`s from thousands of loopback source addresses and ports, as fast as they go.
    case hellos
}

@main
struct Fuzz: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rwa-fuzz",
        abstract: "Send bounded hostile input to one rwanet daemon on loopback and check it survives.")

    @Option(help: "The daemon's address: loopback only (127.0.0.0/8).") var host = "127.0.0.1"
    @Option(help: "Its TCP port (for a lessee: the port the fuzzer listens on as its lessor, 0 for any).")
    var port: Int
    @Option(help: "For a lessee: its control socket (<home>/control.sock), through which it is made to dial.")
    var control: String?
    @Option(help: "Its UDP port, for the UDP attacks (none if omitted).") var udpPort: Int?
    @Option(help: "What it is: \(Role.allCases.map(\.rawValue).joined(separator: ", ")).") var role: Role
    @Option(help: "The chain directory (genesis.bin; the regulator's and issuer's keys for the legitimate traffic).")
    var dir: String?
    @Option(
        help:
            "For an exchange or a lessor: its arbiter's TCP port, where the legitimate swaps' pool is set up and checked (the lease's balances, for a lessor)."
    )
    var arbiterPort: Int?
    @Option(
        help:
            "For a lessor: the control socket of a lessee daemon, verified and funded, that leases from it all through the attack."
    )
    var lesseeControl: String?
    @Option(help: "The chain id (hex), when there is no --dir (rwa-peer's development chain by default).")
    var chainID: String?
    @Option(help: "The daemon's process id, to watch its resident memory and that it lives.") var pid: Int32?
    @Option(help: "Hostile frames and datagrams to send at most.") var frames = 100_000
    @Option(help: "Seconds to attack at most.") var seconds = 60
    @Option(help: "Resident memory bound for the daemon, MiB.") var rssLimitMb = 128.0
    @Option(help: "A legitimate answer slower than this is a finding, milliseconds.") var latencyLimitMs = 250.0
    @Option(help: "Idle and half-open connections held open during the attack.") var idleConnections = 200
    @Option(help: "Connections that announce a whole record and never finish it.") var slowWriters = 50
    @Option(help: "Seed of the attack's randomness (random if omitted; printed).") var seed: UInt64?
    @Option(
        help:
            "Pressure attacks to add, comma-separated: \(Pressure.allCases.map(\.rawValue).joined(separator: ", ")), or all."
    )
    var pressure: String = ""
    @Option(help: "How long each pressure attack lasts, seconds.") var pressureSeconds = 10
    @Flag(help: .hidden) var probeOnly = false

    func validate() throws {
        let octets = host.split(separator: ".").compactMap { UInt8($0) }
        guard octets.count == 4, octets[0] == 127 else {
            throw ValidationError("rwa-fuzz attacks loopback only (127.0.0.0/8), not \(host)")
        }
        guard frames > 0, frames <= 10_000_000, seconds > 0, seconds <= 3_600 else {
            throw ValidationError("--frames is 1 to 10,000,000 and --seconds 1 to 3,600")
        }
        if role == .lessee && control == nil { throw ValidationError("a lessee is fuzzed through --control") }
    }

    func run() async throws {
        if probeOnly {
            // The prober's own process: one line per probe until the parent ends it (or goes).
            let chain = try chainIdentity()
            signal(SIGPIPE, SIG_IGN)
            let prober = Prober(
                host: host, port: port, udpPort: udpPort, role: role, chainID: chain.id, control: control)
            prober.probeUntilStopped { result in
                let line = Data((Prober.line(result) + "\n").utf8)
                if getppid() == 1 || (try? FileHandle.standardOutput.write(contentsOf: line)) == nil {
                    Foundation.exit(0)
                }
            }
            return
        }
        let seed = seed ?? UInt64.random(in: 0...UInt64.max)
        print("rwa-fuzz: \(role) at \(host):\(port)\(udpPort.map { " udp \($0)" } ?? ""), seed \(seed)")
        let chain = try chainIdentity()
        if role == .lessee { return try await fuzzLessee(seed: seed, chainID: chain.id) }
        let attack = Attack(
            host: host, port: port, udpPort: udpPort, role: role, chainID: chain.id, seed: seed, frameBudget: frames,
            deadline: Date().addingTimeInterval(Double(seconds)))
        let watch = Watch(pid: pid)
        watch.start()
        let prober = Prober(host: host, port: port, udpPort: udpPort, role: role, chainID: chain.id, control: control)
        prober.start()
        let legitimate = try await legitimateTraffic(genesis: chain.genesis)

        let held = attack.holdConnections(idle: idleConnections, slow: slowWriters)
        attack.run()
        for connection in held { connection.close() }
        print(
            "rwa-fuzz: the basic streams: worst legitimate answer \(Int(prober.worstMilliseconds)) ms"
                + (pid == nil ? "" : String(format: ", peak RSS %.1f MiB", watch.peakMebibytes)))
        for kind in try pressures() {
            let before = (prober.answers, prober.failures)
            attack.apply(kind, seconds: pressureSeconds)
            print(
                "rwa-fuzz: under \(kind): legitimate answers \(prober.answers - before.0), failed \(prober.failures - before.1), worst so far \(Int(prober.worstMilliseconds)) ms"
                    + (udpPort == nil ? "" : " (over UDP \(Int(prober.worstUDPMilliseconds)) ms)")
                    + (pid == nil ? "" : String(format: ", peak RSS so far %.1f MiB", watch.peakMebibytes)))
        }

        let transfers = await legitimate?.finish()
        prober.stop()
        watch.stop()
        // After the attack, the daemon answers at once.
        let final = prober.probeOnce()
        var failures = attack.findings
        if !final.ok { failures.append("after the attack the daemon does not answer a valid request: \(final.detail)") }
        if let pid, kill(pid, 0) != 0 { failures.append("the daemon (pid \(pid)) is gone") }
        if watch.peakMebibytes > rssLimitMb {
            failures.append(
                String(format: "resident memory reached %.1f MiB (bound %.0f)", watch.peakMebibytes, rssLimitMb))
        }
        if let transfers, let problem = transfers.problem { failures.append(problem) }
        if prober.failures > 0 { failures.append("\(prober.failures) legitimate requests failed during the attack") }
        if prober.worstMilliseconds > latencyLimitMs {
            failures.append(
                String(
                    format: "a legitimate answer took %.0f ms (bound %.0f)", prober.worstMilliseconds, latencyLimitMs))
        }
        print(
            String(
                format:
                    "rwa-fuzz: %d hostile frames, %d datagrams, %d sessions (%d closed by the daemon), %d connections; legitimate: %d answers, worst %.1f ms, %d failed%@; peak RSS %@",
                attack.framesSent, attack.datagramsSent, attack.sessionsOpened, attack.sessionsClosedByDaemon,
                attack.connectionsOpened, prober.answers, prober.worstMilliseconds, prober.failures,
                transfers.map { ", \($0.count) \(legitimate!.unit) exact: \($0.problem == nil)" } ?? "",
                pid == nil ? "not watched" : String(format: "%.1f MiB", watch.peakMebibytes)))
        for failure in failures { print("FINDING: \(failure)") }
        if !failures.isEmpty { throw ExitCode.failure }
        print("rwa-fuzz: the daemon survived")
    }

    /// Transfers on an arbiter, swaps through an exchange whose arbiter is given, a lease with a
    /// lessor through a lessee daemon; none without the chain directory.
    func legitimateTraffic(genesis: Genesis?) async throws -> (any LegitimateTraffic)? {
        guard let genesis, let dir else { return nil }
        switch role {
        case .arbiter:
            return try await LegitimateTransfers.start(host: host, port: port, genesis: genesis, dir: dir)
        case .exchange:
            guard let arbiterPort else { return nil }
            return try await LegitimateSwaps.start(
                host: host, port: port, arbiterPort: arbiterPort, genesis: genesis, dir: dir)
        case .lessor:
            guard let arbiterPort, let lesseeControl else { return nil }
            return try await LegitimateLease.start(
                host: host, port: port, arbiterPort: arbiterPort, genesis: genesis, control: lesseeControl)
        case .peer, .lessee:
            return nil
        }
    }

    /// The lessee's run: the fuzzer as its lessor, a prober on its control socket.
    func fuzzLessee(seed: UInt64, chainID: Digest32) async throws {
        let lessor = try HostileLessor(
            host: host, port: port, control: control!, chainID: chainID, seed: seed, frameBudget: frames,
            deadline: Date().addingTimeInterval(Double(seconds)))
        print("rwa-fuzz: the hostile lessor listens on \(host):\(lessor.listener.port) as \(lessor.identity.publicKey)")
        let watch = Watch(pid: pid)
        watch.start()
        let prober = Prober(host: host, port: port, udpPort: nil, role: role, chainID: chainID, control: control)
        prober.start()
        lessor.run()
        print(
            "rwa-fuzz: the hostile answers: worst legitimate answer \(Int(prober.worstMilliseconds)) ms"
                + (pid == nil ? "" : String(format: ", peak RSS %.1f MiB", watch.peakMebibytes)))
        for kind in try pressures() where kind == .unread || kind == .forged {
            let before = (prober.answers, prober.failures)
            lessor.apply(kind, seconds: pressureSeconds)
            print(
                "rwa-fuzz: under \(kind): legitimate answers \(prober.answers - before.0), failed \(prober.failures - before.1), worst so far \(Int(prober.worstMilliseconds)) ms"
                    + (pid == nil ? "" : String(format: ", peak RSS so far %.1f MiB", watch.peakMebibytes)))
        }
        prober.stop()
        watch.stop()
        lessor.checkNoRedial(seconds: 2)
        let final = prober.probeOnce()
        var failures = lessor.findings
        if !final.ok {
            failures.append("after the attack the lessee does not answer its control socket: \(final.detail)")
        }
        if let channels = try? controlRequest(control!, ["command": "channels"])["channels"] as? [[String: Any]] {
            let kept = channels.filter { $0["lessor"] as? String == "\(lessor.identity.publicKey)" }
            if !kept.isEmpty {
                failures.append("the lessee keeps \(kept.count) channels with the hostile lessor: \(kept)")
            }
        } else {
            failures.append("the lessee's channels could not be read after the attack")
        }
        if let pid, kill(pid, 0) != 0 { failures.append("the lessee (pid \(pid)) is gone") }
        if watch.peakMebibytes > rssLimitMb {
            failures.append(
                String(format: "resident memory reached %.1f MiB (bound %.0f)", watch.peakMebibytes, rssLimitMb))
        }
        if prober.failures > 0 { failures.append("\(prober.failures) control requests failed during the attack") }
        if prober.worstMilliseconds > latencyLimitMs {
            failures.append(
                String(
                    format: "a control answer took %.0f ms (bound %.0f)", prober.worstMilliseconds, latencyLimitMs))
        }
        // The codes a hostile refusal made up are counted together.
        var outcomes: [String: Int] = [:]
        for (outcome, count) in lessor.askAnswers {
            outcomes[outcome.hasPrefix("code_0x") ? "made-up codes" : outcome, default: 0] += count
        }
        let answers = outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print(
            String(
                format:
                    "rwa-fuzz: %d hostile frames, %d sessions the lessee opened (%d closed by it); %d asks (%@), slowest %.0f ms; control probes: %d answers, worst %.1f ms, %d failed; peak RSS %@",
                lessor.framesSent, lessor.sessionsAccepted, lessor.sessionsClosedByDaemon, lessor.asks, answers,
                lessor.slowestAskMilliseconds, prober.answers, prober.worstMilliseconds, prober.failures,
                pid == nil ? "not watched" : String(format: "%.1f MiB", watch.peakMebibytes)))
        for failure in failures { print("FINDING: \(failure)") }
        if !failures.isEmpty { throw ExitCode.failure }
        print("rwa-fuzz: the daemon survived")
    }

    func pressures() throws -> [Pressure] {
        if pressure.isEmpty { return [] }
        if pressure == "all" { return Pressure.allCases }
        return try pressure.split(separator: ",").map {
            guard let kind = Pressure(rawValue: String($0)) else { throw ValidationError("no pressure attack \($0)") }
            return kind
        }
    }

    func chainIdentity() throws -> (id: Digest32, genesis: Genesis?) {
        if let dir {
            let genesis = try Genesis(
                decoding: [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/genesis.bin"))))
            return (genesis.chainID, genesis)
        }
        if let chainID {
            guard let bytes = [UInt8](hex: chainID), let id = try? Digest32(bytes: bytes) else {
                throw ValidationError("--chain-id is 64 hex digits")
            }
            return (id, nil)
        }
        return (ChainIDs.devnet, nil)
    }
}
