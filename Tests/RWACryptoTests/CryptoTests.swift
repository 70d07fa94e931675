// Goal: RWACrypto gives exactly libsodium's answers (RFC 8032, BLAKE2b, ChaCha20-Poly1305 known
// answers, cross-checked with Python's `cryptography` and `hashlib`) and rejects every tampering.
import Foundation
import RWACrypto
import XCTest

final class SigningTests: XCTestCase {
    /// RFC 8032 section 7.1, tests 1 to 3: (secret seed, public key, message, signature).
    static let rfc8032: [(String, String, String, String)] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"
        ),
    ]

    func testRFC8032Vectors() throws {
        for (seed, publicKey, message, signature) in Self.rfc8032 {
            let pair = try SigningKeyPair(seed: [UInt8](hex: seed)!)
            XCTAssertEqual(pair.publicKey.bytes.hexString, publicKey)
            let produced = pair.signRaw([UInt8](hex: message)!)
            XCTAssertEqual(produced.bytes.hexString, signature)
            XCTAssertTrue(pair.publicKey.isValidRawSignature(produced, for: [UInt8](hex: message)!))
        }
    }

    func testTamperedMessageSignatureOrKeyIsRejected() throws {
        let chain = Blake2b.hash256(Array("test chain".utf8))
        let domain = SignatureDomain(tag: "rwanet/test", chainID: chain)
        let pair = try SigningKeyPair(seed: [UInt8](repeating: 7, count: 32))
        let message: [UInt8] = Array("lease 3.5 GHz slice 17 for one hour".utf8)
        let signature = pair.sign(message, domain: domain)
        XCTAssertTrue(pair.publicKey.isValidSignature(signature, for: message, domain: domain))

        var tamperedMessage = message
        tamperedMessage[0] ^= 1
        XCTAssertFalse(pair.publicKey.isValidSignature(signature, for: tamperedMessage, domain: domain))

        for index in [0, 31, 32, 63] {
            var bytes = signature.bytes
            bytes[index] ^= 0x40
            XCTAssertFalse(
                pair.publicKey.isValidSignature(try Signature(bytes: bytes), for: message, domain: domain),
                "byte \(index)")
        }

        let other = try SigningKeyPair(seed: [UInt8](repeating: 8, count: 32))
        XCTAssertFalse(other.publicKey.isValidSignature(signature, for: message, domain: domain))
    }

    func testDomainSeparationBindsTagAndChain() throws {
        let chainA = Blake2b.hash256(Array("chain A".utf8))
        let chainB = Blake2b.hash256(Array("chain B".utf8))
        let pair = try SigningKeyPair(seed: [UInt8](repeating: 9, count: 32))
        let payload: [UInt8] = [1, 2, 3]
        let signature = pair.sign(payload, domain: SignatureDomain(tag: "rwanet/a", chainID: chainA))
        XCTAssertTrue(
            pair.publicKey.isValidSignature(
                signature, for: payload, domain: SignatureDomain(tag: "rwanet/a", chainID: chainA)))
        XCTAssertFalse(
            pair.publicKey.isValidSignature(
                signature, for: payload, domain: SignatureDomain(tag: "rwanet/b", chainID: chainA)))
        XCTAssertFalse(
            pair.publicKey.isValidSignature(
                signature, for: payload, domain: SignatureDomain(tag: "rwanet/a", chainID: chainB)))
        // The signed bytes are exactly `u16 tag length | tag | chain id | payload`.
        let signed = payload.withUnsafeBytes {
            SignatureDomain(tag: "rwanet/a", chainID: chainA).signedBytes(payload: $0)
        }
        XCTAssertEqual(signed, [0, 8] + Array("rwanet/a".utf8) + chainA.bytes + payload)
        XCTAssertTrue(pair.publicKey.isValidRawSignature(signature, for: signed))
    }

    func testMalformedKeysAndSignaturesAreTypedErrors() {
        XCTAssertThrowsError(try SigningPublicKey(bytes: [UInt8](repeating: 1, count: 31)))
        XCTAssertThrowsError(try Signature(bytes: [UInt8](repeating: 1, count: 65)))
        XCTAssertThrowsError(try SigningKeyPair(seed: [1, 2, 3]))
        // Not an encoding of a curve point (y = 2 has no x on edwards25519).
        var notAPoint = [UInt8](repeating: 0, count: 32)
        notAPoint[0] = 2
        XCTAssertThrowsError(try SigningPublicKey(validating: notAPoint)) {
            XCTAssertEqual($0 as? CryptoError, .invalidPublicKey)
        }
        // Taken unvalidated, such a key verifies nothing, not even a signature made for it.
        let unvalidated = try! SigningPublicKey(bytes: notAPoint)
        XCTAssertFalse(unvalidated.isUsable)
        let signer = try! SigningKeyPair(seed: [UInt8](repeating: 1, count: 32))
        XCTAssertFalse(unvalidated.isValidRawSignature(signer.signRaw([1]), for: [1]))
        // Small order (the identity point) is refused too.
        var identityPoint = [UInt8](repeating: 0, count: 32)
        identityPoint[0] = 1
        XCTAssertThrowsError(try SigningPublicKey(validating: identityPoint))
        XCTAssertNoThrow(try SigningPublicKey(validating: signer.publicKey.bytes))
    }
}

final class HashTests: XCTestCase {
    func testBlake2b256KnownAnswers() {
        XCTAssertEqual(
            Blake2b.hash256([UInt8]()).bytes.hexString,
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
        XCTAssertEqual(
            Blake2b.hash256(Array("abc".utf8)).bytes.hexString,
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319")
        XCTAssertEqual(
            Blake2b.hash256(Array("rwanet-devnet".utf8)).bytes.hexString,
            "b0bd45a7f528b42a97987628b143b11d6f511d03856034851c2814c3ab196b32")
        XCTAssertEqual(
            Blake2b.hash256(parts: [Array("abc".utf8)], key: Array(0..<32)).bytes.hexString,
            "d63a32d3e44738d7907f964316c241adaba0abfeabc32349677578a15a203f7f")
        XCTAssertEqual(Blake2b.hash256(parts: [Array("a".utf8), Array("bc".utf8)]), Blake2b.hash256(Array("abc".utf8)))
    }

    func testHexRoundTripAndRejection() {
        XCTAssertEqual([UInt8](hex: "00ff10Ab"), [0x00, 0xff, 0x10, 0xab])
        XCTAssertNil([UInt8](hex: "abc"))
        XCTAssertNil([UInt8](hex: "zz"))
        XCTAssertEqual([UInt8]([0xde, 0xad]).hexString, "dead")
    }

    /// Keys and digests compare (and hash) by their bytes, wherever the bytes are stored, and
    /// differ when any byte does: the first and the last.
    func testKeysAndDigestsCompareByEveryByte() throws {
        let bytes = (0..<32).map { UInt8($0) }
        let digest = try Digest32(bytes: bytes)
        let key = try SigningPublicKey(bytes: bytes)
        XCTAssertEqual(digest, try Digest32(bytes: Array(bytes[...])))
        XCTAssertEqual(Set([digest, try Digest32(bytes: bytes.map { $0 })]).count, 1)
        XCTAssertEqual(key, try SigningPublicKey(bytes: bytes.map { $0 }))
        for position in [0, 31] {
            var other = bytes
            other[position] ^= 0x80
            XCTAssertNotEqual(digest, try Digest32(bytes: other))
            XCTAssertNotEqual(key, try SigningPublicKey(bytes: other))
        }
    }
}

final class SessionCryptoTests: XCTestCase {
    func testAEADKnownAnswerAndCounterNonce() throws {
        let key = AEADKey(SecretBytes(copying: Array(0..<32)))
        let sealed = key.seal(Array("rwanet aead known answer".utf8), associatedData: Array("ad".utf8), counter: 7)
        XCTAssertEqual(
            sealed.hexString, "5a31742d2bf70a3f090cdfd0bce1bc5b5a9251580d9458f11a56d19005c248b9340b2dd4c3a6942b")
        XCTAssertEqual(
            try key.open(sealed, associatedData: Array("ad".utf8), counter: 7), Array("rwanet aead known answer".utf8))
    }

    func testAEADRejectsForgeryWrongCounterAndWrongAssociatedData() throws {
        let key = AEADKey(SecretBytes(copying: [UInt8](repeating: 5, count: 32)))
        let sealed = key.seal([1, 2, 3, 4], associatedData: [9], counter: 1)
        var forged = sealed
        forged[forged.count - 1] ^= 1
        XCTAssertThrowsError(try key.open(forged, associatedData: [9], counter: 1)) {
            XCTAssertEqual($0 as? CryptoError, .decryptionFailed)
        }
        XCTAssertThrowsError(try key.open(sealed, associatedData: [9], counter: 2))
        XCTAssertThrowsError(try key.open(sealed, associatedData: [8], counter: 1))
        XCTAssertThrowsError(try key.open([1, 2, 3], counter: 1))
    }

    func testKeyExchangeAgreesAndBindsTranscript() throws {
        let initiator = try KeyExchangeKeyPair(seed: [UInt8](repeating: 3, count: 32))
        let responder = try KeyExchangeKeyPair(seed: [UInt8](repeating: 4, count: 32))
        let (iI2R, iR2I) = try initiator.sharedKeys(peerPublicKey: responder.publicKey, asInitiator: true)
        let (rI2R, rR2I) = try responder.sharedKeys(peerPublicKey: initiator.publicKey, asInitiator: false)
        XCTAssertEqual(iI2R.exposedBytes(), rI2R.exposedBytes())
        XCTAssertEqual(iR2I.exposedBytes(), rR2I.exposedBytes())
        XCTAssertNotEqual(iI2R.exposedBytes(), iR2I.exposedBytes())
        let transcript = Blake2b.hash256(Array("transcript".utf8))
        let a = AEADKey(deriving: iI2R, transcriptHash: transcript)
        let b = AEADKey(deriving: rI2R, transcriptHash: transcript)
        let c = AEADKey(deriving: rI2R, transcriptHash: Blake2b.hash256(Array("other".utf8)))
        let sealed = a.seal([42], counter: 0)
        XCTAssertEqual(try b.open(sealed, counter: 0), [42])
        XCTAssertThrowsError(try c.open(sealed, counter: 0))
        // A low-order point must not yield a shared key.
        XCTAssertThrowsError(
            try initiator.sharedKeys(peerPublicKey: [UInt8](repeating: 0, count: 32), asInitiator: true))
    }
}

final class KeyFileTests: XCTestCase {
    func testKeyFileIsPrivateRoundTripsAndIsNeverOverwritten() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rwanet-keyfile-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("id.key").path
        let pair = SigningKeyPair.generate()
        try KeyFile.write(pair, to: path)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
        XCTAssertEqual(mode & 0o777, 0o600)
        XCTAssertEqual(try KeyFile.read(from: path).publicKey, pair.publicKey)
        XCTAssertThrowsError(try KeyFile.write(SigningKeyPair.generate(), to: path))
        XCTAssertEqual(try KeyFile.read(from: path).publicKey, pair.publicKey, "the existing identity is untouched")

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        XCTAssertThrowsError(try KeyFile.read(from: path)) { XCTAssertTrue("\($0)".contains("readable by others")) }

        let garbage = directory.appendingPathComponent("garbage.key").path
        FileManager.default.createFile(
            atPath: garbage, contents: Data("not a key\n".utf8), attributes: [.posixPermissions: 0o600])
        XCTAssertThrowsError(try KeyFile.read(from: garbage))
    }
}
