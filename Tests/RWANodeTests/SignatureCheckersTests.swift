// Goal: the sequencer's own signature checkers give exactly what `Transaction.verify` gives for
// each submission, in the batch's order, whichever thread checked which chunk, before and after
// they are stopped; and they hand over what is checked in pieces, in order, before the whole
// batch is done.
import RWACrypto
import RWALedger
import RWAWire
import XCTest

@testable import RWANode

final class SignatureCheckersTests: XCTestCase {
    func testBatchesCheckLikeOneByOneInOrder() throws {
        let chainID = Blake2b.hash256(Array("checkers".utf8))
        let signer = SigningKeyPair.generate()
        var batch: [[UInt8]] = []
        for sequence in 0..<300 {
            var transaction = try Transaction(
                signedBy: signer, chainID: chainID, sequence: UInt64(sequence),
                operation: .transfer(token: 0, to: signer.publicKey, amount: 1))
            switch sequence % 3 {
            case 0: break  // valid
            case 1: transaction.operation = .transfer(token: 0, to: signer.publicKey, amount: 2)  // forged
            default:
                batch.append([0x01, 0x02])
                continue  // does not decode
            }
            batch.append(transaction.encoded)
        }
        let expected = batch.map { bytes in
            Result { () throws(Rejection) in try Transaction.verify(bytes: bytes, chainID: chainID) }
        }
        func codes(_ results: [Result<VerifiedTransaction, Rejection>]) -> [String] {
            results.map {
                switch $0 {
                case .success(let verified): "ok \(verified.hash)"
                case .failure(let rejection): "refused \(rejection.code)"
                }
            }
        }
        /// Where two runs first differ, briefly (nil if they agree).
        func difference(
            _ got: [Result<VerifiedTransaction, Rejection>], _ wanted: [Result<VerifiedTransaction, Rejection>]
        )
            -> String?
        {
            let (got, wanted) = (codes(got), codes(wanted))
            guard got != wanted else { return nil }
            guard let index = got.indices.first(where: { $0 < wanted.count && got[$0] != wanted[$0] }) else {
                return "\(got.count) results for \(wanted.count)"
            }
            return "at \(index): \(got[index]) instead of \(wanted[index])"
        }
        let checkers = SignatureCheckers(helpers: 3)
        checkers.start()
        var runsInPieces = 0
        for _ in 0..<20 {
            XCTAssertNil(difference(checkers.verify(batch: batch, chainID: chainID), expected))
            var pieces: [ArraySlice<Result<VerifiedTransaction, Rejection>>] = []
            checkers.verify(batch: batch, chainID: chainID) { pieces.append($0) }
            XCTAssertNil(difference(pieces.flatMap { $0 }, expected), "the pieces, joined in the order delivered")
            if pieces.count > 1 { runsInPieces += 1 }
        }
        // The caller takes the first chunk as soon as the job is posted, so it hands that piece
        // over before the helpers finish the rest (nearly always; once in 20 runs is asked).
        XCTAssertGreaterThan(runsInPieces, 0, "what is checked is delivered before the whole batch")
        XCTAssertEqual(
            codes(checkers.verify(batch: Array(batch.prefix(5)), chainID: chainID)), codes(Array(expected.prefix(5))))
        checkers.stop()
        XCTAssertEqual(
            codes(checkers.verify(batch: batch, chainID: chainID)), codes(expected), "stopped: on the caller alone")
        XCTAssertTrue(Set(codes(expected).map { $0.prefix(2) }).count == 2, "the batch mixes accepted and refused")
    }
}
