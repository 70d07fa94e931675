import CSodium

/// libsodium must be initialised once before use; every entry point of this module calls this.
enum Sodium {
    static let initialized: Bool = {
        // sodium_init returns 0 on first success, 1 if already initialised, -1 on failure.
        sodium_init() >= 0
    }()

    @inline(__always)
    static func ensureInitialized() {
        precondition(initialized, "libsodium failed to initialise")
    }
}

/// Errors from the cryptographic layer. Each is a peer's or a user's bad input, never a bug.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidLength(what: String, expected: Int, actual: Int)
    case invalidPublicKey
    case invalidSignature
    case decryptionFailed
    case keyExchangeFailed
    case keyFile(String)

    public var description: String {
        switch self {
        case .invalidLength(let what, let expected, let actual):
            return "\(what) must be \(expected) bytes, got \(actual)"
        case .invalidPublicKey: return "invalid Ed25519 public key"
        case .invalidSignature: return "signature does not verify"
        case .decryptionFailed: return "AEAD authentication failed (forged, corrupted or replayed)"
        case .keyExchangeFailed: return "key exchange failed (invalid peer key)"
        case .keyFile(let reason): return "key file: \(reason)"
        }
    }
}

/// Fills a buffer from the operating system's CSPRNG. Only shells call this; pure cores are handed
/// their randomness.
public func secureRandomBytes(count: Int) -> [UInt8] {
    Sodium.ensureInitialized()
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
    return bytes
}

/// Constant-time equality for secrets and MACs.
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    Sodium.ensureInitialized()
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 }
    }
}

/// Secret key material in memory allocated outside Swift's copy-on-write arrays, so that the only
/// copy can be wiped with `sodium_memzero` when the owner goes away.
public final class SecretBytes: @unchecked Sendable {
    private let storage: UnsafeMutableRawBufferPointer

    public var count: Int { storage.count }

    public init(copying bytes: some Collection<UInt8>) {
        storage = .allocate(byteCount: bytes.count, alignment: 16)
        storage.copyBytes(from: bytes)
    }

    /// Lets a libsodium call fill the secret in place without an intermediate array.
    init(count: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        storage = .allocate(byteCount: count, alignment: 16)
        fill(storage)
    }

    deinit {
        sodium_memzero(storage.baseAddress!, storage.count)
        storage.deallocate()
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(storage))
    }

    /// Copies the secret out. Only the debug key log does this.
    public func exposedBytes() -> [UInt8] { Array(storage) }
}
