import CSodium
import Glibc

/// A 32-byte BLAKE2b-256 digest: channel ids, transcript hashes, block hashes.
public struct Digest32: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == Self.byteCount else {
            throw .invalidLength(what: "digest", expected: Self.byteCount, actual: bytes.count)
        }
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    public static let zero = Digest32(unchecked: [UInt8](repeating: 0, count: byteCount))

    public var description: String { bytes.hexString }

    /// All 32 bytes in one call: the synthesized hash feeds them one by one, which showed in the
    /// profiles of every dictionary keyed by digests (states, channels, transactions).
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    /// In one comparison of the bytes (`sameBytes`).
    public static func == (lhs: Self, rhs: Self) -> Bool { sameBytes(lhs.bytes, rhs.bytes) }
}

/// BLAKE2b-256 (unkeyed and keyed), the project's only hash.
public enum Blake2b {
    public static func hash256(_ data: some ContiguousBytes) -> Digest32 {
        data.withUnsafeBytes { hash256(raw: $0) }
    }

    public static func hash256(raw data: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer? = nil)
        -> Digest32
    {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: Digest32.byteCount)
        out.withUnsafeMutableBytes { o in
            _ = crypto_generichash(
                o.baseAddress!.assumingMemoryBound(to: UInt8.self), 32,
                data.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(data.count),
                key?.baseAddress?.assumingMemoryBound(to: UInt8.self), key?.count ?? 0)
        }
        return Digest32(unchecked: out)
    }

    /// Hashes the concatenation of several parts without building it.
    public static func hash256(parts: [[UInt8]], key: [UInt8]? = nil) -> Digest32 {
        Sodium.ensureInitialized()
        // The state type carries an alignment attribute Swift does not import, so it lives in
        // raw memory of libsodium's declared size.
        let state = UnsafeMutableRawPointer.allocate(byteCount: crypto_generichash_statebytes(), alignment: 64)
        defer { state.deallocate() }
        let statePointer = OpaquePointer(state)
        if let key {
            _ = key.withUnsafeBufferPointer {
                crypto_generichash_init(statePointer, $0.baseAddress!, key.count, 32)
            }
        } else {
            _ = crypto_generichash_init(statePointer, nil, 0, 32)
        }
        for part in parts {
            _ = part.withUnsafeBufferPointer {
                crypto_generichash_update(statePointer, $0.baseAddress, UInt64(part.count))
            }
        }
        var out = [UInt8](repeating: 0, count: 32)
        _ = out.withUnsafeMutableBufferPointer { crypto_generichash_final(statePointer, $0.baseAddress!, 32) }
        return Digest32(unchecked: out)
    }
}

/// Anything whose bytes can be read contiguously.
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}
extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}

extension Sequence where Element == UInt8 {
    /// Lower-case hexadecimal, as in `proto/vectors` and key files.
    public var hexString: String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Whether two byte arrays are equal, in one `memcmp`: the synthesized `==` of a type holding
/// bytes compares them one by one, which showed in `bench-arbiter`'s profile (every transfer
/// compares keys). Not constant-time: for public values only.
func sameBytes(_ left: [UInt8], _ right: [UInt8]) -> Bool {
    left.count == right.count
        && left.withUnsafeBytes { left in
            right.withUnsafeBytes { right in
                left.isEmpty || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0
            }
        }
}

extension Array where Element == UInt8 {
    /// Parses hexadecimal (either case, whitespace ignored); nil on any other character or odd length.
    public init?(hex: String) {
        var out: [UInt8] = []
        var high: UInt8? = nil
        for char in hex.utf8 {
            let nibble: UInt8
            switch char {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = char - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = char - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = char - UInt8(ascii: "A") + 10
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r"): continue
            default: return nil
            }
            if let h = high {
                out.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        guard high == nil else { return nil }
        self = out
    }
}
