// Tools/bench/session: handshakes per second, and sequential signed-message round trips per
// second over TCP and UDP on loopback, against the bare libsodium cost of the same work
// (2 signs + 2 verifies per round trip). Build and run in release:
//
//     swift run -c release bench-session [round trips, default 6000]
//
// The last line is one JSON object (see README, "Benchmarks").
import Foundation
import NIOCore
import NIOPosix
import RWACrypto
import RWANode
import RWASession
import RWAWire

let roundTrips = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 6_000 : 6_000
let handshakes = max(200, roundTrips / 10)
let chain = ChainIDs.devnet
let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
/// Where the two peers run. On one event loop, a round trip costs the protocol stack's work and
/// the system calls; on two, it also pays the scheduler for waking the other thread (tens of
/// microseconds on this virtual machine), which is the operating system's cost, not ours. The
/// target is judged on the first; the second is reported beside it.
struct Placement {
    var name: String
    var server: EventLoopGroup
    var client: EventLoopGroup
}
let loops = Array(group.makeIterator())
let sameLoop = Placement(name: "one event loop", server: loops[0], client: loops[0])
let twoLoops = Placement(name: "two event loops", server: loops[0], client: loops[1])

func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    return (ContinuousClock.now - start) / .seconds(1)
}

func configuration(_ identity: SigningKeyPair) throws -> SessionConfiguration {
    var configuration = try SessionConfiguration(handshake: HandshakeConfiguration(identity: identity, chainID: chain))
    configuration.keyLog = nil
    configuration.udpFaults = nil
    return configuration
}

/// The bare cost of one round trip's cryptography: the two notes' signatures and verifications,
/// over the same bytes the protocol signs.
func cryptoBound(iterations: Int) -> Double {
    let a = SigningKeyPair.generate()
    let b = SigningKeyPair.generate()
    let domain = SignedNote.domain(chain)
    let payload = [UInt8](repeating: 7, count: 32 + 8 + 32 + 2 + 64)
    var failures = 0
    let start = ContinuousClock.now
    for _ in 0..<iterations {
        let s1 = a.sign(payload, domain: domain)
        if !a.publicKey.isValidSignature(s1, for: payload, domain: domain) { failures += 1 }
        let s2 = b.sign(payload, domain: domain)
        if !b.publicKey.isValidSignature(s2, for: payload, domain: domain) { failures += 1 }
    }
    precondition(failures == 0)
    return Double(iterations) / ((ContinuousClock.now - start) / .seconds(1))
}

/// The same round trip's protocol work without any I/O: sign, encode, seal, open, decode, verify
/// and hash both notes, as the two peers do. The gap to the crypto bound is the codec's cost; the
/// gap from here to the measured round trips is the sockets' and the event loops'.
func protocolBound(iterations: Int) throws -> Double {
    let a = SigningKeyPair.generate()
    let b = SigningKeyPair.generate()
    let start = ContinuousClock.now
    var body = [UInt8](repeating: 0, count: 64)
    for n in 0..<iterations {
        body[0] = UInt8(truncatingIfNeeded: n)
        let note = SignedNote(signedBy: a, chainID: chain, number: UInt64(n), body: body)
        let sentHash = note.hash
        guard
            case .signedNote(let received) = try Message.decode(
                frame: ByteBuffer(bytes: Message.signedNote(note).frameBytes())),
            received.hasValidSignature(chainID: chain)
        else { preconditionFailure() }
        let reply = SignedNote(
            signedBy: b, chainID: chain, number: received.number, inReplyTo: received.hash, body: Array("ack".utf8))
        guard
            case .signedNote(let answer) = try Message.decode(
                frame: ByteBuffer(bytes: Message.signedNote(reply).frameBytes())),
            answer.hasValidSignature(chainID: chain), answer.inReplyTo == sentHash
        else { preconditionFailure() }
    }
    return Double(iterations) / ((ContinuousClock.now - start) / .seconds(1))
}

func listen(_ transport: TransportKind, _ configuration: SessionConfiguration, group: EventLoopGroup) async throws
    -> SessionListener
{
    try await transport.listen(host: "127.0.0.1", port: 0, configuration: configuration, group: group)
}

func dial(_ transport: TransportKind, _ port: Int, _ configuration: SessionConfiguration, group: EventLoopGroup)
    async throws -> PeerSession
{
    try await transport.dial(host: "127.0.0.1", port: port, configuration: configuration, group: group)
}

/// A listener that answers notes on every session, as `rwa-peer listen` does.
func startResponder(_ transport: TransportKind, on placement: Placement) async throws -> (
    SessionListener, Task<Void, Never>
) {
    let identity = SigningKeyPair.generate()
    let listener = try await listen(transport, configuration(identity), group: placement.server)
    let serving = Task {
        await withTaskGroup(of: Void.self) { tasks in
            for await session in listener.sessions {
                tasks.addTask { _ = try? await NoteExchange.serve(session, identity: identity, chainID: chain).get() }
            }
        }
    }
    return (listener, serving)
}

func handshakesPerSecond(_ transport: TransportKind, on placement: Placement) async throws -> Double {
    let (listener, serving) = try await startResponder(transport, on: placement)
    let client = try configuration(.generate())
    let elapsed = try await seconds {
        for _ in 0..<handshakes {
            let session = try await dial(transport, listener.port, client, group: placement.client)
            await session.close()
        }
    }
    await listener.close()
    serving.cancel()
    return Double(handshakes) / elapsed
}

/// Strict request/response: one note in flight at a time, each answer checked before the next.
/// A fresh session per measurement, since note numbers restart.
func roundTripsPerSecond(_ transport: TransportKind, listener: SessionListener, on placement: Placement, count: Int)
    async throws -> Double
{
    let identity = SigningKeyPair.generate()
    let session = try await dial(transport, listener.port, configuration(identity), group: placement.client)
    _ = try await NoteExchange.exchange(session, identity: identity, chainID: chain, count: 100, window: 1).get()
    let second = try await dial(transport, listener.port, configuration(identity), group: placement.client)
    await session.close()
    var summary = NoteExchange.Summary()
    let elapsed = try await seconds {
        summary = try await NoteExchange.exchange(second, identity: identity, chainID: chain, count: count, window: 1)
            .get()
    }
    precondition(summary.verified == count)
    await second.close()
    return Double(count) / elapsed
}

struct Figures {
    var codec = 0.0
    var bound = 0.0
    var tcp = 0.0
    var udp = 0.0
}

// This machine's speed drifts by tens of percent from one minute to the next (a shared host),
// so the bound and the round trips are measured in many short interleaved slices and compared
// by their totals: each sees the same mix of fast and slow moments.
func measureRoundTrips(on placement: Placement, slices: Int, perSlice: Int) async throws -> Figures {
    let (tcpListener, tcpServing) = try await startResponder(.tcp, on: placement)
    let (udpListener, udpServing) = try await startResponder(.udp, on: placement)
    var boundSeconds = 0.0
    var codecSeconds = 0.0
    var tcpSeconds = 0.0
    var udpSeconds = 0.0
    for slice in 1...slices {
        let b = cryptoBound(iterations: perSlice)
        codecSeconds += Double(perSlice) / (try protocolBound(iterations: perSlice))
        let t = try await roundTripsPerSecond(.tcp, listener: tcpListener, on: placement, count: perSlice)
        let u = try await roundTripsPerSecond(.udp, listener: udpListener, on: placement, count: perSlice)
        print(
            String(
                format: "%@, slice %2d: crypto bound %6.0f/s, TCP %6.0f/s (%3.0f%%), UDP %6.0f/s (%3.0f%%)",
                placement.name, slice, b, t, 100 * t / b, u, 100 * u / b))
        boundSeconds += Double(perSlice) / b
        tcpSeconds += Double(perSlice) / t
        udpSeconds += Double(perSlice) / u
    }
    await tcpListener.close()
    await udpListener.close()
    tcpServing.cancel()
    udpServing.cancel()
    let total = Double(perSlice * slices)
    return Figures(
        codec: total / codecSeconds, bound: total / boundSeconds, tcp: total / tcpSeconds, udp: total / udpSeconds)
}

let slices = 12
let perSlice = max(100, roundTrips / slices)
let tcpHandshakes = try await handshakesPerSecond(.tcp, on: sameLoop)
let udpHandshakes = try await handshakesPerSecond(.udp, on: sameLoop)
let one = try await measureRoundTrips(on: sameLoop, slices: slices, perSlice: perSlice)
let two = try await measureRoundTrips(on: twoLoops, slices: slices / 2, perSlice: perSlice)
print(
    String(format: "crypto bound (2 signs + 2 verifies):    %8.0f per s (%d slices of %d)", one.bound, slices, perSlice)
)
print(
    String(
        format: "protocol work without I/O:              %8.0f per s (%.0f%% of the crypto bound)", one.codec,
        100 * one.codec / one.bound))
print(String(format: "TCP handshakes:                         %8.0f per s (%d sequential)", tcpHandshakes, handshakes))
print(String(format: "UDP handshakes:                         %8.0f per s (%d sequential)", udpHandshakes, handshakes))
print(
    String(
        format: "TCP signed round trips, one loop:       %8.0f per s (%.0f%% of the crypto bound)", one.tcp,
        100 * one.tcp / one.bound))
print(
    String(
        format: "UDP signed round trips, one loop:       %8.0f per s (%.0f%% of the crypto bound)", one.udp,
        100 * one.udp / one.bound))
print(
    String(
        format: "TCP signed round trips, two loops:      %8.0f per s (%.0f%% of the crypto bound)", two.tcp,
        100 * two.tcp / two.bound))
print(
    String(
        format: "UDP signed round trips, two loops:      %8.0f per s (%.0f%% of the crypto bound)", two.udp,
        100 * two.udp / two.bound))
print(
    String(
        format:
            #"{"bench":"session","tcp_rtt_per_s":%.0f,"udp_rtt_per_s":%.0f,"crypto_bound_per_s":%.0f,"tcp_ratio":%.3f,"udp_ratio":%.3f,"tcp_handshakes_per_s":%.0f,"udp_handshakes_per_s":%.0f,"two_loops":{"tcp_rtt_per_s":%.0f,"udp_rtt_per_s":%.0f,"crypto_bound_per_s":%.0f,"tcp_ratio":%.3f,"udp_ratio":%.3f}}"#,
        one.tcp, one.udp, one.bound, one.tcp / one.bound, one.udp / one.bound, tcpHandshakes, udpHandshakes,
        two.tcp, two.udp, two.bound, two.tcp / two.bound, two.udp / two.bound))
try await group.shutdownGracefully()
