import NIOCore
import RWACrypto

/// What a lessor and a lessee agree on when they open a lease channel (proto/README.md, "Lease
/// channels"): which slices of which licence, for which usage-right periods ("hours", whose
/// length is the chain's `period_seconds`), at what rate, against what deposit. Both sign these
/// terms; the channel id is their hash, so it binds the chain, both parties, the opening nonce
/// and every term.
public struct LeaseTerms: Equatable, Hashable, Sendable {
    public static let encodedByteCount = 32 + 32 + 32 + 8 + 1 + 1 + 8 + 4 + 4 + 16 + 16 + 16 + 8 + 8
    public static let signatureTag = "rwanet/lease-terms"
    static let channelIDTag: [UInt8] = Array("rwanet/channel".utf8)

    public var chainID: Digest32
    public var lessor: SigningPublicKey
    public var lessee: SigningPublicKey
    /// The licence's token id (its resource id).
    public var licence: UInt64
    /// Slices `firstSlice ..< firstSlice + sliceCount` of the licence's 100.
    public var firstSlice: UInt8
    public var sliceCount: UInt8
    /// Unix seconds at which the first period begins; a multiple of `periodSeconds`.
    public var startSeconds: UInt64
    /// How many usage-right periods the lease covers.
    public var hours: UInt32
    /// The chain's usage-right period (its genesis parameter), copied so the terms stand alone.
    public var periodSeconds: UInt32
    /// Stablecoin base units per slice per period.
    public var ratePerSliceHour: UInt128
    /// What the lessee locks in the channel; payments never exceed it.
    public var deposit: UInt128
    /// How much each pay-as-you-go update adds.
    public var paymentIncrement: UInt128
    /// How long, in block time, a registered state may be challenged with a newer one.
    public var challengePeriodMilliseconds: UInt64
    /// Chosen by the lessee; makes otherwise equal terms a new channel.
    public var nonce: UInt64

    public init(
        chainID: Digest32, lessor: SigningPublicKey, lessee: SigningPublicKey, licence: UInt64, firstSlice: UInt8,
        sliceCount: UInt8, startSeconds: UInt64, hours: UInt32, periodSeconds: UInt32, ratePerSliceHour: UInt128,
        deposit: UInt128, paymentIncrement: UInt128, challengePeriodMilliseconds: UInt64, nonce: UInt64
    ) {
        self.chainID = chainID
        self.lessor = lessor
        self.lessee = lessee
        self.licence = licence
        self.firstSlice = firstSlice
        self.sliceCount = sliceCount
        self.startSeconds = startSeconds
        self.hours = hours
        self.periodSeconds = periodSeconds
        self.ratePerSliceHour = ratePerSliceHour
        self.deposit = deposit
        self.paymentIncrement = paymentIncrement
        self.challengePeriodMilliseconds = challengePeriodMilliseconds
        self.nonce = nonce
    }

    public init(decoding buffer: inout ByteBuffer) throws(WireError) {
        chainID = try buffer.readDigest(field: "lease_terms.chain_id")
        lessor = try buffer.readPublicKey(field: "lease_terms.lessor")
        lessee = try buffer.readPublicKey(field: "lease_terms.lessee")
        licence = try buffer.readInteger(field: "lease_terms.licence")
        firstSlice = try buffer.readInteger(field: "lease_terms.first_slice")
        sliceCount = try buffer.readInteger(field: "lease_terms.slice_count")
        startSeconds = try buffer.readInteger(field: "lease_terms.start_seconds")
        hours = try buffer.readInteger(field: "lease_terms.hours")
        periodSeconds = try buffer.readInteger(field: "lease_terms.period_seconds")
        ratePerSliceHour = try buffer.readUInt128(field: "lease_terms.rate_per_slice_hour")
        deposit = try buffer.readUInt128(field: "lease_terms.deposit")
        paymentIncrement = try buffer.readUInt128(field: "lease_terms.payment_increment")
        challengePeriodMilliseconds = try buffer.readInteger(field: "lease_terms.challenge_period_ms")
        nonce = try buffer.readInteger(field: "lease_terms.nonce")
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeDigest(chainID)
        buffer.writePublicKey(lessor)
        buffer.writePublicKey(lessee)
        buffer.writeInteger(licence, endianness: .big)
        buffer.writeInteger(firstSlice)
        buffer.writeInteger(sliceCount)
        buffer.writeInteger(startSeconds, endianness: .big)
        buffer.writeInteger(hours, endianness: .big)
        buffer.writeInteger(periodSeconds, endianness: .big)
        buffer.writeUInt128(ratePerSliceHour)
        buffer.writeUInt128(deposit)
        buffer.writeUInt128(paymentIncrement)
        buffer.writeInteger(challengePeriodMilliseconds, endianness: .big)
        buffer.writeInteger(nonce, endianness: .big)
    }

    public var encoded: [UInt8] {
        var buffer = ByteBuffer()
        encode(into: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// `BLAKE2b-256("rwanet/channel" ‖ terms)`.
    public var channelID: Digest32 { Blake2b.hash256(Self.channelIDTag + encoded) }

    /// Unix seconds at which the last period ends.
    public var endSeconds: UInt64 { startSeconds + UInt64(hours) * UInt64(periodSeconds) }

    /// What the whole lease costs: rate × slices × periods (nil if it overflows).
    public var fullPrice: UInt128? {
        let (perHour, overflow) = ratePerSliceHour.multipliedReportingOverflow(by: UInt128(sliceCount))
        guard !overflow else { return nil }
        let (total, overflow2) = perHour.multipliedReportingOverflow(by: UInt128(hours))
        return overflow2 ? nil : total
    }

    /// The time `paid` pays for: the start plus the periods (and fraction of one, rounded down
    /// to the second) it buys at the rate, never past the end.
    public func paidThroughSeconds(paid: UInt128) -> UInt64 {
        let perHour = ratePerSliceHour * UInt128(sliceCount)
        guard perHour > 0 else { return startSeconds }
        let product = paid.multipliedFullWidth(by: UInt128(periodSeconds))
        guard product.high < perHour else { return endSeconds }  // the quotient would not fit
        let (bought, _) = perHour.dividingFullWidth(product)
        let span = UInt128(endSeconds - startSeconds)
        return startSeconds + UInt64(min(bought, span))
    }

    /// Why these terms cannot open a channel, judged on the terms alone; nil if they can.
    public var problem: String? {
        if lessor == lessee { return "the lessor and the lessee are the same key" }
        if sliceCount == 0 { return "no slices" }
        if Int(firstSlice) + Int(sliceCount) > LeaseLimits.slicesPerLicence {
            return
                "slices \(firstSlice) to \(Int(firstSlice) + Int(sliceCount) - 1) are not all among the licence's 100"
        }
        if hours == 0 { return "no hours" }
        if hours > LeaseLimits.hoursMax { return "more than \(LeaseLimits.hoursMax) hours" }
        if periodSeconds == 0 { return "a period of 0 seconds" }
        if startSeconds % UInt64(periodSeconds) != 0 { return "the start is not at the beginning of a period" }
        if endSeconds < startSeconds || endSeconds > LeaseLimits.timeSecondsMax { return "the lease ends too late" }
        if ratePerSliceHour == 0 { return "a rate of 0" }
        if deposit == 0 { return "a deposit of 0" }
        if paymentIncrement == 0 || paymentIncrement > deposit {
            return "a payment increment of 0 or above the deposit"
        }
        guard let price = fullPrice else { return "the lease's price overflows" }
        if deposit > price { return "a deposit above the lease's whole price (\(price))" }
        if challengePeriodMilliseconds == 0 { return "a challenge period of 0" }
        return nil
    }

    /// The signature domain of the terms on this chain.
    public var signatureDomain: SignatureDomain { SignatureDomain(tag: Self.signatureTag, chainID: chainID) }
}

/// The limits of lease terms (proto/README.md, "Lease channels").
public enum LeaseLimits {
    public static let slicesPerLicence = 100
    /// A year of hourly periods.
    public static let hoursMax: UInt32 = 8_784
    /// Unix seconds of 9999-12-31: keeps every derived time far from overflow.
    public static let timeSecondsMax: UInt64 = 253_402_300_799
}

/// One state of a lease channel: how much the lessee has paid, through when that pays, and
/// whether it is the final state. Valid only signed by both parties.
public struct ChannelState: Equatable, Hashable, Sendable {
    public static let encodedByteCount = 32 + 8 + 16 + 8 + 1
    public static let signatureTag = "rwanet/channel-state"

    public var channelID: Digest32
    /// 0 for the opening state; each update adds exactly 1.
    public var nonce: UInt64
    public var paid: UInt128
    public var paidThroughSeconds: UInt64
    public var final: Bool

    public init(channelID: Digest32, nonce: UInt64, paid: UInt128, paidThroughSeconds: UInt64, final: Bool) {
        self.channelID = channelID
        self.nonce = nonce
        self.paid = paid
        self.paidThroughSeconds = paidThroughSeconds
        self.final = final
    }

    /// The state a channel opens with: nothing paid, paid through its start.
    public static func opening(_ terms: LeaseTerms) -> ChannelState {
        ChannelState(
            channelID: terms.channelID, nonce: 0, paid: 0, paidThroughSeconds: terms.startSeconds, final: false)
    }

    public init(decoding buffer: inout ByteBuffer) throws(WireError) {
        channelID = try buffer.readDigest(field: "channel_state.channel_id")
        nonce = try buffer.readInteger(field: "channel_state.nonce")
        paid = try buffer.readUInt128(field: "channel_state.paid")
        paidThroughSeconds = try buffer.readInteger(field: "channel_state.paid_through_seconds")
        final = try buffer.readBool(field: "channel_state.final")
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeDigest(channelID)
        buffer.writeInteger(nonce, endianness: .big)
        buffer.writeUInt128(paid)
        buffer.writeInteger(paidThroughSeconds, endianness: .big)
        buffer.writeBool(final)
    }

    public var encoded: [UInt8] {
        var buffer = ByteBuffer()
        encode(into: &buffer)
        return Array(buffer.readableBytesView)
    }

    public static func signatureDomain(chainID: Digest32) -> SignatureDomain {
        SignatureDomain(tag: signatureTag, chainID: chainID)
    }

    public func signed(by key: SigningKeyPair, chainID: Digest32) -> Signature {
        key.sign(encoded, domain: Self.signatureDomain(chainID: chainID))
    }

    public func isSigned(by key: SigningPublicKey, _ signature: Signature, chainID: Digest32) -> Bool {
        key.isValidSignature(signature, for: encoded, domain: Self.signatureDomain(chainID: chainID))
    }
}

/// A state with both parties' signatures: what a party stores, registers and settles with.
public struct CoSignedState: Equatable, Hashable, Sendable {
    public static let encodedByteCount = ChannelState.encodedByteCount + 2 * Signature.byteCount

    public var state: ChannelState
    public var lessorSignature: Signature
    public var lesseeSignature: Signature

    public init(state: ChannelState, lessorSignature: Signature, lesseeSignature: Signature) {
        self.state = state
        self.lessorSignature = lessorSignature
        self.lesseeSignature = lesseeSignature
    }

    public init(decoding buffer: inout ByteBuffer) throws(WireError) {
        state = try ChannelState(decoding: &buffer)
        lessorSignature = try buffer.readSignature(field: "co_signed_state.lessor_signature")
        lesseeSignature = try buffer.readSignature(field: "co_signed_state.lessee_signature")
    }

    public func encode(into buffer: inout ByteBuffer) {
        state.encode(into: &buffer)
        buffer.writeSignature(lessorSignature)
        buffer.writeSignature(lesseeSignature)
    }

    public var encoded: [UInt8] {
        var buffer = ByteBuffer()
        encode(into: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// Both signatures hold for these terms' parties and chain, and the state is of this channel.
    public func isValid(for terms: LeaseTerms) -> Bool {
        state.channelID == terms.channelID
            && state.isSigned(by: terms.lessor, lessorSignature, chainID: terms.chainID)
            && state.isSigned(by: terms.lessee, lesseeSignature, chainID: terms.chainID)
    }
}
