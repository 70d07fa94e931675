import CSodium

/// An ephemeral X25519 key pair for one handshake (libsodium `crypto_kx`).
public final class KeyExchangeKeyPair: Sendable {
    public static let publicKeyByteCount = 32
    public let publicKey: [UInt8]
    private let secretKey: SecretBytes

    /// Derives the pair from 32 seed bytes, so tests and vectors are reproducible.
    public init(seed: [UInt8]) throws(CryptoError) {
        guard seed.count == 32 else { throw .invalidLength(what: "kx seed", expected: 32, actual: seed.count) }
        Sodium.ensureInitialized()
        var pk = [UInt8](repeating: 0, count: 32)
        secretKey = SecretBytes(count: 32) { sk in
            _ = seed.withUnsafeBufferPointer { s in
                pk.withUnsafeMutableBufferPointer { p in
                    crypto_kx_seed_keypair(
                        p.baseAddress!, sk.baseAddress!.assumingMemoryBound(to: UInt8.self), s.baseAddress!)
                }
            }
        }
        publicKey = pk
    }

    public static func generate() -> KeyExchangeKeyPair {
        try! KeyExchangeKeyPair(seed: secureRandomBytes(count: 32))
    }

    /// The two raw directional keys shared with the peer: `(initiatorToResponder, responderToInitiator)`.
    /// The initiator plays libsodium's client role, the responder its server role.
    public func sharedKeys(peerPublicKey: [UInt8], asInitiator: Bool) throws(CryptoError) -> (SecretBytes, SecretBytes)
    {
        guard peerPublicKey.count == 32 else {
            throw .invalidLength(what: "kx public key", expected: 32, actual: peerPublicKey.count)
        }
        var rx = [UInt8](repeating: 0, count: 32)
        var tx = [UInt8](repeating: 0, count: 32)
        defer {
            rx.withUnsafeMutableBytes { sodium_memzero($0.baseAddress!, 32) }
            tx.withUnsafeMutableBytes { sodium_memzero($0.baseAddress!, 32) }
        }
        let status: Int32 = secretKey.withUnsafeBytes { sk in
            let skp = sk.baseAddress!.assumingMemoryBound(to: UInt8.self)
            return rx.withUnsafeMutableBufferPointer { r in
                tx.withUnsafeMutableBufferPointer { t in
                    if asInitiator {
                        return crypto_kx_client_session_keys(
                            r.baseAddress!, t.baseAddress!, publicKey, skp, peerPublicKey)
                    } else {
                        return crypto_kx_server_session_keys(
                            r.baseAddress!, t.baseAddress!, publicKey, skp, peerPublicKey)
                    }
                }
            }
        }
        guard status == 0 else { throw .keyExchangeFailed }
        // The initiator transmits on i2r; the responder receives on it.
        return asInitiator
            ? (SecretBytes(copying: tx), SecretBytes(copying: rx))
            : (SecretBytes(copying: rx), SecretBytes(copying: tx))
    }
}

/// ChaCha20-Poly1305 (IETF) with a 64-bit counter nonce, as BOLT 8 does: nonce = 4 zero bytes
/// followed by the big-endian counter. A key is never used with the same counter twice.
public struct AEADKey: Sendable {
    public static let tagByteCount = 16
    public static let keyByteCount = 32
    let key: SecretBytes

    public init(_ key: SecretBytes) {
        precondition(key.count == Self.keyByteCount)
        self.key = key
    }

    /// Binds a raw key-exchange key to the handshake transcript:
    /// `BLAKE2b-256(key: raw, message: "rwanet-session-key-v1" | transcript hash)`.
    public init(deriving raw: SecretBytes, transcriptHash: Digest32) {
        let label = Array("rwanet-session-key-v1".utf8)
        let input = label + transcriptHash.bytes
        let derived = raw.withUnsafeBytes { k in input.withUnsafeBytes { Blake2b.hash256(raw: $0, key: k) } }
        self.init(SecretBytes(copying: derived.bytes))
    }

    /// Writes `ciphertext | tag` (plaintext.count + 16 bytes) into `output`.
    public func seal(
        plaintext: UnsafeRawBufferPointer, associatedData: UnsafeRawBufferPointer, counter: UInt64,
        into output: UnsafeMutableRawBufferPointer
    ) {
        precondition(output.count >= plaintext.count + Self.tagByteCount)
        let nonce = Self.nonce(counter)
        var written: UInt64 = 0
        key.withUnsafeBytes { k in
            _ = crypto_aead_chacha20poly1305_ietf_encrypt(
                output.baseAddress!.assumingMemoryBound(to: UInt8.self), &written,
                plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                nil, nonce, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Authenticates and decrypts `ciphertext | tag` into `output` (ciphertext.count - 16 bytes).
    public func open(
        ciphertext: UnsafeRawBufferPointer, associatedData: UnsafeRawBufferPointer, counter: UInt64,
        into output: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        guard ciphertext.count >= Self.tagByteCount, output.count >= ciphertext.count - Self.tagByteCount else {
            throw .decryptionFailed
        }
        let nonce = Self.nonce(counter)
        var written: UInt64 = 0
        let status = key.withUnsafeBytes { k in
            crypto_aead_chacha20poly1305_ietf_decrypt(
                output.baseAddress?.assumingMemoryBound(to: UInt8.self), &written, nil,
                ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(ciphertext.count),
                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                nonce, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard status == 0 else { throw .decryptionFailed }
    }

    public func seal(_ plaintext: [UInt8], associatedData: [UInt8] = [], counter: UInt64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + Self.tagByteCount)
        plaintext.withUnsafeBytes { p in
            associatedData.withUnsafeBytes { a in
                out.withUnsafeMutableBytes { seal(plaintext: p, associatedData: a, counter: counter, into: $0) }
            }
        }
        return out
    }

    public func open(_ ciphertext: [UInt8], associatedData: [UInt8] = [], counter: UInt64) throws(CryptoError)
        -> [UInt8]
    {
        guard ciphertext.count >= Self.tagByteCount else { throw .decryptionFailed }
        var out = [UInt8](repeating: 0, count: ciphertext.count - Self.tagByteCount)
        let ok = ciphertext.withUnsafeBytes { c in
            associatedData.withUnsafeBytes { a in
                out.withUnsafeMutableBytes { o in
                    (try? open(ciphertext: c, associatedData: a, counter: counter, into: o)) != nil
                }
            }
        }
        guard ok else { throw .decryptionFailed }
        return out
    }

    /// The key bytes, for the debug key log only.
    public func exposedBytes() -> [UInt8] { key.exposedBytes() }

    private static func nonce(_ counter: UInt64) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { nonce[4 + i] = UInt8(truncatingIfNeeded: counter >> (56 - 8 * i)) }
        return nonce
    }
}
