import Foundation
import NIOCore
import RWACrypto
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
    /// Sessions a listener holds at once; one more gets an `overloaded` error and is dropped.
    public var sessionsMax: Int = 1024
    public var reliability = ReliabilityConfiguration()
    /// Where session keys are appended for the Wireshark dissector, if anywhere. Off unless
    /// `RWANET_KEYLOG` names a file: like SSLKEYLOGFILE, never in production.
    public var keyLog: KeyLog? = KeyLog.fromEnvironment()
    /// Test hook: loss, duplication and reordering applied to outgoing UDP datagrams.
    public var udpFaults: FaultInjection.Settings? = FaultInjection.Settings.fromEnvironment()

    public init(handshake: HandshakeConfiguration) { self.handshake = handshake }
}

/// The debug key log: one line per session,
/// `RWANET_SESSION <initiator ephemeral key> <initiator→responder key> <responder→initiator key>`
/// in hex, which the Wireshark dissector reads to decrypt captures (proto/README.md, "Key log").
public final class KeyLog: Sendable {
    public let path: String
    private let lock = NSLock()

    public init(path: String) { self.path = path }

    public static func fromEnvironment() -> KeyLog? {
        guard let path = ProcessInfo.processInfo.environment["RWANET_KEYLOG"], !path.isEmpty else { return nil }
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

        /// `RWANET_UDP_FAULTS="loss=0.2,dup=0.05,reorder=0.1,seed=7"`.
        public static func fromEnvironment() -> Settings? {
            guard let text = ProcessInfo.processInfo.environment["RWANET_UDP_FAULTS"], !text.isEmpty else { return nil }
            var settings = Settings()
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "=")
                guard parts.count == 2 else { continue }
                switch parts[0] {
                case "loss": settings.lossRate = Double(parts[1]) ?? 0
                case "dup": settings.duplicateRate = Double(parts[1]) ?? 0
                case "reorder": settings.reorderRate = Double(parts[1]) ?? 0
                case "seed": settings.seed = UInt64(parts[1]) ?? 1
                default: continue
                }
            }
            return settings
        }
    }

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
        if nextUnit() < settings.lossRate { return [] }
        var out: [AddressedEnvelope<ByteBuffer>] = []
        if nextUnit() < settings.reorderRate && heldBack.count < 8 {
            heldBack.append(envelope)  // goes out after a later datagram
        } else {
            out.append(envelope)
            out.append(contentsOf: heldBack)
            heldBack.removeAll()
        }
        if nextUnit() < settings.duplicateRate { out.append(envelope) }
        return out
    }
}
