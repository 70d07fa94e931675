import Dispatch
import RWACrypto
import RWAWire

extension Transaction {
    /// `verify(bytes:chainID:)` for a batch, spread over every core in chunks, results in the
    /// batch's order. Signature checks are the ledger's dominant cost; the arbiter runs each
    /// queued batch through this before ordering it, and `verify` each stretch of the chain.
    /// Deterministic: the results do not depend on how the chunks were scheduled.
    public static func verify(batch: [[UInt8]], chainID: Digest32) -> [Result<VerifiedTransaction, Rejection>] {
        guard batch.count > 1 else {
            return batch.map { bytes in Result { () throws(Rejection) in try verify(bytes: bytes, chainID: chainID) } }
        }
        let chunk = 32
        let results = UnsafeMutableBufferPointer<Result<VerifiedTransaction, Rejection>>.allocate(capacity: batch.count)
        defer { results.deallocate() }
        nonisolated(unsafe) let output = results
        DispatchQueue.concurrentPerform(iterations: (batch.count + chunk - 1) / chunk) { part in
            for index in part * chunk..<min(batch.count, (part + 1) * chunk) {
                let result = Result { () throws(Rejection) in try verify(bytes: batch[index], chainID: chainID) }
                (output.baseAddress! + index).initialize(to: result)
            }
        }
        defer { results.baseAddress!.deinitialize(count: batch.count) }
        return Array(results)
    }
}
