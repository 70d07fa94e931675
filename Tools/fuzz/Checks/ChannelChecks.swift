import NIOCore
import RWAChannel
import RWACrypto
import RWAWire

/// A lessor's and a lessee's `LeaseChannel` back to back, with the input as the network, the
/// disk and the clock: payments and final proposals, messages delivered, dropped, corrupted or
/// replayed, stores that finish (or not), ticks, new sessions and crash-restarts from the store.
/// Throughout, for each side: paid never falls and never exceeds the deposit, the nonce only
/// grows, a refused message changes nothing, and every state stored is co-signed. And while
/// every message delivered is one a side really sent, each exactly once (what the session layer
/// guarantees: its AEAD and counters stop corruption and replays), no two stored co-signed states
/// share a nonce. A corrupted or replayed message stands for a hostile peer: each honest side
/// must still keep its own invariants, but it may then hold a state the hostile side also signed
/// differently (found by this target: an honest lessee, its proposal "refused" after corruption,
/// signs the lessor's final state of the same nonce, and the replayed proposal is countersigned).
public enum ChannelChecks {
    static let lessorKey = try! SigningKeyPair(seed: [UInt8](repeating: 0x51, count: 32))
    static let lesseeKey = try! SigningKeyPair(seed: [UInt8](repeating: 0x52, count: 32))
    static let terms = LeaseTerms(
        chainID: Blake2b.hash256(Array("rwanet fuzz chain".utf8)), lessor: lessorKey.publicKey,
        lessee: lesseeKey.publicKey, licence: 1, firstSlice: 0, sliceCount: 1, startSeconds: 1_800_000_000,
        hours: 100, periodSeconds: 3_600, ratePerSliceHour: 10, deposit: 1_000, paymentIncrement: 10,
        challengePeriodMilliseconds: 60_000, nonce: 1)

    struct Side {
        var core: LeaseChannel
        /// The durable store: the latest state written.
        var stored: CoSignedState?
        /// Writes asked for and not finished, in order.
        var writing: [CoSignedState] = []
        /// Messages on their way to this side.
        var inbox: [LeaseMessage] = []
        var highestPaid: UInt128 = 0
        var highestNonce: UInt64 = 0
    }

    public static func check(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        var sides = [
            Side(core: LeaseChannel(role: .lessor, terms: terms, key: lessorKey, closeGraceSeconds: 600)),
            Side(core: LeaseChannel(role: .lessee, terms: terms, key: lesseeKey)),
        ]
        var history: [LeaseMessage] = []
        /// A corrupted or replayed message was delivered: the sides are no longer both honest.
        var hostile = false
        var coSigned: [UInt64: ChannelState] = [:]
        var now = terms.startSeconds - 3_600
        var steps = 0

        func perform(_ actions: [LeaseChannel.Action], by index: Int) {
            for action in actions {
                switch action {
                case .send(let message):
                    sides[1 - index].inbox.append(message)
                    history.append(message)
                case .persist(let state):
                    guard state.isValid(for: terms) else { violated("asked to store a state not co-signed") }
                    sides[index].writing.append(state)
                case .grant, .revoke, .settled, .refused, .rejectedPeer, .closeCooperatively, .register, .challenge:
                    break
                }
            }
        }

        while !input.isExhausted && steps < 64 {
            steps += 1
            trace("step \(steps): lessor \(sides[0].core.state.nonce) lessee \(sides[1].core.state.nonce)")
            let index = input.choice(2)
            switch input.choice(10) {
            case 0:
                perform(sides[1].core.pay(UInt128(input.byte()) * 5), by: 1)
            case 1:
                perform(sides[index].core.proposeFinal(), by: index)
            case 2, 3, 8:
                // Deliver the next message, a corrupted copy of it, or one from the past.
                var message: LeaseMessage?
                switch input.choice(3) {
                case 0 where !sides[index].inbox.isEmpty:
                    message = sides[index].inbox.removeFirst()
                case 1 where !sides[index].inbox.isEmpty:
                    var frame = Message.lease(sides[index].inbox[0]).frameBytes()
                    let bit = Int(input.u16()) % (frame.count * 8)
                    frame[bit / 8] ^= 1 << (bit % 8)
                    if case .lease(let corrupted)? = try? Message.decode(frame: ByteBuffer(bytes: frame)) {
                        message = corrupted
                        hostile = true
                    }
                case 2 where !history.isEmpty:
                    message = history[Int(input.u16()) % history.count]
                    hostile = true
                default:
                    break
                }
                guard let message else { break }
                let before = (sides[index].core.state, sides[index].core.proposal?.state)
                let actions = sides[index].core.receive(message)
                trace("side \(index) receives \(message) -> \(actions)")
                let refused = actions.contains { action in
                    if case .rejectedPeer = action { return true }
                    if case .send(.updateRefused) = action { return true }
                    return false
                }
                if refused && (sides[index].core.state != before.0 || sides[index].core.proposal?.state != before.1) {
                    violated("a refused \(message.type) changed the channel")
                }
                perform(actions, by: index)
            case 4:
                if !sides[index].inbox.isEmpty { sides[index].inbox.removeFirst() }
            case 5:
                // The oldest write finishes; the store, like the peer store, keeps only newer states.
                guard !sides[index].writing.isEmpty else { break }
                let state = sides[index].writing.removeFirst()
                guard state.state.nonce > sides[index].stored?.state.nonce ?? 0 else { break }
                // Two stored states of one nonce would leave a dispute without an answer. (A
                // state asked to be stored and lost in a crash was never countersigned: its
                // nonce may be used again.)
                if !hostile, let known = coSigned[state.state.nonce], known != state.state {
                    violated("two co-signed states of nonce \(state.state.nonce) were stored")
                }
                coSigned[state.state.nonce] = state.state
                sides[index].stored = state
                perform(sides[index].core.persisted(nonce: state.state.nonce), by: index)
            case 6:
                now += UInt64(input.byte()) * 60
                perform(sides[index].core.tick(nowSeconds: now), by: index)
            case 7:
                // A new session: what was in flight is lost; both say where they stand.
                sides[0].inbox = []
                sides[1].inbox = []
                perform(sides[0].core.reconnected(), by: 0)
                perform(sides[1].core.reconnected(), by: 1)
            default:
                // A crash: unfinished writes and the session are lost; the side restarts from its store.
                let role: LeaseRole = index == 0 ? .lessor : .lessee
                sides[index].core = LeaseChannel(
                    role: role, terms: terms, key: index == 0 ? lessorKey : lesseeKey, latest: sides[index].stored,
                    closeGraceSeconds: index == 0 ? 600 : 60)
                sides[index].writing = []
                sides[0].inbox = []
                sides[1].inbox = []
            }
            for index in sides.indices {
                let state = sides[index].core.state
                guard state.paid >= sides[index].highestPaid else { violated("paid fell to \(state.paid)") }
                guard state.paid <= terms.deposit else { violated("paid \(state.paid) exceeds the deposit") }
                guard state.nonce >= sides[index].highestNonce else { violated("the nonce fell to \(state.nonce)") }
                if state.nonce > 0, !hostile, coSigned[state.nonce] != state {
                    violated("side \(index) holds a state of nonce \(state.nonce) never co-signed")
                }
                sides[index].highestPaid = state.paid
                sides[index].highestNonce = state.nonce
            }
        }
    }
}
