import Foundation
import NIOConcurrencyHelpers
import RWAChannel
import RWACrypto
import RWALeaseDaemon
import RWANode
import RWASim
import RWAWire

#if canImport(Glibc)
    import Glibc
#endif

/// rwa-fuzz as a lessor that `rwa-lessee` dials. A lessee dials out, so the fuzzer listens and has
/// the lessee ask it for offers and leases through the lessee's control socket; each session the
/// lessee opens gets hostile answers (none, late, forged, for other requests, spoiled frames,
/// valid opens the ledger then refuses) and unsolicited channel messages and floods.
///
/// What must hold: every control request is answered within the lessee's answer bound
/// (`LeaseService.peerAnswerMillisecondsMax`) and a margin; no channel with the hostile lessor
/// is left at the lessee; once the attack ends the lessee stops dialling it (it has no channel
/// there); and the lessee lives, with its memory under the bound.
final class HostileLessor: @unchecked Sendable {
    let host: String
    let control: String
    let chainID: Digest32
    let frameBudget: Int
    let deadline: Date
    let identity = SigningKeyPair.generate()
    let listener: RawListener
    private let state: NIOLockedValueBox<Counters>
    /// How long past the lessee's own bound a control request may take before it is a finding.
    static let answerMarginMilliseconds = 5_000.0

    struct Counters {
        var random: SeededGenerator
        var framesSent = 0
        var sessionsAccepted = 0
        var sessionsClosedByDaemon = 0
        var asks = 0
        var askAnswers: [String: Int] = [:]
        var slowestAskMilliseconds = 0.0
        var findings: [String] = []
        var running = true
        var askersRunning = 0
        var flood: Pressure?
    }

    init(host: String, port: Int, control: String, chainID: Digest32, seed: UInt64, frameBudget: Int, deadline: Date)
        throws
    {
        self.host = host
        self.control = control
        self.chainID = chainID
        self.frameBudget = frameBudget
        self.deadline = deadline
        listener = try RawListener(host: host, port: port)
        state = NIOLockedValueBox(Counters(random: SeededGenerator(seed: seed)))
    }

    var framesSent: Int { state.withLockedValue { $0.framesSent } }
    var sessionsAccepted: Int { state.withLockedValue { $0.sessionsAccepted } }
    var sessionsClosedByDaemon: Int { state.withLockedValue { $0.sessionsClosedByDaemon } }
    var findings: [String] { state.withLockedValue { $0.findings } }
    var asks: Int { state.withLockedValue { $0.asks } }
    var askAnswers: [String: Int] { state.withLockedValue { $0.askAnswers } }
    var slowestAskMilliseconds: Double { state.withLockedValue { $0.slowestAskMilliseconds } }
    private var running: Bool { state.withLockedValue { $0.running } }
    var exhausted: Bool { framesSent >= frameBudget || Date() >= deadline }

    private func number(_ range: ClosedRange<Int>) -> Int {
        state.withLockedValue { Int.random(in: range, using: &$0.random) }
    }

    private func bytes(_ count: Int) -> [UInt8] {
        state.withLockedValue { counters in (0..<count).map { _ in UInt8.random(in: 0...255, using: &counters.random) }
        }
    }

    private func finding(_ text: String) { state.withLockedValue { $0.findings.append(text) } }

    // MARK: Running

    /// Two askers keep the lessee dialling while the listener serves each session it opens,
    /// until the frame budget or the time is spent.
    func run() {
        for index in 0..<2 {
            startAsker { [self] round in
                guard running && !exhausted else { return nil }
                return (round + index) % 3 == 0 ? "offers" : "open"
            }
        }
        serve(until: { [self] in exhausted })
        stopAskers()
    }

    /// A thread asking the lessee what `next` says (given the round) until it says nil.
    private func startAsker(_ next: @escaping @Sendable (Int) -> String?) {
        state.withLockedValue { $0.askersRunning += 1 }
        Thread { [self] in
            var round = 0
            while let command = next(round) {
                ask(command)
                round += 1
            }
            state.withLockedValue { $0.askersRunning -= 1 }
        }.start()
    }

    /// Waits for the askers' last asks to end (each within the lessee's bound), then closes the
    /// connections the lessee made for them that nobody served, so that none of them is taken
    /// for a dial after the attack.
    private func stopAskers() {
        state.withLockedValue { $0.running = false }
        let deadline = Date().addingTimeInterval(
            Double(LeaseService.peerAnswerMillisecondsMax) / 1000 + Self.answerMarginMilliseconds / 1000)
        while state.withLockedValue({ $0.askersRunning }) > 0 && Date() < deadline {
            if let connection = listener.accept(timeoutMilliseconds: 10) { connection.close() }
        }
        while let connection = listener.accept(timeoutMilliseconds: 0) { connection.close() }
    }

    /// Floods of one kind (`unread` or `forged`; the others need a listening daemon) on every
    /// session the lessee opens, for `seconds`.
    func apply(_ pressure: Pressure, seconds: Int) {
        let until = Date().addingTimeInterval(Double(seconds))
        state.withLockedValue {
            $0.flood = pressure
            $0.running = true
        }
        startAsker { [self] _ in running && Date() < until ? "offers" : nil }
        serve(until: { Date() >= until })
        state.withLockedValue { $0.flood = nil }
        stopAskers()
    }

    /// Accepts the lessee's sessions and serves each on a thread of its own (at most 8 at once).
    private func serve(until done: @escaping @Sendable () -> Bool) {
        let active = NIOLockedValueBox(0)
        while !done() {
            guard let connection = listener.accept(timeoutMilliseconds: 100) else { continue }
            guard active.withLockedValue({ $0 }) < 8 else {
                connection.close()
                continue
            }
            active.withLockedValue { $0 += 1 }
            Thread { [self] in
                defer { active.withLockedValue { $0 -= 1 } }
                do {
                    let session = try RawSession(accepting: connection, identity: identity, chainID: chainID)
                    state.withLockedValue { $0.sessionsAccepted += 1 }
                    answer(on: session, until: done)
                    session.close()
                } catch {
                    connection.close()
                }
            }.start()
        }
        let deadline = Date().addingTimeInterval(3)
        while active.withLockedValue({ $0 }) > 0 && Date() < deadline { usleep(10_000) }
    }

    /// After the attack: a lessee with no channel here must not dial again.
    func checkNoRedial(seconds: Double) {
        let until = Date().addingTimeInterval(seconds)
        while Date() < until {
            if let connection = listener.accept(timeoutMilliseconds: 100) {
                connection.close()
                finding("the lessee dialled the hostile lessor again after the attack, with no channel there")
                return
            }
        }
    }

    // MARK: The lessee's control socket

    /// Asks the lessee, through its control socket, for this lessor's offers or a lease with it;
    /// the answer must come within the lessee's bound.
    private func ask(_ command: String) {
        var request: [String: Any] = [
            "command": command, "lessor": "\(host):\(listener.port)", "lessor_key": "\(identity.publicKey)",
        ]
        if command == "open" {
            // Terms the lessee finds valid (the deposit within the price at any rate), but for one
            // ask in eight with any numbers at all.
            let start = (UInt64(Date().timeIntervalSince1970) / 3_600 + UInt64(number(1...24))) * 3_600
            let (slices, hours, rate) = (number(1...8), number(1...4), number(0...100))
            var deposit = slices * hours * max(rate, 1)
            var increment = max(1, deposit / number(1...4))
            if number(0...7) == 0 { (deposit, increment) = (number(0...10_000), number(0...100)) }
            request.merge(
                [
                    "licence": "\(number(1...4))", "first_slice": "\(number(0...90))", "slice_count": "\(slices)",
                    "start_seconds": "\(start)", "hours": "\(hours)", "rate": rate == 0 ? "offer" : "\(rate)",
                    "deposit": "\(deposit)", "increment": "\(increment)", "challenge_ms": "60000",
                    "nonce": "\(number(1...1_000_000))",
                ], uniquingKeysWith: { $1 })
        }
        let started = Date()
        var outcome: String
        do {
            let client = try ControlClient(path: control)
            try client.send(request)
            if let answer = try client.receive() {
                outcome = answer["ok"] as? Bool == true ? "ok" : (answer["code"] as? String ?? "failed")
            } else {
                outcome = "hung up"
            }
        } catch {
            outcome = "control socket: \(error)"
        }
        let milliseconds = Date().timeIntervalSince(started) * 1000
        let bound = Double(LeaseService.peerAnswerMillisecondsMax) + Self.answerMarginMilliseconds
        state.withLockedValue {
            $0.asks += 1
            $0.askAnswers[outcome, default: 0] += 1
            $0.slowestAskMilliseconds = max($0.slowestAskMilliseconds, milliseconds)
            if milliseconds > bound {
                $0.findings.append(String(format: "the lessee answered `%@` after %.0f ms", command, milliseconds))
            }
        }
        if outcome == "hung up" || outcome.hasPrefix("control socket") {
            finding("`\(command)` on the lessee's control socket: \(outcome)")
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    // MARK: One session the lessee opened

    private func send(_ frame: [UInt8], on session: RawSession) -> Bool {
        state.withLockedValue { $0.framesSent += 1 }
        if session.send(frame: frame) { return true }
        state.withLockedValue { $0.sessionsClosedByDaemon += 1 }
        return false
    }

    /// Answers the lessee's requests on `session` one hostile way or another, with unsolicited
    /// frames between them, until the lessee closes it, the fuzzer does, or `done`.
    private func answer(on session: RawSession, until done: () -> Bool) {
        let lessee = session.peerIdentity
        let length = number(20...300)
        var sent = 0
        while sent < length && !done() && !exhausted {
            if let flood = state.withLockedValue({ $0.flood }) {
                // Requests or forged updates as fast as the lessee takes them, answers unread.
                let frame =
                    flood == .unread
                    ? Message.lease(.getOffers(requestID: UInt64(sent))).frameBytes()
                    : Message.lease(.update(requestID: UInt64(sent), state: randomState(), signature: forged()))
                        .frameBytes()
                guard send(frame, on: session) else { return }
                sent = 0  // a flood lasts as long as the pressure
                continue
            }
            switch session.receive(waitingMilliseconds: 20) {
            case .closed:
                state.withLockedValue { $0.sessionsClosedByDaemon += 1 }
                return
            case .nothing:
                sent += 1
                guard send(unsolicited(lessee), on: session) else { return }
            case .message(.lease(let request)):
                sent += 1
                guard let reaction = reaction(to: request, lessee: lessee) else { continue }
                if reaction.isEmpty { return }  // hang up mid-request
                guard send(reaction, on: session) else { return }
            case .message:
                sent += 1
            }
        }
    }

    /// One answer to a lessee's request: nil for none, [] to hang up.
    private func reaction(to request: LeaseMessage, lessee: SigningPublicKey) -> [UInt8]? {
        let answer: LeaseMessage
        switch request {
        case .getOffers(let requestID):
            switch number(0...5) {
            case 0: return nil
            case 1: return []
            case 2: answer = .offers(requestID: requestID &+ 1, offers: [], taken: [])  // another request's
            default:
                answer = .offers(
                    requestID: requestID,
                    offers: (0..<number(0...WireLimits.leaseOffersMax)).map { _ in
                        LeaseOffer(
                            licence: UInt64(number(1...4)), firstSlice: UInt8(number(0...50)),
                            sliceCount: UInt8(number(1...50)), ratePerSliceHour: UInt128(number(1...1_000)),
                            maxHours: UInt32(number(1...100)))
                    },
                    taken: (0..<number(0...WireLimits.leaseTakenMax)).map { _ in
                        LeasedRange(
                            licence: UInt64(number(1...4)), firstSlice: UInt8(number(0...50)),
                            sliceCount: UInt8(number(1...50)), startSeconds: UInt64(number(0...Int(UInt32.max))),
                            hours: UInt32(number(1...100)))
                    })
            }
        case .openRequest(let requestID, let terms, _):
            switch number(0...6) {
            case 0: return nil
            case 1: return []
            case 2:  // a forged acceptance
                answer = .openAccept(requestID: requestID, channelID: terms.channelID, lessorSignature: forged())
            case 3:  // an acceptance of another channel
                answer = .openAccept(requestID: requestID, channelID: randomDigest(), lessorSignature: forged())
            case 4:
                answer = .openRefused(
                    requestID: requestID, channelID: terms.channelID,
                    code: ErrorCode(rawValue: UInt16(number(0...0xFFFF))),
                    reason: String(repeating: "x", count: number(0...200)))
            default:
                // A real acceptance: the lessee submits the open, and the ledger refuses it (this
                // lessor is nobody's licence holder), after which the lessee must forget it.
                guard
                    case .success(let accepted) = LeaseChannel.answerOpen(
                        request, lessor: identity, offer: { _ in nil })
                else { return nil }
                answer = accepted.answer
            }
        default:
            answer = .updateRefused(
                requestID: request.requestID, channelID: randomDigest(), nonce: 0, code: .unknownChannel, reason: "")
        }
        return number(0...4) == 0 ? spoiled(Message.lease(answer).frameBytes()) : Message.lease(answer).frameBytes()
    }

    /// A channel message nobody asked for, or another family's.
    private func unsolicited(_ lessee: SigningPublicKey) -> [UInt8] {
        let message: Message
        switch number(0...7) {
        case 0: message = .lease(.update(requestID: 1, state: randomState(), signature: forged()))
        case 1:
            message = .lease(.countersign(requestID: 1, channelID: randomDigest(), nonce: 1, signature: forged()))
        case 2: message = .lease(.reestablish(requestID: 1, channelID: randomDigest(), nonce: UInt64(number(0...9))))
        case 3:
            message = .lease(
                .latestState(
                    requestID: 1,
                    state: CoSignedState(state: randomState(), lessorSignature: forged(), lesseeSignature: forged())))
        case 4: message = .lease(.getOffers(requestID: UInt64(number(0...1_000))))
        case 5: message = .arbiter(.getStatus(requestID: 1))
        default: return spoiled(Message.lease(.getOffers(requestID: 9)).frameBytes())
        }
        return message.frameBytes()
    }

    private func spoiled(_ frame: [UInt8]) -> [UInt8] {
        state.withLockedValue { spoil(frame, using: &$0.random) }
    }

    private func randomDigest() -> Digest32 { try! Digest32(bytes: bytes(32)) }
    private func forged() -> Signature { try! Signature(bytes: bytes(64)) }
    private func randomState() -> ChannelState {
        ChannelState(
            channelID: randomDigest(), nonce: UInt64(number(0...100)), paid: UInt128(number(0...1_000_000)),
            paidThroughSeconds: UInt64(number(0...Int(UInt32.max))), final: number(0...3) == 0)
    }
}
