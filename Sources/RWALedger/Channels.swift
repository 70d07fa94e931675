import NIOCore
import RWACrypto
import RWAMarket
import RWAWire

/// A lease channel as the ledger keeps it (state key `0x07`): its terms, where it stands, and the
/// state registered in a dispute (or the one it settled with).
public struct ChannelRecord: Equatable, Sendable {
    public enum Status: UInt8, Sendable {
        /// Opened; the parties update it off the chain.
        case open = 1
        /// A state is registered; it may be challenged until `challengeDeadlineMilliseconds`.
        case disputed = 2
        /// Paid out; the usage rights have ended.
        case settled = 3
    }

    public static let encodedByteCount = LeaseTerms.encodedByteCount + 1 + 8 + 16 + 8 + 8

    public var terms: LeaseTerms
    public var status: Status
    public var nonce: UInt64
    public var paid: UInt128
    public var paidThroughSeconds: UInt64
    /// Disputed: the last block time (ms) at which a challenge is accepted.
    public var challengeDeadlineMilliseconds: UInt64

    public var id: Digest32 { terms.channelID }

    init(terms: LeaseTerms) {
        self.terms = terms
        status = .open
        nonce = 0
        paid = 0
        paidThroughSeconds = terms.startSeconds
        challengeDeadlineMilliseconds = 0
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        terms = try LeaseTerms(decoding: &buffer)
        let raw: UInt8 = try buffer.readInteger(field: "channel.status")
        guard let status = Status(rawValue: raw) else {
            throw .invalidValue(field: "channel.status", reason: "1 (open), 2 (disputed) or 3 (settled), not \(raw)")
        }
        self.status = status
        nonce = try buffer.readInteger(field: "channel.nonce")
        paid = try buffer.readUInt128(field: "channel.paid")
        paidThroughSeconds = try buffer.readInteger(field: "channel.paid_through_seconds")
        challengeDeadlineMilliseconds = try buffer.readInteger(field: "channel.challenge_deadline_ms")
    }

    func encode(into buffer: inout ByteBuffer) {
        terms.encode(into: &buffer)
        buffer.writeInteger(status.rawValue)
        buffer.writeInteger(nonce, endianness: .big)
        buffer.writeUInt128(paid)
        buffer.writeInteger(paidThroughSeconds, endianness: .big)
        buffer.writeInteger(challengeDeadlineMilliseconds, endianness: .big)
    }

    /// The account that holds the channel's deposit: `H("rwanet/channel-account" ‖ channel id)`,
    /// a key nobody can sign for, moved only by the channel operations.
    public static func account(for channelID: Digest32) -> AccountID {
        let digest = Blake2b.hash256(parts: [Array("rwanet/channel-account".utf8), channelID.bytes])
        return try! SigningPublicKey(bytes: digest.bytes)  // 32 bytes by construction
    }
}

/// The rent a licence's ownership token has earned (state key `0x09`): rent per token unit,
/// accumulated in units of 2^-96 of a stablecoin base unit, so each holder's share is computed
/// in O(1) whenever its balance changes (the accumulator of ERC-20 dividend tokens).
public struct RentIndex: Equatable, Sendable {
    public static let encodedByteCount = 32 + 16 + 16
    /// Σ rent × 2^96 / supply at each distribution, rounded down (the remainder carried).
    public var perUnit: UInt256 = .zero
    /// What the last division left over (out of the supply then), carried into the next.
    public var remainder: UInt128 = 0
    /// All rent ever distributed for this licence, in stablecoin base units.
    public var distributed: UInt128 = 0

    init() {}

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        perUnit = UInt256(
            high: try buffer.readUInt128(field: "rent_index.per_unit"),
            low: try buffer.readUInt128(field: "rent_index.per_unit"))
        remainder = try buffer.readUInt128(field: "rent_index.remainder")
        distributed = try buffer.readUInt128(field: "rent_index.distributed")
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeUInt128(perUnit.high)
        buffer.writeUInt128(perUnit.low)
        buffer.writeUInt128(remainder)
        buffer.writeUInt128(distributed)
    }

    /// The account that holds a licence's undistributed and unclaimed rent.
    public static func account(for token: TokenID, chainID: Digest32) -> AccountID {
        var tokenBytes = ByteBuffer()
        tokenBytes.writeInteger(token, endianness: .big)
        let digest = Blake2b.hash256(
            parts: [Array("rwanet/rent-account".utf8), chainID.bytes, Array(tokenBytes.readableBytesView)])
        return try! SigningPublicKey(bytes: digest.bytes)
    }
}

/// One holder's rent in one licence (state key `0x0A`): the index it was last settled at and
/// what it has earned and not claimed, in units of 2^-96 (so no fraction is lost between
/// settlements). A holder without a record is at index 0 with nothing.
public struct RentPosition: Equatable, Sendable {
    public static let encodedByteCount = 64
    /// 2^96: the accumulator's unit is 2^-96 of a stablecoin base unit.
    static let scale: UInt128 = 1 << 96
    /// Added before rounding a holder's rent down: more than the rounding of the index can have
    /// taken from a holding of up to 2^64 units, far less than one base unit.
    static let tolerance = UInt256(1 << 64)

    public var index: UInt256 = .zero
    public var accrued: UInt256 = .zero

    init() {}

    init(index: UInt256, accrued: UInt256) {
        self.index = index
        self.accrued = accrued
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        index = UInt256(
            high: try buffer.readUInt128(field: "rent_position.index"),
            low: try buffer.readUInt128(field: "rent_position.index"))
        accrued = UInt256(
            high: try buffer.readUInt128(field: "rent_position.accrued"),
            low: try buffer.readUInt128(field: "rent_position.accrued"))
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeUInt128(index.high)
        buffer.writeUInt128(index.low)
        buffer.writeUInt128(accrued.high)
        buffer.writeUInt128(accrued.low)
    }

    var isEmpty: Bool { index == .zero && accrued == .zero }

    /// What `balance` has earned up to `current`, in units of 2^-96, added to what was accrued.
    func total(balance: UInt128, current: UInt256) -> UInt256 {
        accrued &+ Ledger.rentEarned(balance, from: index, to: current)
    }

    /// Whole base units owed for a total in units of 2^-96.
    static func owed(_ total: UInt256) -> UInt128 {
        (total &+ tolerance).quotientAndRemainder(dividingBy: scale).quotient.uint128 ?? .max
    }
}

extension LedgerLimits {
    /// Slice-hours one lease may lock: each is a state row (`0x08`).
    public static let sliceHoursPerLeaseMax = 2_400
}

// MARK: - The channel contract

extension Ledger {
    /// The usage-right period of this chain, in seconds.
    var periodSeconds: UInt32 { genesis.periodSeconds }

    func existingChannel(_ id: Digest32) throws(Rejection) -> ChannelRecord {
        guard let channel = state.channels[id] else { throw Rejection(.unknownChannel, "no channel \(id)") }
        return channel
    }

    func requireParty(_ channel: ChannelRecord, _ signer: AccountID) throws(Rejection) {
        guard signer == channel.terms.lessor || signer == channel.terms.lessee else {
            throw Rejection(.notAuthorized, "\(signer) is not a party to channel \(channel.id)")
        }
    }

    /// A co-signed state of `channel`, with both signatures valid.
    func checkCoSigned(_ coSigned: CoSignedState, of channel: ChannelRecord) throws(Rejection) {
        guard coSigned.state.channelID == channel.id else {
            throw Rejection(.wrongChannel, "the state is of channel \(coSigned.state.channelID), not \(channel.id)")
        }
        guard coSigned.isValid(for: channel.terms) else {
            throw Rejection(.badChannelSignature, "the state is not signed by both parties")
        }
        guard coSigned.state.paid <= channel.terms.deposit else {
            throw Rejection(.paymentAboveDeposit, "paid \(coSigned.state.paid) is above the deposit")
        }
        guard coSigned.state.paidThroughSeconds == channel.terms.paidThroughSeconds(paid: coSigned.state.paid) else {
            throw Rejection(.paidThroughMismatch, "the paid-through time is not what the paid amount buys")
        }
    }

    /// The slice-hour keys a lease locks.
    static func sliceHours(_ terms: LeaseTerms) -> [StateKey] {
        let firstHour = terms.startSeconds / UInt64(terms.periodSeconds)
        var keys: [StateKey] = []
        keys.reserveCapacity(Int(terms.sliceCount) * Int(terms.hours))
        for slice in terms.firstSlice..<terms.firstSlice + terms.sliceCount {
            for hour in firstHour..<firstHour + UInt64(terms.hours) {
                keys.append(.leasedSliceHour(terms.licence, slice, hour))
            }
        }
        return keys
    }

    mutating func openChannel(
        _ terms: LeaseTerms, lessorSignature: Signature, lesseeSignature: Signature, signer: AccountID
    ) throws(Rejection) {
        if let problem = terms.problem { throw Rejection(.invalidTerms, problem) }
        guard terms.chainID == chainID else {
            throw Rejection(.wrongChannel, "the terms are for chain \(terms.chainID)")
        }
        guard terms.periodSeconds == periodSeconds else {
            throw Rejection(.periodMismatch, "the chain's period is \(periodSeconds) s, not \(terms.periodSeconds)")
        }
        guard Int(terms.sliceCount) * Int(terms.hours) <= LedgerLimits.sliceHoursPerLeaseMax else {
            throw Rejection(
                .invalidTerms, "a lease locks at most \(LedgerLimits.sliceHoursPerLeaseMax) slice-hours")
        }
        guard signer == terms.lessee else { throw Rejection(.notAuthorized, "the lessee submits the open") }
        guard terms.lessor.isValidSignature(lessorSignature, for: terms.encoded, domain: terms.signatureDomain),
            terms.lessee.isValidSignature(lesseeSignature, for: terms.encoded, domain: terms.signatureDomain)
        else { throw Rejection(.badChannelSignature, "the terms are not signed by both parties") }
        guard state.channels[terms.channelID] == nil else {
            throw Rejection(.alreadyRegistered, "channel \(terms.channelID) exists")
        }
        let token = try existingToken(terms.licence)
        guard token.kind == .licenceOwnership, let resourceID = token.resource,
            let resource = state.resources[resourceID], let spectrum = resource.registration.spectrum
        else { throw Rejection(.invalidResource, "token \(terms.licence) is not a spectrum licence's") }
        guard token.agents.contains(terms.lessor) || resource.registration.owner == terms.lessor else {
            throw Rejection(.notLessorOfLicence, "\(terms.lessor) is neither an agent nor the owner of the licence")
        }
        guard state.accounts[terms.lessor]?.identity != nil else {
            throw Rejection(.receiverNotVerified, "the lessor \(terms.lessor) has no verified identity")
        }
        // The lessee takes usage rights in the licence: it must qualify as a holder would.
        let lesseeIdentity = try checkVerified(token, terms.lessee)
        if let rules = token.compliance,
            !rules.allowedCountries.isEmpty && !rules.allowedCountries.contains(lesseeIdentity.country)
                || rules.deniedCountries.contains(lesseeIdentity.country)
        {
            throw Rejection(
                .countryNotAllowed, "the lessee's country \(lesseeIdentity.country) may not use the licence")
        }
        guard spectrum.validFrom <= terms.startSeconds, terms.endSeconds <= spectrum.validUntil else {
            throw Rejection(
                .outsideLicenceValidity,
                "the lease runs \(terms.startSeconds)–\(terms.endSeconds); the licence is valid "
                    + "\(spectrum.validFrom)–\(spectrum.validUntil)")
        }
        guard terms.endSeconds > blockTimeMilliseconds / 1000 else {
            throw Rejection(.outsideLicenceValidity, "the lease has ended by the block's time")
        }
        let stablecoin = try existingToken(0)
        if stablecoin.paused { throw Rejection(.tokenPaused, "the stablecoin is paused") }
        let lesseeHolding = state.holding(0, terms.lessee)
        guard !lesseeHolding.frozen, lesseeHolding.freeBalance >= terms.deposit else {
            throw Rejection(
                .insufficientBalance,
                "the lessee has \(lesseeHolding.freeBalance) free, the deposit is \(terms.deposit)")
        }
        let locks = Self.sliceHours(terms)
        if let taken = locks.first(where: { state.leasedSliceHours[$0] != nil }) {
            throw Rejection(.sliceHourTaken, "\(taken) is leased already")
        }
        // Every check has passed: lock the slice-hours, move the deposit, record the channel.
        for key in locks { state.setLeasedSliceHour(key, terms.channelID) }
        move(
            0, from: terms.lessee, to: ChannelRecord.account(for: terms.channelID), amount: terms.deposit,
            unfreezing: false)
        state.setChannel(ChannelRecord(terms: terms))
    }

    mutating func closeChannel(_ coSigned: CoSignedState, signer: AccountID) throws(Rejection) {
        let channel = try existingChannel(coSigned.state.channelID)
        try requireParty(channel, signer)
        guard channel.status != .settled else { throw Rejection(.channelFinal, "channel \(channel.id) is settled") }
        try checkCoSigned(coSigned, of: channel)
        guard coSigned.state.final else {
            throw Rejection(.invalidOperation, "a cooperative close needs the final state")
        }
        guard coSigned.state.nonce > channel.nonce || channel.status == .open else {
            throw Rejection(.staleState, "nonce \(coSigned.state.nonce) is not above the registered \(channel.nonce)")
        }
        try settle(
            channel, paid: coSigned.state.paid, nonce: coSigned.state.nonce,
            paidThrough: coSigned.state.paidThroughSeconds)
    }

    /// Registers the latest state a party holds (nil: the opening state) and starts the
    /// challenge period.
    mutating func registerState(channelID: Digest32, _ coSigned: CoSignedState?, signer: AccountID) throws(Rejection) {
        var channel = try existingChannel(channelID)
        try requireParty(channel, signer)
        switch channel.status {
        case .open: break
        case .disputed: throw Rejection(.invalidOperation, "a state is registered already; challenge it instead")
        case .settled: throw Rejection(.channelFinal, "channel \(channel.id) is settled")
        }
        if let coSigned { try checkCoSigned(coSigned, of: channel) }
        let registered = coSigned?.state ?? ChannelState.opening(channel.terms)
        let (deadline, overflow) = blockTimeMilliseconds.addingReportingOverflow(
            channel.terms.challengePeriodMilliseconds)
        channel.status = .disputed
        channel.nonce = registered.nonce
        channel.paid = registered.paid
        channel.paidThroughSeconds = registered.paidThroughSeconds
        channel.challengeDeadlineMilliseconds = overflow ? .max : deadline
        state.setChannel(channel)
    }

    mutating func challenge(_ coSigned: CoSignedState, signer: AccountID) throws(Rejection) {
        var channel = try existingChannel(coSigned.state.channelID)
        try requireParty(channel, signer)
        switch channel.status {
        case .disputed: break
        case .open: throw Rejection(.invalidOperation, "no state is registered for channel \(channel.id)")
        case .settled: throw Rejection(.channelFinal, "channel \(channel.id) is settled")
        }
        guard blockTimeMilliseconds <= channel.challengeDeadlineMilliseconds else {
            throw Rejection(
                .challengePeriodOver,
                "the challenge period ended at \(channel.challengeDeadlineMilliseconds); the block's time is "
                    + "\(blockTimeMilliseconds)")
        }
        try checkCoSigned(coSigned, of: channel)
        guard coSigned.state.nonce > channel.nonce else {
            throw Rejection(.staleState, "nonce \(coSigned.state.nonce) is not above the registered \(channel.nonce)")
        }
        channel.nonce = coSigned.state.nonce
        channel.paid = coSigned.state.paid
        channel.paidThroughSeconds = coSigned.state.paidThroughSeconds
        state.setChannel(channel)
    }

    /// Anyone: pays out a disputed channel once its challenge period is over.
    mutating func settleChannel(_ channelID: Digest32) throws(Rejection) {
        let channel = try existingChannel(channelID)
        switch channel.status {
        case .disputed: break
        case .open: throw Rejection(.invalidOperation, "no state is registered for channel \(channel.id)")
        case .settled: throw Rejection(.channelFinal, "channel \(channel.id) is settled")
        }
        guard blockTimeMilliseconds > channel.challengeDeadlineMilliseconds else {
            throw Rejection(
                .challengePeriodRunning,
                "the challenge period runs until \(channel.challengeDeadlineMilliseconds); the block's time is "
                    + "\(blockTimeMilliseconds)")
        }
        try settle(channel, paid: channel.paid, nonce: channel.nonce, paidThrough: channel.paidThroughSeconds)
    }

    /// The paid amount becomes rent for the licence's holders, the rest of the deposit returns to
    /// the lessee, and the usage rights end.
    private mutating func settle(_ channel: ChannelRecord, paid: UInt128, nonce: UInt64, paidThrough: UInt64)
        throws(Rejection)
    {
        let terms = channel.terms
        let escrow = ChannelRecord.account(for: channel.id)
        let rentAccount = RentIndex.account(for: terms.licence, chainID: chainID)
        let supply = state.tokens[terms.licence]?.totalSupply ?? 0
        var index = state.rentIndexes[terms.licence] ?? RentIndex()
        var poolShare: UInt128 = 0
        var pool = state.pools[terms.licence]
        if paid > 0 {
            guard supply > 0 else { throw Rejection(.invalidOperation, "the licence has no holders to pay rent to") }
            let numerator = UInt256(paid).shiftedLeft(by: 96) &+ UInt256(index.remainder)
            let (quotient, remainder) = numerator.quotientAndRemainder(dividingBy: supply)
            let (distributed, overflow) = index.distributed.addingReportingOverflow(paid)
            guard !overflow else { throw Rejection(.invalidOperation, "the licence's rent would overflow") }
            index.perUnit = index.perUnit &+ quotient
            index.remainder = remainder
            index.distributed = distributed
            if var market = pool {
                // The pool's holders are its liquidity providers: its share goes into the
                // stablecoin reserve, as Uniswap's fees do.
                let balance = state.holding(terms.licence, market.account).balance
                let position = state.rentPositions[.rentPosition(terms.licence, market.account)] ?? RentPosition()
                let rentAccount = RentIndex.account(for: terms.licence, chainID: chainID)
                let held = state.holding(0, rentAccount).balance + paid
                poolShare = min(
                    RentPosition.owed(position.total(balance: balance, current: index.perUnit)), held)
                if poolShare > 0 {
                    do {
                        try market.market.donate(amount1: poolShare, timestampSeconds: poolTimestampSeconds)
                    } catch {
                        throw Rejection(.invalidOperation, "the pool cannot take its rent: \(error)")
                    }
                    pool = market
                }
            }
        }
        // Every check has passed: write.
        for key in Self.sliceHours(terms) { state.setLeasedSliceHour(key, nil) }
        if paid > 0 {
            move(0, from: escrow, to: rentAccount, amount: paid, unfreezing: false)
            state.setRentIndex(terms.licence, index)
            if let pool {
                state.setRentPosition(terms.licence, pool.account, RentPosition(index: index.perUnit, accrued: .zero))
                if poolShare > 0 {
                    move(0, from: rentAccount, to: pool.account, amount: poolShare, unfreezing: false)
                    state.setPool(pool)
                }
            }
        }
        if terms.deposit > paid {
            move(0, from: escrow, to: terms.lessee, amount: terms.deposit - paid, unfreezing: false)
        }
        var settled = channel
        settled.status = .settled
        settled.nonce = nonce
        settled.paid = paid
        settled.paidThroughSeconds = paidThrough
        state.setChannel(settled)
    }

    /// Rent earned by `balance` units between two values of the index, in units of 2^-96.
    static func rentEarned(_ balance: UInt128, from: UInt256, to: UInt256) -> UInt256 {
        guard balance > 0, from < to else { return .zero }
        // ≤ balance × Σ rent × 2^96 / supply ≤ Σ rent × 2^96 < 2^224: fits 256 bits.
        return (to &- from).multiplied(by: balance) ?? UInt256(high: .max, low: .max)
    }

    /// What `claim_rent` would pay `account` on `token` now, in whole base units.
    public func rentOwed(token: TokenID, account: AccountID) -> UInt128 {
        let rentAccount = RentIndex.account(for: token, chainID: chainID)
        return min(RentPosition.owed(rentTotal(token, account)), state.holding(0, rentAccount).balance)
    }

    /// What `account`'s holding of `token` has earned and not collected, in units of 2^-96.
    private func rentTotal(_ token: TokenID, _ account: AccountID) -> UInt256 {
        let index = state.rentIndexes[token] ?? RentIndex()
        let position = state.rentPositions[.rentPosition(token, account)] ?? RentPosition()
        return position.total(balance: state.holding(token, account).balance, current: index.perUnit)
    }

    /// The signer collects the rent its holding of `token` has earned, in whole base units; the
    /// fraction stays in its position. Never more than the rent account holds.
    mutating func claimRent(_ tokenID: TokenID, signer: AccountID) throws(Rejection) -> UInt128 {
        _ = try existingToken(tokenID)
        let index = state.rentIndexes[tokenID] ?? RentIndex()
        let total = rentTotal(tokenID, signer)
        let rentAccount = RentIndex.account(for: tokenID, chainID: chainID)
        let owed = rentOwed(token: tokenID, account: signer)
        guard owed > 0 else { throw Rejection(.nothingToClaim, "\(signer) has no rent to collect on token \(tokenID)") }
        let paidOut = UInt256.product(owed, RentPosition.scale)
        let left = paidOut < total ? total &- paidOut : .zero
        move(0, from: rentAccount, to: signer, amount: owed, unfreezing: false)
        state.setRentPosition(tokenID, signer, RentPosition(index: index.perUnit, accrued: left))
        return owed
    }
}
