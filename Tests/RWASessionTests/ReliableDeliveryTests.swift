// Goal: UDP reliable delivery, pure: under seeded loss, duplication and reordering every frame is
// delivered exactly once and in order, acknowledgements stay consistent, and a dead peer fails the
// session after the bounded retries. Method: two cores wired through a simulated lossy link with
// a virtual clock, from a fresh seed each run; a failure prints the seed.
import NIOCore
import RWATestSupport
import RWAWire
import XCTest

@testable import RWASession

final class ReliableDeliveryTests: XCTestCase {
    func testLossyLinkDeliversEverythingOnceInOrder() throws {
        let base = testSeed()
        for offset: UInt64 in 0..<10 {
            let seed = base &+ offset
            do {
                try simulate(seed: seed, frames: 1_000, loss: 0.2, duplicate: 0.05, reorder: 0.1)
            } catch {
                XCTFail("seed \(seed): \(error)")
            }
        }
    }

    func simulate(seed: UInt64, frames: Int, loss: Double, duplicate: Double, reorder: Double) throws {
        var rng = SplitMix(seed: seed)
        var sender = ReliableSender(configuration: ReliabilityConfiguration())
        var receiver = ReliableReceiver(windowFrames: 256)
        var now: UInt64 = 0
        var delivered: [UInt32] = []
        // In-flight datagrams: (arrival time, payload) in either direction.
        var toReceiver: [(UInt64, UInt64, ByteBuffer)] = []
        var toSender: [(UInt64, Acknowledgement)] = []
        for n in 0..<frames {
            var frame = ByteBuffer()
            frame.writeInteger(UInt32(n))
            sender.enqueue(frame)
        }
        var steps = 0
        while delivered.count < frames {
            steps += 1
            XCTAssertLessThan(steps, 1_000_000, "seed \(seed): no progress")
            if steps >= 1_000_000 { return }
            for transmission in try sender.poll(now: now) {
                if Double.random(in: 0..<1, using: &rng) < loss { continue }
                let delay =
                    Double.random(in: 0..<1, using: &rng) < reorder
                    ? UInt64.random(in: 1_000_000...20_000_000, using: &rng) : 200_000
                toReceiver.append((now + delay, transmission.sequence, transmission.frame))
                if Double.random(in: 0..<1, using: &rng) < duplicate {
                    toReceiver.append((now + delay + 1_000, transmission.sequence, transmission.frame))
                }
            }
            now += 100_000
            let arriving = toReceiver.filter { $0.0 <= now }
            toReceiver.removeAll { $0.0 <= now }
            for (_, sequence, frame) in arriving {
                if case .deliver(let frames) = receiver.receive(sequence: sequence, frame: frame) {
                    for var frame in frames { delivered.append(frame.readInteger()!) }
                }
                if Double.random(in: 0..<1, using: &rng) >= loss {
                    toSender.append((now + 200_000, receiver.acknowledgement))
                }
            }
            for (_, ack) in toSender.filter({ $0.0 <= now }) { try sender.receive(ack, now: now) }
            toSender.removeAll { $0.0 <= now }
            // Nothing on the wire: skip to the next timer instead of stepping through the wait.
            if toReceiver.isEmpty && toSender.isEmpty, let deadline = sender.nextDeadline, deadline > now {
                now = deadline
            }
        }
        XCTAssertEqual(delivered, (0..<frames).map(UInt32.init), "seed \(seed)")
    }

    func testSilentPeerFailsAfterBoundedRetries() throws {
        var configuration = ReliabilityConfiguration()
        configuration.retriesMax = 3
        var sender = ReliableSender(configuration: configuration)
        sender.enqueue(ByteBuffer(bytes: [0, 0x22]))
        var now: UInt64 = 0
        var sent = 0
        var failure: SessionError?
        for _ in 0..<1_000 {
            do { sent += try sender.poll(now: now).count } catch {
                failure = error
                break
            }
            now += 10_000_000
        }
        XCTAssertEqual(sent, 4, "one transmission and three retries")
        XCTAssertEqual(failure?.code, .deliveryFailed)
    }

    func testBackoffDoublesAndAckStopsRetransmission() throws {
        var sender = ReliableSender(configuration: ReliabilityConfiguration())
        sender.enqueue(ByteBuffer(bytes: [1]))
        XCTAssertEqual(try sender.poll(now: 0).count, 1)
        XCTAssertEqual(sender.nextDeadline, 50_000_000, "the initial timeout before any sample")
        XCTAssertEqual(try sender.poll(now: 50_000_000).map(\.isRetransmission), [true])
        XCTAssertEqual(sender.nextDeadline, 50_000_000 + 100_000_000, "doubled")
        XCTAssertEqual(try sender.receive(Acknowledgement(ackNext: 1, selectiveAcks: 0), now: 60_000_000), 1)
        XCTAssertTrue(sender.isIdle)
        XCTAssertEqual(
            sender.retransmitTimeoutNanoseconds, 100_000_000,
            "a retransmitted frame gives no sample (Karn), so the timeout stays backed off (RFC 6298 5.5)")
        // A first transmission acknowledged after 2 ms: SRTT 2 ms, RTTVAR 1 ms, plus the peer's
        // 5 ms acknowledgement delay: 11 ms, and the backoff is over.
        sender.enqueue(ByteBuffer(bytes: [2]))
        _ = try sender.poll(now: 100_000_000)
        _ = try sender.receive(Acknowledgement(ackNext: 2, selectiveAcks: 0), now: 102_000_000)
        XCTAssertEqual(sender.retransmitTimeoutNanoseconds, 11_000_000)
        // A slow answer (200 ms) raises it: SRTT 26.75 ms, RTTVAR 50.25 ms.
        sender.enqueue(ByteBuffer(bytes: [3]))
        _ = try sender.poll(now: 200_000_000)
        _ = try sender.receive(Acknowledgement(ackNext: 3, selectiveAcks: 0), now: 400_000_000)
        XCTAssertEqual(sender.retransmitTimeoutNanoseconds, 26_750_000 + 4 * 50_250_000 + 5_000_000)
        XCTAssertThrowsError(
            try sender.receive(Acknowledgement(ackNext: 5, selectiveAcks: 0), now: 0), "ack of frames never sent")
    }

    func testSelectiveAckAndFastRetransmit() throws {
        var sender = ReliableSender(configuration: ReliabilityConfiguration())
        for n in 0..<4 { sender.enqueue(ByteBuffer(bytes: [UInt8(n)])) }
        XCTAssertEqual(try sender.poll(now: 0).map(\.sequence), [0, 1, 2, 3])
        // Frames 2 and 3 arrive: selective bits 1 and 2 (bit i is ackNext + 1 + i).
        XCTAssertEqual(try sender.receive(Acknowledgement(ackNext: 0, selectiveAcks: 0b110), now: 1_000), 2)
        XCTAssertEqual(
            try sender.receive(Acknowledgement(ackNext: 0, selectiveAcks: 0b110), now: 1_500), 0, "already counted")
        // Nothing was sent after 0 and 1 (all four left at time 0), so nothing is declared lost early...
        XCTAssertEqual(try sender.poll(now: 2_000).count, 0)
        // ...and at the timeout only the two unacknowledged frames go again.
        XCTAssertEqual(try sender.poll(now: 50_000_000).map(\.sequence), [0, 1])
        XCTAssertEqual(try sender.receive(Acknowledgement(ackNext: 4, selectiveAcks: 0), now: 51_000_000), 2)
        XCTAssertTrue(sender.isIdle)
        var receiver = ReliableReceiver(windowFrames: 8)
        XCTAssertEqual(receiver.receive(sequence: 2, frame: ByteBuffer(bytes: [2])), .deliver([]))
        XCTAssertEqual(receiver.acknowledgement, Acknowledgement(ackNext: 0, selectiveAcks: 0b10))
        XCTAssertEqual(receiver.receive(sequence: 2, frame: ByteBuffer(bytes: [2])), .duplicate)
        XCTAssertEqual(receiver.receive(sequence: 9, frame: ByteBuffer(bytes: [9])), .beyondWindow)
        XCTAssertEqual(receiver.receive(sequence: 0, frame: ByteBuffer(bytes: [0])), .deliver([ByteBuffer(bytes: [0])]))
        XCTAssertEqual(
            receiver.receive(sequence: 1, frame: ByteBuffer(bytes: [1])),
            .deliver([ByteBuffer(bytes: [1]), ByteBuffer(bytes: [2])]))
        XCTAssertEqual(receiver.acknowledgement, Acknowledgement(ackNext: 3, selectiveAcks: 0))
    }

    func testFastRetransmitWhenALaterFrameArrives() throws {
        var sender = ReliableSender(configuration: ReliabilityConfiguration())
        sender.enqueue(ByteBuffer(bytes: [0]))
        _ = try sender.poll(now: 0)
        sender.enqueue(ByteBuffer(bytes: [1]))
        _ = try sender.poll(now: 1_000)
        // Frame 1, sent after frame 0, is acknowledged: frame 0 is due at once, long before its timer.
        _ = try sender.receive(Acknowledgement(ackNext: 0, selectiveAcks: 0b1), now: 2_000)
        let due = try sender.poll(now: 2_000)
        XCTAssertEqual(due.map(\.sequence), [0])
        XCTAssertEqual(due.map(\.isRetransmission), [true])
    }

    /// A timeout that was spurious (the first copy was only slow) must not cascade: the late
    /// acknowledgement of a retransmitted frame is ambiguous, so frames sent before the
    /// retransmission are not declared lost by it.
    func testALateAcknowledgementOfARetransmittedFrameDeclaresNothingLost() throws {
        var sender = ReliableSender(configuration: ReliabilityConfiguration())
        sender.enqueue(ByteBuffer(bytes: [0]))
        _ = try sender.poll(now: 0)
        for n in 1...9 { sender.enqueue(ByteBuffer(bytes: [UInt8(n)])) }
        XCTAssertEqual(try sender.poll(now: 30_000_000).count, 9)
        // Frame 0 times out at 50 ms and goes again; then the acknowledgement of its first copy.
        XCTAssertEqual(try sender.poll(now: 50_000_000).map(\.sequence), [0])
        XCTAssertEqual(try sender.receive(Acknowledgement(ackNext: 1, selectiveAcks: 0), now: 55_000_000), 1)
        XCTAssertEqual(
            try sender.poll(now: 56_000_000).map(\.sequence), [], "frames 1-9 wait for their own timers (80 ms)")
        XCTAssertEqual(try sender.poll(now: 80_000_000).count, 9)
    }

    /// After a timer expires, new frames get the backed-off timeout until a first transmission is
    /// acknowledged again (RFC 6298 5.5 and 5.7).
    func testTheTimeoutStaysBackedOffUntilANewSample() throws {
        var sender = ReliableSender(configuration: ReliabilityConfiguration())
        sender.enqueue(ByteBuffer(bytes: [0]))
        _ = try sender.poll(now: 0)
        XCTAssertEqual(try sender.poll(now: 50_000_000).map(\.isRetransmission), [true])
        XCTAssertEqual(sender.retransmitTimeoutNanoseconds, 100_000_000)
        _ = try sender.receive(Acknowledgement(ackNext: 1, selectiveAcks: 0), now: 55_000_000)
        XCTAssertEqual(sender.retransmitTimeoutNanoseconds, 100_000_000, "an ambiguous acknowledgement: no sample")
        sender.enqueue(ByteBuffer(bytes: [1]))
        _ = try sender.poll(now: 60_000_000)
        XCTAssertEqual(sender.nextDeadline, 60_000_000 + 100_000_000, "the new frame waits the backed-off timeout")
        _ = try sender.receive(Acknowledgement(ackNext: 2, selectiveAcks: 0), now: 64_000_000)
        XCTAssertEqual(
            sender.retransmitTimeoutNanoseconds, 17_000_000, "a 4 ms sample: SRTT 4 ms + 4 x 2 ms + the 5 ms ack delay")
    }

    /// In-order frames are acknowledged at the next tick or every 16th; a gap, a duplicate and a
    /// frame beyond the window are acknowledged at once; any packet sent pays what is owed.
    func testAcknowledgementPolicy() {
        var receiver = ReliableReceiver(windowFrames: 8)
        for sequence in 0..<15 {
            let outcome = receiver.receive(sequence: UInt64(sequence), frame: ByteBuffer(bytes: [1]))
            XCTAssertFalse(receiver.acknowledgeAtOnce(after: outcome), "frame \(sequence) waits")
        }
        XCTAssertEqual(receiver.acknowledgementsOwed, 15)
        XCTAssertFalse(receiver.acknowledgementDue)
        let sixteenth = receiver.receive(sequence: 15, frame: ByteBuffer(bytes: [1]))
        XCTAssertFalse(receiver.acknowledgeAtOnce(after: sixteenth))
        XCTAssertTrue(receiver.acknowledgementDue, "the 16th is acknowledged at once")
        receiver.acknowledgementSent()
        XCTAssertEqual(receiver.acknowledgementsOwed, 0)
        let gap = receiver.receive(sequence: 17, frame: ByteBuffer(bytes: [1]))
        XCTAssertTrue(receiver.acknowledgeAtOnce(after: gap), "a gap is reported at once")
        let duplicate = receiver.receive(sequence: 3, frame: ByteBuffer(bytes: [1]))
        XCTAssertTrue(receiver.acknowledgeAtOnce(after: duplicate), "a duplicate is acknowledged at once")
        let beyond = receiver.receive(sequence: 100, frame: ByteBuffer(bytes: [1]))
        XCTAssertTrue(receiver.acknowledgeAtOnce(after: beyond))
    }
}
