import NIOCore
import RWACrypto

extension MessageType {
    public static let leaseOpenRequest = MessageType(rawValue: 0x0400)
    public static let leaseOpenAccept = MessageType(rawValue: 0x0402)
    public static let leaseOpenRefused = MessageType(rawValue: 0x0404)
    public static let leaseUpdate = MessageType(rawValue: 0x0410)
    public static let leaseCountersign = MessageType(rawValue: 0x0412)
    public static let leaseUpdateRefused = MessageType(rawValue: 0x0414)
    public static let leaseReestablish = MessageType(rawValue: 0x0416)
    public static let leaseLatestState = MessageType(rawValue: 0x0418)
    public static let leaseGetOffers = MessageType(rawValue: 0x0420)
    public static let leaseOffers = MessageType(rawValue: 0x0422)
}

extension WireLimits {
    /// Offers, and leases already taken, one `lease_offers` carries: with them at their largest
    /// the answer still fits one UDP frame (proto/README.md, "lease_offers").
    public static let leaseOffersMax = 8
    public static let leaseTakenMax = 32
}

/// What a lessor offers: which slices of which licence, for how many hours at most, at what rate
/// at least. Its configuration (`rwa-lessor run --offer`), and what `lease_offers` carries
/// (30 bytes).
public struct LeaseOffer: Sendable, Equatable, Codable {
    public var licence: UInt64
    public var firstSlice: UInt8
    public var sliceCount: UInt8
    public var ratePerSliceHour: UInt128
    public var maxHours: UInt32

    public init(licence: UInt64, firstSlice: UInt8, sliceCount: UInt8, ratePerSliceHour: UInt128, maxHours: UInt32) {
        self.licence = licence
        self.firstSlice = firstSlice
        self.sliceCount = sliceCount
        self.ratePerSliceHour = ratePerSliceHour
        self.maxHours = maxHours
    }

    /// Whether the offer covers these slices of this licence (whatever the rate and hours).
    public func covers(licence: UInt64, firstSlice: UInt8, sliceCount: UInt8) -> Bool {
        licence == self.licence && firstSlice >= self.firstSlice
            && Int(firstSlice) + Int(sliceCount) <= Int(self.firstSlice) + Int(self.sliceCount)
    }

    /// Why these terms are not offered, or nil.
    public func refusal(_ terms: LeaseTerms) -> Rejection? {
        guard terms.licence == licence else {
            return Rejection(.notOffered, "licence \(terms.licence) is not offered")
        }
        guard covers(licence: terms.licence, firstSlice: terms.firstSlice, sliceCount: terms.sliceCount) else {
            return Rejection(
                .notOffered,
                "slices \(firstSlice)–\(Int(firstSlice) + Int(sliceCount) - 1) are offered, not those asked")
        }
        guard terms.ratePerSliceHour >= ratePerSliceHour else {
            return Rejection(.notOffered, "the rate is at least \(ratePerSliceHour) per slice-hour")
        }
        guard terms.hours <= maxHours else { return Rejection(.notOffered, "at most \(maxHours) hours") }
        return nil
    }

    init(decoding buffer: inout ByteBuffer, field: String) throws(WireError) {
        licence = try buffer.readInteger(field: "\(field).licence")
        firstSlice = try buffer.readInteger(field: "\(field).first_slice")
        sliceCount = try buffer.readInteger(field: "\(field).slice_count")
        ratePerSliceHour = try buffer.readUInt128(field: "\(field).rate_per_slice_hour")
        maxHours = try buffer.readInteger(field: "\(field).max_hours")
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(licence, endianness: .big)
        buffer.writeInteger(firstSlice)
        buffer.writeInteger(sliceCount)
        buffer.writeUInt128(ratePerSliceHour)
        buffer.writeInteger(maxHours, endianness: .big)
    }
}

/// Slices of a licence a lessor has already leased for some hours (22 bytes in `lease_offers`):
/// with the offers, what a lessee needs to pick free slice-hours.
public struct LeasedRange: Sendable, Equatable {
    public var licence: UInt64
    public var firstSlice: UInt8
    public var sliceCount: UInt8
    public var startSeconds: UInt64
    public var hours: UInt32

    public init(licence: UInt64, firstSlice: UInt8, sliceCount: UInt8, startSeconds: UInt64, hours: UInt32) {
        self.licence = licence
        self.firstSlice = firstSlice
        self.sliceCount = sliceCount
        self.startSeconds = startSeconds
        self.hours = hours
    }

    public init(_ terms: LeaseTerms) {
        self.init(
            licence: terms.licence, firstSlice: terms.firstSlice, sliceCount: terms.sliceCount,
            startSeconds: terms.startSeconds, hours: terms.hours)
    }

    init(decoding buffer: inout ByteBuffer, field: String) throws(WireError) {
        licence = try buffer.readInteger(field: "\(field).licence")
        firstSlice = try buffer.readInteger(field: "\(field).first_slice")
        sliceCount = try buffer.readInteger(field: "\(field).slice_count")
        startSeconds = try buffer.readInteger(field: "\(field).start_seconds")
        hours = try buffer.readInteger(field: "\(field).hours")
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(licence, endianness: .big)
        buffer.writeInteger(firstSlice)
        buffer.writeInteger(sliceCount)
        buffer.writeInteger(startSeconds, endianness: .big)
        buffer.writeInteger(hours, endianness: .big)
    }
}

/// The messages between a lessor and a lessee, family 0x0400–0x05FF, with the request-id envelope
/// (proto/README.md, "Lease channel messages"). An open is one round trip (the lessee's signed
/// terms, the lessor's signature or refusal); so is each update (the proposer's signed state
/// n + 1, the receiver's countersignature or refusal). On every new session each side says which
/// nonce it holds (`reestablish`), and the side that is ahead sends its co-signed state.
public enum LeaseMessage: Equatable, Sendable {
    case openRequest(requestID: UInt64, terms: LeaseTerms, lesseeSignature: Signature)
    case openAccept(requestID: UInt64, channelID: Digest32, lessorSignature: Signature)
    case openRefused(requestID: UInt64, channelID: Digest32, code: ErrorCode, reason: String)
    case update(requestID: UInt64, state: ChannelState, signature: Signature)
    case countersign(requestID: UInt64, channelID: Digest32, nonce: UInt64, signature: Signature)
    case updateRefused(requestID: UInt64, channelID: Digest32, nonce: UInt64, code: ErrorCode, reason: String)
    case reestablish(requestID: UInt64, channelID: Digest32, nonce: UInt64)
    case latestState(requestID: UInt64, state: CoSignedState)
    /// Lessee → lessor: what do you offer?
    case getOffers(requestID: UInt64)
    /// Lessor → lessee: its offers, and the leases it has already taken on them.
    case offers(requestID: UInt64, offers: [LeaseOffer], taken: [LeasedRange])

    public var type: MessageType {
        switch self {
        case .openRequest: return .leaseOpenRequest
        case .openAccept: return .leaseOpenAccept
        case .openRefused: return .leaseOpenRefused
        case .update: return .leaseUpdate
        case .countersign: return .leaseCountersign
        case .updateRefused: return .leaseUpdateRefused
        case .reestablish: return .leaseReestablish
        case .latestState: return .leaseLatestState
        case .getOffers: return .leaseGetOffers
        case .offers: return .leaseOffers
        }
    }

    public var requestID: UInt64 {
        switch self {
        case .openRequest(let id, _, _), .openAccept(let id, _, _), .openRefused(let id, _, _, _),
            .update(let id, _, _), .countersign(let id, _, _, _), .updateRefused(let id, _, _, _, _),
            .reestablish(let id, _, _), .latestState(let id, _), .getOffers(let id), .offers(let id, _, _):
            return id
        }
    }

    /// The channel the message is about; nil for the offers, which are about none.
    public var channelID: Digest32? {
        switch self {
        case .getOffers, .offers: return nil
        case .openRequest(_, let terms, _): return terms.channelID
        case .openAccept(_, let id, _), .openRefused(_, let id, _, _), .countersign(_, let id, _, _),
            .updateRefused(_, let id, _, _, _), .reestablish(_, let id, _):
            return id
        case .update(_, let state, _): return state.channelID
        case .latestState(_, let state): return state.state.channelID
        }
    }

    static func decode(type: MessageType, body: inout ByteBuffer) throws(WireError) -> LeaseMessage? {
        let name = "\(type)"
        func requestID() throws(WireError) -> UInt64 { try body.readInteger(field: "\(name).request_id") }
        func channelID() throws(WireError) -> Digest32 { try body.readDigest(field: "\(name).channel_id") }
        func code() throws(WireError) -> ErrorCode { ErrorCode(rawValue: try body.readInteger(field: "\(name).code")) }
        func reason() throws(WireError) -> String {
            try body.readText(field: "\(name).reason", maximum: WireLimits.errorTextBytesMax)
        }
        switch type {
        case .leaseOpenRequest:
            return .openRequest(
                requestID: try requestID(), terms: try LeaseTerms(decoding: &body),
                lesseeSignature: try body.readSignature(field: "\(name).lessee_signature"))
        case .leaseOpenAccept:
            return .openAccept(
                requestID: try requestID(), channelID: try channelID(),
                lessorSignature: try body.readSignature(field: "\(name).lessor_signature"))
        case .leaseOpenRefused:
            return .openRefused(
                requestID: try requestID(), channelID: try channelID(), code: try code(), reason: try reason())
        case .leaseUpdate:
            return .update(
                requestID: try requestID(), state: try ChannelState(decoding: &body),
                signature: try body.readSignature(field: "\(name).signature"))
        case .leaseCountersign:
            return .countersign(
                requestID: try requestID(), channelID: try channelID(),
                nonce: try body.readInteger(field: "\(name).nonce"),
                signature: try body.readSignature(field: "\(name).signature"))
        case .leaseUpdateRefused:
            return .updateRefused(
                requestID: try requestID(), channelID: try channelID(),
                nonce: try body.readInteger(field: "\(name).nonce"),
                code: try code(), reason: try reason())
        case .leaseReestablish:
            return .reestablish(
                requestID: try requestID(), channelID: try channelID(),
                nonce: try body.readInteger(field: "\(name).nonce"))
        case .leaseLatestState:
            return .latestState(requestID: try requestID(), state: try CoSignedState(decoding: &body))
        case .leaseGetOffers:
            return .getOffers(requestID: try requestID())
        case .leaseOffers:
            return .offers(
                requestID: try requestID(),
                offers: try body.readList(field: "\(name).offers", maximum: WireLimits.leaseOffersMax) {
                    (buffer) throws(WireError) in try LeaseOffer(decoding: &buffer, field: "\(name).offer")
                },
                taken: try body.readList(field: "\(name).taken", maximum: WireLimits.leaseTakenMax) {
                    (buffer) throws(WireError) in try LeasedRange(decoding: &buffer, field: "\(name).taken")
                })
        default:
            return nil
        }
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(requestID, endianness: .big)
        switch self {
        case .openRequest(_, let terms, let signature):
            terms.encode(into: &buffer)
            buffer.writeSignature(signature)
        case .openAccept(_, let channelID, let signature):
            buffer.writeDigest(channelID)
            buffer.writeSignature(signature)
        case .openRefused(_, let channelID, let code, let reason):
            buffer.writeDigest(channelID)
            buffer.writeInteger(code.rawValue, endianness: .big)
            buffer.writeText(ErrorReport(code: code, text: reason).text, maximum: WireLimits.errorTextBytesMax)
        case .update(_, let state, let signature):
            state.encode(into: &buffer)
            buffer.writeSignature(signature)
        case .countersign(_, let channelID, let nonce, let signature):
            buffer.writeDigest(channelID)
            buffer.writeInteger(nonce, endianness: .big)
            buffer.writeSignature(signature)
        case .updateRefused(_, let channelID, let nonce, let code, let reason):
            buffer.writeDigest(channelID)
            buffer.writeInteger(nonce, endianness: .big)
            buffer.writeInteger(code.rawValue, endianness: .big)
            buffer.writeText(ErrorReport(code: code, text: reason).text, maximum: WireLimits.errorTextBytesMax)
        case .reestablish(_, let channelID, let nonce):
            buffer.writeDigest(channelID)
            buffer.writeInteger(nonce, endianness: .big)
        case .latestState(_, let state):
            state.encode(into: &buffer)
        case .getOffers:
            break
        case .offers(_, let offers, let taken):
            buffer.writeList(offers, maximum: WireLimits.leaseOffersMax) { $1.encode(into: &$0) }
            buffer.writeList(taken, maximum: WireLimits.leaseTakenMax) { $1.encode(into: &$0) }
        }
    }
}
