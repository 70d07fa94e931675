// Tools/bench/session: handshakes per second, and sequential signed-message round trips per
// second over TCP and UDP on loopback, against the bare libsodium cost of the same work
// (2 signs + 2 verifies per round trip). Build and run in release:
//
//     swift run -c release bench-session [round trips, default 5000]
//
// The last line is one JSON object (see README, "Benchmarks").
import Foundation
import NIOCore
import NIOPosix
import RWACrypto
import RWANode
import RWAWire

let roundTrips = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 5_000 : 5_000
let handshakes = max(200, roundTrips / 10)
let chain = ChainIDs.devnet
let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    return (ContinuousClock.now - start) / .seconds(1)
}

func configuration(_ identity: SigningKeyPair) -> SessionConfiguration {
    var configuration = SessionConfiguration(handshake: HandshakeConfiguration(identity: identity, chainID: chain))
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

func listen(_ transport: TransportKind, _ configuration: SessionConfiguration) async throws -> SessionListener {
    switch transport {
    case .tcp: return try await TCPTransport.listen(host: "127.0.0.1", port: 0, configuration: configuration, group: group)
    case .udp: return try await UDPTransport.listen(host: "127.0.0.1", port: 0, configuration: configuration, group: group)
    }
}

func dial(_ transport: TransportKind, _ port: Int, _ configuration: SessionConfiguration) async throws -> PeerSession {
    switch transport {
    case .tcp: return try await TCPTransport.dial(host: "127.0.0.1", port: port, configuration: configuration, group: group)
    case .udp: return try await UDPTransport.dial(host: "127.0.0.1", port: port, configuration: configuration, group: group)
    }
}

/// A listener that answers notes on every session, as `rwa-peer listen` does.
func startResponder(_ transport: TransportKind) async throws -> (SessionListener, Task<Void, Never>) {
    let identity = SigningKeyPair.generate()
    let listener = try await listen(transport, configuration(identity))
    let serving = Task {
        await withTaskGroup(of: Void.self) { tasks in
            for await session in listener.sessions {
                tasks.addTask { _ = try? await NoteExchange.serve(session, identity: identity, chainID: chain) }
            }
        }
    }
    return (listener, serving)
}

func handshakesPerSecond(_ transport: TransportKind) async throws -> Double {
    let (listener, serving) = try await startResponder(transport)
    let client = configuration(.generate())
    let elapsed = try await seconds {
        for _ in 0..<handshakes {
            let session = try await dial(transport, listener.port, client)
            await session.close()
        }
    }
    await listener.close()
    serving.cancel()
    return Double(handshakes) / elapsed
}

func roundTripsPerSecond(_ transport: TransportKind) async throws -> Double {
    let (listener, serving) = try await startResponder(transport)
    let identity = SigningKeyPair.generate()
    let session = try await dial(transport, listener.port, configuration(identity))
    // Warm up, then measure strict request/response: one note in flight at a time.
    _ = try await NoteExchange.exchange(session, identity: identity, chainID: chain, count: 200, window: 1)
    let second = try await dial(transport, listener.port, configuration(identity))
    await session.close()
    var summary = NoteExchange.Summary()
    let elapsed = try await seconds {
        summary = try await NoteExchange.exchange(second, identity: identity, chainID: chain, count: roundTrips, window: 1)
    }
    precondition(summary.verified == roundTrips)
    await second.close()
    await listener.close()
    serving.cancel()
    return Double(roundTrips) / elapsed
}

let bound = cryptoBound(iterations: roundTrips)
print(String(format: "crypto bound (2 signs + 2 verifies):   %8.0f per s", bound))
let tcpHandshakes = try await handshakesPerSecond(.tcp)
print(String(format: "TCP handshakes:                        %8.0f per s (%d sequential)", tcpHandshakes, handshakes))
let udpHandshakes = try await handshakesPerSecond(.udp)
print(String(format: "UDP handshakes:                        %8.0f per s (%d sequential)", udpHandshakes, handshakes))
let tcp = try await roundTripsPerSecond(.tcp)
print(String(format: "TCP signed round trips:                %8.0f per s (%.0f%% of the crypto bound)", tcp, 100 * tcp / bound))
let udp = try await roundTripsPerSecond(.udp)
print(String(format: "UDP signed round trips:                %8.0f per s (%.0f%% of the crypto bound)", udp, 100 * udp / bound))
print(String(format: #"{"bench":"session","tcp_rtt_per_s":%.0f,"udp_rtt_per_s":%.0f,"crypto_bound_per_s":%.0f,"tcp_ratio":%.3f,"udp_ratio":%.3f,"tcp_handshakes_per_s":%.0f,"udp_handshakes_per_s":%.0f}"#,
             tcp, udp, bound, tcp / bound, udp / bound, tcpHandshakes, udpHandshakes))
try await group.shutdownGracefully()
