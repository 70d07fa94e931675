import Foundation
import Glibc
import RWACrypto
import RWALedger
import RWAWire
import Synchronization

/// The sequencer's signature checks, spread over threads of their own that run at a lower
/// scheduling priority (`niceness`) than the event loops.
///
/// Checking signatures is bulk work and, under a flood of forged transactions, all the work
/// there is: a forger that reconnects at once keeps every core verifying. The event loops'
/// work is small and someone waits for it (a handshake, a query, a receipt), so it goes first.
/// Under `rwa-fuzz --pressure forged` a second prober's worst answer was 117–138 ms in three
/// runs (p99 75–109 ms), against 141–175 ms (p99 114–131 ms) with the checks on the shared
/// dispatch pool; `bench-arbiter` did not move (medians 43–55% against 47–50%). When nothing
/// else wants the cores, the checkers have them all, as `Transaction.verify(batch:chainID:)`
/// on the shared dispatch pool would.
///
/// `verify` is called from one thread at a time (the sequencer's, which takes a share of the
/// chunks itself and is given the same priority by `lowerCallingThreadsPriority`).
final class SignatureCheckers: @unchecked Sendable {
    /// Linux's nice value for the checkers (0 is the default; each step is about 1.25x less CPU
    /// when competing, so 5 gives a runnable event loop about three times the checker's share).
    static let niceness: Int32 = 5
    static let chunk = 32

    private let helpers: Int
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var job: Job?
    private var generation = 0
    private var stopping = false

    private final class Job: @unchecked Sendable {
        let batch: [[UInt8]]
        let chainID: Digest32
        let output: UnsafeMutableBufferPointer<Result<VerifiedTransaction, Rejection>>
        let chunks: Int
        let nextChunk = Atomic<Int>(0)
        let chunksDone = Atomic<Int>(0)
        /// Which chunks are finished, so the caller can take the finished prefix in order.
        let finished: Mutex<[Bool]>

        init(batch: [[UInt8]], chainID: Digest32) {
            self.batch = batch
            self.chainID = chainID
            self.output = .allocate(capacity: batch.count)
            self.chunks = (batch.count + SignatureCheckers.chunk - 1) / SignatureCheckers.chunk
            self.finished = Mutex([Bool](repeating: false, count: chunks))
        }

        /// Checks one chunk, if any is left; nil when none is, else true if it was the last to finish.
        func workOne() -> Bool? {
            let part = nextChunk.add(1, ordering: .relaxed).oldValue
            guard part < chunks else { return nil }
            for index in part * SignatureCheckers.chunk..<min(batch.count, (part + 1) * SignatureCheckers.chunk) {
                let result = Result { () throws(Rejection) in
                    try Transaction.verify(bytes: batch[index], chainID: chainID)
                }
                (output.baseAddress! + index).initialize(to: result)
            }
            finished.withLock { $0[part] = true }
            return chunksDone.add(1, ordering: .acquiringAndReleasing).newValue == chunks
        }

        /// Checks chunks until none is left; true if this call finished the last one.
        func work() -> Bool {
            var finishedLast = false
            while let last = workOne() { finishedLast = finishedLast || last }
            return finishedLast
        }

        /// How many results from the front are ready: those of the finished chunks before the
        /// first unfinished one.
        func readyPrefix(from chunk: Int) -> Int {
            finished.withLock { finished in
                var end = chunk
                while end < chunks && finished[end] { end += 1 }
                return end
            }
        }

        func results(chunks range: Range<Int>) -> ArraySlice<Result<VerifiedTransaction, Rejection>> {
            let start = range.lowerBound * SignatureCheckers.chunk
            let end = min(batch.count, range.upperBound * SignatureCheckers.chunk)
            return ArraySlice(UnsafeBufferPointer(rebasing: output[start..<end]))
        }
    }

    /// One helper per core but the caller's; none runs before `start()`.
    init(helpers: Int = max(0, ProcessInfo.processInfo.activeProcessorCount - 1)) {
        self.helpers = helpers
    }

    /// Starts the helper threads; `stop()` ends them.
    func start() {
        for number in 0..<helpers {
            let thread = Thread { [self] in helperLoop() }
            thread.name = "rwanet-verify-\(number)"
            thread.start()
        }
    }

    /// Gives the calling thread the checkers' priority (the sequencer calls it once).
    static func lowerCallingThreadsPriority() {
        // On Linux, PRIO_PROCESS with 0 is the calling thread, not the whole process.
        setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
    }

    /// `Transaction.verify(bytes:chainID:)` for every element, in the batch's order.
    func verify(batch: [[UInt8]], chainID: Digest32) -> [Result<VerifiedTransaction, Rejection>] {
        var results: [Result<VerifiedTransaction, Rejection>] = []
        results.reserveCapacity(batch.count)
        verify(batch: batch, chainID: chainID) { results += $0 }
        return results
    }

    /// `Transaction.verify(bytes:chainID:)` for every element, handed to `deliver` in the
    /// batch's order, in pieces, as soon as each piece and all before it are checked.
    /// `deliver` runs on the calling thread between the chunks it checks itself, so the caller
    /// can apply what is checked while the helpers go on checking the rest: the cores do not
    /// wait for the whole batch before the serial work on it begins.
    func verify(
        batch: [[UInt8]], chainID: Digest32,
        deliver: (ArraySlice<Result<VerifiedTransaction, Rejection>>) -> Void
    ) {
        guard batch.count > Self.chunk, helpers > 0, !isStopped else {
            deliver(
                batch.map { bytes in
                    Result { () throws(Rejection) in try Transaction.verify(bytes: bytes, chainID: chainID) }
                }[...])
            return
        }
        let job = Job(batch: batch, chainID: chainID)
        defer {
            job.output.baseAddress!.deinitialize(count: batch.count)
            job.output.deallocate()
        }
        condition.lock()
        self.job = job
        generation += 1
        condition.broadcast()
        condition.unlock()
        var delivered = 0  // chunks handed to `deliver`
        func deliverReady() {
            let ready = job.readyPrefix(from: delivered)
            guard ready > delivered else { return }
            deliver(job.results(chunks: delivered..<ready))
            delivered = ready
        }
        while job.workOne() != nil { deliverReady() }
        condition.lock()
        while job.chunksDone.load(ordering: .acquiring) < job.chunks { condition.wait() }
        self.job = nil
        condition.unlock()
        deliverReady()
    }

    private var isStopped: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    /// Ends the helper threads (each finishes the chunk in hand).
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func helperLoop() {
        Self.lowerCallingThreadsPriority()
        var seen = 0
        condition.lock()
        while true {
            while !stopping && (generation == seen || job == nil) { condition.wait() }
            if stopping { break }
            seen = generation
            guard let job else { continue }
            condition.unlock()
            let finishedLast = job.work()
            condition.lock()
            if finishedLast { condition.broadcast() }
        }
        condition.unlock()
    }
}
