import NIOCore
import RWACrypto
import RWAWire

/// The chain's first record: who the arbiter is, whom it trusts to issue claims and register
/// resources, and who issues the stablecoin. The chain id is the hash of its encoding, so a
/// signature made for one chain can never be replayed on another.
public struct Genesis: Equatable, Sendable {
    public var networkName: String
    /// Unix milliseconds; no block may be older.
    public var timeMilliseconds: UInt64
    public var arbiter: AccountID
    public var claimIssuers: [AccountID]
    public var stablecoinIssuer: AccountID
    public var stablecoinSymbol: String
    public var stablecoinDecimals: UInt8
    /// The usage-right period of lease channels ("an hour"), in seconds: 3,600 unless a test
    /// network wants hours that pass in seconds.
    public var periodSeconds: UInt32

    public init(
        networkName: String, timeMilliseconds: UInt64, arbiter: AccountID, claimIssuers: [AccountID],
        stablecoinIssuer: AccountID,
        stablecoinSymbol: String = "USDR", stablecoinDecimals: UInt8 = 6, periodSeconds: UInt32 = 3_600
    ) {
        precondition(periodSeconds > 0)
        self.periodSeconds = periodSeconds
        self.networkName = networkName
        self.timeMilliseconds = timeMilliseconds
        self.arbiter = arbiter
        self.claimIssuers = claimIssuers
        self.stablecoinIssuer = stablecoinIssuer
        self.stablecoinSymbol = stablecoinSymbol
        self.stablecoinDecimals = stablecoinDecimals
    }

    public init(decoding bytes: [UInt8]) throws(WireError) {
        var buffer = ByteBuffer(bytes: bytes)
        networkName = try buffer.readText(field: "genesis.network_name", maximum: LedgerLimits.networkNameBytesMax)
        timeMilliseconds = try buffer.readInteger(field: "genesis.time")
        arbiter = try buffer.readPublicKey(field: "genesis.arbiter")
        claimIssuers = try buffer.readList(field: "genesis.claim_issuers", maximum: LedgerLimits.claimIssuersMax) {
            (b) throws(WireError) in try b.readPublicKey(field: "genesis.claim_issuer")
        }
        stablecoinIssuer = try buffer.readPublicKey(field: "genesis.stablecoin_issuer")
        stablecoinSymbol = try buffer.readText(field: "genesis.stablecoin_symbol", maximum: LedgerLimits.symbolBytesMax)
        stablecoinDecimals = try buffer.readInteger(field: "genesis.stablecoin_decimals")
        periodSeconds = try buffer.readInteger(field: "genesis.period_seconds")
        guard periodSeconds > 0 else {
            throw .invalidValue(field: "genesis.period_seconds", reason: "must be positive")
        }
        guard buffer.readableBytes == 0 else { throw .trailingBytes(message: "genesis", count: buffer.readableBytes) }
        guard encoded == bytes else { throw .nonCanonical(field: "genesis", reason: "re-encodes differently") }
    }

    public var encoded: [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeText(networkName, maximum: LedgerLimits.networkNameBytesMax)
        buffer.writeInteger(timeMilliseconds, endianness: .big)
        buffer.writePublicKey(arbiter)
        buffer.writeList(claimIssuers, maximum: LedgerLimits.claimIssuersMax) { $0.writePublicKey($1) }
        buffer.writePublicKey(stablecoinIssuer)
        buffer.writeText(stablecoinSymbol, maximum: LedgerLimits.symbolBytesMax)
        buffer.writeInteger(stablecoinDecimals)
        buffer.writeInteger(periodSeconds, endianness: .big)
        return Array(buffer.readableBytesView)
    }

    /// BLAKE2b-256 of the encoding; also the `previous_hash` of block 1.
    public var chainID: Digest32 { Blake2b.hash256(encoded) }
}

/// `height | previous_hash | transactions_root | time | transaction_count | signature`
/// (proto/README.md, "Blocks"). The block's hash covers every field but the signature.
public struct BlockHeader: Equatable, Sendable {
    public static let signatureTag = "rwanet/block"
    public static let encodedByteCount = 8 + 32 + 32 + 8 + 4 + Signature.byteCount
    public var height: UInt64
    public var previousHash: Digest32
    public var transactionsRoot: Digest32
    /// Unix milliseconds, never less than the previous block's.
    public var timeMilliseconds: UInt64
    public var transactionCount: UInt32
    public var signature: Signature

    public init(
        height: UInt64, previousHash: Digest32, transactionsRoot: Digest32, timeMilliseconds: UInt64,
        transactionCount: UInt32,
        signature: Signature
    ) {
        self.height = height
        self.previousHash = previousHash
        self.transactionsRoot = transactionsRoot
        self.timeMilliseconds = timeMilliseconds
        self.transactionCount = transactionCount
        self.signature = signature
    }

    public init(decoding bytes: [UInt8]) throws(WireError) {
        guard bytes.count == Self.encodedByteCount else {
            throw .invalidValue(field: "block_header", reason: "\(bytes.count) bytes, must be \(Self.encodedByteCount)")
        }
        var buffer = ByteBuffer(bytes: bytes)
        height = try buffer.readInteger(field: "block_header.height")
        previousHash = try buffer.readDigest(field: "block_header.previous_hash")
        transactionsRoot = try buffer.readDigest(field: "block_header.transactions_root")
        timeMilliseconds = try buffer.readInteger(field: "block_header.time")
        transactionCount = try buffer.readInteger(field: "block_header.transaction_count")
        signature = try buffer.readSignature(field: "block_header.signature")
    }

    var unsignedBytes: [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(height, endianness: .big)
        buffer.writeDigest(previousHash)
        buffer.writeDigest(transactionsRoot)
        buffer.writeInteger(timeMilliseconds, endianness: .big)
        buffer.writeInteger(transactionCount, endianness: .big)
        return Array(buffer.readableBytesView)
    }

    public var encoded: [UInt8] { unsignedBytes + signature.bytes }

    public var hash: Digest32 { Blake2b.hash256(unsignedBytes) }

    public static func domain(_ chainID: Digest32) -> SignatureDomain {
        SignatureDomain(tag: signatureTag, chainID: chainID)
    }

    public func hasValidSignature(arbiter: AccountID, chainID: Digest32) -> Bool {
        arbiter.isValidSignature(signature, for: unsignedBytes, domain: Self.domain(chainID))
    }
}

/// A transaction as committed: its bytes and what it produced (the id of the identity or
/// resource it created, or 0). The result is not signed by anyone; replay recomputes it.
public struct CommittedTransaction: Equatable, Sendable {
    public var bytes: [UInt8]
    public var hash: Digest32
    public var createdID: UInt64

    public init(bytes: [UInt8], createdID: UInt64) {
        self.init(bytes: bytes, hash: Blake2b.hash256(bytes), createdID: createdID)
    }

    /// For bytes whose hash is already known (a `VerifiedTransaction`'s).
    init(bytes: [UInt8], hash: Digest32, createdID: UInt64) {
        self.bytes = bytes
        self.hash = hash
        self.createdID = createdID
    }
}

public struct Block: Equatable, Sendable {
    public var header: BlockHeader
    public var transactions: [CommittedTransaction]

    public init(header: BlockHeader, transactions: [CommittedTransaction]) {
        self.header = header
        self.transactions = transactions
    }
}

/// A binary Merkle tree over transaction hashes with RFC 6962's domain separation (a leaf is
/// `H(0x00 | hash)`, a node `H(0x01 | left | right)`). An odd node is promoted unchanged, not
/// paired with itself, so two different lists never share a root (Bitcoin's CVE-2012-2459).
public enum MerkleTree {
    /// The siblings on the way from leaf `index` to the root, bottom up. A node without a
    /// sibling (the last of an odd level) is promoted and adds no step, so the path's shape
    /// follows from the index and the number of leaves.
    public static func path(_ leaves: [Digest32], index: Int) -> [Digest32] {
        precondition(index >= 0 && index < leaves.count)
        var level = leaves.map { Blake2b.hash256([0x00] + $0.bytes) }
        var position = index
        var path: [Digest32] = []
        while level.count > 1 {
            let sibling = position ^ 1
            if sibling < level.count { path.append(level[sibling]) }
            var next: [Digest32] = []
            var pair = 0
            while pair + 1 < level.count {
                next.append(Blake2b.hash256([0x01] + level[pair].bytes + level[pair + 1].bytes))
                pair += 2
            }
            if pair < level.count { next.append(level[pair]) }
            level = next
            position /= 2
        }
        return path
    }

    /// Whether `leaf` is leaf `index` of a tree of `count` leaves with this root.
    public static func verify(leaf: Digest32, index: Int, count: Int, path: [Digest32], root: Digest32) -> Bool {
        guard index >= 0, index < count else { return false }
        var node = Blake2b.hash256([0x00] + leaf.bytes)
        var position = index
        var width = count
        var steps = path[...]
        while width > 1 {
            if position ^ 1 < width {
                guard let sibling = steps.popFirst() else { return false }
                node =
                    position % 2 == 0
                    ? Blake2b.hash256([0x01] + node.bytes + sibling.bytes)
                    : Blake2b.hash256([0x01] + sibling.bytes + node.bytes)
            }
            position /= 2
            width = (width + 1) / 2
        }
        return steps.isEmpty && node == root
    }

    public static func root(_ leaves: [Digest32]) -> Digest32 {
        guard !leaves.isEmpty else { return Blake2b.hash256([]) }
        var level = leaves.map { Blake2b.hash256([0x00] + $0.bytes) }
        while level.count > 1 {
            var next: [Digest32] = []
            next.reserveCapacity((level.count + 1) / 2)
            var index = 0
            while index + 1 < level.count {
                next.append(Blake2b.hash256([0x01] + level[index].bytes + level[index + 1].bytes))
                index += 2
            }
            if index < level.count { next.append(level[index]) }
            level = next
        }
        return level[0]
    }
}
