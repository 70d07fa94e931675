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
        }
    }

    public var requestID: UInt64 {
        switch self {
        case .openRequest(let id, _, _), .openAccept(let id, _, _), .openRefused(let id, _, _, _),
            .update(let id, _, _), .countersign(let id, _, _, _), .updateRefused(let id, _, _, _, _),
            .reestablish(let id, _, _), .latestState(let id, _):
            return id
        }
    }

    /// The channel the message is about.
    public var channelID: Digest32 {
        switch self {
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
        }
    }
}
