import NIOCore
import RWACrypto
import RWAMarket
import RWAWire

/// Which way a trader swaps against a pool: buying licence tokens with the stablecoin, or
/// selling them for it.
public enum TradeSide: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case buy = 1
    case sell = 2

    public var description: String { self == .buy ? "buy" : "sell" }

    /// The pool's orientation: token 0 is the licence token, token 1 the stablecoin.
    public var direction: Pool.Direction { self == .buy ? .oneForZero : .zeroForOne }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        let raw: UInt8 = try buffer.readInteger(field: "operation.side")
        guard let side = TradeSide(rawValue: raw) else {
            throw .invalidValue(field: "operation.side", reason: "1 (buy) or 2 (sell), not \(raw)")
        }
        self = side
    }
}

/// A constant-product pool of one licence token against the stablecoin (proto/README.md,
/// "Pools"). Its tokens sit in `account`, a key derived from the chain and the token that nobody
/// can sign for; once the pool exists the ledger moves them only through pool operations, so the
/// holdings of that account equal the reserves (plus whatever was sent to the address before).
public struct PoolRecord: Equatable, Sendable {
    /// The licence token (the pool's token 0); the stablecoin, token 0 of the chain, is token 1.
    public var token: TokenID
    public var shareToken: TokenID
    public var account: AccountID
    public var market: Pool

    public var licenceReserve: UInt128 { market.reserve0 }
    public var stablecoinReserve: UInt128 { market.reserve1 }

    /// Share tokens are numbered outside the resources' range: the licence token's id with the top bit set.
    public static func shareToken(for token: TokenID) -> TokenID { token | (1 << 63) }

    /// `BLAKE2b-256("rwanet/pool" | chain_id | token)`: 32 bytes that are no key anyone holds
    /// (finding a secret key for them would break BLAKE2b or Ed25519).
    public static func account(for token: TokenID, chainID: Digest32) -> AccountID {
        var tokenBytes = ByteBuffer()
        tokenBytes.writeInteger(token, endianness: .big)
        let digest = Blake2b.hash256(
            parts: [Array("rwanet/pool".utf8), chainID.bytes, Array(tokenBytes.readableBytesView)])
        return try! SigningPublicKey(bytes: digest.bytes)  // 32 bytes by construction
    }

    init(token: TokenID, shareToken: TokenID, account: AccountID, market: Pool) {
        self.token = token
        self.shareToken = shareToken
        self.account = account
        self.market = market
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        token = try buffer.readInteger(field: "pool.token")
        shareToken = try buffer.readInteger(field: "pool.share_token")
        account = try buffer.readPublicKey(field: "pool.account")
        let reserve0 = try buffer.readUInt128(field: "pool.licence_reserve")
        let reserve1 = try buffer.readUInt128(field: "pool.stablecoin_reserve")
        let shares = try buffer.readUInt128(field: "pool.total_shares")
        let price0 = UInt256(
            high: try buffer.readUInt128(field: "pool.licence_price_cumulative"),
            low: try buffer.readUInt128(field: "pool.licence_price_cumulative"))
        let price1 = UInt256(
            high: try buffer.readUInt128(field: "pool.stablecoin_price_cumulative"),
            low: try buffer.readUInt128(field: "pool.stablecoin_price_cumulative"))
        let timestamp: UInt32 = try buffer.readInteger(field: "pool.last_timestamp")
        guard reserve0 <= ConstantProduct.reserveMax, reserve1 <= ConstantProduct.reserveMax else {
            throw .invalidValue(field: "pool.reserves", reason: "above 2^112 - 1")
        }
        market = Pool(
            reserve0: reserve0, reserve1: reserve1, totalShares: shares, price0Cumulative: price0,
            price1Cumulative: price1, lastTimestampSeconds: timestamp)
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(token, endianness: .big)
        buffer.writeInteger(shareToken, endianness: .big)
        buffer.writePublicKey(account)
        buffer.writeUInt128(market.reserve0)
        buffer.writeUInt128(market.reserve1)
        buffer.writeUInt128(market.totalShares)
        buffer.writeUInt128(market.price0Cumulative.high)
        buffer.writeUInt128(market.price0Cumulative.low)
        buffer.writeUInt128(market.price1Cumulative.high)
        buffer.writeUInt128(market.price1Cumulative.low)
        buffer.writeInteger(market.lastTimestampSeconds, endianness: .big)
    }
}

/// What a pool operation moved, for the exchange and the tools. It is not state and not stored:
/// anyone replaying the chain recomputes it.
public struct PoolFill: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case swap(TradeSide)
        case addLiquidity
        case removeLiquidity
    }

    public var token: TokenID
    public var kind: Kind
    public var trader: AccountID
    /// Licence and stablecoin base units that changed hands (in either direction), and shares
    /// minted or burned.
    public var licence: UInt128
    public var stablecoin: UInt128
    public var shares: UInt128 = 0

    /// For a swap: what the trader paid and received.
    public var amountIn: UInt128 { kind == .swap(.buy) ? stablecoin : licence }
    public var amountOut: UInt128 { kind == .swap(.buy) ? licence : stablecoin }
}

// MARK: - Pool operations

extension Ledger {
    /// The block time in seconds, wrapped to 32 bits as Uniswap v2's accumulators expect.
    var poolTimestampSeconds: UInt32 { UInt32(truncatingIfNeeded: blockTimeMilliseconds / 1000) }

    func existingPool(_ token: TokenID) throws(Rejection) -> PoolRecord {
        guard let pool = state.pools[token] else { throw Rejection(.unknownPool, "no pool for token \(token)") }
        return pool
    }

    /// Deadlines are in milliseconds and judged against the block's time, which replay sees too.
    func checkDeadline(_ deadline: UInt64) throws(Rejection) {
        guard blockTimeMilliseconds <= deadline else {
            throw Rejection(
                .deadlinePassed, "deadline \(deadline) passed: the block's time is \(blockTimeMilliseconds)")
        }
    }

    /// Pool accounts hold exactly the reserves; no operation but the pool's own may move or
    /// burn their tokens, or send them any.
    func requireNotPool(_ account: AccountID) throws(Rejection) {
        if let token = state.poolAccounts[account] {
            throw Rejection(
                .invalidOperation, "\(account) is the pool of token \(token); only pool operations move its tokens")
        }
    }

    mutating func createPool(token tokenID: TokenID, country: CountryCode, signer: AccountID) throws(Rejection)
        -> UInt64
    {
        let token = try agentToken(tokenID, signer: signer)
        try requireClaimIssuer(signer)
        guard token.kind == .licenceOwnership, let rules = token.compliance else {
            throw Rejection(.invalidOperation, "pools trade licence ownership tokens; token \(tokenID) is not one")
        }
        guard state.pools[tokenID] == nil else {
            throw Rejection(.alreadyRegistered, "token \(tokenID) already has a pool")
        }
        try validate(country: country)
        let account = PoolRecord.account(for: tokenID, chainID: chainID)
        let shareToken = PoolRecord.shareToken(for: tokenID)
        // The address is known in advance, so anyone may have sent it tokens already: the pool
        // adopts such an account (those tokens stay there, outside the reserves), unless a claim
        // issuer gave it an identity.
        guard state.accounts[account]?.identity == nil, state.tokens[shareToken] == nil else {
            throw Rejection(.alreadyRegistered, "the pool's account already has an identity, or its share token exists")
        }
        if !rules.allowedCountries.isEmpty && !rules.allowedCountries.contains(country)
            || rules.deniedCountries.contains(country)
        {
            throw Rejection(.countryNotAllowed, "token \(tokenID) may not be held in country \(country)")
        }
        // The pool is a verified holder like any other: an identity of the given country with the
        // claims the token requires, issued by the agent that opens the market.
        createIdentity(
            for: account, country: country, claims: rules.requiredClaims.map { Claim(topic: $0, issuer: signer) })
        state.setToken(
            Token(
                id: shareToken, kind: .poolShare, symbol: "LP\(tokenID)", decimals: token.decimals, agents: [],
                maxSupply: .max, compliance: nil, resource: token.resource))
        state.setPool(PoolRecord(token: tokenID, shareToken: shareToken, account: account, market: Pool()))
        return shareToken
    }

    /// Uniswap v2's router: deposit at the pool's price, as much of the desired amounts as fits,
    /// refusing if either falls below its minimum.
    mutating func addLiquidity(
        token: TokenID, licenceDesired: UInt128, stablecoinDesired: UInt128, licenceMinimum: UInt128,
        stablecoinMinimum: UInt128, deadline: UInt64, signer: AccountID
    ) throws(Rejection) -> PoolFill {
        var pool = try existingPool(token)
        try checkDeadline(deadline)
        try requirePositive(licenceDesired)
        try requirePositive(stablecoinDesired)
        var licence = licenceDesired
        var stablecoin = stablecoinDesired
        if pool.licenceReserve > 0 || pool.stablecoinReserve > 0 {
            let stablecoinOptimal = try market {
                () throws(MarketError) in
                try ConstantProduct.quote(
                    amountA: licenceDesired, reserveA: pool.licenceReserve, reserveB: pool.stablecoinReserve)
            }
            if stablecoinOptimal <= stablecoinDesired {
                stablecoin = stablecoinOptimal
            } else {
                licence = try market {
                    () throws(MarketError) in
                    try ConstantProduct.quote(
                        amountA: stablecoinDesired, reserveA: pool.stablecoinReserve, reserveB: pool.licenceReserve)
                }
            }
        }
        guard licence >= licenceMinimum, stablecoin >= stablecoinMinimum else {
            throw Rejection(
                .priceLimit,
                "at the pool's price the deposit is \(licence) licence and \(stablecoin) stablecoin, "
                    + "below the minimums \(licenceMinimum) and \(stablecoinMinimum)")
        }
        let firstDeposit = pool.market.totalShares == 0
        let shares = try market { () throws(MarketError) in
            try pool.market.deposit(amount0: licence, amount1: stablecoin, timestampSeconds: poolTimestampSeconds)
        }
        try checkTransfer(existingToken(token), from: signer, to: pool.account, amount: licence)
        try checkTransfer(existingToken(0), from: signer, to: pool.account, amount: stablecoin)
        move(token, from: signer, to: pool.account, amount: licence, unfreezing: false)
        move(0, from: signer, to: pool.account, amount: stablecoin, unfreezing: false)
        if firstDeposit { mint(pool.shareToken, to: pool.account, amount: ConstantProduct.minimumLiquidity) }
        mint(pool.shareToken, to: signer, amount: shares)
        state.setPool(pool)
        return PoolFill(
            token: token, kind: .addLiquidity, trader: signer, licence: licence, stablecoin: stablecoin, shares: shares)
    }

    mutating func removeLiquidity(
        token: TokenID, shares: UInt128, licenceMinimum: UInt128, stablecoinMinimum: UInt128, deadline: UInt64,
        signer: AccountID
    ) throws(Rejection) -> PoolFill {
        var pool = try existingPool(token)
        try checkDeadline(deadline)
        try requirePositive(shares)
        let holding = state.holding(pool.shareToken, signer)
        if holding.frozen { throw Rejection(.accountFrozen, "\(signer) is frozen for token \(pool.shareToken)") }
        guard holding.freeBalance >= shares else {
            throw Rejection(.insufficientBalance, "\(signer) has \(holding.freeBalance) shares free, burns \(shares)")
        }
        let (licence, stablecoin) = try market { () throws(MarketError) in
            try pool.market.withdraw(shares: shares, timestampSeconds: poolTimestampSeconds)
        }
        guard licence >= licenceMinimum, stablecoin >= stablecoinMinimum else {
            throw Rejection(
                .priceLimit,
                "the shares redeem \(licence) licence and \(stablecoin) stablecoin, "
                    + "below the minimums \(licenceMinimum) and \(stablecoinMinimum)")
        }
        try checkTransfer(existingToken(token), from: pool.account, to: signer, amount: licence)
        try checkTransfer(existingToken(0), from: pool.account, to: signer, amount: stablecoin)
        burn(pool.shareToken, from: signer, amount: shares)
        move(token, from: pool.account, to: signer, amount: licence, unfreezing: false)
        move(0, from: pool.account, to: signer, amount: stablecoin, unfreezing: false)
        state.setPool(pool)
        return PoolFill(
            token: token, kind: .removeLiquidity, trader: signer, licence: licence, stablecoin: stablecoin,
            shares: shares)
    }

    /// A swap with the trader's signed limit: exact input with a minimum out, or exact output
    /// with a maximum in. Both legs are checked against the token rules before either moves.
    mutating func swap(
        token: TokenID, side: TradeSide, exactIn: Bool, amount: UInt128, limit: UInt128, deadline: UInt64,
        signer: AccountID
    ) throws(Rejection) -> PoolFill {
        var pool = try existingPool(token)
        try checkDeadline(deadline)
        try requirePositive(amount)
        let timestamp = poolTimestampSeconds
        let amountIn: UInt128
        let amountOut: UInt128
        do throws(SwapError) {
            if exactIn {
                amountIn = amount
                amountOut = try pool.market.swap(
                    exactIn: amount, side.direction, minimumOut: limit, timestampSeconds: timestamp)
            } else {
                amountOut = amount
                amountIn = try pool.market.swap(
                    exactOut: amount, side.direction, maximumIn: limit, timestampSeconds: timestamp)
            }
        } catch {
            switch error {
            case .limitExceeded(let required, let actual):
                throw Rejection(
                    .priceLimit,
                    exactIn
                        ? "the pool gives \(actual), below the minimum out \(required)"
                        : "the pool asks \(actual), above the maximum in \(required)")
            case .market(let reason): throw Rejection(.insufficientLiquidity, reason.description)
            }
        }
        let (tokenIn, tokenOut) = side == .buy ? (TokenID(0), token) : (token, TokenID(0))
        try checkTransfer(existingToken(tokenIn), from: signer, to: pool.account, amount: amountIn)
        try checkTransfer(existingToken(tokenOut), from: pool.account, to: signer, amount: amountOut)
        move(tokenIn, from: signer, to: pool.account, amount: amountIn, unfreezing: false)
        move(tokenOut, from: pool.account, to: signer, amount: amountOut, unfreezing: false)
        state.setPool(pool)
        let (licence, stablecoin) = side == .buy ? (amountOut, amountIn) : (amountIn, amountOut)
        return PoolFill(token: token, kind: .swap(side), trader: signer, licence: licence, stablecoin: stablecoin)
    }

    /// Runs pool math, turning its refusals into the ledger's rejection.
    private func market<T>(_ body: () throws(MarketError) -> T) throws(Rejection) -> T {
        do throws(MarketError) {
            return try body()
        } catch {
            throw Rejection(.insufficientLiquidity, error.description)
        }
    }
}
