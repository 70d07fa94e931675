import NIOCore
import RWACrypto

/// One read/write pair per field type of proto/README.md ("Field encodings"). Reads throw a
/// `WireError` naming the field; a length is checked against its maximum before anything is copied.
extension ByteBuffer {
    @inline(__always)
    public mutating func readInteger<T: FixedWidthInteger>(field: String, as: T.Type = T.self) throws(WireError) -> T {
        guard let value = readInteger(endianness: .big, as: T.self) else {
            throw .truncated(field: field, needed: MemoryLayout<T>.size, available: readableBytes)
        }
        return value
    }

    public mutating func readFixedBytes(field: String, count: Int) throws(WireError) -> [UInt8] {
        guard let bytes = readBytes(length: count) else {
            throw .truncated(field: field, needed: count, available: readableBytes)
        }
        return bytes
    }

    /// `u16 length | bytes`, length at most `maximum`.
    public mutating func readVariableBytes(field: String, maximum: Int) throws(WireError) -> [UInt8] {
        let length = Int(try readInteger(field: "\(field) length", as: UInt16.self))
        guard length <= maximum else { throw .lengthAboveMaximum(field: field, length: length, maximum: maximum) }
        return try readFixedBytes(field: field, count: length)
    }

    public mutating func writeVariableBytes(_ bytes: [UInt8], maximum: Int) {
        precondition(bytes.count <= maximum, "encoding a field above its declared maximum is a caller bug")
        writeInteger(UInt16(bytes.count), endianness: .big)
        writeBytes(bytes)
    }

    /// UTF-8 text as variable bytes; invalid UTF-8 is refused, so text round-trips byte for byte.
    public mutating func readText(field: String, maximum: Int) throws(WireError) -> String {
        let bytes = try readVariableBytes(field: field, maximum: maximum)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .invalidValue(field: field, reason: "not valid UTF-8")
        }
        return text
    }

    public mutating func writeText(_ text: String, maximum: Int) {
        writeVariableBytes(Array(text.utf8), maximum: maximum)
    }

    public mutating func readBool(field: String) throws(WireError) -> Bool {
        switch try readInteger(field: field, as: UInt8.self) {
        case 0: return false
        case 1: return true
        case let other: throw .nonCanonical(field: field, reason: "boolean byte \(other), must be 0 or 1")
        }
    }

    public mutating func writeBool(_ value: Bool) { writeInteger(value ? 1 : 0, as: UInt8.self) }

    public mutating func readUInt128(field: String) throws(WireError) -> UInt128 {
        let high: UInt64 = try readInteger(field: field)
        let low: UInt64 = try readInteger(field: field)
        return UInt128(high) << 64 | UInt128(low)
    }

    public mutating func writeUInt128(_ value: UInt128) {
        writeInteger(UInt64(truncatingIfNeeded: value >> 64), endianness: .big)
        writeInteger(UInt64(truncatingIfNeeded: value), endianness: .big)
    }

    public mutating func readDigest(field: String) throws(WireError) -> Digest32 {
        let bytes = try readFixedBytes(field: field, count: Digest32.byteCount)
        return try! Digest32(bytes: bytes)  // the length was just checked
    }

    public mutating func writeDigest(_ digest: Digest32) { writeBytes(digest.bytes) }

    /// Any 32 bytes: a key that is not a usable point fails every signature check it meets, which
    /// is where a key read off the wire is used (see `SigningPublicKey.init(bytes:)`).
    public mutating func readPublicKey(field: String) throws(WireError) -> SigningPublicKey {
        let bytes = try readFixedBytes(field: field, count: SigningPublicKey.byteCount)
        return try! SigningPublicKey(bytes: bytes)  // the length was just checked
    }

    public mutating func writePublicKey(_ key: SigningPublicKey) { writeBytes(key.bytes) }

    public mutating func readSignature(field: String) throws(WireError) -> Signature {
        let bytes = try readFixedBytes(field: field, count: Signature.byteCount)
        return try! Signature(bytes: bytes)  // the length was just checked
    }

    public mutating func writeSignature(_ signature: Signature) { writeBytes(signature.bytes) }

    /// Feature bits, BOLT 9 style: bit 0 is the least significant bit of the last byte. Canonical
    /// form has no leading zero byte, so one set of bits has one encoding.
    public mutating func readFeatures(field: String) throws(WireError) -> FeatureBits {
        let bytes = try readVariableBytes(field: field, maximum: WireLimits.featureBytesMax)
        if let first = bytes.first, first == 0 {
            throw .nonCanonical(field: field, reason: "leading zero byte in feature bits")
        }
        return FeatureBits(bigEndianBytes: bytes)
    }

    public mutating func writeFeatures(_ features: FeatureBits) {
        writeVariableBytes(features.bigEndianBytes, maximum: WireLimits.featureBytesMax)
    }
}

/// A set of feature bits. Bit 2k is "required", bit 2k+1 "optional" ("it's OK to be odd").
public struct FeatureBits: Hashable, Sendable {
    public private(set) var bits: Set<Int>

    public init(_ bits: Set<Int> = []) {
        precondition(bits.allSatisfy { $0 >= 0 && $0 < WireLimits.featureBytesMax * 8 })
        self.bits = bits
    }

    init(bigEndianBytes bytes: [UInt8]) {
        var bits = Set<Int>()
        for (index, byte) in bytes.reversed().enumerated() {
            for bit in 0..<8 where byte & (1 << bit) != 0 { bits.insert(index * 8 + bit) }
        }
        self.bits = bits
    }

    var bigEndianBytes: [UInt8] {
        guard let highest = bits.max() else { return [] }
        var bytes = [UInt8](repeating: 0, count: highest / 8 + 1)
        for bit in bits { bytes[bytes.count - 1 - bit / 8] |= 1 << (bit % 8) }
        return bytes
    }

    /// Required bits the peer set that `known` does not contain: the session must close.
    public func unknownRequired(known: Set<Int>) -> [Int] {
        bits.filter { $0 % 2 == 0 && !known.contains($0) }.sorted()
    }
}

extension ByteBuffer {
    /// Reads a `u8 count` followed by that many items, refusing more than `maximum`.
    public mutating func readList<T>(
        field: String, maximum: Int, _ readItem: (inout ByteBuffer) throws(WireError) -> T
    ) throws(WireError) -> [T] {
        let count = Int(try readInteger(field: "\(field) count", as: UInt8.self))
        guard count <= maximum else { throw .lengthAboveMaximum(field: field, length: count, maximum: maximum) }
        var items: [T] = []
        items.reserveCapacity(count)
        for _ in 0..<count { items.append(try readItem(&self)) }
        return items
    }

    public mutating func writeList<T>(_ items: [T], maximum: Int, _ writeItem: (inout ByteBuffer, T) -> Void) {
        precondition(items.count <= maximum, "encoding a list above its declared maximum is a caller bug")
        writeInteger(UInt8(items.count))
        for item in items { writeItem(&self, item) }
    }

    /// A list of `u16` values that must be strictly increasing: one set, one encoding.
    public mutating func readSortedUInt16Set(field: String, maximum: Int) throws(WireError) -> [UInt16] {
        let values = try readList(field: field, maximum: maximum) { (buffer) throws(WireError) -> UInt16 in
            try buffer.readInteger(field: field)
        }
        for index in values.indices.dropFirst() where values[index - 1] >= values[index] {
            throw .nonCanonical(field: field, reason: "values must be strictly increasing")
        }
        return values
    }

    public mutating func writeSortedUInt16Set(_ values: [UInt16], maximum: Int) {
        writeList(values.sorted(), maximum: maximum) { $0.writeInteger($1, endianness: .big) }
    }

    public mutating func readOptional<T>(
        field: String, _ readItem: (inout ByteBuffer) throws(WireError) -> T
    ) throws(WireError) -> T? {
        try readBool(field: "\(field) present") ? try readItem(&self) : nil
    }

    public mutating func writeOptional<T>(_ value: T?, _ writeItem: (inout ByteBuffer, T) -> Void) {
        writeBool(value != nil)
        if let value { writeItem(&self, value) }
    }
}
