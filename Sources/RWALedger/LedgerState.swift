import NIOCore
import RWACrypto
import RWAWire

/// Which record of the state a row holds (proto/README.md, "State records"). The key bytes are
/// what a `get_state` query names and what the store's primary key is.
public enum StateKey: Hashable, Sendable, CustomStringConvertible {
    case counters
    case account(AccountID)
    case identity(IdentityID)
    case token(TokenID)
    case holding(TokenID, AccountID)
    case resource(ResourceID)
    /// The pool of a licence token.
    case pool(TokenID)
    /// A lease channel.
    case channel(Digest32)
    /// One slice of a licence for one usage-right period (`hour` counts periods since the Unix
    /// epoch), locked by the channel that leases it.
    case leasedSliceHour(TokenID, UInt8, UInt64)
    /// The rent a licence's ownership token has earned per unit.
    case rentIndex(TokenID)
    /// One holder's settled rent in one licence.
    case rentPosition(TokenID, AccountID)

    public var bytes: [UInt8] {
        var buffer = ByteBuffer()
        switch self {
        case .counters: buffer.writeInteger(UInt8(0x00))
        case .account(let account):
            buffer.writeInteger(UInt8(0x01))
            buffer.writePublicKey(account)
        case .identity(let id):
            buffer.writeInteger(UInt8(0x02))
            buffer.writeInteger(id, endianness: .big)
        case .token(let id):
            buffer.writeInteger(UInt8(0x03))
            buffer.writeInteger(id, endianness: .big)
        case .holding(let token, let account):
            buffer.writeInteger(UInt8(0x04))
            buffer.writeInteger(token, endianness: .big)
            buffer.writePublicKey(account)
        case .resource(let id):
            buffer.writeInteger(UInt8(0x05))
            buffer.writeInteger(id, endianness: .big)
        case .pool(let token):
            buffer.writeInteger(UInt8(0x06))
            buffer.writeInteger(token, endianness: .big)
        case .channel(let id):
            buffer.writeInteger(UInt8(0x07))
            buffer.writeDigest(id)
        case .leasedSliceHour(let licence, let slice, let hour):
            buffer.writeInteger(UInt8(0x08))
            buffer.writeInteger(licence, endianness: .big)
            buffer.writeInteger(slice)
            buffer.writeInteger(hour, endianness: .big)
        case .rentIndex(let token):
            buffer.writeInteger(UInt8(0x09))
            buffer.writeInteger(token, endianness: .big)
        case .rentPosition(let token, let account):
            buffer.writeInteger(UInt8(0x0A))
            buffer.writeInteger(token, endianness: .big)
            buffer.writePublicKey(account)
        }
        return Array(buffer.readableBytesView)
    }

    public init(bytes: [UInt8]) throws(WireError) {
        var buffer = ByteBuffer(bytes: bytes)
        let kind: UInt8 = try buffer.readInteger(field: "state_key.kind")
        switch kind {
        case 0x00: self = .counters
        case 0x01: self = .account(try buffer.readPublicKey(field: "state_key.account"))
        case 0x02: self = .identity(try buffer.readInteger(field: "state_key.identity"))
        case 0x03: self = .token(try buffer.readInteger(field: "state_key.token"))
        case 0x04:
            self = .holding(
                try buffer.readInteger(field: "state_key.token"), try buffer.readPublicKey(field: "state_key.account"))
        case 0x05: self = .resource(try buffer.readInteger(field: "state_key.resource"))
        case 0x06: self = .pool(try buffer.readInteger(field: "state_key.token"))
        case 0x07: self = .channel(try buffer.readDigest(field: "state_key.channel"))
        case 0x08:
            self = .leasedSliceHour(
                try buffer.readInteger(field: "state_key.licence"), try buffer.readInteger(field: "state_key.slice"),
                try buffer.readInteger(field: "state_key.hour"))
        case 0x09: self = .rentIndex(try buffer.readInteger(field: "state_key.token"))
        case 0x0A:
            self = .rentPosition(
                try buffer.readInteger(field: "state_key.token"), try buffer.readPublicKey(field: "state_key.account"))
        default: throw .invalidValue(field: "state_key.kind", reason: "unknown kind \(kind)")
        }
        guard buffer.readableBytes == 0 else { throw .trailingBytes(message: "state key", count: buffer.readableBytes) }
    }

    public var description: String {
        switch self {
        case .counters: return "counters"
        case .account(let account): return "account \(account)"
        case .identity(let id): return "identity \(id)"
        case .token(let id): return "token \(id)"
        case .holding(let token, let account): return "holding of token \(token) by \(account)"
        case .resource(let id): return "resource \(id)"
        case .pool(let token): return "pool of token \(token)"
        case .channel(let id): return "channel \(id)"
        case .leasedSliceHour(let licence, let slice, let hour):
            return "slice \(slice) of licence \(licence) in hour \(hour)"
        case .rentIndex(let token): return "rent index of token \(token)"
        case .rentPosition(let token, let account): return "rent of \(account) in token \(token)"
        }
    }
}

/// One row of state as stored and as answered to queries.
public struct StateRow: Equatable, Sendable {
    public var key: [UInt8]
    public var value: [UInt8]

    public init(key: [UInt8], value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

/// Everything the ledger knows after some block. Records are plain values; `dirty` collects the
/// keys a block changed so the store writes only those.
public struct LedgerState: Sendable {
    public internal(set) var accounts: [AccountID: Account] = [:]
    public internal(set) var identities: [IdentityID: Identity] = [:]
    public internal(set) var tokens: [TokenID: Token] = [:]
    public internal(set) var holdings: [StateKey: Holding] = [:]
    public internal(set) var resources: [ResourceID: Resource] = [:]
    public internal(set) var pools: [TokenID: PoolRecord] = [:]
    public internal(set) var channels: [Digest32: ChannelRecord] = [:]
    /// Each locked slice-hour (`.leasedSliceHour` keys) and the channel that leases it.
    public internal(set) var leasedSliceHours: [StateKey: Digest32] = [:]
    public internal(set) var rentIndexes: [TokenID: RentIndex] = [:]
    /// Keyed by `.rentPosition`; a holder without one is at index 0 with nothing accrued.
    public internal(set) var rentPositions: [StateKey: RentPosition] = [:]
    /// Derived, never stored: which token's pool each pool account holds.
    var poolAccounts: [AccountID: TokenID] = [:]
    public internal(set) var nextIdentity: IdentityID = 1
    public internal(set) var nextResource: ResourceID = 1
    /// Derived, never stored: each security token's balance per identity, for the holder and
    /// balance caps (an identity's wallets count as one holder).
    var identityBalances: [TokenID: [IdentityID: UInt128]] = [:]
    var dirty: Set<StateKey> = []

    public func holding(_ token: TokenID, _ account: AccountID) -> Holding {
        holdings[.holding(token, account)] ?? Holding()
    }

    public func holderCount(of token: TokenID) -> Int { identityBalances[token]?.count ?? 0 }

    public func identityBalance(_ token: TokenID, _ identity: IdentityID) -> UInt128 {
        identityBalances[token]?[identity] ?? 0
    }

    /// The encoded record under `key`, or nil when there is none.
    public func row(_ key: StateKey) -> [UInt8]? {
        var buffer = ByteBuffer()
        switch key {
        case .counters:
            buffer.writeInteger(nextIdentity, endianness: .big)
            buffer.writeInteger(nextResource, endianness: .big)
        case .account(let id):
            guard let account = accounts[id] else { return nil }
            account.encode(into: &buffer)
        case .identity(let id):
            guard let identity = identities[id] else { return nil }
            identity.encode(into: &buffer)
        case .token(let id):
            guard let token = tokens[id] else { return nil }
            token.encode(into: &buffer)
        case .holding:
            guard let holding = holdings[key] else { return nil }
            holding.encode(into: &buffer)
        case .resource(let id):
            guard let resource = resources[id] else { return nil }
            resource.encode(into: &buffer)
        case .pool(let token):
            guard let pool = pools[token] else { return nil }
            pool.encode(into: &buffer)
        case .channel(let id):
            guard let channel = channels[id] else { return nil }
            channel.encode(into: &buffer)
        case .leasedSliceHour:
            guard let channel = leasedSliceHours[key] else { return nil }
            buffer.writeDigest(channel)
        case .rentIndex(let token):
            guard let index = rentIndexes[token] else { return nil }
            index.encode(into: &buffer)
        case .rentPosition:
            guard let position = rentPositions[key] else { return nil }
            position.encode(into: &buffer)
        }
        return Array(buffer.readableBytesView)
    }

    /// BLAKE2b-256 over every row (each key and value with its length): two states are equal
    /// exactly when their digests are. For the simulation's and the fuzzers' comparisons.
    public var digest: Digest32 {
        var bytes: [UInt8] = []
        for row in allRows() {
            bytes += withUnsafeBytes(of: UInt32(row.key.count).bigEndian, Array.init) + row.key
            bytes += withUnsafeBytes(of: UInt32(row.value.count).bigEndian, Array.init) + row.value
        }
        return Blake2b.hash256(bytes)
    }

    /// Every row, sorted by key bytes: the whole state in its stored form.
    public func allRows() -> [StateRow] {
        var keys: [StateKey] = [.counters]
        keys += accounts.keys.map { .account($0) }
        keys += identities.keys.map { .identity($0) }
        keys += tokens.keys.map { .token($0) }
        keys += Array(holdings.keys)
        keys += resources.keys.map { .resource($0) }
        keys += pools.keys.map { .pool($0) }
        keys += channels.keys.map { .channel($0) }
        keys += Array(leasedSliceHours.keys)
        keys += rentIndexes.keys.map { .rentIndex($0) }
        keys += Array(rentPositions.keys)
        return keys.map { StateRow(key: $0.bytes, value: row($0)!) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
    }

    /// Rebuilds a state from stored rows; refuses rows that do not decode or disagree with their key.
    public init(rows: [StateRow]) throws(WireError) {
        for row in rows {
            let key = try StateKey(bytes: row.key)
            var buffer = ByteBuffer(bytes: row.value)
            switch key {
            case .counters:
                nextIdentity = try buffer.readInteger(field: "counters.next_identity")
                nextResource = try buffer.readInteger(field: "counters.next_resource")
            case .account(let id): accounts[id] = try Account(decoding: &buffer)
            case .identity(let id):
                let identity = try Identity(decoding: &buffer)
                guard identity.id == id else {
                    throw .invalidValue(field: "identity.id", reason: "differs from its key")
                }
                identities[id] = identity
            case .token(let id):
                let token = try Token(decoding: &buffer)
                guard token.id == id else { throw .invalidValue(field: "token.id", reason: "differs from its key") }
                tokens[id] = token
            case .holding: holdings[key] = try Holding(decoding: &buffer)
            case .resource(let id):
                let resource = try Resource(decoding: &buffer)
                guard resource.id == id else {
                    throw .invalidValue(field: "resource.id", reason: "differs from its key")
                }
                resources[id] = resource
            case .pool(let token):
                let pool = try PoolRecord(decoding: &buffer)
                guard pool.token == token else {
                    throw .invalidValue(field: "pool.token", reason: "differs from its key")
                }
                pools[token] = pool
                poolAccounts[pool.account] = token
            case .channel(let id):
                let channel = try ChannelRecord(decoding: &buffer)
                guard channel.id == id else { throw .invalidValue(field: "channel", reason: "differs from its key") }
                channels[id] = channel
            case .leasedSliceHour:
                leasedSliceHours[key] = try buffer.readDigest(field: "leased_slice_hour.channel")
            case .rentIndex(let token):
                rentIndexes[token] = try RentIndex(decoding: &buffer)
            case .rentPosition:
                rentPositions[key] = try RentPosition(decoding: &buffer)
            }
            guard buffer.readableBytes == 0 else {
                throw .trailingBytes(message: "state row \(key)", count: buffer.readableBytes)
            }
            guard self.row(key) == row.value else {
                throw .nonCanonical(field: "state row \(key)", reason: "re-encodes differently")
            }
        }
        for (key, holding) in holdings {
            guard case .holding(let token, let account) = key, tokens[token]?.compliance != nil,
                holding.balance > 0
            else { continue }
            guard let identity = accounts[account]?.identity else {
                throw .invalidValue(field: "holding", reason: "a security token held by a wallet with no identity")
            }
            let (total, overflow) = identityBalance(token, identity).addingReportingOverflow(holding.balance)
            guard !overflow else { throw .invalidValue(field: "holding", reason: "balances of one identity overflow") }
            identityBalances[token, default: [:]][identity] = total
        }
    }

    init() {}

    /// The changed keys since the last call, with their new rows (nil: the record is gone).
    public mutating func takeChanges() -> [(key: StateKey, row: [UInt8]?)] {
        defer { dirty.removeAll(keepingCapacity: true) }
        return dirty.map { ($0, row($0)) }
    }

    // MARK: Writes that remember what they touched

    mutating func setAccount(_ id: AccountID, _ account: Account) {
        accounts[id] = account
        dirty.insert(.account(id))
    }

    mutating func setIdentity(_ identity: Identity) {
        identities[identity.id] = identity
        dirty.insert(.identity(identity.id))
    }

    mutating func setToken(_ token: Token) {
        tokens[token.id] = token
        dirty.insert(.token(token.id))
    }

    mutating func setResource(_ resource: Resource) {
        resources[resource.id] = resource
        dirty.insert(.resource(resource.id))
    }

    mutating func setPool(_ pool: PoolRecord) {
        pools[pool.token] = pool
        poolAccounts[pool.account] = pool.token
        dirty.insert(.pool(pool.token))
    }

    mutating func bumpCounters() { dirty.insert(.counters) }

    mutating func setChannel(_ channel: ChannelRecord) {
        channels[channel.id] = channel
        dirty.insert(.channel(channel.id))
    }

    /// Locks (or, with nil, frees) a slice-hour.
    mutating func setLeasedSliceHour(_ key: StateKey, _ channel: Digest32?) {
        leasedSliceHours[key] = channel
        dirty.insert(key)
    }

    mutating func setRentIndex(_ token: TokenID, _ index: RentIndex) {
        rentIndexes[token] = index
        dirty.insert(.rentIndex(token))
    }

    mutating func setRentPosition(_ token: TokenID, _ account: AccountID, _ position: RentPosition) {
        let key = StateKey.rentPosition(token, account)
        rentPositions[key] = position.isEmpty ? nil : position
        dirty.insert(key)
    }

    /// Sets a holding, keeping the per-identity balances of security tokens in step.
    mutating func setHolding(_ token: TokenID, _ account: AccountID, _ holding: Holding) {
        let key = StateKey.holding(token, account)
        let before = holdings[key]?.balance ?? 0
        // A licence that has earned rent: what the old balance earned is settled first, so the
        // rent stays right across every transfer, mint, burn, recovery and pool operation.
        if before != holding.balance, let index = rentIndexes[token] {
            var position = rentPositions[.rentPosition(token, account)] ?? RentPosition()
            if position.index != index.perUnit {
                position.accrued = position.total(balance: before, current: index.perUnit)
                position.index = index.perUnit
                setRentPosition(token, account, position)
            }
        }
        holdings[key] = holding.isEmpty ? nil : holding
        dirty.insert(key)
        if accounts[account] == nil { setAccount(account, Account()) }
        guard tokens[token]?.compliance != nil, before != holding.balance,
            let identity = accounts[account]?.identity
        else { return }
        let total = identityBalance(token, identity) - before + holding.balance
        identityBalances[token, default: [:]][identity] = total == 0 ? nil : total
    }
}

/// A decoded state row, as a query answers it.
public enum StateRecord: Equatable, Sendable {
    case counters(nextIdentity: IdentityID, nextResource: ResourceID)
    case account(Account)
    case identity(Identity)
    case token(Token)
    case holding(Holding)
    case resource(Resource)
    case pool(PoolRecord)
    case channel(ChannelRecord)
    /// The channel that leases the slice-hour.
    case leasedSliceHour(Digest32)
    case rentIndex(RentIndex)
    case rentPosition(RentPosition)

    public init(key: StateKey, value: [UInt8]) throws(WireError) {
        var buffer = ByteBuffer(bytes: value)
        switch key {
        case .counters:
            self = .counters(
                nextIdentity: try buffer.readInteger(field: "counters.next_identity"),
                nextResource: try buffer.readInteger(field: "counters.next_resource"))
        case .account: self = .account(try Account(decoding: &buffer))
        case .identity: self = .identity(try Identity(decoding: &buffer))
        case .token: self = .token(try Token(decoding: &buffer))
        case .holding: self = .holding(try Holding(decoding: &buffer))
        case .resource: self = .resource(try Resource(decoding: &buffer))
        case .pool: self = .pool(try PoolRecord(decoding: &buffer))
        case .channel: self = .channel(try ChannelRecord(decoding: &buffer))
        case .leasedSliceHour: self = .leasedSliceHour(try buffer.readDigest(field: "leased_slice_hour.channel"))
        case .rentIndex: self = .rentIndex(try RentIndex(decoding: &buffer))
        case .rentPosition: self = .rentPosition(try RentPosition(decoding: &buffer))
        }
        guard buffer.readableBytes == 0 else {
            throw .trailingBytes(message: "state row \(key)", count: buffer.readableBytes)
        }
    }
}
