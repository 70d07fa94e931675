import NIOCore
import RWACrypto
import RWASession
import RWAWire

/// The session layer's pure parts under arbitrary input: the handshake state machine (a real
/// handshake whose messages the input may corrupt or replace), the UDP reliable-delivery
/// receiver and the UDP replay window (packet sequences the input chooses).
public enum SessionChecks {
    static let chain = Blake2b.hash256(Array("rwanet fuzz chain".utf8))
    static let initiatorKey = try! SigningKeyPair(seed: [UInt8](repeating: 0x11, count: 32))
    static let responderKey = try! SigningKeyPair(seed: [UInt8](repeating: 0x22, count: 32))
    static let initiatorEphemeral = try! KeyExchangeKeyPair(seed: [UInt8](repeating: 0x33, count: 32))
    static let responderEphemeral = try! KeyExchangeKeyPair(seed: [UInt8](repeating: 0x44, count: 32))

    public static func check(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        switch input.choice(3) {
        case 0: checkHandshake(&input)
        case 1: checkReliableReceiver(&input)
        default: checkReplayWindow(&input)
        }
    }

    /// Each message of a real handshake is delivered as it is, with one bit flipped, or replaced
    /// by a frame from the input. Whatever happens, a side that establishes has authenticated
    /// the real other party, and when both establish they agree on the transcript.
    static func checkHandshake(_ input: inout FuzzInput) {
        var initiator = HandshakeStateMachine(
            initiator: HandshakeConfiguration(identity: initiatorKey, chainID: chain), ephemeral: initiatorEphemeral)
        var responder = HandshakeStateMachine(
            responder: HandshakeConfiguration(identity: responderKey, chainID: chain), ephemeral: responderEphemeral)
        var toResponder: Message? = initiator.start()
        var toInitiator: Message?
        var initiatorSession: EstablishedSession?
        var responderSession: EstablishedSession?
        func tamper(_ message: Message, _ input: inout FuzzInput) -> Message? {
            var frame = message.frameBytes()
            switch input.choice(4) {
            case 0, 1:
                return message
            case 2:
                let bit = Int(input.u16()) % (frame.count * 8)
                frame[bit / 8] ^= 1 << (bit % 8)
            default:
                frame = input.take(Int(input.byte()))
            }
            return try? Message.decode(frame: ByteBuffer(bytes: frame))
        }
        for _ in 0..<4 {
            if let message = toResponder.flatMap({ tamper($0, &input) }) {
                toResponder = nil
                switch try? responder.receive(message) {
                case .send(let reply): toInitiator = reply
                case .establish(let session): responderSession = session
                case .sendAndEstablish, nil: break
                }
            }
            if let message = toInitiator.flatMap({ tamper($0, &input) }) {
                toInitiator = nil
                switch try? initiator.receive(message) {
                case .sendAndEstablish(let finish, let session):
                    initiatorSession = session
                    toResponder = finish
                case .send, .establish, nil: break
                }
            }
        }
        if let session = initiatorSession, session.peerIdentity != responderKey.publicKey {
            violated("the initiator established with \(session.peerIdentity)")
        }
        if let session = responderSession, session.peerIdentity != initiatorKey.publicKey {
            violated("the responder established with \(session.peerIdentity)")
        }
        if let initiatorSession, let responderSession,
            initiatorSession.transcriptHash != responderSession.transcriptHash
        {
            violated("both sides established on different transcripts")
        }
    }

    /// Frames arrive in the order the input says (ahead, behind, repeated, far beyond the
    /// window); what the receiver delivers is every sequence number exactly once, in order, and
    /// it never holds more than its window.
    static func checkReliableReceiver(_ input: inout FuzzInput) {
        let window = 1 + input.choice(64)
        var receiver = ReliableReceiver(windowFrames: window)
        var delivered: UInt64 = 0
        while !input.isExhausted {
            let sequence: UInt64
            switch input.choice(4) {
            case 0: sequence = receiver.nextExpected
            case 1: sequence = receiver.nextExpected &+ UInt64(input.byte())
            case 2: sequence = receiver.nextExpected &- UInt64(input.byte())
            default: sequence = input.u64()
            }
            var frame = ByteBuffer()
            frame.writeInteger(sequence)
            let outcome = receiver.receive(sequence: sequence, frame: frame)
            if case .deliver(let frames) = outcome {
                for var frame in frames {
                    guard frame.readInteger(as: UInt64.self) == delivered else {
                        violated("delivered out of order or twice: expected \(delivered)")
                    }
                    delivered += 1
                }
            }
            if case .beyondWindow = outcome, sequence >= receiver.nextExpected,
                sequence - receiver.nextExpected < UInt64(window)
            {
                violated("a frame inside the window was refused")
            }
            guard receiver.nextExpected == delivered else { violated("next expected drifted from what was delivered") }
            guard receiver.bufferedSlots <= window else {
                violated("\(receiver.bufferedSlots) slots for a window of \(window)")
            }
            _ = receiver.acknowledgeAtOnce(after: outcome)
        }
    }

    /// Packet numbers in the order the input says: a number is accepted (`fresh`) at most once,
    /// and one the window still covers is never refused as too old.
    static func checkReplayWindow(_ input: inout FuzzInput) {
        var window = ReplayWindow()
        var accepted: Set<UInt64> = []
        var highest: UInt64?
        while !input.isExhausted {
            let base = highest ?? 0
            let number: UInt64
            switch input.choice(3) {
            case 0: number = base &+ UInt64(input.byte())
            case 1: number = base &- UInt64(input.byte())
            default: number = input.u64()
            }
            switch window.check(number) {
            case .fresh:
                guard !accepted.contains(number) else { violated("packet \(number) accepted twice") }
                accepted.insert(number)
                window.record(number)
                highest = max(highest ?? number, number)
            case .duplicate:
                guard accepted.contains(number) else { violated("packet \(number) called a duplicate, never seen") }
            case .tooOld:
                guard let highest, highest - number >= ReplayWindow.widthPackets else {
                    violated("packet \(number) called too old inside the window")
                }
            }
        }
    }
}
