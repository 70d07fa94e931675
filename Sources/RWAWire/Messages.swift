import NIOCore
import RWACrypto

/// A message of the session layer. Each has one canonical body encoding (proto/README.md names the
/// section in each doc comment); `Message` dispatches on the type number.
public protocol WireMessage: Equatable, Sendable {
    static var type: MessageType { get }
    init(decoding body: inout ByteBuffer) throws(WireError)
    func encode(into buffer: inout ByteBuffer)
}

/// The protocol versions this implementation speaks.
public enum ProtocolVersion {
    public static let current: UInt16 = 1
    public static let supported: Set<UInt16> = [1]
}

/// Signature tags (proto/README.md, "Signatures"). One tag per kind of signed bytes.
public enum SignatureTag {
    public static let handshakeResponder = "rwanet/handshake/responder"
    public static let handshakeInitiator = "rwanet/handshake/initiator"
    public static let note = "rwanet/note"
}

/// `hello` (0x0010), proto "Handshake": the initiator's identity and ephemeral key.
public struct Hello: WireMessage {
    public static let type = MessageType.hello
    public var protocolVersion: UInt16
    public var features: FeatureBits
    public var chainID: Digest32
    public var identity: SigningPublicKey
    public var ephemeralKey: [UInt8]

    public init(
        protocolVersion: UInt16, features: FeatureBits, chainID: Digest32, identity: SigningPublicKey,
        ephemeralKey: [UInt8]
    ) {
        precondition(ephemeralKey.count == KeyExchangeKeyPair.publicKeyByteCount)
        self.protocolVersion = protocolVersion
        self.features = features
        self.chainID = chainID
        self.identity = identity
        self.ephemeralKey = ephemeralKey
    }

    public init(decoding body: inout ByteBuffer) throws(WireError) {
        protocolVersion = try body.readInteger(field: "hello.protocol_version")
        features = try body.readFeatures(field: "hello.features")
        chainID = try body.readDigest(field: "hello.chain_id")
        identity = try body.readPublicKey(field: "hello.identity")
        ephemeralKey = try body.readFixedBytes(field: "hello.ephemeral_key", count: 32)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(protocolVersion, endianness: .big)
        buffer.writeFeatures(features)
        buffer.writeDigest(chainID)
        buffer.writePublicKey(identity)
        buffer.writeBytes(ephemeralKey)
    }
}

/// `hello_reply` (0x0012), proto "Handshake": the responder's identity, ephemeral key, and its
/// signature over the transcript so far.
public struct HelloReply: WireMessage {
    public static let type = MessageType.helloReply
    public var protocolVersion: UInt16
    public var features: FeatureBits
    public var identity: SigningPublicKey
    public var ephemeralKey: [UInt8]
    public var signature: Signature

    public init(
        protocolVersion: UInt16, features: FeatureBits, identity: SigningPublicKey, ephemeralKey: [UInt8],
        signature: Signature
    ) {
        precondition(ephemeralKey.count == KeyExchangeKeyPair.publicKeyByteCount)
        self.protocolVersion = protocolVersion
        self.features = features
        self.identity = identity
        self.ephemeralKey = ephemeralKey
        self.signature = signature
    }

    public init(decoding body: inout ByteBuffer) throws(WireError) {
        protocolVersion = try body.readInteger(field: "hello_reply.protocol_version")
        features = try body.readFeatures(field: "hello_reply.features")
        identity = try body.readPublicKey(field: "hello_reply.identity")
        ephemeralKey = try body.readFixedBytes(field: "hello_reply.ephemeral_key", count: 32)
        signature = try body.readSignature(field: "hello_reply.signature")
    }

    public func encode(into buffer: inout ByteBuffer) {
        encodeUnsigned(into: &buffer)
        buffer.writeSignature(signature)
    }

    /// Every field but the signature: what enters the responder's transcript hash.
    public func encodeUnsigned(into buffer: inout ByteBuffer) {
        buffer.writeInteger(protocolVersion, endianness: .big)
        buffer.writeFeatures(features)
        buffer.writePublicKey(identity)
        buffer.writeBytes(ephemeralKey)
    }
}

/// `hello_finish` (0x0014), proto "Handshake": the initiator's signature over the whole transcript.
public struct HelloFinish: WireMessage {
    public static let type = MessageType.helloFinish
    public var signature: Signature

    public init(signature: Signature) { self.signature = signature }

    public init(decoding body: inout ByteBuffer) throws(WireError) {
        signature = try body.readSignature(field: "hello_finish.signature")
    }

    public func encode(into buffer: inout ByteBuffer) { buffer.writeSignature(signature) }
}

/// `error` (0x0020) and `warning` (0x0021), proto "Errors": a code and a human-readable reason.
/// After an error the sender closes the session; a warning leaves it open.
public struct ErrorReport: Equatable, Sendable {
    public var code: ErrorCode
    public var text: String

    public init(code: ErrorCode, text: String) {
        self.code = code
        // Reasons are truncated on a character boundary rather than refused: an error must always be sendable.
        var bytes = 0
        self.text = String(
            text.prefix {
                bytes += $0.utf8.count
                return bytes <= WireLimits.errorTextBytesMax
            })
    }

    init(decoding body: inout ByteBuffer, field: String) throws(WireError) {
        code = ErrorCode(rawValue: try body.readInteger(field: "\(field).code"))
        text = try body.readText(field: "\(field).text", maximum: WireLimits.errorTextBytesMax)
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(code.rawValue, endianness: .big)
        buffer.writeText(text, maximum: WireLimits.errorTextBytesMax)
    }
}

/// `ping` (0x0022), proto "Keepalive": answered by a `pong` with the same nonce; the padding lets a
/// peer probe a path with bigger packets and is ignored.
public struct Ping: WireMessage {
    public static let type = MessageType.ping
    public var nonce: UInt64
    public var padding: [UInt8]

    public init(nonce: UInt64, padding: [UInt8] = []) {
        self.nonce = nonce
        self.padding = padding
    }

    public init(decoding body: inout ByteBuffer) throws(WireError) {
        nonce = try body.readInteger(field: "ping.nonce")
        padding = try body.readVariableBytes(field: "ping.padding", maximum: WireLimits.pingPaddingBytesMax)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(nonce, endianness: .big)
        buffer.writeVariableBytes(padding, maximum: WireLimits.pingPaddingBytesMax)
    }
}

/// `pong` (0x0023), proto "Keepalive".
public struct Pong: WireMessage {
    public static let type = MessageType.pong
    public var nonce: UInt64

    public init(nonce: UInt64) { self.nonce = nonce }

    public init(decoding body: inout ByteBuffer) throws(WireError) {
        nonce = try body.readInteger(field: "pong.nonce")
    }

    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(nonce, endianness: .big) }
}

/// `signed_note` (0x0030), proto "Signed notes": an application message signed by its author,
/// verifiable offline by anyone who knows the chain id. The demo, the tests and the session
/// benchmark exchange these; a reply names the hash of the note it answers.
public struct SignedNote: WireMessage {
    public static let type = MessageType.signedNote
    public var author: SigningPublicKey
    public var number: UInt64
    public var inReplyTo: Digest32
    public var body: [UInt8]
    public var signature: Signature

    public init(author: SigningPublicKey, number: UInt64, inReplyTo: Digest32, body: [UInt8], signature: Signature) {
        self.author = author
        self.number = number
        self.inReplyTo = inReplyTo
        self.body = body
        self.signature = signature
    }

    /// Builds and signs a note with `keyPair`.
    public init(
        signedBy keyPair: SigningKeyPair, chainID: Digest32, number: UInt64, inReplyTo: Digest32 = .zero, body: [UInt8]
    ) {
        precondition(body.count <= WireLimits.noteBodyBytesMax)
        self.author = keyPair.publicKey
        self.number = number
        self.inReplyTo = inReplyTo
        self.body = body
        self.signature = keyPair.sign(
            Self.unsignedBytes(author: author, number: number, inReplyTo: inReplyTo, body: body),
            domain: Self.domain(chainID))
    }

    public init(decoding body: inout ByteBuffer) throws(WireError) {
        author = try body.readPublicKey(field: "signed_note.author")
        number = try body.readInteger(field: "signed_note.number")
        inReplyTo = try body.readDigest(field: "signed_note.in_reply_to")
        self.body = try body.readVariableBytes(field: "signed_note.body", maximum: WireLimits.noteBodyBytesMax)
        signature = try body.readSignature(field: "signed_note.signature")
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writePublicKey(author)
        buffer.writeInteger(number, endianness: .big)
        buffer.writeDigest(inReplyTo)
        buffer.writeVariableBytes(body, maximum: WireLimits.noteBodyBytesMax)
        buffer.writeSignature(signature)
    }

    public static func domain(_ chainID: Digest32) -> SignatureDomain {
        SignatureDomain(tag: SignatureTag.note, chainID: chainID)
    }

    /// The signed payload: every field before the signature, encoded as on the wire.
    static func unsignedBytes(author: SigningPublicKey, number: UInt64, inReplyTo: Digest32, body: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(32 + 8 + 32 + 2 + body.count)
        buffer.writePublicKey(author)
        buffer.writeInteger(number, endianness: .big)
        buffer.writeDigest(inReplyTo)
        buffer.writeVariableBytes(body, maximum: WireLimits.noteBodyBytesMax)
        return Array(buffer.readableBytesView)
    }

    public func hasValidSignature(chainID: Digest32) -> Bool {
        author.isValidSignature(
            signature, for: Self.unsignedBytes(author: author, number: number, inReplyTo: inReplyTo, body: body),
            domain: Self.domain(chainID))
    }

    /// BLAKE2b-256 of the note's frame (`u16 type | body`): what a reply's `in_reply_to` names.
    public var hash: Digest32 {
        var buffer = ByteBuffer()
        Message.signedNote(self).encodeFrame(into: &buffer)
        return Blake2b.hash256(Array(buffer.readableBytesView))
    }
}

/// Every message this implementation understands, plus the optional ones it does not.
public enum Message: Equatable, Sendable {
    case hello(Hello)
    case helloReply(HelloReply)
    case helloFinish(HelloFinish)
    case error(ErrorReport)
    case warning(ErrorReport)
    case ping(Ping)
    case pong(Pong)
    case signedNote(SignedNote)
    /// Requests to the arbiter, its answers and its events (types 0x0100–0x03FF).
    case arbiter(ArbiterMessage)
    /// Requests to the exchange peer and its answers (types 0x0600–0x07FF).
    case exchange(ExchangeMessage)
    /// Between a lessor and a lessee (types 0x0400–0x05FF).
    case lease(LeaseMessage)
    /// An odd type this implementation does not know: decoded only so it can be ignored.
    case ignored(MessageType)

    public var type: MessageType {
        switch self {
        case .hello: return .hello
        case .helloReply: return .helloReply
        case .helloFinish: return .helloFinish
        case .error: return .error
        case .warning: return .warning
        case .ping: return .ping
        case .pong: return .pong
        case .signedNote: return .signedNote
        case .arbiter(let message): return message.type
        case .exchange(let message): return message.type
        case .lease(let message): return message.type
        case .ignored(let type): return type
        }
    }

    /// Decodes a frame body of the given type. The whole body must be consumed, and the message
    /// must re-encode to exactly the same bytes: the one-canonical-encoding rule, checked
    /// generically so no field type can slip through.
    public static func decode(type: MessageType, body: ByteBuffer) throws(WireError) -> Message {
        var reader = body
        let message: Message
        switch type {
        case .hello: message = .hello(try Hello(decoding: &reader))
        case .helloReply: message = .helloReply(try HelloReply(decoding: &reader))
        case .helloFinish: message = .helloFinish(try HelloFinish(decoding: &reader))
        case .error: message = .error(try ErrorReport(decoding: &reader, field: "error"))
        case .warning: message = .warning(try ErrorReport(decoding: &reader, field: "warning"))
        case .ping: message = .ping(try Ping(decoding: &reader))
        case .pong: message = .pong(try Pong(decoding: &reader))
        case .signedNote: message = .signedNote(try SignedNote(decoding: &reader))
        default:
            if let arbiter = try ArbiterMessage.decode(type: type, body: &reader) {
                message = .arbiter(arbiter)
                break
            }
            if let exchange = try ExchangeMessage.decode(type: type, body: &reader) {
                message = .exchange(exchange)
                break
            }
            if let lease = try LeaseMessage.decode(type: type, body: &reader) {
                message = .lease(lease)
                break
            }
            guard !type.isRequired else { throw .unknownRequiredType(type.rawValue) }
            return .ignored(type)
        }
        guard reader.readableBytes == 0 else { throw .trailingBytes(message: "\(type)", count: reader.readableBytes) }
        var again = ByteBuffer()
        message.encodeBody(into: &again)
        guard again == body else { throw .nonCanonical(field: "\(type)", reason: "re-encodes differently") }
        return message
    }

    /// Decodes a whole frame: `u16 type | body`.
    public static func decode(frame: ByteBuffer) throws(WireError) -> Message {
        var frame = frame
        guard frame.readableBytes <= WireLimits.frameBytesMax else {
            throw .recordTooLarge(length: frame.readableBytes, maximum: WireLimits.frameBytesMax)
        }
        let type = MessageType(rawValue: try frame.readInteger(field: "frame type"))
        return try decode(type: type, body: frame)
    }

    public func encodeBody(into buffer: inout ByteBuffer) {
        switch self {
        case .hello(let m): m.encode(into: &buffer)
        case .helloReply(let m): m.encode(into: &buffer)
        case .helloFinish(let m): m.encode(into: &buffer)
        case .error(let m), .warning(let m): m.encode(into: &buffer)
        case .ping(let m): m.encode(into: &buffer)
        case .pong(let m): m.encode(into: &buffer)
        case .signedNote(let m): m.encode(into: &buffer)
        case .arbiter(let m): m.encode(into: &buffer)
        case .exchange(let m): m.encode(into: &buffer)
        case .lease(let m): m.encode(into: &buffer)
        case .ignored: preconditionFailure("an ignored message has no body to send")
        }
    }

    /// Writes `u16 type | body`.
    public func encodeFrame(into buffer: inout ByteBuffer) {
        buffer.writeInteger(type.rawValue, endianness: .big)
        encodeBody(into: &buffer)
    }

    public func frameBytes() -> [UInt8] {
        var buffer = ByteBuffer()
        encodeFrame(into: &buffer)
        return Array(buffer.readableBytesView)
    }
}
