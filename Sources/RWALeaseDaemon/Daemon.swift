import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import RWAChannel
import RWACommandLine
import RWACrypto
import RWALedger
import RWANode
import RWASession
import RWAStore
import RWAWire

/// Where a daemon keeps its things: `<home>/identity.key` (made on first run),
/// `<home>/peer.sqlite` and the control socket `<home>/control.sock`, which every other
/// subcommand talks to. (`--dir` names the chain's directory, as for the other tools.)
public struct DaemonDirectory: ParsableArguments {
    public init() {}

    @Option(help: "The daemon's directory: its key, its store and its control socket.")
    public var home: String

    public var dir: String { home }
    public var keyPath: String { home + "/identity.key" }
    public var storePath: String { home + "/peer.sqlite" }
    public var controlPath: String { home + "/control.sock" }
}

/// Runs a lessor or lessee daemon until it loses the arbiter.
public func runDaemon(
    role: LeaseRole, directory: DaemonDirectory, connection: ConnectionOptions, listenHost: String?, port: Int,
    udpPort: Int? = nil, offers: [LeaseOffer], closeGraceSeconds: UInt64 = 60, logLevel: Logger.Level
) async throws {
    var logger = Logger(label: "rwa-\(role.rawValue)")
    logger.logLevel = logLevel
    guard offers.count <= WireLimits.leaseOffersMax else {
        throw CLIError("at most \(WireLimits.leaseOffersMax) offers (one lease_offers answer carries that many)")
    }
    try FileManager.default.createDirectory(atPath: directory.dir, withIntermediateDirectories: true)
    if !FileManager.default.fileExists(atPath: directory.keyPath) {
        do { try KeyFile.write(SigningKeyPair.generate(), to: directory.keyPath) } catch {
            throw CLIError("key file \(directory.keyPath): \(error)")
        }
    }
    let key = try readKey(directory.keyPath)
    let genesis = try connection.chain.genesis()
    let store: PeerStore
    do { store = try PeerStore.open(path: directory.storePath) } catch { throw CLIError("\(error)") }
    let arbiter = try await connection.connect(as: key)
    let service = try LeaseService(
        role: role, key: key, genesis: genesis, store: store, arbiter: arbiter, offers: offers,
        closeGraceSeconds: closeGraceSeconds, logger: logger)
    service.start()
    let configuration = try SessionConfiguration(
        handshake: HandshakeConfiguration(identity: key, chainID: genesis.chainID))
    if let listenHost {
        var ports: [(TransportKind, Int)] = [(.tcp, port)]
        if let udpPort { ports.append((.udp, udpPort)) }
        for (transport, port) in ports {
            let listener = try await transport.listen(
                host: listenHost, port: port, configuration: configuration,
                group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            Task { for await session in listener.sessions { service.serve(session) } }
            emit("listening \(transport.rawValue) \(listenHost) \(listener.port) \(key.publicKey)")
        }
    }
    let dialer = Dialer(key: key, genesis: genesis, service: service, logger: logger)
    // A restarted lessee goes back to the lessors of its open channels.
    for channel in try store.channels() where role == .lessee && channel.status != .closed {
        if let address = channel.peerAddress {
            Task { await dialer.session(address: address, peer: channel.terms.lessor, retrying: true) }
        }
    }
    let control = try await listenControl(path: directory.controlPath) { request, reply in
        await answer(request, reply: reply, role: role, service: service, dialer: dialer)
    }
    emit("identity \(key.publicKey)")
    emit("control \(directory.controlPath)")
    emit("ready")
    try? await arbiter.session.closeFuture.get()
    service.stop()
    try? await control.close()
    throw CLIError("lost the arbiter's session")
}

/// Dials lessors and hands the sessions to the service; at most one session per lessor.
actor Dialer {
    let key: SigningKeyPair
    let genesis: Genesis
    let service: LeaseService
    let logger: Logger
    var sessions: [SigningPublicKey: PeerSession] = [:]

    init(key: SigningKeyPair, genesis: Genesis, service: LeaseService, logger: Logger) {
        self.key = key
        self.genesis = genesis
        self.service = service
        self.logger = logger
    }

    /// `address` is `host:port` (TCP) or `udp://host:port`.
    @discardableResult
    func session(address: String, peer: SigningPublicKey, retrying: Bool = false) async -> PeerSession? {
        if let existing = sessions[peer] { return existing }
        let transport: TransportKind = address.hasPrefix("udp://") ? .udp : .tcp
        let parts = address.replacingOccurrences(of: "udp://", with: "").replacingOccurrences(of: "tcp://", with: "")
            .split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { return nil }
        for attempt in 0..<(retrying ? 600 : 1) {
            do {
                let configuration = try SessionConfiguration(
                    handshake: HandshakeConfiguration(identity: key, chainID: genesis.chainID, expectedPeer: peer))
                let session = try await transport.dial(
                    host: String(parts[0]), port: port, configuration: configuration,
                    group: MultiThreadedEventLoopGroup.singleton, logger: logger)
                logger.info("connected to the lessor at \(address)")
                sessions[peer] = session
                service.adopt(session)
                let closed = session.closeFuture
                Task { [weak self, service] in
                    try? await closed.get()
                    await self?.forget(peer, session)
                    // Go back to the lessor while channels there still need it (not to one only
                    // asked for its offers: a lessor that hangs up would be dialled for ever).
                    guard service.channels().contains(where: { $0.terms.lessor == peer && $0.status != .closed })
                    else { return }
                    _ = await self?.session(address: address, peer: peer, retrying: true)
                }
                return session
            } catch {
                if attempt == 0 { logger.info("cannot reach \(address) yet: \(error)") }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        return nil
    }

    func forget(_ peer: SigningPublicKey, _ session: PeerSession) {
        if sessions[peer] === session { sessions[peer] = nil }
    }
}

/// One control request, answered with the channel's fields or an error with its code.
func answer(
    _ request: [String: Any], reply: @escaping @Sendable ([String: Any]) -> Void, role: LeaseRole,
    service: LeaseService, dialer: Dialer
) async {
    func fail(_ code: String, _ error: String) { reply(["ok": false, "code": code, "error": error]) }
    func channelID() -> Digest32? {
        guard let hex = request["channel"] as? String, let bytes = [UInt8](hex: hex),
            let id = try? Digest32(bytes: bytes)
        else { return nil }
        return id
    }
    func integer(_ name: String) -> UInt128? {
        if let text = request[name] as? String { return UInt128(text) }
        if let number = request[name] as? Int, number >= 0 { return UInt128(number) }
        return nil
    }
    do {
        switch request["command"] as? String {
        case "channels":
            reply(["ok": true, "channels": service.channels().map(describe)])
        case "status":
            guard let id = channelID() else { return fail("bad_request", "status needs a channel id") }
            guard let channel = service.channels().first(where: { $0.channelID == id }) else {
                return fail("unknown_channel", "no channel \(id)")
            }
            reply(["ok": true, "channel": describe(channel)])
        case "offers":
            // The lessor's own, or (lessee) those of the lessor at `lessor`, asked over the network.
            let catalogue: LeaseCatalogue
            if role == .lessor {
                catalogue = service.catalogue()
            } else {
                guard let address = request["lessor"] as? String, let keyHex = request["lessor_key"] as? String,
                    let lessor = try? parseAccount(keyHex, "lessor key")
                else { return fail("bad_request", "offers needs the lessor's address and key") }
                guard let session = await dialer.session(address: address, peer: lessor) else {
                    return fail("unreachable", "cannot reach the lessor at \(address)")
                }
                catalogue = try await service.offers(over: session)
            }
            reply(["ok": true, "offers": catalogue.offers.map(describe), "taken": catalogue.taken.map(describe)])
        case "open":
            guard role == .lessee else { return fail("bad_request", "a lessor does not open channels") }
            guard let address = request["lessor"] as? String, let keyHex = request["lessor_key"] as? String,
                let lessor = try? parseAccount(keyHex, "lessor key"),
                let licence = integer("licence"), let first = integer("first_slice"),
                let count = integer("slice_count"),
                let start = integer("start_seconds"), let hours = integer("hours"),
                let deposit = integer("deposit"), let increment = integer("increment"),
                let challenge = integer("challenge_ms"), let nonce = integer("nonce")
            else { return fail("bad_request", "open needs lessor, lessor_key and every term") }
            guard first < 256, count < 256, hours < 1 << 32, start < 1 << 64, licence < 1 << 64, challenge < 1 << 64,
                nonce < 1 << 64
            else { return fail("invalid_terms", "a term is out of range") }
            guard let session = await dialer.session(address: address, peer: lessor) else {
                return fail("unreachable", "cannot reach the lessor at \(address)")
            }
            // No rate (or "offer"): the rate of the lessor's offer for these slices, asked now.
            var rate = integer("rate")
            if rate == nil, request["rate"] == nil || request["rate"] as? String == "offer" {
                let offer = try await service.offers(over: session).offer(
                    licence: UInt64(licence), firstSlice: UInt8(first), sliceCount: UInt8(count))
                guard let offer else {
                    return fail("not_offered", "the lessor offers no rate for those slices of licence \(licence)")
                }
                rate = offer.ratePerSliceHour
            }
            guard let rate else { return fail("bad_request", "rate is base units or \"offer\"") }
            let terms = LeaseTerms(
                chainID: service.genesis.chainID, lessor: lessor, lessee: service.identity, licence: UInt64(licence),
                firstSlice: UInt8(first), sliceCount: UInt8(count), startSeconds: UInt64(start), hours: UInt32(hours),
                periodSeconds: service.genesis.periodSeconds, ratePerSliceHour: rate, deposit: deposit,
                paymentIncrement: increment, challengePeriodMilliseconds: UInt64(challenge), nonce: UInt64(nonce))
            if let problem = terms.problem { return fail("invalid_terms", problem) }
            let id = try await service.open(terms, over: session, peerAddress: address)
            reply(["ok": true, "channel": "\(id)"])
        case "pay":
            guard let id = channelID(), let amount = integer("amount") else {
                return fail("bad_request", "pay needs a channel and an amount")
            }
            // `count` updates one after another, each done when both sides stored it.
            let count = integer("count") ?? 1
            guard count >= 1, count <= 1_000_000 else { return fail("bad_request", "count is 1 to 1000000") }
            var state = try await service.pay(id, amount: amount)
            for _ in 1..<Int(count) { state = try await service.pay(id, amount: amount) }
            reply(["ok": true, "state": describe(state), "updates": Int(count)])
        case "close":
            guard let id = channelID() else { return fail("bad_request", "close needs a channel id") }
            reply(["ok": true, "state": describe(try await service.close(id))])
        case "dispute":
            guard let id = channelID() else { return fail("bad_request", "dispute needs a channel id") }
            try service.dispute(id)
            reply(["ok": true])
        case "proof":
            guard let id = channelID() else { return fail("bad_request", "proof needs a channel id") }
            let proof = try await service.proof(id)
            reply(["ok": true, "proof": proof.encoded.hexString])
        case "claim_rent":
            guard let token = integer("token"), token < 1 << 64 else {
                return fail("bad_request", "claim_rent needs a token")
            }
            let receipt = try await service.claimRent(token: UInt64(token))
            reply(["ok": true, "height": receipt.height, "hash": "\(receipt.hash)"])
        case "watch":
            reply(["ok": true])
            for await line in service.watch() { reply(["event": line]) }
        default:
            fail("bad_request", "unknown command \(request["command"] ?? "none")")
        }
    } catch let rejection as Rejection {
        fail(rejection.code.name, rejection.reason)
    } catch {
        fail("failed", "\(error)")
    }
}

func describe(_ offer: LeaseOffer) -> [String: Any] {
    [
        "licence": offer.licence, "first_slice": offer.firstSlice, "slice_count": offer.sliceCount,
        "rate_per_slice_hour": "\(offer.ratePerSliceHour)", "max_hours": offer.maxHours,
    ]
}

func describe(_ range: LeasedRange) -> [String: Any] {
    [
        "licence": range.licence, "first_slice": range.firstSlice, "slice_count": range.sliceCount,
        "start_seconds": range.startSeconds, "hours": range.hours,
    ]
}

func describe(_ state: ChannelState) -> [String: Any] {
    [
        "nonce": state.nonce, "paid": "\(state.paid)", "paid_through_seconds": state.paidThroughSeconds,
        "final": state.final,
    ]
}

func describe(_ channel: ChannelSummary) -> [String: Any] {
    [
        "channel": "\(channel.channelID)", "role": channel.role.rawValue, "status": channel.status.rawValue,
        "lessor": "\(channel.terms.lessor)", "lessee": "\(channel.terms.lessee)",
        "licence": channel.terms.licence, "first_slice": channel.terms.firstSlice,
        "slice_count": channel.terms.sliceCount, "start_seconds": channel.terms.startSeconds,
        "hours": channel.terms.hours, "deposit": "\(channel.terms.deposit)",
        "rate_per_slice_hour": "\(channel.terms.ratePerSliceHour)", "state": describe(channel.state),
    ]
}

// MARK: - The CLI side

/// Sends one request to the daemon and prints the answer: `--json` as it came, otherwise as
/// `key: value` lines. An answer with `"ok": false` exits 1 with its code.
public func command(_ directory: DaemonDirectory, _ request: [String: Any], json: Bool) throws {
    let client: ControlClient
    do { client = try ControlClient(path: directory.controlPath) } catch { throw CLIError("\(error)") }
    try client.send(request)
    guard let answer = try client.receive() else { throw CLIError("the daemon closed the connection") }
    if json {
        emit(
            String(decoding: try JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys]), as: UTF8.self))
    } else if answer["ok"] as? Bool == true {
        for line in readable(answer) { emit(line) }
    }
    if answer["ok"] as? Bool != true {
        throw CLIError("\(answer["code"] as? String ?? "failed"): \(answer["error"] as? String ?? "")")
    }
}

/// An answer as a person reads it: one line per channel, state, offer or lease taken (`--json`
/// gives every field).
func readable(_ answer: [String: Any]) -> [String] {
    func text(_ key: String, in object: [String: Any]) -> String { object[key].map { "\($0)" } ?? "?" }
    func slices(_ object: [String: Any]) -> String {
        let first = (object["first_slice"] as? Int) ?? 0
        return "slices \(first)-\(first + ((object["slice_count"] as? Int) ?? 1) - 1)"
    }
    func state(_ object: [String: Any]) -> String {
        "state \(text("nonce", in: object)): paid \(text("paid", in: object)) through "
            + text("paid_through_seconds", in: object) + ((object["final"] as? Bool) == true ? " (final)" : "")
    }
    func channel(_ object: [String: Any]) -> String {
        "channel \(text("channel", in: object)) (\(text("role", in: object)), \(text("status", in: object))): licence "
            + "\(text("licence", in: object)) \(slices(object)), \(text("hours", in: object)) hours from "
            + "\(text("start_seconds", in: object)) at \(text("rate_per_slice_hour", in: object)) per slice-hour, "
            + "deposit \(text("deposit", in: object)); "
            + ((object["state"] as? [String: Any]).map(state) ?? "no state yet")
    }
    var lines: [String] = []
    if let object = answer["channel"] as? [String: Any] { lines.append(channel(object)) }
    if let id = answer["channel"] as? String { lines.append("channel \(id)") }
    if let channels = answer["channels"] as? [[String: Any]] {
        lines += channels.isEmpty ? ["no channels"] : channels.map(channel)
    }
    if let object = answer["state"] as? [String: Any] {
        lines.append(state(object) + ((answer["updates"] as? Int).map { $0 > 1 ? " after \($0) updates" : "" } ?? ""))
    }
    if let offers = answer["offers"] as? [[String: Any]] {
        lines +=
            offers.isEmpty
            ? ["no offers"]
            : offers.map {
                "offer: licence \(text("licence", in: $0)) \(slices($0)) at \(text("rate_per_slice_hour", in: $0)) per "
                    + "slice-hour, up to \(text("max_hours", in: $0)) hours"
            }
    }
    if let taken = answer["taken"] as? [[String: Any]] {
        lines += taken.map {
            "taken: licence \(text("licence", in: $0)) \(slices($0)), \(text("hours", in: $0)) hours from "
                + text("start_seconds", in: $0)
        }
    }
    if let height = answer["height"] { lines.append("committed in block \(height) as \(text("hash", in: answer))") }
    return lines.isEmpty ? ["ok"] : lines
}
