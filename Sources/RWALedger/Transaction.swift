import NIOCore
import RWACrypto
import RWAWire

/// What a transaction does. The tag byte of each case is its wire number (proto/README.md,
/// "Operations"); who may sign each is checked by the ledger, not here.
public enum LedgerOperation: Equatable, Sendable {
    /// Holder: move `amount` of `token` from the signer.
    case transfer(token: TokenID, to: AccountID, amount: UInt128)
    /// Token agent (the stablecoin's issuer, a licence token's registrar).
    case mint(token: TokenID, to: AccountID, amount: UInt128)
    case burn(token: TokenID, from: AccountID, amount: UInt128)
    case setFrozen(token: TokenID, account: AccountID, frozen: Bool)
    case freezePartial(token: TokenID, account: AccountID, amount: UInt128)
    case unfreezePartial(token: TokenID, account: AccountID, amount: UInt128)
    case forcedTransfer(token: TokenID, from: AccountID, to: AccountID, amount: UInt128)
    /// Moves a lost wallet's whole position to a replacement wallet of the same identity.
    case recoverWallet(token: TokenID, lost: AccountID, replacement: AccountID)
    case setPaused(token: TokenID, paused: Bool)
    case setCompliance(token: TokenID, rules: ComplianceRules)
    /// Trusted claim issuer: create an identity for a wallet.
    case registerIdentity(account: AccountID, country: CountryCode)
    /// Trusted claim issuer: add another wallet to an existing identity.
    case linkWallet(account: AccountID, identity: IdentityID)
    case addClaim(identity: IdentityID, topic: UInt16)
    case revokeClaim(identity: IdentityID, topic: UInt16)
    /// Trusted claim issuer (the regulator): record a resource and, for a licence, issue its token.
    case registerResource(ResourceRegistration)
    /// An agent of a licence token who is a trusted claim issuer: open its pool against the
    /// stablecoin, with a verified identity of `country` for the pool's account.
    case createPool(token: TokenID, country: CountryCode)
    /// Anyone: deposit at the pool's price, at most the desired amounts, at least the minimums.
    case addLiquidity(
        token: TokenID, licenceDesired: UInt128, stablecoinDesired: UInt128, licenceMinimum: UInt128,
        stablecoinMinimum: UInt128, deadlineMilliseconds: UInt64)
    case removeLiquidity(
        token: TokenID, shares: UInt128, licenceMinimum: UInt128, stablecoinMinimum: UInt128,
        deadlineMilliseconds: UInt64)
    /// Pay exactly `amountIn`, receive at least `minimumOut`, in a block no later than `deadlineMilliseconds`.
    case swapExactIn(
        token: TokenID, side: TradeSide, amountIn: UInt128, minimumOut: UInt128, deadlineMilliseconds: UInt64)
    /// Receive exactly `amountOut`, pay at most `maximumIn`.
    case swapExactOut(
        token: TokenID, side: TradeSide, amountOut: UInt128, maximumIn: UInt128, deadlineMilliseconds: UInt64)

    /// Lessee: opens a lease channel on terms both parties signed (proto/README.md, "Channel
    /// operations").
    case openChannel(terms: LeaseTerms, lessorSignature: Signature, lesseeSignature: Signature)
    /// A party: closes the channel with the final state both signed, and settles at once.
    case closeChannel(CoSignedState)
    /// A party: registers its latest co-signed state (nil: the opening state) and starts the
    /// challenge period.
    case registerState(channel: Digest32, state: CoSignedState?)
    /// A party: replaces the registered state with a newer one, within the challenge period.
    case challenge(CoSignedState)
    /// Anyone: settles a disputed channel after its challenge period.
    case settleChannel(Digest32)
    /// A holder: collects the rent its holding of a licence token has earned.
    case claimRent(token: TokenID)

    /// The pool a pool operation acts on.
    public var poolToken: TokenID? {
        switch self {
        case .createPool(let token, _), .addLiquidity(let token, _, _, _, _, _),
            .removeLiquidity(let token, _, _, _, _),
            .swapExactIn(let token, _, _, _, _), .swapExactOut(let token, _, _, _, _):
            return token
        case .transfer, .mint, .burn, .setFrozen, .freezePartial, .unfreezePartial, .forcedTransfer, .recoverWallet,
            .setPaused, .setCompliance, .registerIdentity, .linkWallet, .addClaim, .revokeClaim, .registerResource,
            .openChannel, .closeChannel, .registerState, .challenge, .settleChannel, .claimRent:
            return nil
        }
    }

    /// The channel a channel operation acts on.
    public var channelID: Digest32? {
        switch self {
        case .openChannel(let terms, _, _): return terms.channelID
        case .closeChannel(let state), .challenge(let state): return state.state.channelID
        case .registerState(let channel, _), .settleChannel(let channel): return channel
        case .transfer, .mint, .burn, .setFrozen, .freezePartial, .unfreezePartial, .forcedTransfer, .recoverWallet,
            .setPaused, .setCompliance, .registerIdentity, .linkWallet, .addClaim, .revokeClaim, .registerResource,
            .createPool, .addLiquidity, .removeLiquidity, .swapExactIn, .swapExactOut, .claimRent:
            return nil
        }
    }

    public var name: String {
        switch self {
        case .transfer: return "transfer"
        case .mint: return "mint"
        case .burn: return "burn"
        case .setFrozen: return "set_frozen"
        case .freezePartial: return "freeze_partial"
        case .unfreezePartial: return "unfreeze_partial"
        case .forcedTransfer: return "forced_transfer"
        case .recoverWallet: return "recover_wallet"
        case .setPaused: return "set_paused"
        case .setCompliance: return "set_compliance"
        case .registerIdentity: return "register_identity"
        case .linkWallet: return "link_wallet"
        case .addClaim: return "add_claim"
        case .revokeClaim: return "revoke_claim"
        case .registerResource: return "register_resource"
        case .createPool: return "create_pool"
        case .addLiquidity: return "add_liquidity"
        case .removeLiquidity: return "remove_liquidity"
        case .swapExactIn: return "swap_exact_in"
        case .swapExactOut: return "swap_exact_out"
        case .openChannel: return "open_channel"
        case .closeChannel: return "close_channel"
        case .registerState: return "register_state"
        case .challenge: return "challenge"
        case .settleChannel: return "settle_channel"
        case .claimRent: return "claim_rent"
        }
    }

    /// Refuses fields above their declared maximum (`LedgerLimits`), which could not be encoded:
    /// what a user typed into a command becomes a clear error, not a crash.
    public func checkLimits() throws(Rejection) {
        func text(_ value: String, _ field: String, _ maximum: Int) throws(Rejection) {
            guard value.utf8.count <= maximum else {
                throw Rejection(.malformedTransaction, "\(field) is \(value.utf8.count) bytes, at most \(maximum)")
            }
        }
        func rules(_ rules: ComplianceRules) throws(Rejection) {
            guard rules.requiredClaims.count <= LedgerLimits.requiredClaimsMax,
                rules.allowedCountries.count <= LedgerLimits.countriesMax,
                rules.deniedCountries.count <= LedgerLimits.countriesMax,
                Set(rules.requiredClaims).count == rules.requiredClaims.count,
                Set(rules.allowedCountries).count == rules.allowedCountries.count,
                Set(rules.deniedCountries).count == rules.deniedCountries.count
            else {
                throw Rejection(
                    .malformedTransaction,
                    "compliance rules allow at most \(LedgerLimits.requiredClaimsMax) distinct claims and "
                        + "\(LedgerLimits.countriesMax) distinct countries per list")
            }
        }
        switch self {
        case .setCompliance(_, let compliance): try rules(compliance)
        case .registerResource(let registration):
            try text(registration.name, "resource name", LedgerLimits.resourceNameBytesMax)
            try text(registration.metadata, "resource metadata", LedgerLimits.resourceMetadataBytesMax)
            for score in [registration.intrinsicValue, registration.strategicScarcity, registration.legalClarity] {
                guard let score else { continue }
                try text(score.reason, "a criterion's reason", LedgerLimits.reasonBytesMax)
                guard score.score <= CriterionScore.scoreMax else {
                    throw Rejection(.malformedTransaction, "a criterion's score is 0...\(CriterionScore.scoreMax)")
                }
            }
            if let spectrum = registration.spectrum { try text(spectrum.region, "region", LedgerLimits.regionBytesMax) }
            if let compliance = registration.compliance { try rules(compliance) }
        case .transfer, .mint, .burn, .setFrozen, .freezePartial, .unfreezePartial, .forcedTransfer, .recoverWallet,
            .setPaused, .registerIdentity, .linkWallet, .addClaim, .revokeClaim, .createPool, .addLiquidity,
            .removeLiquidity, .swapExactIn, .swapExactOut, .openChannel, .closeChannel, .registerState, .challenge,
            .settleChannel, .claimRent:
            break
        }
    }

    /// The operation's wire number.
    public var tag: UInt8 {
        switch self {
        case .transfer: return 0x01
        case .mint: return 0x02
        case .burn: return 0x03
        case .setFrozen: return 0x04
        case .freezePartial: return 0x05
        case .unfreezePartial: return 0x06
        case .forcedTransfer: return 0x07
        case .recoverWallet: return 0x08
        case .setPaused: return 0x09
        case .setCompliance: return 0x0A
        case .registerIdentity: return 0x10
        case .linkWallet: return 0x11
        case .addClaim: return 0x12
        case .revokeClaim: return 0x13
        case .registerResource: return 0x20
        case .createPool: return 0x30
        case .addLiquidity: return 0x31
        case .removeLiquidity: return 0x32
        case .swapExactIn: return 0x33
        case .swapExactOut: return 0x34
        case .openChannel: return 0x40
        case .closeChannel: return 0x41
        case .registerState: return 0x42
        case .challenge: return 0x43
        case .settleChannel: return 0x44
        case .claimRent: return 0x45
        }
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        let tag: UInt8 = try buffer.readInteger(field: "operation.tag")
        func token() throws(WireError) -> TokenID { try buffer.readInteger(field: "operation.token") }
        func account(_ name: String) throws(WireError) -> AccountID {
            try buffer.readPublicKey(field: "operation.\(name)")
        }
        func amount() throws(WireError) -> UInt128 { try buffer.readUInt128(field: "operation.amount") }
        func deadline() throws(WireError) -> UInt64 { try buffer.readInteger(field: "operation.deadline") }
        switch tag {
        case 0x01: self = .transfer(token: try token(), to: try account("to"), amount: try amount())
        case 0x02: self = .mint(token: try token(), to: try account("to"), amount: try amount())
        case 0x03: self = .burn(token: try token(), from: try account("from"), amount: try amount())
        case 0x04:
            self = .setFrozen(
                token: try token(), account: try account("account"),
                frozen: try buffer.readBool(field: "operation.frozen"))
        case 0x05: self = .freezePartial(token: try token(), account: try account("account"), amount: try amount())
        case 0x06: self = .unfreezePartial(token: try token(), account: try account("account"), amount: try amount())
        case 0x07:
            self = .forcedTransfer(
                token: try token(), from: try account("from"), to: try account("to"), amount: try amount())
        case 0x08:
            self = .recoverWallet(
                token: try token(), lost: try account("lost"), replacement: try account("replacement"))
        case 0x09: self = .setPaused(token: try token(), paused: try buffer.readBool(field: "operation.paused"))
        case 0x0A: self = .setCompliance(token: try token(), rules: try ComplianceRules(decoding: &buffer))
        case 0x10:
            self = .registerIdentity(
                account: try account("account"), country: try buffer.readInteger(field: "operation.country"))
        case 0x11:
            self = .linkWallet(
                account: try account("account"), identity: try buffer.readInteger(field: "operation.identity"))
        case 0x12:
            self = .addClaim(
                identity: try buffer.readInteger(field: "operation.identity"),
                topic: try buffer.readInteger(field: "operation.topic"))
        case 0x13:
            self = .revokeClaim(
                identity: try buffer.readInteger(field: "operation.identity"),
                topic: try buffer.readInteger(field: "operation.topic"))
        case 0x20: self = .registerResource(try ResourceRegistration(decoding: &buffer))
        case 0x30:
            self = .createPool(token: try token(), country: try buffer.readInteger(field: "operation.country"))
        case 0x31:
            self = .addLiquidity(
                token: try token(), licenceDesired: try amount(), stablecoinDesired: try amount(),
                licenceMinimum: try amount(), stablecoinMinimum: try amount(), deadlineMilliseconds: try deadline())
        case 0x32:
            self = .removeLiquidity(
                token: try token(), shares: try amount(), licenceMinimum: try amount(),
                stablecoinMinimum: try amount(), deadlineMilliseconds: try deadline())
        case 0x33:
            self = .swapExactIn(
                token: try token(), side: try TradeSide(decoding: &buffer), amountIn: try amount(),
                minimumOut: try amount(), deadlineMilliseconds: try deadline())
        case 0x34:
            self = .swapExactOut(
                token: try token(), side: try TradeSide(decoding: &buffer), amountOut: try amount(),
                maximumIn: try amount(), deadlineMilliseconds: try deadline())
        case 0x40:
            self = .openChannel(
                terms: try LeaseTerms(decoding: &buffer),
                lessorSignature: try buffer.readSignature(field: "operation.lessor_signature"),
                lesseeSignature: try buffer.readSignature(field: "operation.lessee_signature"))
        case 0x41: self = .closeChannel(try CoSignedState(decoding: &buffer))
        case 0x42:
            self = .registerState(
                channel: try buffer.readDigest(field: "operation.channel"),
                state: try buffer.readOptional(field: "operation.state") { (b) throws(WireError) in
                    try CoSignedState(decoding: &b)
                })
        case 0x43: self = .challenge(try CoSignedState(decoding: &buffer))
        case 0x44: self = .settleChannel(try buffer.readDigest(field: "operation.channel"))
        case 0x45: self = .claimRent(token: try token())
        default: throw .invalidValue(field: "operation.tag", reason: "unknown operation 0x\(String(tag, radix: 16))")
        }
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(tag)
        switch self {
        case .transfer(let token, let to, let amount), .mint(let token, let to, let amount):
            buffer.writeInteger(token, endianness: .big)
            buffer.writePublicKey(to)
            buffer.writeUInt128(amount)
        case .burn(let token, let account, let amount), .freezePartial(let token, let account, let amount),
            .unfreezePartial(let token, let account, let amount):
            buffer.writeInteger(token, endianness: .big)
            buffer.writePublicKey(account)
            buffer.writeUInt128(amount)
        case .setFrozen(let token, let account, let frozen):
            buffer.writeInteger(token, endianness: .big)
            buffer.writePublicKey(account)
            buffer.writeBool(frozen)
        case .forcedTransfer(let token, let from, let to, let amount):
            buffer.writeInteger(token, endianness: .big)
            buffer.writePublicKey(from)
            buffer.writePublicKey(to)
            buffer.writeUInt128(amount)
        case .recoverWallet(let token, let lost, let replacement):
            buffer.writeInteger(token, endianness: .big)
            buffer.writePublicKey(lost)
            buffer.writePublicKey(replacement)
        case .setPaused(let token, let paused):
            buffer.writeInteger(token, endianness: .big)
            buffer.writeBool(paused)
        case .setCompliance(let token, let rules):
            buffer.writeInteger(token, endianness: .big)
            rules.encode(into: &buffer)
        case .registerIdentity(let account, let country):
            buffer.writePublicKey(account)
            buffer.writeInteger(country, endianness: .big)
        case .linkWallet(let account, let identity):
            buffer.writePublicKey(account)
            buffer.writeInteger(identity, endianness: .big)
        case .addClaim(let identity, let topic), .revokeClaim(let identity, let topic):
            buffer.writeInteger(identity, endianness: .big)
            buffer.writeInteger(topic, endianness: .big)
        case .registerResource(let registration):
            registration.encode(into: &buffer)
        case .createPool(let token, let country):
            buffer.writeInteger(token, endianness: .big)
            buffer.writeInteger(country, endianness: .big)
        case .addLiquidity(
            let token, let licence, let stablecoin, let licenceMinimum, let stablecoinMinimum, let deadline):
            buffer.writeInteger(token, endianness: .big)
            for amount in [licence, stablecoin, licenceMinimum, stablecoinMinimum] { buffer.writeUInt128(amount) }
            buffer.writeInteger(deadline, endianness: .big)
        case .removeLiquidity(let token, let shares, let licenceMinimum, let stablecoinMinimum, let deadline):
            buffer.writeInteger(token, endianness: .big)
            for amount in [shares, licenceMinimum, stablecoinMinimum] { buffer.writeUInt128(amount) }
            buffer.writeInteger(deadline, endianness: .big)
        case .swapExactIn(let token, let side, let exact, let limit, let deadline),
            .swapExactOut(let token, let side, let exact, let limit, let deadline):
            buffer.writeInteger(token, endianness: .big)
            buffer.writeInteger(side.rawValue)
            buffer.writeUInt128(exact)
            buffer.writeUInt128(limit)
            buffer.writeInteger(deadline, endianness: .big)
        case .openChannel(let terms, let lessorSignature, let lesseeSignature):
            terms.encode(into: &buffer)
            buffer.writeSignature(lessorSignature)
            buffer.writeSignature(lesseeSignature)
        case .closeChannel(let state), .challenge(let state):
            state.encode(into: &buffer)
        case .registerState(let channel, let state):
            buffer.writeDigest(channel)
            buffer.writeOptional(state) { $1.encode(into: &$0) }
        case .settleChannel(let channel):
            buffer.writeDigest(channel)
        case .claimRent(let token):
            buffer.writeInteger(token, endianness: .big)
        }
    }
}

/// A transaction: `chain_id | signer | sequence | operation | signature` (proto/README.md,
/// "Transactions"). The chain id is carried, not only signed over, so that a transaction meant
/// for another chain is refused as such rather than as a bad signature.
public struct Transaction: Equatable, Sendable {
    public static let signatureTag = "rwanet/transaction"
    public var chainID: Digest32
    public var signer: AccountID
    public var sequence: UInt64
    public var operation: LedgerOperation
    public var signature: Signature

    /// Builds and signs. Fails only if the encoding would exceed `LedgerLimits.transactionBytesMax`.
    public init(signedBy keyPair: SigningKeyPair, chainID: Digest32, sequence: UInt64, operation: LedgerOperation)
        throws(Rejection)
    {
        try operation.checkLimits()
        self.chainID = chainID
        self.signer = keyPair.publicKey
        self.sequence = sequence
        self.operation = operation
        let unsigned = Self.unsignedBytes(chainID: chainID, signer: signer, sequence: sequence, operation: operation)
        guard unsigned.count + Signature.byteCount <= LedgerLimits.transactionBytesMax else {
            throw Rejection(
                .malformedTransaction,
                "transaction is \(unsigned.count + Signature.byteCount) bytes, above \(LedgerLimits.transactionBytesMax)"
            )
        }
        self.signature = keyPair.sign(unsigned, domain: SignatureDomain(tag: Self.signatureTag, chainID: chainID))
    }

    public init(
        chainID: Digest32, signer: AccountID, sequence: UInt64, operation: LedgerOperation, signature: Signature
    ) {
        self.chainID = chainID
        self.signer = signer
        self.sequence = sequence
        self.operation = operation
        self.signature = signature
    }

    /// Decodes one whole transaction; anything but its one canonical encoding is refused.
    public init(decoding bytes: [UInt8]) throws(WireError) {
        guard bytes.count <= LedgerLimits.transactionBytesMax else {
            throw .lengthAboveMaximum(
                field: "transaction", length: bytes.count, maximum: LedgerLimits.transactionBytesMax)
        }
        var buffer = ByteBuffer(bytes: bytes)
        chainID = try buffer.readDigest(field: "transaction.chain_id")
        signer = try buffer.readPublicKey(field: "transaction.signer")
        sequence = try buffer.readInteger(field: "transaction.sequence")
        operation = try LedgerOperation(decoding: &buffer)
        signature = try buffer.readSignature(field: "transaction.signature")
        guard buffer.readableBytes == 0 else {
            throw .trailingBytes(message: "transaction", count: buffer.readableBytes)
        }
        guard encoded == bytes else { throw .nonCanonical(field: "transaction", reason: "re-encodes differently") }
    }

    static func unsignedBytes(chainID: Digest32, signer: AccountID, sequence: UInt64, operation: LedgerOperation)
        -> [UInt8]
    {
        var buffer = ByteBuffer()
        buffer.writeDigest(chainID)
        buffer.writePublicKey(signer)
        buffer.writeInteger(sequence, endianness: .big)
        operation.encode(into: &buffer)
        return Array(buffer.readableBytesView)
    }

    public var encoded: [UInt8] {
        Self.unsignedBytes(chainID: chainID, signer: signer, sequence: sequence, operation: operation)
            + signature.bytes
    }

    /// BLAKE2b-256 of the whole encoding: the transaction's id in receipts, blocks and queries.
    public var hash: Digest32 { Blake2b.hash256(encoded) }

    /// Checks what can be checked without the ledger's state: the chain and the signature. This is
    /// the expensive step, which the arbiter runs in parallel before ordering.
    public func verified(chainID expected: Digest32) throws(Rejection) -> VerifiedTransaction {
        try verified(chainID: expected, bytes: encoded)
    }

    /// Decodes and verifies in one step, reusing `bytes` rather than encoding again: the
    /// arbiter's path for every submission. Bytes that do not decode are `malformed_transaction`.
    public static func verify(bytes: [UInt8], chainID: Digest32) throws(Rejection) -> VerifiedTransaction {
        let transaction: Transaction
        do {
            transaction = try Transaction(decoding: bytes)
        } catch {
            throw Rejection(.malformedTransaction, "\(error)")
        }
        return try transaction.verified(chainID: chainID, bytes: bytes)
    }

    /// `bytes` must be this transaction's encoding (checked by decoding or made by `encoded`).
    private func verified(chainID expected: Digest32, bytes: [UInt8]) throws(Rejection) -> VerifiedTransaction {
        guard chainID == expected else {
            throw Rejection(.wrongChainID, "transaction is for chain \(chainID), this is \(expected)")
        }
        let valid = signer.isValidSignature(
            signature, for: Array(bytes.dropLast(Signature.byteCount)),
            domain: SignatureDomain(tag: Self.signatureTag, chainID: chainID))
        guard valid else { throw Rejection(.invalidSignature, "signature does not verify for signer \(signer)") }
        return VerifiedTransaction(transaction: self, bytes: bytes, hash: Blake2b.hash256(bytes))
    }
}

/// A transaction whose chain id and signature have been checked; only `Transaction.verified`
/// makes one, so the ledger can apply it without checking again.
public struct VerifiedTransaction: Sendable {
    public let transaction: Transaction
    public let bytes: [UInt8]
    public let hash: Digest32
}
