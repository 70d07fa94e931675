import CSodium

/// An Ed25519 public key: an account, a peer identity, the arbiter.
public struct SigningPublicKey: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public let bytes: [UInt8]

    /// Accepts any 32 bytes. Checking that they encode a point of the main subgroup costs about as
    /// much as a verification (a scalar multiplication); verification itself refuses keys that are
    /// non-canonical, of small order or off the curve. So decoders take keys at this price and
    /// trust boundaries, where a key becomes someone's identity, pay for `init(validating:)`.
    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == Self.byteCount else {
            throw .invalidLength(what: "public key", expected: Self.byteCount, actual: bytes.count)
        }
        self.bytes = bytes
    }

    /// Accepts only a key libsodium would verify with: a canonical encoding of a point of the
    /// main subgroup, not of small order. For keys a user types or registers.
    public init(validating bytes: [UInt8]) throws(CryptoError) {
        try self.init(bytes: bytes)
        guard isUsable else { throw .invalidPublicKey }
    }

    /// Whether this is a canonical point of the main subgroup, not of small order: the keys
    /// `SigningKeyPair` produces. (libsodium's verification alone does not check the subgroup.)
    public var isUsable: Bool {
        Sodium.ensureInitialized()
        return bytes.withUnsafeBufferPointer { crypto_core_ed25519_is_valid_point($0.baseAddress!) == 1 }
    }

    public var description: String { bytes.hexString }

    /// All 32 bytes in one call (the synthesized hash feeds them one by one): keys index the
    /// ledger's accounts and holdings and every service's sessions.
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    /// In one comparison of the bytes (`sameBytes`).
    public static func == (lhs: Self, rhs: Self) -> Bool { sameBytes(lhs.bytes, rhs.bytes) }

    /// Verifies a domain-separated signature (see `SignatureDomain`).
    public func isValidSignature(
        _ signature: Signature, for payload: some ContiguousBytes, domain: SignatureDomain
    ) -> Bool {
        let message = payload.withUnsafeBytes { domain.signedBytes(payload: $0) }
        return isValidRawSignature(signature, for: message)
    }

    /// Verifies a signature over exactly `message`; RFC 8032 test vectors use this.
    public func isValidRawSignature(_ signature: Signature, for message: [UInt8]) -> Bool {
        Sodium.ensureInitialized()
        return signature.bytes.withUnsafeBufferPointer { sig in
            message.withUnsafeBufferPointer { msg in
                bytes.withUnsafeBufferPointer { pk in
                    crypto_sign_verify_detached(
                        sig.baseAddress!, msg.baseAddress!, UInt64(msg.count), pk.baseAddress!) == 0
                }
            }
        }
    }
}

/// A detached Ed25519 signature.
public struct Signature: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 64
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == Self.byteCount else {
            throw .invalidLength(what: "signature", expected: Self.byteCount, actual: bytes.count)
        }
        self.bytes = bytes
    }

    public var description: String { bytes.hexString }
}

/// What a signature covers besides the payload: a tag naming the message kind and the chain id,
/// so that no signature is valid for another kind of message or on another arbiter's chain.
///
/// Signed bytes: `u16 tag length | tag (ASCII) | chain id (32 bytes) | payload` (proto/README.md,
/// "Signatures").
public struct SignatureDomain: Hashable, Sendable {
    public static let tagBytesMax = 64
    public let tag: String
    public let chainID: Digest32

    public init(tag: String, chainID: Digest32) {
        precondition(
            !tag.isEmpty && tag.utf8.count <= Self.tagBytesMax && tag.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f },
            "a signature tag is printable ASCII of 1...\(Self.tagBytesMax) bytes")
        self.tag = tag
        self.chainID = chainID
    }

    public func signedBytes(payload: UnsafeRawBufferPointer) -> [UInt8] {
        let tagBytes = Array(tag.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(2 + tagBytes.count + 32 + payload.count)
        out.append(UInt8(tagBytes.count >> 8))
        out.append(UInt8(tagBytes.count & 0xff))
        out.append(contentsOf: tagBytes)
        out.append(contentsOf: chainID.bytes)
        out.append(contentsOf: payload)
        return out
    }
}

/// An Ed25519 key pair held as its 32-byte seed; the secret is wiped when the pair goes away.
public final class SigningKeyPair: Sendable {
    public static let seedByteCount = 32
    public let publicKey: SigningPublicKey
    /// libsodium's 64-byte secret key (seed followed by public key).
    private let secretKey: SecretBytes

    public init(seed: [UInt8]) throws(CryptoError) {
        guard seed.count == Self.seedByteCount else {
            throw .invalidLength(what: "seed", expected: Self.seedByteCount, actual: seed.count)
        }
        Sodium.ensureInitialized()
        var publicBytes = [UInt8](repeating: 0, count: 32)
        secretKey = SecretBytes(count: 64) { sk in
            _ = seed.withUnsafeBufferPointer { s in
                publicBytes.withUnsafeMutableBufferPointer { pk in
                    crypto_sign_seed_keypair(
                        pk.baseAddress!, sk.baseAddress!.assumingMemoryBound(to: UInt8.self), s.baseAddress!)
                }
            }
        }
        publicKey = try SigningPublicKey(bytes: publicBytes)
    }

    /// A fresh key pair from the operating system's CSPRNG.
    public static func generate() -> SigningKeyPair {
        var seed = secureRandomBytes(count: seedByteCount)
        defer { seed.withUnsafeMutableBytes { sodium_memzero($0.baseAddress!, $0.count) } }
        return try! SigningKeyPair(seed: seed)
    }

    /// The seed, for writing a key file. Never log it.
    public func exportSeed() -> [UInt8] {
        secretKey.withUnsafeBytes { Array($0.prefix(Self.seedByteCount)) }
    }

    public func sign(_ payload: some ContiguousBytes, domain: SignatureDomain) -> Signature {
        let message = payload.withUnsafeBytes { domain.signedBytes(payload: $0) }
        return signRaw(message)
    }

    /// Signs exactly `message`; RFC 8032 test vectors use this.
    public func signRaw(_ message: [UInt8]) -> Signature {
        var signature = [UInt8](repeating: 0, count: Signature.byteCount)
        secretKey.withUnsafeBytes { sk in
            message.withUnsafeBufferPointer { msg in
                signature.withUnsafeMutableBufferPointer { sig in
                    _ = crypto_sign_detached(
                        sig.baseAddress!, nil, msg.baseAddress!, UInt64(msg.count),
                        sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return try! Signature(bytes: signature)
    }
}
