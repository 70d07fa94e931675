import NIOCore
import RWACrypto
import RWAWire

/// A lessee's proof of its right to use a licence's slices (proto/README.md, "Usage-right
/// proofs"): the open transaction with its block header (signed by the arbiter) and its Merkle
/// path, and the latest co-signed state. Anyone holding only the arbiter's public key can check
/// offline that the lease was opened on the chain and is paid through a given time.
public struct UsageProof: Equatable, Sendable {
    public static let magic: [UInt8] = Array("rwanet-usage-proof".utf8)
    public static let version: UInt8 = 1

    public var openTransaction: [UInt8]
    public var header: BlockHeader
    public var index: UInt32
    public var path: [Digest32]
    public var state: CoSignedState
    /// The licence's band, as the lessee's daemon read it from the chain: what turns slices
    /// into hertz (informational; the slices themselves are proven).
    public var centreHz: UInt64
    public var widthHz: UInt64

    public init(
        openTransaction: [UInt8], header: BlockHeader, index: UInt32, path: [Digest32], state: CoSignedState,
        centreHz: UInt64, widthHz: UInt64
    ) {
        self.openTransaction = openTransaction
        self.header = header
        self.index = index
        self.path = path
        self.state = state
        self.centreHz = centreHz
        self.widthHz = widthHz
    }

    public var encoded: [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeBytes(Self.magic)
        buffer.writeInteger(Self.version)
        buffer.writeVariableBytes(openTransaction, maximum: WireLimits.ledgerTransactionBytesMax)
        buffer.writeBytes(header.encoded)
        buffer.writeInteger(index, endianness: .big)
        buffer.writeList(path, maximum: 32) { $0.writeDigest($1) }
        state.encode(into: &buffer)
        buffer.writeInteger(centreHz, endianness: .big)
        buffer.writeInteger(widthHz, endianness: .big)
        return Array(buffer.readableBytesView)
    }

    public init(decoding bytes: [UInt8]) throws(WireError) {
        var buffer = ByteBuffer(bytes: bytes)
        let magic = try buffer.readFixedBytes(field: "usage_proof.magic", count: Self.magic.count)
        guard magic == Self.magic else {
            throw .invalidValue(field: "usage_proof.magic", reason: "not a usage-right proof")
        }
        let version: UInt8 = try buffer.readInteger(field: "usage_proof.version")
        guard version == Self.version else {
            throw .invalidValue(field: "usage_proof.version", reason: "version \(version); this reads \(Self.version)")
        }
        openTransaction = try buffer.readVariableBytes(
            field: "usage_proof.open_transaction", maximum: WireLimits.ledgerTransactionBytesMax)
        header = try BlockHeader(
            decoding: try buffer.readFixedBytes(field: "usage_proof.header", count: BlockHeader.encodedByteCount))
        index = try buffer.readInteger(field: "usage_proof.index")
        path = try buffer.readList(field: "usage_proof.path", maximum: 32) { (b) throws(WireError) in
            try b.readDigest(field: "usage_proof.path")
        }
        state = try CoSignedState(decoding: &buffer)
        centreHz = try buffer.readInteger(field: "usage_proof.centre_hz")
        widthHz = try buffer.readInteger(field: "usage_proof.width_hz")
        guard buffer.readableBytes == 0 else {
            throw .trailingBytes(message: "usage proof", count: buffer.readableBytes)
        }
    }

    /// What the proof shows.
    public struct Finding: Equatable, Sendable {
        public var terms: LeaseTerms
        public var paidThroughSeconds: UInt64
        /// Each leased slice's band, low ..< high, in hertz.
        public var bands: [(lowHz: UInt64, highHz: UInt64)]

        public static func == (a: Finding, b: Finding) -> Bool {
            a.terms == b.terms && a.paidThroughSeconds == b.paidThroughSeconds
                && a.bands.map { [$0.lowHz, $0.highHz] } == b.bands.map { [$0.lowHz, $0.highHz] }
        }
    }

    /// Checks everything but the time: the open transaction (decoded, signed by the lessee),
    /// its inclusion in a block the arbiter signed, and the co-signed state of that channel.
    public func verify(arbiter: SigningPublicKey) -> Result<Finding, Rejection> {
        let transaction: Transaction
        do { transaction = try Transaction(decoding: openTransaction) } catch {
            return .failure(Rejection(.malformedTransaction, "the open transaction does not decode: \(error)"))
        }
        guard case .openChannel(let terms, _, _) = transaction.operation else {
            return .failure(
                Rejection(.invalidOperation, "the transaction is \(transaction.operation.name), not an open"))
        }
        guard (try? transaction.verified(chainID: terms.chainID)) != nil, transaction.signer == terms.lessee else {
            return .failure(Rejection(.invalidSignature, "the open is not signed by the lease's lessee"))
        }
        guard header.hasValidSignature(arbiter: arbiter, chainID: terms.chainID) else {
            return .failure(
                Rejection(.invalidSignature, "the block header is not signed by this arbiter for this chain"))
        }
        guard
            MerkleTree.verify(
                leaf: Blake2b.hash256(openTransaction), index: Int(index), count: Int(header.transactionCount),
                path: path,
                root: header.transactionsRoot)
        else { return .failure(Rejection(.invalidOperation, "the open is not in the block the proof names")) }
        guard state.isValid(for: terms) else {
            return .failure(Rejection(.badChannelSignature, "the state is not co-signed by both parties of this lease"))
        }
        guard state.state.paidThroughSeconds == terms.paidThroughSeconds(paid: state.state.paid) else {
            return .failure(Rejection(.paidThroughMismatch, "the state's paid-through time is not what it paid"))
        }
        let spectrum = SpectrumLicence(
            centreHz: centreHz, widthHz: widthHz, country: 1, region: "", validFrom: 0, validUntil: 1)
        var bands: [(UInt64, UInt64)] = []
        if spectrum.invalidReason == nil {
            for slice in Int(terms.firstSlice)..<Int(terms.firstSlice) + Int(terms.sliceCount) {
                bands.append(spectrum.slice(slice))
            }
        }
        return .success(Finding(terms: terms, paidThroughSeconds: state.state.paidThroughSeconds, bands: bands))
    }

    /// Whether the lease covers `time` (Unix seconds): verified, and paid through a later time.
    public func covers(_ time: UInt64, arbiter: SigningPublicKey) -> Result<Finding, Rejection> {
        verify(arbiter: arbiter).flatMap { finding in
            if time < finding.terms.startSeconds {
                return .failure(Rejection(.outsideLicenceValidity, "the lease starts at \(finding.terms.startSeconds)"))
            }
            if time >= finding.paidThroughSeconds {
                return .failure(
                    Rejection(.paidThroughMismatch, "paid through \(finding.paidThroughSeconds), not \(time)"))
            }
            return .success(finding)
        }
    }
}
