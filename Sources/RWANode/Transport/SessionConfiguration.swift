import Foundation
import NIOCore
import RWACrypto
import RWASession
import RWAWire

/// Everything a transport needs to run sessions; the defaults suit a daemon on a LAN.
public struct SessionConfiguration: Sendable {
    public var handshake: HandshakeConfiguration
    /// A peer must complete the handshake within this long or is dropped.
    public var handshakeTimeout: TimeAmount = .seconds(5)
    /// A session that receives nothing for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// A ping is sent after this long without sending anything, so idle peers stay alive.
    public var keepaliveInterval: TimeAmount = .seconds(15)
    /// Messages a session buffers for a slow consumer before it stops taking more from the peer.
    public var inboxCapacity: Int = 256
    /// Sessions (and connections still in their handshake) a listener holds at once. One more
    /// makes room by closing a silent or idle one (`evictionChoice`); if none has been so long
    /// enough, it gets an `overloaded` error and is dropped. So silent sessions cannot hold
    /// every slot against peers that talk.
    public var sessionsMax: Int = 1024
    /// How long a session must have delivered nothing (no handshake step, no application
    /// message; the session layer's pings do not count) before a newcomer may evict it.
    public var evictionIdleMinimum: TimeAmount = .seconds(1)
    /// The same for a session that has never delivered an application message: a handshake and
    /// silence is how slots are held, and a legitimate client asks right after its handshake. An
    /// attacker re-taking every freed slot would have to renew all of them within this to keep
    /// a newcomer out (with 1 s, the churn of its own re-takes once did, in a `slots` flood).
    public var evictionSilentMinimum: TimeAmount = .milliseconds(100)
    /// UDP: once this many `hello`s from new addresses are in their handshake, a new `hello`
    /// is answered with a stateless cookie and must come back with it (proto/README.md, "UDP
    /// cookies"), so spoofed `hello`s hold no state and cost one keyed hash each.
    public var handshakesBeforeCookie: Int = 64
    /// TCP: bytes all of a listener's connections may hold in records not yet complete. A
    /// connection that takes the total above it while holding more than a small record is
    /// closed with `overloaded`, so writers that never finish a record cannot fill memory.
    public var partialRecordBytesBudget: Int = 16 << 20
    public var reliability = ReliabilityConfiguration()
    /// Where session keys are appended for the Wireshark dissector, if anywhere. Off unless
    /// `RWANET_KEYLOG` names a file: like SSLKEYLOGFILE, never in production.
    public var keyLog: KeyLog? = KeyLog.fromEnvironment()
    /// Test hook: loss, duplication and reordering applied to outgoing UDP datagrams.
    public var udpFaults: FaultInjection.Settings?

    /// Reads the test hooks from the environment (`RWANET_KEYLOG`, `RWANET_UDP_FAULTS`); a
    /// malformed `RWANET_UDP_FAULTS` is an error, not a hook silently left off.
    public init(handshake: HandshakeConfiguration) throws(FaultSettingsError) {
        self.handshake = handshake
        self.udpFaults = try FaultInjection.Settings.fromEnvironment()
    }
}

/// The debug key log: one line per session,
/// `RWANET_SESSION <initiator ephemeral key> <initiator→responder key> <responder→initiator key>`
/// in hex, which the Wireshark dissector reads to decrypt captures (proto/README.md, "Key log").
public final class KeyLog: Sendable {
    public let path: String
    private let lock = NSLock()

    public init(path: String) { self.path = path }

    /// The key log `RWANET_KEYLOG` names in `environment`; nil when it is unset or empty.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> KeyLog?
    {
        guard let path = environment["RWANET_KEYLOG"], !path.isEmpty else { return nil }
        return KeyLog(path: path)
    }

    func record(_ session: EstablishedSession) {
        let (i2r, r2i) =
            session.isInitiator ? (session.sendKey, session.receiveKey) : (session.receiveKey, session.sendKey)
        let line =
            "RWANET_SESSION \(session.initiatorEphemeralKey.hexString) \(i2r.exposedBytes().hexString) \(r2i.exposedBytes().hexString)\n"
        lock.lock()
        defer { lock.unlock() }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = line.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress!, $0.count - 1) }
    }
}

/// A malformed `RWANET_UDP_FAULTS`.
public struct FaultSettingsError: Error, CustomStringConvertible {
    public let description: String
    init(_ reason: String) { description = "RWANET_UDP_FAULTS: \(reason)" }
}

/// Deterministic datagram faults for tests: the kernel here has no netem, so the UDP transport
/// can drop, duplicate and hold back its own outgoing datagrams from a seeded generator.
public struct FaultInjection: Sendable {
    public struct Settings: Sendable, Equatable {
        public var lossRate: Double
        public var duplicateRate: Double
        public var reorderRate: Double
        public var seed: UInt64

        public init(lossRate: Double = 0, duplicateRate: Double = 0, reorderRate: Double = 0, seed: UInt64 = 1) {
            self.lossRate = lossRate
            self.duplicateRate = duplicateRate
            self.reorderRate = reorderRate
            self.seed = seed
        }

        /// `RWANET_UDP_FAULTS="loss=0.2,dup=0.05,reorder=0.1,seed=7"`; nil when unset or empty.
        public static func fromEnvironment() throws(FaultSettingsError) -> Settings? {
            guard let text = ProcessInfo.processInfo.environment["RWANET_UDP_FAULTS"], !text.isEmpty else { return nil }
            return try Settings(parsing: text)
        }

        /// Parses `key=value` pairs separated by commas. Keys: `loss`, `dup`, `reorder` (rates
        /// from 0 to 1) and `seed` (an unsigned 64-bit integer). An unknown key, a repeated key or a
        /// bad value is an error: a hook that silently ignored a typo would test nothing.
        public init(parsing text: String) throws(FaultSettingsError) {
            self.init()
            var seen: Set<Substring> = []
            for pair in text.split(separator: ",", omittingEmptySubsequences: false) {
                let parts = pair.split(separator: "=", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty else {
                    throw FaultSettingsError("`\(pair)` is not key=value")
                }
                let (key, value) = (parts[0], parts[1])
                guard seen.insert(key).inserted else { throw FaultSettingsError("`\(key)` given twice") }
                func rate() throws(FaultSettingsError) -> Double {
                    guard let rate = Double(value), (0...1).contains(rate) else {
                        throw FaultSettingsError("\(key)=\(value): a rate is a number from 0 to 1")
                    }
                    return rate
                }
                switch key {
                case "loss": lossRate = try rate()
                case "dup": duplicateRate = try rate()
                case "reorder": reorderRate = try rate()
                case "seed":
                    guard let seed = UInt64(value) else {
                        throw FaultSettingsError("seed=\(value): the seed is an unsigned 64-bit integer")
                    }
                    self.seed = seed
                default:
                    throw FaultSettingsError("unknown key `\(key)` (known: loss, dup, reorder, seed)")
                }
            }
        }
    }

    /// Counts of what `apply` did, for the endpoint's `UDPStatistics`.
    public private(set) var dropped = 0
    public private(set) var duplicated = 0
    public private(set) var reordered = 0

    public let settings: Settings
    private var state: UInt64
    private var heldBack: [AddressedEnvelope<ByteBuffer>] = []

    public init(_ settings: Settings) {
        self.settings = settings
        self.state = settings.seed
    }

    /// SplitMix64: tiny, seedable, good enough to pick which datagrams to disturb.
    private mutating func nextUnit() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }

    /// The datagrams to actually write in place of `envelope`.
    public mutating func apply(_ envelope: AddressedEnvelope<ByteBuffer>) -> [AddressedEnvelope<ByteBuffer>] {
        if nextUnit() < settings.lossRate {
            dropped += 1
            return []
        }
        var out: [AddressedEnvelope<ByteBuffer>] = []
        if nextUnit() < settings.reorderRate && heldBack.count < 8 {
            heldBack.append(envelope)  // goes out after a later datagram
            reordered += 1
        } else {
            out.append(envelope)
            out.append(contentsOf: heldBack)
            heldBack.removeAll()
        }
        if nextUnit() < settings.duplicateRate {
            out.append(envelope)
            duplicated += 1
        }
        return out
    }
}

/// What a full listener knows of a session when a newcomer needs its slot.
struct EvictionCandidate<Key> {
    let key: Key
    /// When it last delivered something (a handshake step, an application message), uptime ns.
    let lastActivity: UInt64
    /// Whether it ever delivered an application message.
    let hasDelivered: Bool
}

extension SessionConfiguration {
    /// Whom a full listener evicts for a newcomer, if anyone: the longest silent of the sessions
    /// that never delivered an application message, once silent for `evictionSilentMinimum`;
    /// otherwise the idlest session, once idle for `evictionIdleMinimum`. (The same rule for
    /// both transports; protected sessions are not candidates.)
    func evictionChoice<Key>(among candidates: some Sequence<EvictionCandidate<Key>>, now: UInt64) -> Key? {
        var silent: EvictionCandidate<Key>?
        var idlest: EvictionCandidate<Key>?
        for candidate in candidates {
            if !candidate.hasDelivered, candidate.lastActivity < silent?.lastActivity ?? .max {
                silent = candidate
            }
            if candidate.lastActivity < idlest?.lastActivity ?? .max { idlest = candidate }
        }
        if let silent, now >= silent.lastActivity + UInt64(evictionSilentMinimum.nanoseconds) { return silent.key }
        if let idlest, now >= idlest.lastActivity + UInt64(evictionIdleMinimum.nanoseconds) { return idlest.key }
        return nil
    }
}
