import NIOCore
import RWACrypto
import RWAWire

/// A security token's compliance rules (ERC-3643's claim topics plus the country, maximum-balance
/// and maximum-holders modules). Zero means "no limit" for the two caps.
public struct ComplianceRules: Equatable, Sendable {
    /// Claim topics a receiver's identity must hold; strictly increasing.
    public var requiredClaims: [UInt16]
    /// If not empty, only identities of these countries may receive the token.
    public var allowedCountries: [CountryCode]
    public var deniedCountries: [CountryCode]
    /// The most one identity (all of its wallets together) may hold, in base units.
    public var maxBalancePerIdentity: UInt128
    /// The most identities that may hold a non-zero balance at once.
    public var maxHolders: UInt32

    public init(
        requiredClaims: [UInt16] = [ClaimTopic.kyc], allowedCountries: [CountryCode] = [],
        deniedCountries: [CountryCode] = [], maxBalancePerIdentity: UInt128 = 0, maxHolders: UInt32 = 0
    ) {
        self.requiredClaims = requiredClaims.sorted()
        self.allowedCountries = allowedCountries.sorted()
        self.deniedCountries = deniedCountries.sorted()
        self.maxBalancePerIdentity = maxBalancePerIdentity
        self.maxHolders = maxHolders
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        requiredClaims = try buffer.readSortedUInt16Set(
            field: "compliance.required_claims", maximum: LedgerLimits.requiredClaimsMax)
        allowedCountries = try buffer.readSortedUInt16Set(
            field: "compliance.allowed_countries", maximum: LedgerLimits.countriesMax)
        deniedCountries = try buffer.readSortedUInt16Set(
            field: "compliance.denied_countries", maximum: LedgerLimits.countriesMax)
        maxBalancePerIdentity = try buffer.readUInt128(field: "compliance.max_balance_per_identity")
        maxHolders = try buffer.readInteger(field: "compliance.max_holders")
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeSortedUInt16Set(requiredClaims, maximum: LedgerLimits.requiredClaimsMax)
        buffer.writeSortedUInt16Set(allowedCountries, maximum: LedgerLimits.countriesMax)
        buffer.writeSortedUInt16Set(deniedCountries, maximum: LedgerLimits.countriesMax)
        buffer.writeUInt128(maxBalancePerIdentity)
        buffer.writeInteger(maxHolders, endianness: .big)
    }
}

/// What kind of asset a token is. The stablecoin has no compliance rules (anyone may hold it);
/// an ownership token is an ERC-3643 security token.
public enum TokenKind: UInt8, Sendable {
    case stablecoin = 1
    case licenceOwnership = 2
    /// A pool's liquidity share: a claim on its reserves, minted and burned only by the pool.
    case poolShare = 3
}

public struct Token: Equatable, Sendable {
    public var id: TokenID
    public var kind: TokenKind
    public var symbol: String
    public var decimals: UInt8
    /// Accounts allowed the agent operations: mint, burn, freeze, forced transfer, recovery, pause.
    public var agents: [AccountID]
    public var paused: Bool
    public var totalSupply: UInt128
    /// Mints may not take the supply above this (an ownership token's is its 100 slices).
    public var maxSupply: UInt128
    /// nil for the stablecoin.
    public var compliance: ComplianceRules?
    /// The resource an ownership token stands for.
    public var resource: ResourceID?

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        id = try buffer.readInteger(field: "token.id")
        let rawKind: UInt8 = try buffer.readInteger(field: "token.kind")
        guard let kind = TokenKind(rawValue: rawKind) else {
            throw .invalidValue(field: "token.kind", reason: "unknown kind \(rawKind)")
        }
        self.kind = kind
        symbol = try buffer.readText(field: "token.symbol", maximum: LedgerLimits.symbolBytesMax)
        decimals = try buffer.readInteger(field: "token.decimals")
        agents = try buffer.readList(field: "token.agents", maximum: LedgerLimits.agentsMax) {
            (b) throws(WireError) in try b.readPublicKey(field: "token.agent")
        }
        paused = try buffer.readBool(field: "token.paused")
        totalSupply = try buffer.readUInt128(field: "token.total_supply")
        maxSupply = try buffer.readUInt128(field: "token.max_supply")
        compliance = try buffer.readOptional(field: "token.compliance") { (b) throws(WireError) in
            try ComplianceRules(decoding: &b)
        }
        resource = try buffer.readOptional(field: "token.resource") { (b) throws(WireError) in
            try b.readInteger(field: "token.resource")
        }
    }

    init(
        id: TokenID, kind: TokenKind, symbol: String, decimals: UInt8, agents: [AccountID], maxSupply: UInt128,
        compliance: ComplianceRules?, resource: ResourceID?
    ) {
        self.id = id
        self.kind = kind
        self.symbol = symbol
        self.decimals = decimals
        self.agents = agents
        self.paused = false
        self.totalSupply = 0
        self.maxSupply = maxSupply
        self.compliance = compliance
        self.resource = resource
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(id, endianness: .big)
        buffer.writeInteger(kind.rawValue)
        buffer.writeText(symbol, maximum: LedgerLimits.symbolBytesMax)
        buffer.writeInteger(decimals)
        buffer.writeList(agents, maximum: LedgerLimits.agentsMax) { $0.writePublicKey($1) }
        buffer.writeBool(paused)
        buffer.writeUInt128(totalSupply)
        buffer.writeUInt128(maxSupply)
        buffer.writeOptional(compliance) { $1.encode(into: &$0) }
        buffer.writeOptional(resource) { $0.writeInteger($1, endianness: .big) }
    }
}

/// A claim on an identity, with the trusted issuer that made it (who alone may revoke it).
public struct Claim: Equatable, Sendable {
    public var topic: UInt16
    public var issuer: AccountID
}

/// An identity (ERC-3643's ONCHAINID): a country and claims, shared by all of its wallets.
public struct Identity: Equatable, Sendable {
    public var id: IdentityID
    public var country: CountryCode
    /// Sorted by topic, at most one per topic.
    public var claims: [Claim]

    public func hasClaims(_ topics: [UInt16]) -> Bool {
        topics.allSatisfy { topic in claims.contains { $0.topic == topic } }
    }

    init(id: IdentityID, country: CountryCode) {
        self.id = id
        self.country = country
        self.claims = []
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        id = try buffer.readInteger(field: "identity.id")
        country = try buffer.readInteger(field: "identity.country")
        claims = try buffer.readList(field: "identity.claims", maximum: LedgerLimits.claimsPerIdentityMax) {
            (b) throws(WireError) in
            Claim(topic: try b.readInteger(field: "claim.topic"), issuer: try b.readPublicKey(field: "claim.issuer"))
        }
        for index in claims.indices.dropFirst() where claims[index - 1].topic >= claims[index].topic {
            throw .nonCanonical(field: "identity.claims", reason: "topics must be strictly increasing")
        }
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(id, endianness: .big)
        buffer.writeInteger(country, endianness: .big)
        buffer.writeList(claims, maximum: LedgerLimits.claimsPerIdentityMax) {
            $0.writeInteger($1.topic, endianness: .big)
            $0.writePublicKey($1.issuer)
        }
    }
}

/// An account's sequence number and the identity its wallet belongs to, if any.
public struct Account: Equatable, Sendable {
    /// The sequence number its next transaction must carry.
    public var nextSequence: UInt64
    public var identity: IdentityID?

    init(nextSequence: UInt64 = 0, identity: IdentityID? = nil) {
        self.nextSequence = nextSequence
        self.identity = identity
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        nextSequence = try buffer.readInteger(field: "account.next_sequence")
        identity = try buffer.readOptional(field: "account.identity") { (b) throws(WireError) in
            try b.readInteger(field: "account.identity")
        }
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(nextSequence, endianness: .big)
        buffer.writeOptional(identity) { $0.writeInteger($1, endianness: .big) }
    }
}

/// One account's position in one token. `frozenAmount` is ERC-3643's partial freeze: the free
/// balance is `balance - frozenAmount`; `frozen` stops the wallet sending or receiving at all.
public struct Holding: Equatable, Sendable {
    public var balance: UInt128 = 0
    public var frozenAmount: UInt128 = 0
    public var frozen = false

    public var freeBalance: UInt128 { balance - frozenAmount }
    var isEmpty: Bool { balance == 0 && frozenAmount == 0 && !frozen }

    public init(balance: UInt128 = 0, frozenAmount: UInt128 = 0, frozen: Bool = false) {
        self.balance = balance
        self.frozenAmount = frozenAmount
        self.frozen = frozen
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        balance = try buffer.readUInt128(field: "holding.balance")
        frozenAmount = try buffer.readUInt128(field: "holding.frozen_amount")
        frozen = try buffer.readBool(field: "holding.frozen")
        guard frozenAmount <= balance else {
            throw .invalidValue(field: "holding.frozen_amount", reason: "above the balance")
        }
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeUInt128(balance)
        buffer.writeUInt128(frozenAmount)
        buffer.writeBool(frozen)
    }
}
