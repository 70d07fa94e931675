import NIOCore
import RWACrypto
import RWAWire

/// Why a handshake or an established session failed, with the code sent to the peer.
public struct SessionError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var reason: String
    /// True when the peer sent us this error; false when we detected it.
    public var fromPeer: Bool

    public init(_ code: ErrorCode, _ reason: String, fromPeer: Bool = false) {
        self.code = code
        self.reason = reason
        self.fromPeer = fromPeer
    }

    public init(_ wire: WireError) { self.init(wire.code, wire.description) }

    public var description: String { "\(fromPeer ? "peer reported " : "")\(code): \(reason)" }
}

/// What both sides share once the handshake is done.
public struct EstablishedSession: Sendable {
    public let peerIdentity: SigningPublicKey
    public let peerFeatures: FeatureBits
    /// The version both sides speak: the lower of the two highest versions, if both support it.
    public let protocolVersion: UInt16
    public let transcriptHash: Digest32
    public let sendKey: AEADKey
    public let receiveKey: AEADKey
    /// The initiator's ephemeral key identifies the session in the debug key log.
    public let initiatorEphemeralKey: [UInt8]
    public let isInitiator: Bool
}

/// Settings both handshake roles need.
public struct HandshakeConfiguration: Sendable {
    public var identity: SigningKeyPair
    public var chainID: Digest32
    public var features: FeatureBits
    /// Feature bits this implementation understands; an unknown even bit from the peer is fatal.
    public var knownFeatures: Set<Int>
    /// When set, the peer must prove this identity (a dialer pinning whom it calls).
    public var expectedPeer: SigningPublicKey?

    public init(
        identity: SigningKeyPair, chainID: Digest32, features: FeatureBits = FeatureBits(),
        knownFeatures: Set<Int> = [], expectedPeer: SigningPublicKey? = nil
    ) {
        self.identity = identity
        self.chainID = chainID
        self.features = features
        self.knownFeatures = knownFeatures
        self.expectedPeer = expectedPeer
    }
}

/// The three-message authenticated key exchange of proto/README.md ("Handshake"), as a pure state
/// machine: frames in, frames out, no I/O and no randomness (the ephemeral key is handed in).
///
///     initiator → hello        (version, features, chain id, identity, ephemeral key)
///     responder → hello_reply  (version, features, identity, ephemeral key,
///                               sig_R over H(hello frame | hello_reply frame without signature))
///     initiator → hello_finish (sig_I over H(hello frame | hello_reply frame))
///
/// Session keys: libsodium `crypto_kx` over the ephemeral keys, each directional key then bound to
/// the transcript `H(hello frame | hello_reply frame)`.
public struct HandshakeStateMachine: Sendable {
    private enum State: Sendable {
        case initiatorIdle
        case initiatorAwaitingReply(helloFrame: [UInt8])
        case responderAwaitingHello
        case responderAwaitingFinish(transcriptHash: Digest32, pending: EstablishedSession)
        case established
        case failed
    }

    private var state: State
    private let configuration: HandshakeConfiguration
    private let ephemeral: KeyExchangeKeyPair

    public init(initiator configuration: HandshakeConfiguration, ephemeral: KeyExchangeKeyPair) {
        self.configuration = configuration
        self.ephemeral = ephemeral
        self.state = .initiatorIdle
    }

    public init(responder configuration: HandshakeConfiguration, ephemeral: KeyExchangeKeyPair) {
        self.configuration = configuration
        self.ephemeral = ephemeral
        self.state = .responderAwaitingHello
    }

    /// The initiator's first frame.
    public mutating func start() -> Message {
        guard case .initiatorIdle = state else { preconditionFailure("start() is for an idle initiator") }
        let hello = Message.hello(
            Hello(
                protocolVersion: ProtocolVersion.current, features: configuration.features,
                chainID: configuration.chainID,
                identity: configuration.identity.publicKey, ephemeralKey: ephemeral.publicKey))
        state = .initiatorAwaitingReply(helloFrame: hello.frameBytes())
        return hello
    }

    /// What the machine wants done after a message.
    public enum Output: Sendable {
        /// Send this frame; the handshake goes on (responder after `hello`).
        case send(Message)
        /// Send this frame, then the session is established (initiator after `hello_reply`).
        case sendAndEstablish(Message, EstablishedSession)
        /// The session is established (responder after `hello_finish`).
        case establish(EstablishedSession)
    }

    public mutating func receive(_ message: Message) throws(SessionError) -> Output {
        do {
            return try receiveChecked(message)
        } catch {
            state = .failed
            throw error
        }
    }

    private mutating func receiveChecked(_ message: Message) throws(SessionError) -> Output {
        if case .error(let report) = message { throw SessionError(report.code, report.text, fromPeer: true) }
        switch (state, message) {
        case (.responderAwaitingHello, .hello(let hello)):
            return try receiveHello(hello, frame: message.frameBytes())
        case (.initiatorAwaitingReply(let helloFrame), .helloReply(let reply)):
            return try receiveReply(reply, helloFrame: helloFrame)
        case (.responderAwaitingFinish(let transcriptHash, let pending), .helloFinish(let finish)):
            let domain = SignatureDomain(tag: SignatureTag.handshakeInitiator, chainID: configuration.chainID)
            guard pending.peerIdentity.isValidSignature(finish.signature, for: transcriptHash.bytes, domain: domain)
            else {
                throw SessionError(.badSignature, "hello_finish signature does not verify for \(pending.peerIdentity)")
            }
            state = .established
            return .establish(pending)
        case (.initiatorIdle, _), (.initiatorAwaitingReply, _), (.responderAwaitingHello, _),
            (.responderAwaitingFinish, _):
            throw SessionError(.unexpectedMessage, "\(message.type) during the handshake")
        case (.established, _), (.failed, _):
            preconditionFailure("the handshake machine is done; the session handles further frames")
        }
    }

    private mutating func receiveHello(_ hello: Hello, frame helloFrame: [UInt8]) throws(SessionError) -> Output {
        // The initiator offers its highest version; the responder answers with the version both speak.
        let version = min(hello.protocolVersion, ProtocolVersion.current)
        try checkCommon(version: version, features: hello.features, identity: hello.identity)
        guard hello.chainID == configuration.chainID else {
            throw SessionError(.wrongChain, "peer is on chain \(hello.chainID), this node on \(configuration.chainID)")
        }
        var reply = HelloReply(
            protocolVersion: version, features: configuration.features,
            identity: configuration.identity.publicKey, ephemeralKey: ephemeral.publicKey,
            signature: try! Signature(bytes: [UInt8](repeating: 0, count: 64)))
        var unsigned = ByteBuffer()
        unsigned.writeInteger(MessageType.helloReply.rawValue, endianness: .big)
        reply.encodeUnsigned(into: &unsigned)
        let responderHash = Blake2b.hash256(parts: [helloFrame, Array(unsigned.readableBytesView)])
        reply.signature = configuration.identity.sign(
            responderHash.bytes,
            domain: SignatureDomain(tag: SignatureTag.handshakeResponder, chainID: configuration.chainID))
        let replyMessage = Message.helloReply(reply)
        let transcriptHash = Blake2b.hash256(parts: [helloFrame, replyMessage.frameBytes()])
        let session = try deriveSession(
            peerIdentity: hello.identity, peerFeatures: hello.features, protocolVersion: version,
            peerEphemeral: hello.ephemeralKey,
            transcriptHash: transcriptHash, initiatorEphemeral: hello.ephemeralKey, isInitiator: false)
        state = .responderAwaitingFinish(transcriptHash: transcriptHash, pending: session)
        return .send(replyMessage)
    }

    private mutating func receiveReply(_ reply: HelloReply, helloFrame: [UInt8]) throws(SessionError) -> Output {
        guard reply.protocolVersion <= ProtocolVersion.current else {
            throw SessionError(
                .unsupportedVersion,
                "responder chose version \(reply.protocolVersion), above the offered \(ProtocolVersion.current)")
        }
        try checkCommon(version: reply.protocolVersion, features: reply.features, identity: reply.identity)
        var unsigned = ByteBuffer()
        unsigned.writeInteger(MessageType.helloReply.rawValue, endianness: .big)
        reply.encodeUnsigned(into: &unsigned)
        let responderHash = Blake2b.hash256(parts: [helloFrame, Array(unsigned.readableBytesView)])
        guard
            reply.identity.isValidSignature(
                reply.signature, for: responderHash.bytes,
                domain: SignatureDomain(tag: SignatureTag.handshakeResponder, chainID: configuration.chainID))
        else {
            throw SessionError(.badSignature, "hello_reply signature does not verify for \(reply.identity)")
        }
        let transcriptHash = Blake2b.hash256(parts: [helloFrame, Message.helloReply(reply).frameBytes()])
        let session = try deriveSession(
            peerIdentity: reply.identity, peerFeatures: reply.features, protocolVersion: reply.protocolVersion,
            peerEphemeral: reply.ephemeralKey,
            transcriptHash: transcriptHash, initiatorEphemeral: ephemeral.publicKey, isInitiator: true)
        let finish = HelloFinish(
            signature: configuration.identity.sign(
                transcriptHash.bytes,
                domain: SignatureDomain(tag: SignatureTag.handshakeInitiator, chainID: configuration.chainID)))
        state = .established
        return .sendAndEstablish(.helloFinish(finish), session)
    }

    private func checkCommon(version: UInt16, features: FeatureBits, identity: SigningPublicKey) throws(SessionError) {
        guard ProtocolVersion.supported.contains(version) else {
            throw SessionError(
                .unsupportedVersion,
                "protocol version \(version) not supported (this node speaks \(ProtocolVersion.supported.sorted()))")
        }
        let unknown = features.unknownRequired(known: configuration.knownFeatures)
        guard unknown.isEmpty else {
            throw SessionError(.unknownRequiredFeature, "unknown required feature bits \(unknown)")
        }
        if let expected = configuration.expectedPeer, expected != identity {
            throw SessionError(.unexpectedPeer, "expected peer \(expected), got \(identity)")
        }
    }

    private func deriveSession(
        peerIdentity: SigningPublicKey, peerFeatures: FeatureBits, protocolVersion: UInt16, peerEphemeral: [UInt8],
        transcriptHash: Digest32, initiatorEphemeral: [UInt8], isInitiator: Bool
    ) throws(SessionError) -> EstablishedSession {
        let initiatorToResponder: SecretBytes
        let responderToInitiator: SecretBytes
        do {
            (initiatorToResponder, responderToInitiator) = try ephemeral.sharedKeys(
                peerPublicKey: peerEphemeral, asInitiator: isInitiator)
        } catch {
            throw SessionError(.malformedFrame, "ephemeral key rejected by the key exchange")
        }
        let i2r = AEADKey(deriving: initiatorToResponder, transcriptHash: transcriptHash)
        let r2i = AEADKey(deriving: responderToInitiator, transcriptHash: transcriptHash)
        return EstablishedSession(
            peerIdentity: peerIdentity, peerFeatures: peerFeatures, protocolVersion: protocolVersion,
            transcriptHash: transcriptHash,
            sendKey: isInitiator ? i2r : r2i, receiveKey: isInitiator ? r2i : i2r,
            initiatorEphemeralKey: initiatorEphemeral, isInitiator: isInitiator)
    }
}
