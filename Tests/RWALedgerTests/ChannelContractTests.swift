// Goal: the channel contract on the ledger. An open locks exactly the lease's slice-hours and
// the deposit, and is refused with its own code (leaving everything as it was) for every broken
// condition; a cooperative close settles at once; a unilateral close can be challenged with a
// newer state within the period and settled after it, and each out-of-order step is refused with
// its own code; settlement pays the rent to the licence's holders pro rata through an accumulator
// that stays right across transfers and pool deposits, returns the rest of the deposit and frees
// the slice-hours.
import RWACrypto
import RWAWire
import XCTest

@testable import RWALedger

final class ChannelContractTests: XCTestCase {
    static let licence: TokenID = 1
    /// The first whole hour after the genesis.
    static let start: UInt64 = 1_700_002_800
    static let slice = Chain.slice

    /// Alice owns the licence (100 slices); bob leases from her; carol holds some slices too.
    func makeChain() -> Chain {
        var chain = try! Chain()
        chain.register(chain.alice)
        chain.register(chain.bob)
        chain.register(chain.carol)
        chain.registerLicence(owner: chain.alice)
        chain.fund(chain.bob, 1_000_000)
        return chain
    }

    func terms(_ chain: Chain, firstSlice: UInt8 = 10, slices: UInt8 = 2, hours: UInt32 = 4, nonce: UInt64 = 1)
        -> LeaseTerms
    {
        LeaseTerms(
            chainID: chain.ledger.chainID, lessor: chain.alice.publicKey, lessee: chain.bob.publicKey,
            licence: Self.licence, firstSlice: firstSlice, sliceCount: slices, startSeconds: Self.start, hours: hours,
            periodSeconds: 3_600, ratePerSliceHour: 1_000, deposit: 6_000, paymentIncrement: 500,
            challengePeriodMilliseconds: 60_000, nonce: nonce)
    }

    func open(_ terms: LeaseTerms, _ chain: Chain, lessor: SigningKeyPair? = nil, lessee: SigningKeyPair? = nil)
        -> LedgerOperation
    {
        .openChannel(
            terms: terms,
            lessorSignature: (lessor ?? chain.alice).sign(terms.encoded, domain: terms.signatureDomain),
            lesseeSignature: (lessee ?? chain.bob).sign(terms.encoded, domain: terms.signatureDomain))
    }

    func coSigned(_ chain: Chain, _ terms: LeaseTerms, nonce: UInt64, paid: UInt128, final: Bool = false)
        -> CoSignedState
    {
        let state = ChannelState(
            channelID: terms.channelID, nonce: nonce, paid: paid,
            paidThroughSeconds: terms.paidThroughSeconds(paid: paid),
            final: final)
        return CoSignedState(
            state: state, lessorSignature: state.signed(by: chain.alice, chainID: terms.chainID),
            lesseeSignature: state.signed(by: chain.bob, chainID: terms.chainID))
    }

    /// Seals the pending block and moves the clock, so the next transaction is judged at `time`.
    func nextBlock(_ chain: inout Chain, at time: UInt64) {
        _ = chain.ledger.sealBlock(arbiter: chain.arbiter)
        _ = chain.ledger.takeStateChanges()
        chain.clock = time
    }

    func balance(_ chain: Chain, _ token: TokenID, _ account: AccountID) -> UInt128 {
        chain.ledger.state.holding(token, account).balance
    }

    func testAnOpenLocksTheSliceHoursAndTheDeposit() {
        var chain = makeChain()
        let t = terms(chain)
        chain.expectApplied(chain.bob, open(t, chain))
        let record = chain.ledger.state.channels[t.channelID]
        XCTAssertEqual(record?.status, .open)
        XCTAssertEqual(balance(chain, 0, chain.bob.publicKey), 1_000_000 - 6_000)
        XCTAssertEqual(balance(chain, 0, ChannelRecord.account(for: t.channelID)), 6_000)
        XCTAssertEqual(chain.ledger.state.leasedSliceHours.count, 2 * 4, "two slices for four hours")
        let firstHour = Self.start / 3_600
        XCTAssertEqual(chain.ledger.state.leasedSliceHours[.leasedSliceHour(1, 11, firstHour + 3)], t.channelID)
        XCTAssertNil(chain.ledger.state.leasedSliceHours[.leasedSliceHour(1, 12, firstHour)])
        // One slice-hour in common with the first lease is enough to refuse another.
        chain.fund(chain.carol, 10_000)
        var overlapping = terms(chain, firstSlice: 11, slices: 3, hours: 1, nonce: 2)
        overlapping.startSeconds = Self.start + 3 * 3_600
        overlapping.lessee = chain.carol.publicKey
        overlapping.deposit = 3_000
        chain.expectRejected(.sliceHourTaken, chain.carol, open(overlapping, chain, lessee: chain.carol))
        // Next to it, no overlap: fine.
        overlapping.firstSlice = 12
        chain.expectApplied(chain.carol, open(overlapping, chain, lessee: chain.carol))
    }

    func testEveryBrokenConditionOfAnOpenHasItsCodeAndChangesNothing() {
        var chain = makeChain()
        chain.register(chain.dave)  // verified, but owns nothing
        let good = terms(chain)
        func variant(_ change: (inout LeaseTerms) -> Void) -> LeaseTerms {
            var copy = good
            change(&copy)
            return copy
        }
        chain.expectRejected(.invalidTerms, chain.bob, open(variant { $0.sliceCount = 0 }, chain))
        chain.expectRejected(
            .periodMismatch, chain.bob,
            open(
                variant {
                    $0.periodSeconds = 1_800
                    $0.startSeconds -= 1_800
                }, chain))
        chain.expectRejected(.notAuthorized, chain.alice, open(good, chain))
        chain.expectRejected(.badChannelSignature, chain.bob, open(good, chain, lessor: chain.dave))
        chain.expectRejected(.badChannelSignature, chain.bob, open(good, chain, lessee: chain.carol))
        let notHers = variant { $0.lessor = chain.dave.publicKey }
        chain.expectRejected(.notLessorOfLicence, chain.bob, open(notHers, chain, lessor: chain.dave))
        let tooLate = variant { $0.startSeconds = 2_015_000_000 / 3_600 * 3_600 }
        chain.expectRejected(.outsideLicenceValidity, chain.bob, open(tooLate, chain))
        chain.expectRejected(.unknownToken, chain.bob, open(variant { $0.licence = 9 }, chain))
        chain.expectRejected(.invalidResource, chain.bob, open(variant { $0.licence = 0 }, chain))
        // A lessee without the licence's required KYC claim.
        chain.expectApplied(
            chain.regulator, .registerIdentity(account: chain.bob2.publicKey, country: Chain.unitedStates))
        chain.fund(chain.bob2, 10_000)
        let unverified = variant { $0.lessee = chain.bob2.publicKey }
        chain.expectRejected(.receiverNotVerified, chain.bob2, open(unverified, chain, lessee: chain.bob2))
        // A deposit the lessee does not have.
        chain.register(chain.alice2)
        let poor = variant { $0.lessee = chain.alice2.publicKey }
        chain.fund(chain.alice2, 5_999)
        chain.expectRejected(.insufficientBalance, chain.alice2, open(poor, chain, lessee: chain.alice2))
        // And the same channel twice.
        chain.expectApplied(chain.bob, open(good, chain))
        chain.expectRejected(.alreadyRegistered, chain.bob, open(good, chain))
    }

    func testACooperativeCloseSettlesAtOnceAndPaysRentProRata() {
        var chain = makeChain()
        // Carol holds 25 slices, alice 75: rent splits 3 to 1.
        chain.expectApplied(
            chain.alice, .transfer(token: Self.licence, to: chain.carol.publicKey, amount: 25 * Self.slice))
        let t = terms(chain)
        chain.expectApplied(chain.bob, open(t, chain))
        let final = coSigned(chain, t, nonce: 5, paid: 4_000, final: true)
        chain.expectRejected(.invalidOperation, chain.bob, .closeChannel(coSigned(chain, t, nonce: 5, paid: 4_000)))
        chain.expectRejected(.notAuthorized, chain.carol, .closeChannel(final))
        chain.expectApplied(chain.alice, .closeChannel(final))
        let record = chain.ledger.state.channels[t.channelID]!
        XCTAssertEqual(record.status, .settled)
        XCTAssertEqual(record.paid, 4_000)
        XCTAssertEqual(balance(chain, 0, chain.bob.publicKey), 1_000_000 - 4_000, "the rest of the deposit came back")
        XCTAssertEqual(balance(chain, 0, ChannelRecord.account(for: t.channelID)), 0)
        XCTAssertTrue(chain.ledger.state.leasedSliceHours.isEmpty, "the usage rights ended")
        chain.expectRejected(.channelFinal, chain.alice, .closeChannel(final))
        // Rent: 3,000 to alice, 1,000 to carol, each collected once.
        chain.expectApplied(chain.alice, .claimRent(token: Self.licence))
        chain.expectApplied(chain.carol, .claimRent(token: Self.licence))
        XCTAssertEqual(balance(chain, 0, chain.alice.publicKey), 3_000)
        XCTAssertEqual(balance(chain, 0, chain.carol.publicKey), 1_000)
        chain.expectRejected(.nothingToClaim, chain.carol, .claimRent(token: Self.licence))
        chain.expectRejected(.nothingToClaim, chain.bob, .claimRent(token: Self.licence))
        // The slice-hours are free again.
        chain.expectApplied(chain.bob, open(terms(chain, nonce: 2), chain))
    }

    func testAStaleRegistrationIsChallengedAndSettlementUsesTheLatestState() {
        var chain = makeChain()
        let t = terms(chain)
        chain.expectApplied(chain.bob, open(t, chain))
        let stale = coSigned(chain, t, nonce: 1, paid: 500)
        let latest = coSigned(chain, t, nonce: 3, paid: 1_500)
        let time = Chain.genesisTime + 10_000
        nextBlock(&chain, at: time)
        chain.expectRejected(.invalidOperation, chain.alice, .challenge(latest))
        chain.expectRejected(.invalidOperation, chain.alice, .settleChannel(t.channelID))
        chain.expectRejected(.notAuthorized, chain.carol, .registerState(channel: t.channelID, state: stale))
        chain.expectRejected(
            .wrongChannel, chain.bob,
            .registerState(channel: t.channelID, state: coSigned(chain, terms(chain, nonce: 9), nonce: 1, paid: 500)))
        // Bob registers the old state he kept (it pays alice less).
        chain.expectApplied(chain.bob, .registerState(channel: t.channelID, state: stale))
        XCTAssertEqual(chain.ledger.state.channels[t.channelID]?.challengeDeadlineMilliseconds, time + 60_000)
        chain.expectRejected(.invalidOperation, chain.bob, .registerState(channel: t.channelID, state: latest))
        nextBlock(&chain, at: time + 30_000)
        chain.expectRejected(.challengePeriodRunning, chain.carol, .settleChannel(t.channelID))
        chain.expectRejected(.staleState, chain.alice, .challenge(stale))
        // A state of a channel that does not exist (or is on another chain), and one not signed by both.
        let other = terms(chain, nonce: 9)
        chain.expectRejected(.unknownChannel, chain.alice, .challenge(coSigned(chain, other, nonce: 7, paid: 500)))
        var forged = latest
        forged.lesseeSignature = forged.lessorSignature
        chain.expectRejected(.badChannelSignature, chain.alice, .challenge(forged))
        chain.expectApplied(chain.alice, .challenge(latest))
        chain.expectRejected(.staleState, chain.alice, .challenge(latest))
        nextBlock(&chain, at: time + 60_001)
        chain.expectRejected(.challengePeriodOver, chain.alice, .challenge(coSigned(chain, t, nonce: 4, paid: 2_000)))
        // Anyone may settle once the period is over.
        chain.expectApplied(chain.carol, .settleChannel(t.channelID))
        XCTAssertEqual(chain.ledger.state.channels[t.channelID]?.paid, 1_500)
        XCTAssertEqual(balance(chain, 0, chain.bob.publicKey), 1_000_000 - 1_500)
        chain.expectApplied(chain.alice, .claimRent(token: Self.licence))
        XCTAssertEqual(balance(chain, 0, chain.alice.publicKey), 1_500, "alice holds every slice")
        chain.expectRejected(.channelFinal, chain.alice, .settleChannel(t.channelID))
    }

    func testTheOpeningStateCanBeRegisteredAndSettlesWithNothingPaid() {
        var chain = makeChain()
        let t = terms(chain)
        chain.expectApplied(chain.bob, open(t, chain))
        nextBlock(&chain, at: Chain.genesisTime + 1_000)
        chain.expectApplied(chain.alice, .registerState(channel: t.channelID, state: nil))
        nextBlock(&chain, at: Chain.genesisTime + 61_001)
        chain.expectApplied(chain.alice, .settleChannel(t.channelID))
        XCTAssertEqual(balance(chain, 0, chain.bob.publicKey), 1_000_000)
        XCTAssertNil(chain.ledger.state.rentIndexes[Self.licence], "no rent, no index")
    }

    /// The accumulator: rent earned before a transfer stays with the sender, rent after goes by
    /// the new balances; a pool's share goes into its stablecoin reserve.
    func testRentStaysRightAcrossTransfersAndPools() {
        var chain = makeChain()
        chain.fund(chain.alice, 10_000_000_000)
        chain.expectApplied(chain.regulator, .createPool(token: Self.licence, country: Chain.unitedStates))
        let pool = chain.ledger.state.pools[Self.licence]!
        // Alice 40 slices and 4e9 stablecoin into the pool; 60 slices are hers, 0 carol's.
        chain.expectApplied(
            chain.alice,
            .addLiquidity(
                token: Self.licence, licenceDesired: 40 * Self.slice, stablecoinDesired: 4_000_000_000,
                licenceMinimum: 0, stablecoinMinimum: 0, deadlineMilliseconds: .max))
        let first = terms(chain, nonce: 1)
        chain.expectApplied(chain.bob, open(first, chain))
        chain.expectApplied(chain.bob, .closeChannel(coSigned(chain, first, nonce: 1, paid: 5_000, final: true)))
        // 5,000 rent: 60% alice (3,000), 40% the pool (2,000, into its reserve).
        let market = chain.ledger.state.pools[Self.licence]!.market
        XCTAssertEqual(market.reserve1, pool.market.reserve1 + 4_000_000_000 + 2_000)
        XCTAssertEqual(balance(chain, 0, pool.account), 4_000_002_000, "the reserve is held")
        // Alice gives carol 30 of her 60 slices before the next rent.
        chain.expectApplied(
            chain.alice, .transfer(token: Self.licence, to: chain.carol.publicKey, amount: 30 * Self.slice))
        let second = terms(chain, firstSlice: 50, nonce: 2)
        chain.expectApplied(chain.bob, open(second, chain))
        chain.expectApplied(chain.alice, .closeChannel(coSigned(chain, second, nonce: 2, paid: 1_000, final: true)))
        // 1,000 rent: 30% alice, 30% carol, 40% pool.
        let aliceBefore = balance(chain, 0, chain.alice.publicKey)
        chain.expectApplied(chain.alice, .claimRent(token: Self.licence))
        XCTAssertEqual(balance(chain, 0, chain.alice.publicKey) - aliceBefore, 3_000 + 300)
        chain.expectApplied(chain.carol, .claimRent(token: Self.licence))
        XCTAssertEqual(balance(chain, 0, chain.carol.publicKey), 300)
        XCTAssertEqual(chain.ledger.state.pools[Self.licence]!.market.reserve1, market.reserve1 + 400)
        // Everything distributed is accounted for: claimed, in the pool, or still owed (none).
        let index = chain.ledger.state.rentIndexes[Self.licence]!
        XCTAssertEqual(index.distributed, 6_000)
        XCTAssertEqual(balance(chain, 0, RentIndex.account(for: Self.licence, chainID: chain.ledger.chainID)), 0)
    }

    /// Rent that does not divide evenly: nothing is created, and the remainder is carried.
    func testUnevenRentNeverPaysOutMoreThanItReceived() {
        var chain = makeChain()
        chain.expectApplied(
            chain.alice, .transfer(token: Self.licence, to: chain.carol.publicKey, amount: 33 * Self.slice))
        chain.expectApplied(
            chain.alice, .transfer(token: Self.licence, to: chain.bob.publicKey, amount: 33 * Self.slice))
        var paidOut: UInt128 = 0
        for (nonce, rent) in [(UInt64(1), UInt128(1_001)), (2, 997), (3, 1)] {
            let t = terms(chain, nonce: nonce)
            chain.expectApplied(chain.bob, open(t, chain))
            chain.expectApplied(chain.bob, .closeChannel(coSigned(chain, t, nonce: 1, paid: rent, final: true)))
        }
        for holder in [chain.alice, chain.bob, chain.carol] {
            let before = balance(chain, 0, holder.publicKey)
            if case .success = chain.submit(holder, .claimRent(token: Self.licence)) {
                paidOut += balance(chain, 0, holder.publicKey) - before
            }
        }
        XCTAssertLessThanOrEqual(paidOut, 1_999)
        XCTAssertGreaterThanOrEqual(paidOut, 1_999 - 3, "at most one unit per holder is left over")
        let left = balance(chain, 0, RentIndex.account(for: Self.licence, chainID: chain.ledger.chainID))
        XCTAssertEqual(left, 1_999 - paidOut, "what was not paid out is still held")
    }

    func testMerklePathsProveEveryLeafOfEveryShapeOfTree() {
        for count in 1...17 {
            let leaves = (0..<count).map { Blake2b.hash256([UInt8(truncatingIfNeeded: $0)]) }
            let root = MerkleTree.root(leaves)
            for index in 0..<count {
                let path = MerkleTree.path(leaves, index: index)
                XCTAssertTrue(
                    MerkleTree.verify(leaf: leaves[index], index: index, count: count, path: path, root: root),
                    "\(index) of \(count)")
                XCTAssertFalse(
                    MerkleTree.verify(
                        leaf: leaves[(index + 1) % count], index: index, count: count, path: path, root: root)
                        && count > 1, "another leaf, \(index) of \(count)")
                if !path.isEmpty {
                    var bent = path
                    bent[0] = Blake2b.hash256(bent[0].bytes)
                    XCTAssertFalse(
                        MerkleTree.verify(leaf: leaves[index], index: index, count: count, path: bent, root: root))
                }
            }
        }
    }

    func testChannelRecordsRoundTripThroughTheStore() throws {
        var chain = makeChain()
        let t = terms(chain)
        chain.expectApplied(chain.bob, open(t, chain))
        chain.expectApplied(chain.bob, .closeChannel(coSigned(chain, t, nonce: 2, paid: 700, final: true)))
        let rows = chain.ledger.state.allRows()
        let restored = try LedgerState(rows: rows)
        XCTAssertEqual(restored.allRows(), rows)
        XCTAssertEqual(restored.channels, chain.ledger.state.channels)
        XCTAssertEqual(restored.rentIndexes, chain.ledger.state.rentIndexes)
        // Every channel operation survives its encoding.
        let operations: [LedgerOperation] = [
            open(t, chain), .closeChannel(coSigned(chain, t, nonce: 2, paid: 700, final: true)),
            .registerState(channel: t.channelID, state: nil),
            .registerState(channel: t.channelID, state: coSigned(chain, t, nonce: 1, paid: 500)),
            .challenge(coSigned(chain, t, nonce: 3, paid: 500)), .settleChannel(t.channelID), .claimRent(token: 1),
        ]
        for operation in operations {
            let transaction = try chain.sign(chain.bob, operation)
            XCTAssertEqual(try Transaction(decoding: transaction.encoded), transaction, operation.name)
        }
    }
}
