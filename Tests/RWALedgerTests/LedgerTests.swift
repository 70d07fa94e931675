// Goal: RWALedger applies every ERC-3643 operation exactly as specified, refuses each rule
// violation with its own rejection code while leaving the state byte for byte unchanged, checks a
// transfer's conditions in ERC-3643's order, has one canonical encoding for everything it stores
// or signs, and seals blocks that a second ledger replays to the same state and refuses once
// tampered with.
// Method: one deterministic chain per test (fixed seeds, fixed genesis), driven through the same
// sign → verify → apply path a client and the arbiter use.
import NIOCore
import RWACrypto
import RWALedger
import RWAWire
import XCTest

// MARK: - Fixture

/// A deterministic key: `seed` repeated 32 times.
func deterministicKey(_ seed: UInt8) throws -> SigningKeyPair {
    try SigningKeyPair(seed: [UInt8](repeating: seed, count: SigningKeyPair.seedByteCount))
}

/// What a rejected transaction must leave untouched.
struct Snapshot {
    var rows: [StateRow]
    var pendingCount: Int
    /// The derived, never-stored totals behind the caps: holders per token, and every
    /// identity's balance of every token.
    var derived: [String]
}

/// A chain under test: a genesis naming an arbiter, one regulator (trusted claim issuer and
/// resource registrar; optionally a second one) and a stablecoin issuer, plus holder wallets.
/// `submit` signs at the signer's next sequence number, verifies and applies, as a client and the
/// arbiter would; the tracked number advances only when the ledger applies the transaction.
struct Chain {
    static let stablecoin: TokenID = 0
    static let genesisTime: UInt64 = 1_700_000_000_000
    static let unitedStates: CountryCode = 840
    static let unitedKingdom: CountryCode = 826
    static let france: CountryCode = 250
    /// Base units of a licence token: 100 slices of 10^6 (6 decimals).
    static let licenceSupply: UInt128 = 100_000_000
    static let slice: UInt128 = 1_000_000

    let arbiter: SigningKeyPair
    let regulator: SigningKeyPair
    let otherRegulator: SigningKeyPair
    /// What the last transaction `submit` had applied did (nil after a rejection).
    private(set) var lastApplied: Applied?
    /// What the last applied pool operation moved.
    var lastFill: PoolFill? { lastApplied?.fill }
    let issuer: SigningKeyPair
    let alice: SigningKeyPair
    let alice2: SigningKeyPair
    let bob: SigningKeyPair
    let bob2: SigningKeyPair
    let carol: SigningKeyPair
    let dave: SigningKeyPair
    /// Never given an account.
    let stranger: SigningKeyPair
    let genesis: Genesis
    var ledger: Ledger
    /// The wall clock the test's arbiter reads (ms): a block takes it when its first transaction applies.
    var clock: UInt64 = Chain.genesisTime
    /// Each signer's next sequence number, advanced only when a transaction is applied.
    var sequences: [AccountID: UInt64] = [:]

    /// `twoClaimIssuers` adds `otherRegulator` as a second trusted claim issuer.
    init(twoClaimIssuers: Bool = false) throws {
        let arbiter = try deterministicKey(1)
        let regulator = try deterministicKey(2)
        let issuer = try deterministicKey(3)
        let otherRegulator = try deterministicKey(4)
        self.arbiter = arbiter
        self.regulator = regulator
        self.issuer = issuer
        self.otherRegulator = otherRegulator
        alice = try deterministicKey(10)
        alice2 = try deterministicKey(11)
        bob = try deterministicKey(12)
        bob2 = try deterministicKey(13)
        carol = try deterministicKey(14)
        dave = try deterministicKey(15)
        stranger = try deterministicKey(99)
        let claimIssuers =
            twoClaimIssuers ? [regulator.publicKey, otherRegulator.publicKey] : [regulator.publicKey]
        let genesis = Genesis(
            networkName: "rwanet-test", timeMilliseconds: Self.genesisTime, arbiter: arbiter.publicKey,
            claimIssuers: claimIssuers, stablecoinIssuer: issuer.publicKey)
        self.genesis = genesis
        ledger = Ledger(genesis: genesis)
    }

    var snapshot: Snapshot {
        let state = ledger.state
        var derived: [String] = []
        for token in state.tokens.keys.sorted() {
            derived.append("token \(token) holders \(state.holderCount(of: token))")
            for identity in state.identities.keys.sorted() {
                derived.append("token \(token) identity \(identity) \(state.identityBalance(token, identity))")
            }
        }
        return Snapshot(rows: state.allRows(), pendingCount: ledger.pending.count, derived: derived)
    }

    func holding(_ token: TokenID, _ wallet: SigningKeyPair) -> Holding {
        ledger.state.holding(token, wallet.publicKey)
    }

    /// Signs `operation` as `signer` at its next sequence number (or `sequence`), for this chain
    /// (or `chainID`).
    func sign(
        _ signer: SigningKeyPair, _ operation: LedgerOperation, sequence: UInt64? = nil, chainID: Digest32? = nil
    ) throws(Rejection) -> Transaction {
        try Transaction(
            signedBy: signer, chainID: chainID ?? ledger.chainID,
            sequence: sequence ?? sequences[signer.publicKey, default: 0], operation: operation)
    }

    /// Verifies and applies a signed transaction, as the arbiter does.
    @discardableResult
    mutating func submit(_ transaction: Transaction) -> Result<UInt64, Rejection> {
        lastApplied = nil
        let verified: VerifiedTransaction
        do throws(Rejection) {
            verified = try transaction.verified(chainID: ledger.chainID)
        } catch {
            return .failure(error)
        }
        let result = ledger.apply(verified, timeMilliseconds: clock)
        if case .success(let applied) = result {
            sequences[transaction.signer] = transaction.sequence + 1
            lastApplied = applied
        }
        return result.map(\.createdID)
    }

    /// Signs, verifies and applies.
    @discardableResult
    mutating func submit(
        _ signer: SigningKeyPair, _ operation: LedgerOperation, sequence: UInt64? = nil
    ) -> Result<UInt64, Rejection> {
        let transaction: Transaction
        do throws(Rejection) {
            transaction = try sign(signer, operation, sequence: sequence)
        } catch {
            return .failure(error)
        }
        return submit(transaction)
    }

    /// Submits and fails the test unless the ledger applies it; returns what it created.
    @discardableResult
    mutating func expectApplied(
        _ signer: SigningKeyPair, _ operation: LedgerOperation, file: StaticString = #filePath, line: UInt = #line
    ) -> UInt64 {
        switch submit(signer, operation) {
        case .success(let created):
            return created
        case .failure(let rejection):
            XCTFail("\(operation.name) was rejected: \(rejection)", file: file, line: line)
            return 0
        }
    }

    /// Submits and checks the rejection code, that no state row changed and that nothing joined
    /// the pending block.
    @discardableResult
    mutating func expectRejected(
        _ code: ErrorCode, _ signer: SigningKeyPair, _ operation: LedgerOperation, sequence: UInt64? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) -> Rejection? {
        let before = snapshot
        let result = submit(signer, operation, sequence: sequence)
        return check(result, expecting: code, what: operation.name, before: before, file: file, line: line)
    }

    @discardableResult
    mutating func expectRejected(
        _ code: ErrorCode, _ transaction: Transaction, file: StaticString = #filePath, line: UInt = #line
    ) -> Rejection? {
        let before = snapshot
        let result = submit(transaction)
        return check(result, expecting: code, what: transaction.operation.name, before: before, file: file, line: line)
    }

    private func check(
        _ result: Result<UInt64, Rejection>, expecting code: ErrorCode, what: String, before: Snapshot,
        file: StaticString, line: UInt
    ) -> Rejection? {
        var refused: Rejection?
        switch result {
        case .success(let created):
            XCTFail("\(what) was applied (created \(created)); expected \(code)", file: file, line: line)
        case .failure(let error):
            refused = error
            XCTAssertEqual(error.code, code, "\(what): \(error)", file: file, line: line)
        }
        XCTAssertEqual(
            ledger.state.allRows(), before.rows, "a rejected \(what) changed the state", file: file, line: line)
        XCTAssertEqual(
            ledger.pending.count, before.pendingCount, "a rejected \(what) was queued", file: file, line: line)
        XCTAssertEqual(
            snapshot.derived, before.derived, "a rejected \(what) changed the derived totals", file: file, line: line)
        return refused
    }

    // MARK: Set-up steps

    /// Registers `wallet` as a new identity of `country` holding `claims` (issued by the regulator).
    @discardableResult
    mutating func register(
        _ wallet: SigningKeyPair, country: CountryCode = Chain.unitedStates, claims: [UInt16] = [ClaimTopic.kyc],
        file: StaticString = #filePath, line: UInt = #line
    ) -> IdentityID {
        let id = expectApplied(
            regulator, .registerIdentity(account: wallet.publicKey, country: country), file: file, line: line)
        for topic in claims {
            expectApplied(regulator, .addClaim(identity: id, topic: topic), file: file, line: line)
        }
        return id
    }

    /// Adds `wallet` to an existing identity.
    mutating func link(
        _ wallet: SigningKeyPair, to identity: IdentityID, file: StaticString = #filePath, line: UInt = #line
    ) {
        expectApplied(regulator, .linkWallet(account: wallet.publicKey, identity: identity), file: file, line: line)
    }

    /// Mints stablecoin to `wallet` (which gets an account if it had none).
    mutating func fund(_ wallet: SigningKeyPair, _ amount: UInt128, file: StaticString = #filePath, line: UInt = #line)
    {
        expectApplied(
            issuer, .mint(token: Chain.stablecoin, to: wallet.publicKey, amount: amount), file: file, line: line)
    }

    /// The 3.5 GHz licence: 10 MHz wide, so 100 slices of 0.1 MHz from 3495 to 3505 MHz.
    static func band(widthHz: UInt64 = 10_000_000) -> SpectrumLicence {
        SpectrumLicence(
            centreHz: 3_500_000_000, widthHz: widthHz, country: Chain.unitedStates, region: "US-CA San Francisco",
            validFrom: 1_700_000_000, validUntil: 2_015_000_000)
    }

    func licence(
        owner: SigningKeyPair, rules: ComplianceRules = ComplianceRules(), spectrum: SpectrumLicence = Chain.band()
    ) -> ResourceRegistration {
        ResourceRegistration(
            kind: .radioSpectrum, owner: owner.publicKey, name: "CBRS 3.5 GHz", metadata: "n48, PAL",
            valuation: 2_500_000_000, spectrum: spectrum, compliance: rules)
    }

    /// Registers the 3.5 GHz licence owned by `owner`; returns its token id (its resource id).
    @discardableResult
    mutating func registerLicence(
        owner: SigningKeyPair, rules: ComplianceRules = ComplianceRules(), file: StaticString = #filePath,
        line: UInt = #line
    ) -> TokenID {
        expectApplied(regulator, .registerResource(licence(owner: owner, rules: rules)), file: file, line: line)
    }

    /// Two sealed blocks. Block 1: identities 1 (alice) and 2 (bob), both with KYC, and a
    /// stablecoin mint. Block 2: licence 1 owned by alice, transfers of both tokens to bob, a
    /// partial freeze of bob's licence tokens.
    mutating func sealTwoBlocks() -> [Block] {
        clock = Chain.genesisTime + 1_000
        register(alice)
        register(bob)
        fund(alice, 1_000_000)
        let first = ledger.sealBlock(arbiter: arbiter)
        clock = Chain.genesisTime + 2_000
        let licenceToken = registerLicence(owner: alice)
        expectApplied(alice, .transfer(token: licenceToken, to: bob.publicKey, amount: 5 * Chain.slice))
        expectApplied(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 250_000))
        expectApplied(regulator, .freezePartial(token: licenceToken, account: bob.publicKey, amount: Chain.slice))
        let second = ledger.sealBlock(arbiter: arbiter)
        return [first, second]
    }
}

/// The rejection `body` throws, or nil when it returns.
func rejection<T>(_ body: () throws -> T) -> Rejection? {
    do {
        _ = try body()
        return nil
    } catch let rejection as Rejection {
        return rejection
    } catch {
        XCTFail("expected a Rejection, got \(error)")
        return nil
    }
}

/// A decoding error reduced to its case and the field it names, so tests pin what was refused
/// without pinning the wording of the reason.
struct WireFault: Equatable, CustomStringConvertible {
    var kind: String
    var field: String

    init(_ kind: String, _ field: String) {
        self.kind = kind
        self.field = field
    }

    init(_ error: WireError) {
        switch error {
        case .truncated(let field, _, _): self.init("truncated", field)
        case .trailingBytes(let message, _): self.init("trailingBytes", message)
        case .lengthAboveMaximum(let field, _, _): self.init("lengthAboveMaximum", field)
        case .nonCanonical(let field, _): self.init("nonCanonical", field)
        case .invalidValue(let field, _): self.init("invalidValue", field)
        default: self.init("other", "\(error)")
        }
    }

    var description: String { "\(kind)(\(field))" }
}

/// The decoding error `body` throws, or nil when it decodes.
func decodingFault<T>(_ body: () throws -> T) -> WireFault? {
    wireErrorOf(body).map(WireFault.init)
}

/// Offset of the operation tag in a transaction: chain id, signer, sequence.
let operationTagOffset = Digest32.byteCount + SigningPublicKey.byteCount + 8

// MARK: - 1. Operations, normal case

final class LedgerOperationTests: XCTestCase {
    func testGenesisHoldsTheStablecoinAndTheIssuersAccounts() throws {
        let chain = try Chain()
        let state = chain.ledger.state
        let token = try XCTUnwrap(state.tokens[Chain.stablecoin])
        XCTAssertEqual(token.id, Chain.stablecoin)
        XCTAssertEqual(token.kind, .stablecoin)
        XCTAssertEqual(token.symbol, "USDR")
        XCTAssertEqual(token.decimals, 6)
        XCTAssertEqual(token.agents, [chain.issuer.publicKey])
        XCTAssertEqual(token.maxSupply, UInt128.max)
        XCTAssertEqual(token.totalSupply, 0)
        XCTAssertFalse(token.paused)
        XCTAssertNil(token.compliance)
        XCTAssertNil(token.resource)
        XCTAssertEqual(state.tokens.count, 1)
        for issuer in [chain.regulator, chain.issuer] {
            let account = try XCTUnwrap(state.accounts[issuer.publicKey])
            XCTAssertEqual(account.nextSequence, 0)
            XCTAssertNil(account.identity)
        }
        XCTAssertNil(state.accounts[chain.alice.publicKey])
        XCTAssertEqual(state.nextIdentity, 1)
        XCTAssertEqual(state.nextResource, 1)
        // counters, two accounts, the stablecoin.
        XCTAssertEqual(state.allRows().count, 4)
        XCTAssertEqual(chain.ledger.height, 0)
        XCTAssertEqual(chain.ledger.tipHash, chain.genesis.chainID)
        XCTAssertEqual(chain.ledger.tipTimeMilliseconds, Chain.genesisTime)
        XCTAssertTrue(chain.ledger.pending.isEmpty)
    }

    func testStablecoinTransferMovesBalanceAndOpensTheReceiversAccount() throws {
        var chain = try Chain()
        let (alice, bob) = (chain.alice, chain.bob)
        chain.fund(alice, 1_000)
        let created = chain.expectApplied(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 300))
        XCTAssertEqual(created, 0)
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 700))
        XCTAssertEqual(chain.holding(Chain.stablecoin, bob), Holding(balance: 300))
        XCTAssertEqual(chain.ledger.state.tokens[Chain.stablecoin]?.totalSupply, 1_000)
        XCTAssertEqual(chain.ledger.state.accounts[alice.publicKey]?.nextSequence, 1)
        // The stablecoin needs no identity; the receiver's account opens at sequence 0 and can send.
        XCTAssertEqual(chain.ledger.state.accounts[bob.publicKey]?.nextSequence, 0)
        chain.expectApplied(bob, .transfer(token: Chain.stablecoin, to: alice.publicKey, amount: 300))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 1_000))
        // An emptied holding leaves the state.
        XCTAssertNil(chain.ledger.state.row(.holding(Chain.stablecoin, bob.publicKey)))
        XCTAssertEqual(chain.ledger.pending.count, 3)
    }

    func testLicenceTokenTransferMovesSlicesBetweenVerifiedIdentities() throws {
        var chain = try Chain()
        let (alice, bob) = (chain.alice, chain.bob)
        let aliceID = chain.register(alice)
        let bobID = chain.register(bob)
        let licence = chain.registerLicence(owner: alice)
        chain.expectApplied(alice, .transfer(token: licence, to: bob.publicKey, amount: 5 * Chain.slice))
        XCTAssertEqual(chain.holding(licence, alice), Holding(balance: 95 * Chain.slice))
        XCTAssertEqual(chain.holding(licence, bob), Holding(balance: 5 * Chain.slice))
        XCTAssertEqual(chain.ledger.state.identityBalance(licence, aliceID), 95 * Chain.slice)
        XCTAssertEqual(chain.ledger.state.identityBalance(licence, bobID), 5 * Chain.slice)
        XCTAssertEqual(chain.ledger.state.holderCount(of: licence), 2)
        XCTAssertEqual(chain.ledger.state.tokens[licence]?.totalSupply, Chain.licenceSupply)
    }

    func testMintRaisesBalanceAndSupply() throws {
        var chain = try Chain()
        let alice = chain.alice
        XCTAssertNil(chain.ledger.state.accounts[alice.publicKey])
        chain.expectApplied(chain.issuer, .mint(token: Chain.stablecoin, to: alice.publicKey, amount: 500))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 500))
        XCTAssertNotNil(chain.ledger.state.accounts[alice.publicKey])
        chain.expectApplied(chain.issuer, .mint(token: Chain.stablecoin, to: alice.publicKey, amount: 250))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice).balance, 750)
        XCTAssertEqual(chain.ledger.state.tokens[Chain.stablecoin]?.totalSupply, 750)
        XCTAssertEqual(chain.ledger.state.accounts[chain.issuer.publicKey]?.nextSequence, 2)
    }

    func testBurnLowersBalanceAndSupply() throws {
        var chain = try Chain()
        let alice = chain.alice
        chain.fund(alice, 1_000)
        chain.expectApplied(chain.issuer, .burn(token: Chain.stablecoin, from: alice.publicKey, amount: 200))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 800))
        XCTAssertEqual(chain.ledger.state.tokens[Chain.stablecoin]?.totalSupply, 800)
    }

    /// A burn takes free tokens first; what it takes beyond them comes out of the frozen amount.
    func testBurnIntoPartiallyFrozenBalanceUnfreezesTheDifference() throws {
        var chain = try Chain()
        let (issuer, alice) = (chain.issuer, chain.alice)
        chain.fund(alice, 1_000)
        chain.expectApplied(issuer, .freezePartial(token: Chain.stablecoin, account: alice.publicKey, amount: 600))
        // 100 of the 400 free: the frozen amount is untouched.
        chain.expectApplied(issuer, .burn(token: Chain.stablecoin, from: alice.publicKey, amount: 100))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 900, frozenAmount: 600))
        // 700 with 300 free: 400 come out of the frozen 600.
        chain.expectApplied(issuer, .burn(token: Chain.stablecoin, from: alice.publicKey, amount: 700))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 200, frozenAmount: 200))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice).freeBalance, 0)
        XCTAssertEqual(chain.ledger.state.tokens[Chain.stablecoin]?.totalSupply, 200)
    }

    func testSetFrozenStopsAndRestoresAWallet() throws {
        var chain = try Chain()
        let (issuer, alice, bob) = (chain.issuer, chain.alice, chain.bob)
        chain.fund(alice, 100)
        chain.expectApplied(issuer, .setFrozen(token: Chain.stablecoin, account: alice.publicKey, frozen: true))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 100, frozen: true))
        chain.expectRejected(.accountFrozen, alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
        chain.expectApplied(issuer, .setFrozen(token: Chain.stablecoin, account: alice.publicKey, frozen: false))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 100))
        chain.expectApplied(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
        XCTAssertEqual(chain.holding(Chain.stablecoin, bob).balance, 1)
    }

    func testFreezePartialAndUnfreezePartialMoveTheFreeBalance() throws {
        var chain = try Chain()
        let (issuer, alice, bob) = (chain.issuer, chain.alice, chain.bob)
        chain.fund(alice, 1_000)
        chain.expectApplied(issuer, .freezePartial(token: Chain.stablecoin, account: alice.publicKey, amount: 400))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 1_000, frozenAmount: 400))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice).freeBalance, 600)
        chain.expectApplied(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 600))
        chain.expectRejected(
            .insufficientBalance, alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
        chain.expectApplied(issuer, .unfreezePartial(token: Chain.stablecoin, account: alice.publicKey, amount: 150))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 400, frozenAmount: 250))
        chain.expectApplied(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 150))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding(balance: 250, frozenAmount: 250))
        XCTAssertEqual(chain.holding(Chain.stablecoin, bob).balance, 750)
    }

    /// ERC-3643: an agent's forced transfer ignores pause and freezes, releasing frozen tokens
    /// as needed, but the receiver must still be verified.
    func testForcedTransferMovesFrozenTokensToAVerifiedReceiver() throws {
        var chain = try Chain()
        let (regulator, alice, bob, carol) = (chain.regulator, chain.alice, chain.bob, chain.carol)
        chain.register(alice)
        let bobID = chain.register(bob)
        let licence = chain.registerLicence(owner: alice)
        chain.expectApplied(
            regulator, .freezePartial(token: licence, account: alice.publicKey, amount: 99 * Chain.slice))
        chain.expectApplied(regulator, .setFrozen(token: licence, account: alice.publicKey, frozen: true))
        chain.expectApplied(regulator, .setPaused(token: licence, paused: true))
        chain.expectRejected(
            .receiverNotVerified, regulator,
            .forcedTransfer(token: licence, from: alice.publicKey, to: carol.publicKey, amount: 3 * Chain.slice))
        chain.expectApplied(
            regulator,
            .forcedTransfer(token: licence, from: alice.publicKey, to: bob.publicKey, amount: 3 * Chain.slice))
        // 1 slice was free; the other 2 came out of the frozen 99.
        XCTAssertEqual(
            chain.holding(licence, alice),
            Holding(balance: 97 * Chain.slice, frozenAmount: 97 * Chain.slice, frozen: true))
        XCTAssertEqual(chain.holding(licence, bob), Holding(balance: 3 * Chain.slice))
        XCTAssertEqual(chain.ledger.state.identityBalance(licence, bobID), 3 * Chain.slice)
        XCTAssertEqual(chain.ledger.state.holderCount(of: licence), 2)
    }

    func testRecoverWalletMovesTheWholePositionToAWalletOfTheSameIdentity() throws {
        var chain = try Chain()
        let (regulator, alice, alice2) = (chain.regulator, chain.alice, chain.alice2)
        let aliceID = chain.register(alice)
        chain.link(alice2, to: aliceID)
        let licence = chain.registerLicence(owner: alice)
        chain.expectApplied(
            regulator, .freezePartial(token: licence, account: alice.publicKey, amount: 10 * Chain.slice))
        chain.expectApplied(regulator, .setFrozen(token: licence, account: alice.publicKey, frozen: true))
        chain.expectApplied(
            regulator, .recoverWallet(token: licence, lost: alice.publicKey, replacement: alice2.publicKey))
        XCTAssertEqual(chain.holding(licence, alice), Holding())
        XCTAssertNil(chain.ledger.state.row(.holding(licence, alice.publicKey)))
        XCTAssertEqual(
            chain.holding(licence, alice2),
            Holding(balance: Chain.licenceSupply, frozenAmount: 10 * Chain.slice, frozen: true))
        XCTAssertEqual(chain.ledger.state.identityBalance(licence, aliceID), Chain.licenceSupply)
        XCTAssertEqual(chain.ledger.state.holderCount(of: licence), 1)

        // The stablecoin has no identities: its agent may recover to any wallet.
        let carol = chain.carol
        chain.fund(alice, 1_000)
        chain.expectApplied(
            chain.issuer, .recoverWallet(token: Chain.stablecoin, lost: alice.publicKey, replacement: carol.publicKey))
        XCTAssertEqual(chain.holding(Chain.stablecoin, alice), Holding())
        XCTAssertEqual(chain.holding(Chain.stablecoin, carol), Holding(balance: 1_000))
    }

    func testSetPausedStopsAndResumesTransfers() throws {
        var chain = try Chain()
        let (issuer, alice, bob) = (chain.issuer, chain.alice, chain.bob)
        chain.fund(alice, 100)
        chain.expectApplied(issuer, .setPaused(token: Chain.stablecoin, paused: true))
        XCTAssertEqual(chain.ledger.state.tokens[Chain.stablecoin]?.paused, true)
        chain.expectRejected(.tokenPaused, alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
        chain.expectApplied(issuer, .setPaused(token: Chain.stablecoin, paused: false))
        XCTAssertEqual(chain.ledger.state.tokens[Chain.stablecoin]?.paused, false)
        chain.expectApplied(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
    }

    func testSetComplianceReplacesTheRules() throws {
        var chain = try Chain()
        let (alice, bob) = (chain.alice, chain.bob)
        chain.register(alice)
        chain.register(bob)
        let licence = chain.registerLicence(owner: alice)
        let rules = ComplianceRules(
            requiredClaims: [ClaimTopic.licensedOperator, ClaimTopic.kyc], allowedCountries: [840, 826],
            deniedCountries: [643], maxBalancePerIdentity: 60 * Chain.slice, maxHolders: 5)
        XCTAssertEqual(rules.requiredClaims, [ClaimTopic.kyc, ClaimTopic.licensedOperator])
        XCTAssertEqual(rules.allowedCountries, [826, 840])
        chain.expectApplied(chain.regulator, .setCompliance(token: licence, rules: rules))
        XCTAssertEqual(chain.ledger.state.tokens[licence]?.compliance, rules)
        // The new rules apply at once: bob lacks the licensed-operator claim.
        chain.expectRejected(
            .receiverNotVerified, alice, .transfer(token: licence, to: bob.publicKey, amount: Chain.slice))
    }

    func testRegisterIdentityNumbersIdentitiesFromOne() throws {
        var chain = try Chain()
        let (regulator, alice, bob) = (chain.regulator, chain.alice, chain.bob)
        let first = chain.expectApplied(regulator, .registerIdentity(account: alice.publicKey, country: 840))
        let second = chain.expectApplied(regulator, .registerIdentity(account: bob.publicKey, country: 826))
        XCTAssertEqual(first, 1)
        XCTAssertEqual(second, 2)
        XCTAssertEqual(chain.ledger.state.nextIdentity, 3)
        XCTAssertEqual(chain.ledger.state.accounts[alice.publicKey]?.identity, 1)
        XCTAssertEqual(chain.ledger.state.accounts[bob.publicKey]?.identity, 2)
        let identity = try XCTUnwrap(chain.ledger.state.identities[2])
        XCTAssertEqual(identity.id, 2)
        XCTAssertEqual(identity.country, 826)
        XCTAssertTrue(identity.claims.isEmpty)
        XCTAssertEqual(chain.ledger.state.row(.counters), [0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1])
    }

    func testLinkWalletSharesTheIdentity() throws {
        var chain = try Chain()
        let (alice, alice2) = (chain.alice, chain.alice2)
        let aliceID = chain.register(alice)
        let created = chain.expectApplied(
            chain.regulator, .linkWallet(account: alice2.publicKey, identity: aliceID))
        XCTAssertEqual(created, 0)
        XCTAssertEqual(chain.ledger.state.accounts[alice2.publicKey]?.identity, aliceID)
        XCTAssertEqual(chain.ledger.state.nextIdentity, 2)
        // The linked wallet is verified through the identity's claims.
        let licence = chain.registerLicence(owner: alice)
        chain.expectApplied(alice, .transfer(token: licence, to: alice2.publicKey, amount: Chain.slice))
        XCTAssertEqual(chain.holding(licence, alice2).balance, Chain.slice)
        XCTAssertEqual(chain.ledger.state.identityBalance(licence, aliceID), Chain.licenceSupply)
        XCTAssertEqual(chain.ledger.state.holderCount(of: licence), 1)
    }

    func testAddClaimKeepsClaimsSortedByTopic() throws {
        var chain = try Chain()
        let regulator = chain.regulator
        let aliceID = chain.register(chain.alice, claims: [])
        chain.expectApplied(regulator, .addClaim(identity: aliceID, topic: ClaimTopic.accreditedInvestor))
        chain.expectApplied(regulator, .addClaim(identity: aliceID, topic: ClaimTopic.kyc))
        let identity = try XCTUnwrap(chain.ledger.state.identities[aliceID])
        XCTAssertEqual(identity.claims.map(\.topic), [ClaimTopic.kyc, ClaimTopic.accreditedInvestor])
        XCTAssertEqual(identity.claims.map(\.issuer), [regulator.publicKey, regulator.publicKey])
        XCTAssertTrue(identity.hasClaims([ClaimTopic.kyc, ClaimTopic.accreditedInvestor]))
        XCTAssertFalse(identity.hasClaims([ClaimTopic.licensedOperator]))
    }

    func testRevokeClaimOnlyByItsIssuer() throws {
        var chain = try Chain(twoClaimIssuers: true)
        let (regulator, other) = (chain.regulator, chain.otherRegulator)
        let aliceID = chain.register(chain.alice)  // KYC issued by the regulator
        chain.expectApplied(other, .addClaim(identity: aliceID, topic: ClaimTopic.accreditedInvestor))
        chain.expectRejected(.notAuthorized, other, .revokeClaim(identity: aliceID, topic: ClaimTopic.kyc))
        chain.expectApplied(regulator, .revokeClaim(identity: aliceID, topic: ClaimTopic.kyc))
        let identity = try XCTUnwrap(chain.ledger.state.identities[aliceID])
        XCTAssertEqual(identity.claims.map(\.topic), [ClaimTopic.accreditedInvestor])
        XCTAssertEqual(identity.claims.map(\.issuer), [other.publicKey])
        chain.expectApplied(other, .revokeClaim(identity: aliceID, topic: ClaimTopic.accreditedInvestor))
        XCTAssertEqual(chain.ledger.state.identities[aliceID]?.claims.isEmpty, true)
    }

    func testRegisterSpectrumLicenceIssuesItsToken() throws {
        var chain = try Chain()
        let (regulator, alice) = (chain.regulator, chain.alice)
        let aliceID = chain.register(alice)
        let rules = ComplianceRules(deniedCountries: [643], maxHolders: 50)
        let registration = chain.licence(owner: alice, rules: rules)
        let created = chain.expectApplied(regulator, .registerResource(registration))
        XCTAssertEqual(created, 1)

        let resource = try XCTUnwrap(chain.ledger.state.resources[1])
        XCTAssertEqual(resource.id, 1)
        XCTAssertEqual(resource.registration, registration)
        XCTAssertEqual(resource.registrar, regulator.publicKey)
        XCTAssertEqual(resource.registeredAtHeight, 1)
        XCTAssertEqual(resource.token, 1)  // the token takes the resource's number
        XCTAssertEqual(resource.assessment, ResourceKind.radioSpectrum.defaultAssessment)
        XCTAssertEqual(chain.ledger.state.nextResource, 2)

        let token = try XCTUnwrap(chain.ledger.state.tokens[1])
        XCTAssertEqual(token.kind, .licenceOwnership)
        XCTAssertEqual(token.symbol, "LIC1")
        XCTAssertEqual(token.decimals, 6)
        XCTAssertEqual(token.agents, [regulator.publicKey])
        XCTAssertEqual(token.maxSupply, 100_000_000)
        XCTAssertEqual(token.totalSupply, 100_000_000)
        XCTAssertEqual(token.compliance, rules)
        XCTAssertEqual(token.resource, 1)
        XCTAssertFalse(token.paused)
        XCTAssertEqual(chain.holding(1, alice), Holding(balance: 100_000_000))
        XCTAssertEqual(chain.ledger.state.identityBalance(1, aliceID), 100_000_000)
        XCTAssertEqual(chain.ledger.state.holderCount(of: 1), 1)

        let band = try XCTUnwrap(resource.registration.spectrum)
        XCTAssertEqual(SpectrumLicence.sliceCount, 100)
        XCTAssertEqual(band.sliceWidthHz, 100_000)
        XCTAssertEqual(band.slice(0).lowHz, 3_495_000_000)
        XCTAssertEqual(band.slice(0).highHz, 3_495_100_000)
        XCTAssertEqual(band.slice(99).lowHz, 3_504_900_000)
        XCTAssertEqual(band.slice(99).highHz, 3_505_000_000)
        for index in 1..<SpectrumLicence.sliceCount {
            XCTAssertEqual(band.slice(index).lowHz, band.slice(index - 1).highHz, "slice \(index)")
        }

        // The next resource, and its token, take the next number.
        let second = chain.registerLicence(owner: alice)
        XCTAssertEqual(second, 2)
        XCTAssertEqual(chain.ledger.state.tokens[2]?.symbol, "LIC2")
    }

    func testRegisterOtherResourceHasNoTokenAndTableOneAssessment() throws {
        var chain = try Chain()
        let (regulator, alice) = (chain.regulator, chain.alice)
        chain.register(alice, claims: [])  // an identity is needed, a claim is not
        let addresses = ResourceRegistration(
            kind: .ipAddressBlock, owner: alice.publicKey, name: "198.51.100.0/24", metadata: "RIPE NCC",
            valuation: 40_000_000)
        let first = chain.expectApplied(regulator, .registerResource(addresses))
        XCTAssertEqual(first, 1)
        let resource = try XCTUnwrap(chain.ledger.state.resources[1])
        XCTAssertNil(resource.token)
        XCTAssertNil(chain.ledger.state.tokens[1])
        XCTAssertEqual(chain.ledger.state.tokens.count, 1)
        XCTAssertEqual(chain.holding(1, alice), Holding())
        XCTAssertEqual(resource.assessment, ResourceKind.ipAddressBlock.defaultAssessment)
        XCTAssertEqual(resource.assessment.intrinsicValue.score, 3)
        XCTAssertEqual(resource.assessment.strategicScarcity.score, 3)
        XCTAssertEqual(resource.assessment.legalClarity.score, 1)

        // The owner contests one criterion; the other two stay Table I's. Registered in block 2.
        _ = chain.ledger.sealBlock(arbiter: chain.arbiter)
        chain.clock = Chain.genesisTime + 1_000
        let argued = CriterionScore(score: 2, reason: "multi-year contracts are the norm")
        let compute = ResourceRegistration(
            kind: .computationalPower, owner: alice.publicKey, name: "GPU rack 7", valuation: 9_000_000,
            intrinsicValue: argued)
        let second = chain.expectApplied(regulator, .registerResource(compute))
        XCTAssertEqual(second, 2)
        let computeResource = try XCTUnwrap(chain.ledger.state.resources[2])
        let table = ResourceKind.computationalPower.defaultAssessment
        XCTAssertEqual(computeResource.assessment.intrinsicValue, argued)
        XCTAssertNotEqual(table.intrinsicValue, argued)
        XCTAssertEqual(computeResource.assessment.strategicScarcity, table.strategicScarcity)
        XCTAssertEqual(computeResource.assessment.legalClarity, table.legalClarity)
        XCTAssertEqual(computeResource.registeredAtHeight, 2)
        XCTAssertNil(computeResource.token)
    }

    /// Table I of the paper, criterion by criterion: intrinsic value, strategic scarcity, legal clarity.
    func testTableOneScores() {
        let expected: [(ResourceKind, [UInt8])] = [
            (.domainName, [2, 2, 1]), (.ipAddressBlock, [3, 3, 1]), (.bandwidth, [2, 2, 1]),
            (.nodeResources, [2, 3, 0]), (.computationalPower, [1, 2, 3]), (.radioSpectrum, [3, 3, 1]),
            (.cloudStorage, [1, 1, 2]),
        ]
        XCTAssertEqual(expected.count, ResourceKind.allCases.count)
        for (kind, scores) in expected {
            let assessment = kind.defaultAssessment
            XCTAssertEqual(
                [assessment.intrinsicValue.score, assessment.strategicScarcity.score, assessment.legalClarity.score],
                scores, kind.name)
            XCTAssertEqual(ResourceKind(name: kind.name), kind)
        }
    }

    func testSequenceAdvancesOnlyWhenApplied() throws {
        var chain = try Chain()
        let (alice, bob) = (chain.alice, chain.bob)
        chain.fund(alice, 10)
        chain.expectApplied(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
        XCTAssertEqual(chain.ledger.state.accounts[alice.publicKey]?.nextSequence, 1)
        chain.expectRejected(
            .insufficientBalance, alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 100))
        XCTAssertEqual(chain.ledger.state.accounts[alice.publicKey]?.nextSequence, 1)
        // The rejected transaction used no number: the next one is still 1.
        let result = chain.submit(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1), sequence: 1)
        XCTAssertEqual(try result.get(), 0)
        XCTAssertEqual(chain.ledger.state.accounts[alice.publicKey]?.nextSequence, 2)
    }
}

// MARK: - 2. Rejections: each its own code, and nothing changes

final class LedgerRejectionTests: XCTestCase {
    func testTamperedTransactionHasAnInvalidSignature() throws {
        var chain = try Chain()
        let (alice, bob) = (chain.alice, chain.bob)
        chain.fund(alice, 100)
        let transaction = try chain.sign(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 10))
        XCTAssertNil(rejection { try transaction.verified(chainID: chain.ledger.chainID) })

        // One flipped bit in the amount (10 → 11) still decodes, but the signature does not cover it.
        var bytes = transaction.encoded
        bytes[bytes.count - Signature.byteCount - 1] ^= 0x01
        let tampered = try Transaction(decoding: bytes)
        XCTAssertEqual(tampered.operation, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 11))
        chain.expectRejected(.invalidSignature, tampered)

        // A flipped bit in the signature.
        var badSignature = transaction.encoded
        badSignature[badSignature.count - 1] ^= 0x80
        let withBadSignature = try Transaction(decoding: badSignature)
        chain.expectRejected(.invalidSignature, withBadSignature)

        // Another key's signature presented under alice's name.
        var impostor = try chain.sign(bob, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 10))
        impostor.signer = alice.publicKey
        chain.expectRejected(.invalidSignature, impostor)

        // The genuine transaction still applies.
        let genuine = chain.submit(transaction)
        XCTAssertEqual(try genuine.get(), 0)
    }

    func testTransactionForAnotherChainIsRefused() throws {
        var chain = try Chain()
        let (alice, bob) = (chain.alice, chain.bob)
        chain.fund(alice, 100)
        var otherGenesis = chain.genesis
        otherGenesis.networkName = "rwanet-elsewhere"
        XCTAssertNotEqual(otherGenesis.chainID, chain.ledger.chainID)
        let operation = LedgerOperation.transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 10)
        let foreign = try chain.sign(alice, operation, chainID: otherGenesis.chainID)
        chain.expectRejected(.wrongChainID, foreign)
        // And a transaction for this chain is refused by the other.
        let local = try chain.sign(alice, operation)
        XCTAssertEqual(rejection { try local.verified(chainID: otherGenesis.chainID) }?.code, .wrongChainID)
    }

    func testReusedSequenceIsRefused() throws {
        var chain = try Chain()
        let (alice, bob) = (chain.alice, chain.bob)
        chain.fund(alice, 100)
        let first = try chain.sign(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
        let applied = chain.submit(first)
        XCTAssertEqual(try applied.get(), 0)
        // The same bytes again (a replay), and a new transaction at the used number.
        chain.expectRejected(.sequenceReused, first)
        chain.expectRejected(
            .sequenceReused, alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 2), sequence: 0)
    }

    func testSequenceAheadIsRefused() throws {
        var chain = try Chain()
        let (alice, bob) = (chain.alice, chain.bob)
        chain.fund(alice, 100)
        let operation = LedgerOperation.transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1)
        chain.expectRejected(.sequenceAhead, alice, operation, sequence: 1)
        chain.expectRejected(.sequenceAhead, alice, operation, sequence: UInt64.max)
        let applied = chain.submit(alice, operation, sequence: 0)
        XCTAssertEqual(try applied.get(), 0)
    }

    func testInsufficientBalanceIsRefused() throws {
        var chain = try Chain()
        let (issuer, alice, bob) = (chain.issuer, chain.alice, chain.bob)
        chain.fund(alice, 100)
        chain.expectRejected(
            .insufficientBalance, alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 101))
        // 100 held but 60 frozen: 41 is above the free 40.
        chain.expectApplied(issuer, .freezePartial(token: Chain.stablecoin, account: alice.publicKey, amount: 60))
        chain.expectRejected(
            .insufficientBalance, alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 41))
        chain.expectApplied(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 40))
        // Agents are bound by balances too.
        chain.expectRejected(
            .insufficientBalance, issuer, .freezePartial(token: Chain.stablecoin, account: alice.publicKey, amount: 1))
        chain.expectRejected(
            .insufficientBalance, issuer, .burn(token: Chain.stablecoin, from: alice.publicKey, amount: 61))
        chain.expectRejected(
            .insufficientBalance, issuer,
            .forcedTransfer(token: Chain.stablecoin, from: alice.publicKey, to: bob.publicKey, amount: 61))
    }

    func testUnknownAccountIsRefused() throws {
        var chain = try Chain()
        let (issuer, alice, stranger) = (chain.issuer, chain.alice, chain.stranger)
        chain.fund(alice, 100)
        // A fresh key has no account, so no sequence number to check.
        chain.expectRejected(
            .unknownAccount, stranger, .transfer(token: Chain.stablecoin, to: alice.publicKey, amount: 1))
        // Freezes name an existing account.
        chain.expectRejected(
            .unknownAccount, issuer, .setFrozen(token: Chain.stablecoin, account: stranger.publicKey, frozen: true))
        chain.expectRejected(
            .unknownAccount, issuer, .freezePartial(token: Chain.stablecoin, account: stranger.publicKey, amount: 1))
        chain.expectRejected(
            .unknownAccount, issuer, .unfreezePartial(token: Chain.stablecoin, account: stranger.publicKey, amount: 1))
    }

    func testOperationsOutsideTheSignersRoleAreNotAuthorized() throws {
        var chain = try Chain()
        let (issuer, regulator, alice, bob, carol) = (
            chain.issuer, chain.regulator, chain.alice, chain.bob, chain.carol
        )
        let aliceID = chain.register(alice)
        chain.register(bob)
        chain.fund(alice, 100)
        let licence = chain.registerLicence(owner: alice)
        let (a, b, c) = (alice.publicKey, bob.publicKey, carol.publicKey)

        // A holder is no agent.
        chain.expectRejected(.notAuthorized, alice, .mint(token: Chain.stablecoin, to: a, amount: 1))
        chain.expectRejected(.notAuthorized, alice, .burn(token: Chain.stablecoin, from: a, amount: 1))
        chain.expectRejected(.notAuthorized, alice, .setFrozen(token: Chain.stablecoin, account: b, frozen: true))
        chain.expectRejected(.notAuthorized, alice, .freezePartial(token: Chain.stablecoin, account: a, amount: 1))
        chain.expectRejected(.notAuthorized, alice, .unfreezePartial(token: Chain.stablecoin, account: a, amount: 1))
        chain.expectRejected(.notAuthorized, alice, .setPaused(token: Chain.stablecoin, paused: true))
        chain.expectRejected(.notAuthorized, alice, .forcedTransfer(token: licence, from: a, to: b, amount: 1))
        chain.expectRejected(.notAuthorized, alice, .recoverWallet(token: licence, lost: a, replacement: b))
        chain.expectRejected(.notAuthorized, alice, .setCompliance(token: licence, rules: ComplianceRules()))

        // Each token has its own agents.
        chain.expectRejected(.notAuthorized, regulator, .mint(token: Chain.stablecoin, to: a, amount: 1))
        chain.expectRejected(.notAuthorized, issuer, .setPaused(token: licence, paused: true))
        chain.expectRejected(.notAuthorized, issuer, .burn(token: licence, from: a, amount: 1))

        // Only trusted claim issuers manage identities and register resources.
        chain.expectRejected(.notAuthorized, alice, .registerIdentity(account: c, country: 840))
        chain.expectRejected(.notAuthorized, issuer, .registerIdentity(account: c, country: 840))
        chain.expectRejected(.notAuthorized, issuer, .linkWallet(account: c, identity: aliceID))
        chain.expectRejected(.notAuthorized, issuer, .addClaim(identity: aliceID, topic: ClaimTopic.accreditedInvestor))
        chain.expectRejected(.notAuthorized, issuer, .revokeClaim(identity: aliceID, topic: ClaimTopic.kyc))
        chain.expectRejected(
            .notAuthorized, issuer,
            .registerResource(ResourceRegistration(kind: .domainName, owner: a, name: "alice.example", valuation: 1)))
    }

    /// Needs a genesis with two claim issuers: one may not revoke the other's claim.
    func testRevokingAnotherIssuersClaimIsNotAuthorized() throws {
        var chain = try Chain(twoClaimIssuers: true)
        let aliceID = chain.register(chain.alice)  // KYC by the regulator
        chain.expectRejected(
            .notAuthorized, chain.otherRegulator, .revokeClaim(identity: aliceID, topic: ClaimTopic.kyc))
        XCTAssertEqual(chain.ledger.state.identities[aliceID]?.claims.map(\.topic), [ClaimTopic.kyc])
    }

    func testPausedTokenIsRefused() throws {
        var chain = try Chain()
        let (regulator, issuer, alice, bob) = (chain.regulator, chain.issuer, chain.alice, chain.bob)
        chain.fund(alice, 100)
        chain.expectApplied(issuer, .setPaused(token: Chain.stablecoin, paused: true))
        chain.expectRejected(.tokenPaused, alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
        chain.register(alice)
        chain.register(bob)
        let licence = chain.registerLicence(owner: alice)
        chain.expectApplied(regulator, .setPaused(token: licence, paused: true))
        chain.expectRejected(.tokenPaused, alice, .transfer(token: licence, to: bob.publicKey, amount: 1))
    }

    func testFrozenSenderAndFrozenReceiverAreRefused() throws {
        var chain = try Chain()
        let (issuer, alice, bob) = (chain.issuer, chain.alice, chain.bob)
        chain.fund(alice, 100)
        chain.fund(bob, 100)
        chain.expectApplied(issuer, .setFrozen(token: Chain.stablecoin, account: alice.publicKey, frozen: true))
        let fromAlice = chain.expectRejected(
            .accountFrozen, alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
        XCTAssertEqual(fromAlice?.reason.contains(alice.publicKey.description), true)
        // A frozen wallet cannot receive either.
        let toAlice = chain.expectRejected(
            .accountFrozen, bob, .transfer(token: Chain.stablecoin, to: alice.publicKey, amount: 1))
        XCTAssertEqual(toAlice?.reason.contains(alice.publicKey.description), true)
    }

    func testUnverifiedReceiverIsRefused() throws {
        var chain = try Chain()
        let (regulator, alice, bob, carol, dave) = (chain.regulator, chain.alice, chain.bob, chain.carol, chain.dave)
        chain.register(alice)
        let bobID = chain.register(bob)
        let carolID = chain.register(carol, claims: [])
        let licence = chain.registerLicence(owner: alice)
        // No identity at all.
        chain.expectRejected(.receiverNotVerified, alice, .transfer(token: licence, to: dave.publicKey, amount: 1))
        // An identity without the KYC claim.
        chain.expectRejected(.receiverNotVerified, alice, .transfer(token: licence, to: carol.publicKey, amount: 1))
        chain.expectApplied(regulator, .addClaim(identity: carolID, topic: ClaimTopic.kyc))
        chain.expectApplied(alice, .transfer(token: licence, to: carol.publicKey, amount: 1))
        // A revoked claim no longer verifies.
        chain.expectApplied(regulator, .revokeClaim(identity: bobID, topic: ClaimTopic.kyc))
        chain.expectRejected(.receiverNotVerified, alice, .transfer(token: licence, to: bob.publicKey, amount: 1))
        // A forced transfer, and a resource's owner, need an identity too.
        chain.expectRejected(
            .receiverNotVerified, regulator,
            .forcedTransfer(token: licence, from: alice.publicKey, to: dave.publicKey, amount: 1))
        chain.expectRejected(
            .receiverNotVerified, regulator,
            .registerResource(
                ResourceRegistration(kind: .domainName, owner: dave.publicKey, name: "dave.example", valuation: 1)))
    }

    func testCountryRulesAreEnforced() throws {
        var chain = try Chain()
        let (regulator, alice, bob, carol, dave) = (chain.regulator, chain.alice, chain.bob, chain.carol, chain.dave)
        chain.register(alice)
        chain.register(bob, country: Chain.unitedKingdom)
        chain.register(carol, country: Chain.unitedStates)
        chain.register(dave, country: Chain.france)
        let licence = chain.registerLicence(
            owner: alice, rules: ComplianceRules(deniedCountries: [Chain.unitedKingdom]))
        // Deny list.
        chain.expectRejected(.countryNotAllowed, alice, .transfer(token: licence, to: bob.publicKey, amount: 1))
        chain.expectApplied(alice, .transfer(token: licence, to: carol.publicKey, amount: 1))
        // Allow list.
        chain.expectApplied(
            regulator,
            .setCompliance(
                token: licence, rules: ComplianceRules(allowedCountries: [Chain.unitedStates, Chain.unitedKingdom])))
        chain.expectRejected(.countryNotAllowed, alice, .transfer(token: licence, to: dave.publicKey, amount: 1))
        chain.expectApplied(alice, .transfer(token: licence, to: bob.publicKey, amount: 1))
        // A licence cannot be issued to an owner its own rules exclude.
        chain.expectRejected(
            .countryNotAllowed, regulator,
            .registerResource(chain.licence(owner: dave, rules: ComplianceRules(deniedCountries: [Chain.france]))))
    }

    /// The cap is per identity: all of its wallets together.
    func testBalanceLimitIsPerIdentity() throws {
        var chain = try Chain()
        let (regulator, alice, bob, bob2, carol) = (chain.regulator, chain.alice, chain.bob, chain.bob2, chain.carol)
        chain.register(alice)
        let bobID = chain.register(bob)
        chain.link(bob2, to: bobID)
        let licence = chain.registerLicence(owner: alice)
        chain.expectApplied(
            regulator, .setCompliance(token: licence, rules: ComplianceRules(maxBalancePerIdentity: 30 * Chain.slice)))
        chain.expectRejected(
            .balanceLimitExceeded, alice, .transfer(token: licence, to: bob.publicKey, amount: 30 * Chain.slice + 1))
        chain.expectApplied(alice, .transfer(token: licence, to: bob.publicKey, amount: 20 * Chain.slice))
        chain.expectRejected(
            .balanceLimitExceeded, alice, .transfer(token: licence, to: bob2.publicKey, amount: 10 * Chain.slice + 1))
        chain.expectApplied(alice, .transfer(token: licence, to: bob2.publicKey, amount: 10 * Chain.slice))
        XCTAssertEqual(chain.ledger.state.identityBalance(licence, bobID), 30 * Chain.slice)
        // Issuing a licence whose whole supply is above its own cap.
        chain.register(carol)
        chain.expectRejected(
            .balanceLimitExceeded, regulator,
            .registerResource(
                chain.licence(owner: carol, rules: ComplianceRules(maxBalancePerIdentity: 50 * Chain.slice))))
    }

    /// Two wallets of one identity count as one holder.
    func testHolderLimitCountsIdentitiesNotWallets() throws {
        var chain = try Chain()
        let (alice, alice2, bob, bob2, carol) = (chain.alice, chain.alice2, chain.bob, chain.bob2, chain.carol)
        let aliceID = chain.register(alice)
        chain.link(alice2, to: aliceID)
        let bobID = chain.register(bob)
        chain.link(bob2, to: bobID)
        chain.register(carol)
        let licence = chain.registerLicence(owner: alice, rules: ComplianceRules(maxHolders: 2))
        chain.expectApplied(alice, .transfer(token: licence, to: bob.publicKey, amount: 10 * Chain.slice))
        XCTAssertEqual(chain.ledger.state.holderCount(of: licence), 2)
        chain.expectRejected(.holderLimitExceeded, alice, .transfer(token: licence, to: carol.publicKey, amount: 1))
        // Second wallets of identities that already hold add no holder.
        chain.expectApplied(alice, .transfer(token: licence, to: bob2.publicKey, amount: Chain.slice))
        chain.expectApplied(alice, .transfer(token: licence, to: alice2.publicKey, amount: Chain.slice))
        XCTAssertEqual(chain.ledger.state.holderCount(of: licence), 2)
        XCTAssertEqual(chain.ledger.state.identityBalance(licence, bobID), 11 * Chain.slice)
        // Bob's wallet emptying frees no place while bob2 still holds…
        chain.expectRejected(
            .holderLimitExceeded, bob, .transfer(token: licence, to: carol.publicKey, amount: 10 * Chain.slice))
        // …but once the identity's whole balance leaves, its place passes to the receiver.
        chain.expectApplied(bob2, .transfer(token: licence, to: bob.publicKey, amount: Chain.slice))
        chain.expectApplied(bob, .transfer(token: licence, to: carol.publicKey, amount: 11 * Chain.slice))
        XCTAssertEqual(chain.ledger.state.holderCount(of: licence), 2)
        XCTAssertEqual(chain.ledger.state.identityBalance(licence, bobID), 0)
    }

    /// Above a cap that was lowered (or after a forced transfer), transfers that add no holder
    /// stay allowed; only one that would add a holder is refused.
    func testHolderLimitOnlyRefusesANewHolder() throws {
        var chain = try Chain()
        let (regulator, alice, bob, carol) = (chain.regulator, chain.alice, chain.bob, chain.carol)
        chain.register(alice)
        chain.register(bob)
        chain.register(carol)
        let licence = chain.registerLicence(owner: alice)
        chain.expectApplied(alice, .transfer(token: licence, to: bob.publicKey, amount: 10 * Chain.slice))
        chain.expectApplied(regulator, .setCompliance(token: licence, rules: ComplianceRules(maxHolders: 1)))
        XCTAssertEqual(chain.ledger.state.holderCount(of: licence), 2, "above the lowered cap")
        chain.expectApplied(alice, .transfer(token: licence, to: bob.publicKey, amount: Chain.slice))
        chain.expectApplied(bob, .transfer(token: licence, to: alice.publicKey, amount: Chain.slice))
        chain.expectRejected(.holderLimitExceeded, alice, .transfer(token: licence, to: carol.publicKey, amount: 1))
        // Bob leaving entirely for carol keeps the count: allowed.
        chain.expectApplied(bob, .transfer(token: licence, to: carol.publicKey, amount: 10 * Chain.slice))
        XCTAssertEqual(chain.ledger.state.holderCount(of: licence), 2)
    }

    func testUnknownTokenIsRefused() throws {
        var chain = try Chain()
        let (issuer, alice, bob) = (chain.issuer, chain.alice, chain.bob)
        chain.fund(alice, 100)
        let missing: TokenID = 42
        chain.expectRejected(.unknownToken, alice, .transfer(token: missing, to: bob.publicKey, amount: 1))
        chain.expectRejected(.unknownToken, issuer, .mint(token: missing, to: bob.publicKey, amount: 1))
        chain.expectRejected(.unknownToken, issuer, .burn(token: missing, from: alice.publicKey, amount: 1))
        chain.expectRejected(.unknownToken, issuer, .setFrozen(token: missing, account: alice.publicKey, frozen: true))
        chain.expectRejected(.unknownToken, issuer, .setPaused(token: missing, paused: true))
        chain.expectRejected(.unknownToken, issuer, .setCompliance(token: missing, rules: ComplianceRules()))
    }

    func testUnknownIdentityIsRefused() throws {
        var chain = try Chain()
        let (regulator, alice, alice2) = (chain.regulator, chain.alice, chain.alice2)
        chain.expectRejected(.unknownIdentity, regulator, .addClaim(identity: 1, topic: ClaimTopic.kyc))
        chain.register(alice)
        chain.expectRejected(.unknownIdentity, regulator, .linkWallet(account: alice2.publicKey, identity: 2))
        chain.expectRejected(.unknownIdentity, regulator, .revokeClaim(identity: 7, topic: ClaimTopic.kyc))
    }

    func testZeroAmountIsRefused() throws {
        var chain = try Chain()
        let (issuer, alice, bob) = (chain.issuer, chain.alice, chain.bob)
        chain.fund(alice, 100)
        chain.fund(bob, 100)
        let (a, b) = (alice.publicKey, bob.publicKey)
        chain.expectRejected(.zeroAmount, alice, .transfer(token: Chain.stablecoin, to: b, amount: 0))
        chain.expectRejected(.zeroAmount, issuer, .mint(token: Chain.stablecoin, to: a, amount: 0))
        chain.expectRejected(.zeroAmount, issuer, .burn(token: Chain.stablecoin, from: a, amount: 0))
        chain.expectRejected(.zeroAmount, issuer, .freezePartial(token: Chain.stablecoin, account: a, amount: 0))
        chain.expectRejected(.zeroAmount, issuer, .unfreezePartial(token: Chain.stablecoin, account: a, amount: 0))
        chain.expectRejected(.zeroAmount, issuer, .forcedTransfer(token: Chain.stablecoin, from: a, to: b, amount: 0))
    }

    func testMintAboveMaximumSupplyIsRefused() throws {
        var chain = try Chain()
        let (regulator, issuer, alice, bob) = (chain.regulator, chain.issuer, chain.alice, chain.bob)
        chain.register(alice)
        let licence = chain.registerLicence(owner: alice)
        // All 100 slices were minted at registration.
        chain.expectRejected(.supplyExceeded, regulator, .mint(token: licence, to: alice.publicKey, amount: 1))
        chain.expectApplied(regulator, .burn(token: licence, from: alice.publicKey, amount: Chain.slice))
        chain.expectRejected(
            .supplyExceeded, regulator, .mint(token: licence, to: alice.publicKey, amount: Chain.slice + 1))
        chain.expectApplied(regulator, .mint(token: licence, to: alice.publicKey, amount: Chain.slice))
        XCTAssertEqual(chain.ledger.state.tokens[licence]?.totalSupply, Chain.licenceSupply)
        // The stablecoin's maximum is the largest amount there is.
        chain.expectApplied(issuer, .mint(token: Chain.stablecoin, to: alice.publicKey, amount: UInt128.max))
        chain.expectRejected(.supplyExceeded, issuer, .mint(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
    }

    func testInvalidResourcesAreRefused() throws {
        var chain = try Chain()
        let (regulator, alice) = (chain.regulator, chain.alice)
        chain.register(alice)
        func refuse(_ registration: ResourceRegistration, file: StaticString = #filePath, line: UInt = #line) {
            chain.expectRejected(.invalidResource, regulator, .registerResource(registration), file: file, line: line)
        }
        // Band widths that do not split into 100 whole-hertz slices around a whole-hertz edge.
        refuse(chain.licence(owner: alice, spectrum: Chain.band(widthHz: 10_000_001)))
        refuse(chain.licence(owner: alice, spectrum: Chain.band(widthHz: 100)))
        refuse(chain.licence(owner: alice, spectrum: Chain.band(widthHz: 0)))
        var belowZero = Chain.band()
        belowZero.centreHz = 1_000
        refuse(chain.licence(owner: alice, spectrum: belowZero))
        var noCountry = Chain.band()
        noCountry.country = 0
        refuse(chain.licence(owner: alice, spectrum: noCountry))
        var backwards = Chain.band()
        backwards.validUntil = backwards.validFrom
        refuse(chain.licence(owner: alice, spectrum: backwards))
        // A band and rules on a kind that is not radio spectrum, or spectrum without them.
        var bandOnBandwidth = chain.licence(owner: alice)
        bandOnBandwidth.kind = .bandwidth
        refuse(bandOnBandwidth)
        var noBand = chain.licence(owner: alice)
        noBand.spectrum = nil
        refuse(noBand)
        var noRules = chain.licence(owner: alice)
        noRules.compliance = nil
        refuse(noRules)
        // No value, no name.
        var worthless = chain.licence(owner: alice)
        worthless.valuation = 0
        refuse(worthless)
        var unnamed = chain.licence(owner: alice)
        unnamed.name = ""
        refuse(unnamed)
        XCTAssertEqual(chain.ledger.state.nextResource, 1)
        XCTAssertTrue(chain.ledger.state.resources.isEmpty)
    }

    /// A wallet nobody can sign for (here the identity point, of small order) never becomes a
    /// verified holder: registration and linking check the key fully.
    func testUnusableKeysCannotBecomeIdentities() throws {
        var chain = try Chain()
        let regulator = chain.regulator
        let unusable = try SigningPublicKey(bytes: [1] + [UInt8](repeating: 0, count: 31))
        XCTAssertFalse(unusable.isUsable)
        let rejection = chain.expectRejected(
            .invalidOperation, regulator, .registerIdentity(account: unusable, country: 826))
        XCTAssertTrue(rejection?.reason.contains("usable") ?? false, "\(String(describing: rejection))")
        let aliceID = chain.register(chain.alice)
        chain.expectRejected(.invalidOperation, regulator, .linkWallet(account: unusable, identity: aliceID))
    }

    func testRegisteringTwiceIsRefused() throws {
        var chain = try Chain()
        let (regulator, alice, alice2, bob) = (chain.regulator, chain.alice, chain.alice2, chain.bob)
        let aliceID = chain.register(alice)
        let bobID = chain.register(bob)
        chain.link(alice2, to: aliceID)
        chain.expectRejected(.alreadyRegistered, regulator, .registerIdentity(account: alice.publicKey, country: 826))
        chain.expectRejected(.alreadyRegistered, regulator, .registerIdentity(account: alice2.publicKey, country: 840))
        chain.expectRejected(.alreadyRegistered, regulator, .linkWallet(account: alice.publicKey, identity: bobID))
        chain.expectRejected(.alreadyRegistered, regulator, .addClaim(identity: aliceID, topic: ClaimTopic.kyc))
    }

    func testRecoveryToAnotherIdentityIsRefused() throws {
        var chain = try Chain()
        let (regulator, alice, bob, carol) = (chain.regulator, chain.alice, chain.bob, chain.carol)
        chain.register(alice)
        chain.register(bob)
        let licence = chain.registerLicence(owner: alice)
        chain.expectRejected(
            .identityMismatch, regulator,
            .recoverWallet(token: licence, lost: alice.publicKey, replacement: bob.publicKey))
        // A wallet with no identity at all.
        chain.expectRejected(
            .identityMismatch, regulator,
            .recoverWallet(token: licence, lost: alice.publicKey, replacement: carol.publicKey))
    }

    func testInvalidOperationsAreRefused() throws {
        var chain = try Chain()
        let (regulator, issuer, alice, bob, carol) = (
            chain.regulator, chain.issuer, chain.alice, chain.bob, chain.carol
        )
        let aliceID = chain.register(alice)
        chain.fund(alice, 100)
        let licence = chain.registerLicence(owner: alice)
        let (a, b, c) = (alice.publicKey, bob.publicKey, carol.publicKey)
        chain.expectRejected(
            .invalidOperation, issuer, .unfreezePartial(token: Chain.stablecoin, account: a, amount: 1))
        chain.expectRejected(
            .invalidOperation, issuer, .recoverWallet(token: Chain.stablecoin, lost: b, replacement: c))
        chain.expectRejected(
            .invalidOperation, issuer, .recoverWallet(token: Chain.stablecoin, lost: a, replacement: a))
        chain.expectRejected(
            .invalidOperation, issuer, .setCompliance(token: Chain.stablecoin, rules: ComplianceRules()))
        chain.expectRejected(
            .invalidOperation, regulator, .setCompliance(token: licence, rules: ComplianceRules(deniedCountries: [0])))
        chain.expectRejected(
            .invalidOperation, regulator, .revokeClaim(identity: aliceID, topic: ClaimTopic.accreditedInvestor))
        chain.expectRejected(.invalidOperation, regulator, .registerIdentity(account: b, country: 0))
        chain.expectRejected(.invalidOperation, regulator, .registerIdentity(account: b, country: 1000))
    }

    /// A transaction must fit `LedgerLimits.transactionBytesMax` (one UDP frame): 1024 bytes is
    /// accepted, 1025 refused before signing.
    func testOversizedTransactionIsMalformed() throws {
        var chain = try Chain()
        let (regulator, alice) = (chain.regulator, chain.alice)
        chain.register(alice)
        func largest(metadataBytes: Int) -> ResourceRegistration {
            let score = CriterionScore(score: 3, reason: String(repeating: "r", count: LedgerLimits.reasonBytesMax))
            return ResourceRegistration(
                kind: .radioSpectrum, owner: alice.publicKey,
                name: String(repeating: "n", count: LedgerLimits.resourceNameBytesMax),
                metadata: String(repeating: "m", count: metadataBytes), valuation: UInt128.max,
                intrinsicValue: score, strategicScarcity: score, legalClarity: score,
                spectrum: SpectrumLicence(
                    centreHz: 3_500_000_000, widthHz: 10_000_000, country: 840,
                    region: String(repeating: "g", count: LedgerLimits.regionBytesMax), validFrom: 1, validUntil: 2),
                compliance: ComplianceRules(
                    requiredClaims: Array(UInt16(1)...UInt16(8)), allowedCountries: Array(UInt16(100)...UInt16(131)),
                    deniedCountries: Array(UInt16(200)...UInt16(231)), maxBalancePerIdentity: 1, maxHolders: 1))
        }
        // 823 bytes besides the metadata.
        let fits = try chain.sign(regulator, .registerResource(largest(metadataBytes: 201)))
        XCTAssertEqual(fits.encoded.count, LedgerLimits.transactionBytesMax)
        XCTAssertEqual(try Transaction(decoding: fits.encoded), fits)
        let tooLarge = LedgerOperation.registerResource(largest(metadataBytes: 202))
        XCTAssertEqual(rejection { try chain.sign(regulator, tooLarge) }?.code, .malformedTransaction)
        chain.expectRejected(.malformedTransaction, regulator, tooLarge)
    }

    /// Bytes that are not one transaction's canonical encoding never reach the ledger: decoding
    /// throws a `WireError` (which the arbiter answers as malformed_transaction).
    func testMalformedBytesDoNotDecode() throws {
        let chain = try Chain()
        let before = chain.snapshot
        let bytes = try chain.sign(
            chain.alice, .transfer(token: Chain.stablecoin, to: chain.bob.publicKey, amount: 1)
        ).encoded
        XCTAssertNotNil(try? Transaction(decoding: bytes))
        XCTAssertEqual(
            decodingFault { try Transaction(decoding: [0xDE, 0xAD, 0xBE, 0xEF]) },
            WireFault("truncated", "transaction.chain_id"))
        XCTAssertEqual(
            decodingFault { try Transaction(decoding: bytes + [0]) }, WireFault("trailingBytes", "transaction"))
        XCTAssertEqual(
            decodingFault { try Transaction(decoding: Array(bytes.dropLast())) },
            WireFault("truncated", "transaction.signature"))
        XCTAssertEqual(
            decodingFault { try Transaction(decoding: Array(bytes.prefix(operationTagOffset))) },
            WireFault("truncated", "operation.tag"))
        var unknownTag = bytes
        unknownTag[operationTagOffset] = 0x0B  // between set_compliance (0x0A) and register_identity (0x10)
        XCTAssertEqual(
            decodingFault { try Transaction(decoding: unknownTag) }, WireFault("invalidValue", "operation.tag"))
        let oversized = [UInt8](repeating: 0, count: LedgerLimits.transactionBytesMax + 1)
        XCTAssertEqual(
            wireErrorOf { try Transaction(decoding: oversized) },
            WireError.lengthAboveMaximum(field: "transaction", length: 1025, maximum: 1024))
        XCTAssertEqual(chain.ledger.state.allRows(), before.rows)
        XCTAssertEqual(chain.ledger.pending.count, before.pendingCount)
    }
}

/// The raw decoding error `body` throws, or nil.
func wireErrorOf<T>(_ body: () throws -> T) -> WireError? {
    do {
        _ = try body()
        return nil
    } catch let error as WireError {
        return error
    } catch {
        XCTFail("expected a WireError, got \(error)")
        return nil
    }
}

// MARK: - 3. Transfer check order (ERC-3643)

final class TransferOrderTests: XCTestCase {
    /// Paused, then sender frozen, then receiver frozen, then free balance: each condition is
    /// lifted in turn and the next one is what the ledger reports.
    func testStablecoinChecksPauseThenFreezesThenBalance() throws {
        var chain = try Chain()
        let (issuer, alice, bob) = (chain.issuer, chain.alice, chain.bob)
        chain.fund(alice, 100)
        chain.fund(bob, 1)
        let overdraft = LedgerOperation.transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1_000)
        chain.expectApplied(issuer, .setPaused(token: Chain.stablecoin, paused: true))
        chain.expectApplied(issuer, .setFrozen(token: Chain.stablecoin, account: alice.publicKey, frozen: true))
        chain.expectApplied(issuer, .setFrozen(token: Chain.stablecoin, account: bob.publicKey, frozen: true))
        chain.expectRejected(.tokenPaused, alice, overdraft)
        chain.expectApplied(issuer, .setPaused(token: Chain.stablecoin, paused: false))
        let sender = chain.expectRejected(.accountFrozen, alice, overdraft)
        XCTAssertEqual(sender?.reason.hasPrefix(alice.publicKey.description), true, "the sender is reported first")
        chain.expectApplied(issuer, .setFrozen(token: Chain.stablecoin, account: alice.publicKey, frozen: false))
        let receiver = chain.expectRejected(.accountFrozen, alice, overdraft)
        XCTAssertEqual(receiver?.reason.hasPrefix(bob.publicKey.description), true, "then the receiver")
        chain.expectApplied(issuer, .setFrozen(token: Chain.stablecoin, account: bob.publicKey, frozen: false))
        chain.expectRejected(.insufficientBalance, alice, overdraft)
        chain.expectApplied(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 100))
    }

    /// For a security token the receiver side follows: verified identity, allow/deny country,
    /// balance cap, holder cap.
    func testSecurityTokenChecksEveryConditionInOrder() throws {
        var chain = try Chain()
        let (regulator, alice, bob, carol, dave) = (chain.regulator, chain.alice, chain.bob, chain.carol, chain.dave)
        chain.register(alice)
        chain.register(bob)  // United States, KYC
        chain.register(carol, country: Chain.unitedKingdom, claims: [])  // denied country, and no KYC
        chain.register(dave, country: Chain.unitedKingdom)  // denied country, KYC
        let licence = chain.registerLicence(
            owner: alice, rules: ComplianceRules(deniedCountries: [Chain.unitedKingdom]))
        chain.expectApplied(
            regulator,
            .setCompliance(
                token: licence,
                rules: ComplianceRules(
                    deniedCountries: [Chain.unitedKingdom], maxBalancePerIdentity: Chain.slice, maxHolders: 1)))
        chain.expectApplied(regulator, .setPaused(token: licence, paused: true))
        chain.expectApplied(regulator, .setFrozen(token: licence, account: alice.publicKey, frozen: true))
        chain.expectApplied(regulator, .setFrozen(token: licence, account: carol.publicKey, frozen: true))
        let toCarol = LedgerOperation.transfer(token: licence, to: carol.publicKey, amount: 2 * Chain.licenceSupply)

        chain.expectRejected(.tokenPaused, alice, toCarol)
        chain.expectApplied(regulator, .setPaused(token: licence, paused: false))
        chain.expectRejected(.accountFrozen, alice, toCarol)
        chain.expectApplied(regulator, .setFrozen(token: licence, account: alice.publicKey, frozen: false))
        chain.expectRejected(.accountFrozen, alice, toCarol)  // the receiver, though it is not even verified
        chain.expectApplied(regulator, .setFrozen(token: licence, account: carol.publicKey, frozen: false))
        chain.expectRejected(.insufficientBalance, alice, toCarol)
        chain.expectRejected(
            .receiverNotVerified, alice, .transfer(token: licence, to: carol.publicKey, amount: 2 * Chain.slice))
        chain.expectRejected(
            .countryNotAllowed, alice, .transfer(token: licence, to: dave.publicKey, amount: 2 * Chain.slice))
        chain.expectRejected(
            .balanceLimitExceeded, alice, .transfer(token: licence, to: bob.publicKey, amount: 2 * Chain.slice))
        chain.expectRejected(
            .holderLimitExceeded, alice, .transfer(token: licence, to: bob.publicKey, amount: Chain.slice))
        chain.expectApplied(
            regulator,
            .setCompliance(
                token: licence,
                rules: ComplianceRules(
                    deniedCountries: [Chain.unitedKingdom], maxBalancePerIdentity: Chain.slice, maxHolders: 2)))
        chain.expectApplied(alice, .transfer(token: licence, to: bob.publicKey, amount: Chain.slice))
    }

    /// Chain and signature before the ledger's state; account and sequence before the operation;
    /// within the operation, token, then amount, then the transfer rules.
    func testEnvelopeChecksComeBeforeOperationChecks() throws {
        var chain = try Chain()
        let (issuer, alice, bob, stranger) = (chain.issuer, chain.alice, chain.bob, chain.stranger)
        chain.fund(alice, 100)
        chain.expectApplied(alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1))
        chain.expectApplied(issuer, .setPaused(token: Chain.stablecoin, paused: true))
        let paused = LedgerOperation.transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 1_000)
        let zeroSignature = try Signature(bytes: [UInt8](repeating: 0, count: Signature.byteCount))

        var foreign = try chain.sign(alice, paused, chainID: Digest32.zero)
        foreign.signature = zeroSignature
        chain.expectRejected(.wrongChainID, foreign)
        var forged = try chain.sign(stranger, paused)
        forged.signature = zeroSignature
        chain.expectRejected(.invalidSignature, forged)
        chain.expectRejected(.unknownAccount, stranger, paused)
        chain.expectRejected(.sequenceReused, alice, paused, sequence: 0)
        chain.expectRejected(.sequenceAhead, alice, paused, sequence: 2)
        chain.expectRejected(.unknownToken, alice, .transfer(token: 9, to: bob.publicKey, amount: 0))
        chain.expectRejected(.zeroAmount, alice, .transfer(token: Chain.stablecoin, to: bob.publicKey, amount: 0))
        chain.expectRejected(.tokenPaused, alice, paused)
    }
}

// MARK: - 4. Encodings

final class LedgerEncodingTests: XCTestCase {
    func testEveryOperationRoundTripsWithItsWireTag() throws {
        let chain = try Chain()
        let (a, b) = (chain.alice.publicKey, chain.bob.publicKey)
        let large: UInt128 = (1 << 100) | 0xABCDEF
        let rules = ComplianceRules(
            requiredClaims: [ClaimTopic.kyc, ClaimTopic.accreditedInvestor], allowedCountries: [840, 826],
            deniedCountries: [643], maxBalancePerIdentity: large, maxHolders: 12)
        let licence = ResourceRegistration(
            kind: .radioSpectrum, owner: a, name: "Bande 3,5 GHz", metadata: "Île-de-France, n78", valuation: large,
            intrinsicValue: CriterionScore(score: 2, reason: "shared band"), strategicScarcity: nil,
            legalClarity: CriterionScore(score: 3, reason: "ARCEP licence"), spectrum: Chain.band(), compliance: rules)
        let domain = ResourceRegistration(kind: .domainName, owner: b, name: "rwa.example", valuation: 1)

        var cases: [(LedgerOperation, UInt8)] = []
        cases.append((.transfer(token: 0, to: b, amount: 1), 0x01))
        cases.append((.mint(token: 7, to: a, amount: UInt128.max), 0x02))
        cases.append((.burn(token: 7, from: a, amount: large), 0x03))
        cases.append((.setFrozen(token: 7, account: b, frozen: true), 0x04))
        cases.append((.setFrozen(token: 7, account: b, frozen: false), 0x04))
        cases.append((.freezePartial(token: 7, account: b, amount: 5), 0x05))
        cases.append((.unfreezePartial(token: 7, account: b, amount: 5), 0x06))
        cases.append((.forcedTransfer(token: 7, from: a, to: b, amount: large), 0x07))
        cases.append((.recoverWallet(token: 7, lost: a, replacement: b), 0x08))
        cases.append((.setPaused(token: UInt64.max, paused: true), 0x09))
        cases.append((.setCompliance(token: 7, rules: rules), 0x0A))
        cases.append((.setCompliance(token: 7, rules: ComplianceRules(requiredClaims: [])), 0x0A))
        cases.append((.registerIdentity(account: a, country: 840), 0x10))
        cases.append((.linkWallet(account: b, identity: 3), 0x11))
        cases.append((.addClaim(identity: 3, topic: ClaimTopic.kyc), 0x12))
        cases.append((.revokeClaim(identity: 3, topic: UInt16.max), 0x13))
        cases.append((.registerResource(licence), 0x20))
        cases.append((.registerResource(domain), 0x20))
        XCTAssertEqual(Set(cases.map { $0.0.name }).count, 15, "one case per operation")

        for (index, (operation, tag)) in cases.enumerated() {
            let name = operation.name
            let transaction = try Transaction(
                signedBy: chain.alice, chainID: chain.ledger.chainID, sequence: UInt64(index) << 40 | 3,
                operation: operation)
            let bytes = transaction.encoded
            XCTAssertEqual(bytes[operationTagOffset], tag, name)
            XCTAssertEqual(Array(bytes.prefix(Digest32.byteCount)), chain.ledger.chainID.bytes, name)
            XCTAssertEqual(Array(bytes[32..<64]), a.bytes, name)
            XCTAssertEqual(Array(bytes.suffix(Signature.byteCount)), transaction.signature.bytes, name)
            let decoded = try Transaction(decoding: bytes)
            XCTAssertEqual(decoded, transaction, name)
            XCTAssertEqual(decoded.operation, operation, name)
            XCTAssertEqual(decoded.encoded, bytes, name)
            XCTAssertEqual(decoded.hash, Blake2b.hash256(bytes), name)
            let verified = try decoded.verified(chainID: chain.ledger.chainID)
            XCTAssertEqual(verified.bytes, bytes, name)
            XCTAssertEqual(verified.hash, transaction.hash, name)
            XCTAssertEqual(
                decodingFault { try Transaction(decoding: bytes + [0]) }, WireFault("trailingBytes", "transaction"),
                name)
            XCTAssertNotNil(decodingFault { try Transaction(decoding: Array(bytes.dropLast())) }, name)
        }
    }

    /// One value, one encoding: a boolean byte other than 0 or 1, and a set not strictly
    /// increasing, are other encodings of valid values and are refused.
    func testNonCanonicalEncodingsAreRefused() throws {
        let chain = try Chain()
        let bob = chain.bob.publicKey
        let afterToken = operationTagOffset + 1 + 8

        var frozen = try chain.sign(chain.issuer, .setFrozen(token: 0, account: bob, frozen: true)).encoded
        let frozenFlag = afterToken + SigningPublicKey.byteCount
        XCTAssertEqual(frozen[frozenFlag], 1)
        frozen[frozenFlag] = 2
        XCTAssertEqual(
            decodingFault { try Transaction(decoding: frozen) }, WireFault("nonCanonical", "operation.frozen"))

        var paused = try chain.sign(chain.issuer, .setPaused(token: 0, paused: false)).encoded
        XCTAssertEqual(paused[afterToken], 0)
        paused[afterToken] = 0xFF
        XCTAssertEqual(
            decodingFault { try Transaction(decoding: paused) }, WireFault("nonCanonical", "operation.paused"))

        let compliance = try chain.sign(
            chain.regulator, .setCompliance(token: 1, rules: ComplianceRules(requiredClaims: [1, 2]))
        ).encoded
        XCTAssertEqual(Array(compliance[afterToken...(afterToken + 4)]), [2, 0, 1, 0, 2])
        var descending = compliance
        descending[afterToken + 2] = 2
        descending[afterToken + 4] = 1
        XCTAssertEqual(
            decodingFault { try Transaction(decoding: descending) },
            WireFault("nonCanonical", "compliance.required_claims"))
        var repeated = compliance
        repeated[afterToken + 4] = 1
        XCTAssertEqual(
            decodingFault { try Transaction(decoding: repeated) },
            WireFault("nonCanonical", "compliance.required_claims"))
    }

    func testOutOfRangeFieldsAreRefused() throws {
        let chain = try Chain()
        let registration = ResourceRegistration(
            kind: .cloudStorage, owner: chain.alice.publicKey, name: "N", metadata: "", valuation: 5,
            intrinsicValue: CriterionScore(score: 3, reason: "R"))
        let bytes = try chain.sign(chain.regulator, .registerResource(registration)).encoded
        let kind = operationTagOffset + 1
        let nameLength = kind + 1 + SigningPublicKey.byteCount
        let name = nameLength + 2
        let score = name + 1 + 2 + 16 + 1  // name, empty metadata, valuation, "present" byte
        XCTAssertEqual(bytes[kind], ResourceKind.cloudStorage.rawValue)
        XCTAssertEqual(Array(bytes[nameLength...name]), [0, 1, UInt8(ascii: "N")])
        XCTAssertEqual(bytes[score], 3)

        var badKind = bytes
        badKind[kind] = 0
        XCTAssertEqual(decodingFault { try Transaction(decoding: badKind) }, WireFault("invalidValue", "resource.kind"))
        var badScore = bytes
        badScore[score] = CriterionScore.scoreMax + 1
        XCTAssertEqual(
            decodingFault { try Transaction(decoding: badScore) },
            WireFault("invalidValue", "resource.intrinsic_value.score"))
        var badText = bytes
        badText[name] = 0xFF
        XCTAssertEqual(decodingFault { try Transaction(decoding: badText) }, WireFault("invalidValue", "resource.name"))
        var longName = bytes
        longName[nameLength + 1] = UInt8(LedgerLimits.resourceNameBytesMax + 1)
        XCTAssertEqual(
            wireErrorOf { try Transaction(decoding: longName) },
            WireError.lengthAboveMaximum(field: "resource.name", length: 65, maximum: 64))
    }

    func testStateKeyBytesRoundTrip() throws {
        let account = try deterministicKey(10).publicKey
        let keys: [StateKey] = [
            .counters, .account(account), .identity(7), .token(3), .holding(3, account), .resource(0x0102), .pool(3),
            .channel(Blake2b.hash256([1])), .leasedSliceHour(1, 99, 500_000), .rentIndex(1), .rentPosition(1, account),
        ]
        let lengths = [1, 33, 9, 9, 41, 9, 9, 33, 18, 9, 41]
        for (index, key) in keys.enumerated() {
            XCTAssertEqual(key.bytes.count, lengths[index], "\(key)")
            XCTAssertEqual(key.bytes.first, UInt8(index), "\(key)")
            XCTAssertEqual(try StateKey(bytes: key.bytes), key)
        }
        XCTAssertEqual(StateKey.resource(0x0102).bytes, [5, 0, 0, 0, 0, 0, 0, 1, 2])
        XCTAssertEqual(StateKey.holding(3, account).bytes, [4, 0, 0, 0, 0, 0, 0, 0, 3] + account.bytes)
        XCTAssertEqual(Set(keys.map(\.bytes)).count, keys.count)
        XCTAssertEqual(decodingFault { try StateKey(bytes: [0x0B]) }, WireFault("invalidValue", "state_key.kind"))
        XCTAssertEqual(
            decodingFault { try StateKey(bytes: StateKey.token(3).bytes + [0]) },
            WireFault("trailingBytes", "state key"))
        XCTAssertEqual(decodingFault { try StateKey(bytes: [3, 0, 0]) }, WireFault("truncated", "state_key.token"))
        XCTAssertEqual(decodingFault { try StateKey(bytes: []) }, WireFault("truncated", "state_key.kind"))
    }

    func testStateRowsRebuildTheSameState() throws {
        var chain = try Chain()
        _ = chain.sealTwoBlocks()
        let state = chain.ledger.state
        let rows = state.allRows()
        XCTAssertTrue(zip(rows, rows.dropFirst()).allSatisfy { $0.key.lexicographicallyPrecedes($1.key) })
        for row in rows {
            XCTAssertEqual(state.row(try StateKey(bytes: row.key)), row.value)
        }
        XCTAssertEqual(state.row(.counters), [0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 2])

        let rebuilt = try LedgerState(rows: rows)
        XCTAssertEqual(rebuilt.allRows(), rows)
        XCTAssertEqual(rebuilt.accounts, state.accounts)
        XCTAssertEqual(rebuilt.identities, state.identities)
        XCTAssertEqual(rebuilt.tokens, state.tokens)
        XCTAssertEqual(rebuilt.holdings, state.holdings)
        XCTAssertEqual(rebuilt.resources, state.resources)
        XCTAssertEqual(rebuilt.nextIdentity, 3)
        XCTAssertEqual(rebuilt.nextResource, 2)
        // The derived per-identity totals are rebuilt too.
        XCTAssertEqual(rebuilt.holderCount(of: 1), 2)
        XCTAssertEqual(rebuilt.identityBalance(1, 1), 95 * Chain.slice)
        XCTAssertEqual(rebuilt.identityBalance(1, 2), 5 * Chain.slice)
        // Row order does not matter.
        XCTAssertEqual(try LedgerState(rows: rows.reversed()).allRows(), rows)
    }

    func testStateRowsThatDoNotDecodeOrDisagreeAreRefused() throws {
        var chain = try Chain()
        let alice = chain.alice
        chain.register(alice)
        chain.registerLicence(owner: alice)
        let rows = chain.ledger.state.allRows()
        XCTAssertNotNil(try? LedgerState(rows: rows))

        let counters = StateKey.counters.bytes
        let padded = rows.map { $0.key == counters ? StateRow(key: $0.key, value: $0.value + [0]) : $0 }
        XCTAssertEqual(
            decodingFault { try LedgerState(rows: padded) }, WireFault("trailingBytes", "state row counters"))

        let identityRow = try XCTUnwrap(rows.first { $0.key == StateKey.identity(1).bytes })
        let misfiled = [StateRow(key: StateKey.identity(2).bytes, value: identityRow.value)]
        XCTAssertEqual(decodingFault { try LedgerState(rows: misfiled) }, WireFault("invalidValue", "identity.id"))

        var overFrozen = ByteBuffer()
        overFrozen.writeUInt128(1)
        overFrozen.writeUInt128(2)
        overFrozen.writeBool(false)
        let overFrozenRow = StateRow(
            key: StateKey.holding(0, alice.publicKey).bytes, value: Array(overFrozen.readableBytesView))
        XCTAssertEqual(
            decodingFault { try LedgerState(rows: [overFrozenRow]) }, WireFault("invalidValue", "holding.frozen_amount")
        )

        var badFlag = ByteBuffer()
        badFlag.writeUInt128(1)
        badFlag.writeUInt128(0)
        badFlag.writeInteger(UInt8(2))
        let badFlagRow = StateRow(
            key: StateKey.holding(0, alice.publicKey).bytes, value: Array(badFlag.readableBytesView))
        XCTAssertEqual(
            decodingFault { try LedgerState(rows: [badFlagRow]) }, WireFault("nonCanonical", "holding.frozen"))

        // Alice's account without its identity, while she holds the licence token.
        var anonymous = ByteBuffer()
        anonymous.writeInteger(UInt64(0), endianness: .big)
        anonymous.writeBool(false)
        let aliceKey = StateKey.account(alice.publicKey).bytes
        let stripped = rows.map {
            $0.key == aliceKey ? StateRow(key: $0.key, value: Array(anonymous.readableBytesView)) : $0
        }
        XCTAssertEqual(decodingFault { try LedgerState(rows: stripped) }, WireFault("invalidValue", "holding"))
    }

    func testGenesisRoundTripsAndItsHashIsTheChainID() throws {
        let chain = try Chain(twoClaimIssuers: true)
        let genesis = chain.genesis
        XCTAssertEqual(try Genesis(decoding: genesis.encoded), genesis)
        XCTAssertEqual(genesis.chainID, Blake2b.hash256(genesis.encoded))
        XCTAssertEqual(chain.ledger.chainID, genesis.chainID)
        XCTAssertEqual(chain.ledger.genesis, genesis)
        var renamed = genesis
        renamed.networkName = "rwanet-other"
        XCTAssertNotEqual(renamed.chainID, genesis.chainID)
        var reordered = genesis
        reordered.claimIssuers.reverse()
        XCTAssertNotEqual(reordered.chainID, genesis.chainID)
        var later = genesis
        later.timeMilliseconds += 1
        XCTAssertNotEqual(later.chainID, genesis.chainID)
        XCTAssertEqual(
            decodingFault { try Genesis(decoding: genesis.encoded + [0]) }, WireFault("trailingBytes", "genesis"))
        XCTAssertEqual(
            decodingFault { try Genesis(decoding: Array(genesis.encoded.dropLast())) },
            WireFault("truncated", "genesis.period_seconds"))
        var shorterHours = genesis
        shorterHours.periodSeconds = 60
        XCTAssertNotEqual(shorterHours.chainID, genesis.chainID, "the period is part of the chain")
        XCTAssertEqual(
            decodingFault { try Genesis(decoding: Array(genesis.encoded.dropLast(4)) + [0, 0, 0, 0]) },
            WireFault("invalidValue", "genesis.period_seconds"))
    }
}

// MARK: - 5. Blocks

/// `header` signed afresh by `key`, as a dishonest or impersonating arbiter would.
func resigned(_ header: BlockHeader, by key: SigningKeyPair, chainID: Digest32) -> BlockHeader {
    var copy = header
    copy.signature = key.sign(
        Array(header.encoded.dropLast(Signature.byteCount)), domain: BlockHeader.domain(chainID))
    return copy
}

/// Replays `blocks` in order on a new ledger of `genesis`; returns it and the first refusal.
func replayFresh(_ genesis: Genesis, _ blocks: [Block]) -> (ledger: Ledger, error: ReplayError?) {
    var ledger = Ledger(genesis: genesis)
    for block in blocks {
        do throws(ReplayError) {
            try ledger.replay(block)
        } catch {
            return (ledger, error)
        }
    }
    return (ledger, nil)
}

func assertRefused(
    _ outcome: (ledger: Ledger, error: ReplayError?), atHeight height: UInt64, mentioning words: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    guard let error = outcome.error else {
        return XCTFail("block \(height) replayed; expected a refusal mentioning \"\(words)\"", file: file, line: line)
    }
    XCTAssertEqual(error.height, height, "\(error)", file: file, line: line)
    XCTAssertTrue(error.reason.contains(words), "\(error)", file: file, line: line)
}

final class BlockTests: XCTestCase {
    func testSealBlockSignsAHeaderOverThePendingTransactions() throws {
        var chain = try Chain()
        let time = Chain.genesisTime + 5_000
        chain.clock = time
        chain.register(chain.alice)
        chain.clock = time + 1_000  // later transactions share the block's time
        chain.fund(chain.alice, 1_000)
        let pending = chain.ledger.pending
        XCTAssertEqual(pending.count, 3)
        let block = chain.ledger.sealBlock(arbiter: chain.arbiter)
        let header = block.header
        XCTAssertEqual(header.height, 1)
        XCTAssertEqual(header.previousHash, chain.genesis.chainID)
        XCTAssertEqual(header.timeMilliseconds, time)
        XCTAssertEqual(header.transactionCount, 3)
        XCTAssertEqual(header.transactionsRoot, MerkleTree.root(pending.map(\.hash)))
        XCTAssertEqual(block.transactions, pending)
        XCTAssertEqual(block.transactions.map(\.createdID), [1, 0, 0])
        for committed in block.transactions {
            XCTAssertEqual(committed.hash, Blake2b.hash256(committed.bytes))
        }
        XCTAssertTrue(header.hasValidSignature(arbiter: chain.genesis.arbiter, chainID: chain.genesis.chainID))
        XCTAssertFalse(header.hasValidSignature(arbiter: chain.regulator.publicKey, chainID: chain.genesis.chainID))
        XCTAssertFalse(
            header.hasValidSignature(arbiter: chain.genesis.arbiter, chainID: Blake2b.hash256(Array("elsewhere".utf8))))
        XCTAssertEqual(chain.ledger.height, 1)
        XCTAssertEqual(chain.ledger.tipHash, header.hash)
        XCTAssertEqual(chain.ledger.tipTimeMilliseconds, time)
        XCTAssertTrue(chain.ledger.pending.isEmpty)

        XCTAssertEqual(BlockHeader.encodedByteCount, 8 + 32 + 32 + 8 + 4 + 64)
        XCTAssertEqual(header.encoded.count, BlockHeader.encodedByteCount)
        XCTAssertEqual(try BlockHeader(decoding: header.encoded), header)
        XCTAssertEqual(header.hash, Blake2b.hash256(Array(header.encoded.dropLast(Signature.byteCount))))

        // The next block chains on; an empty block is allowed; time never goes back.
        let next = chain.ledger.sealBlock(arbiter: chain.arbiter)
        XCTAssertEqual(next.header.height, 2)
        XCTAssertEqual(next.header.previousHash, header.hash)
        XCTAssertEqual(next.header.timeMilliseconds, time)
        XCTAssertEqual(next.header.transactionCount, 0)
        XCTAssertTrue(next.transactions.isEmpty)
        XCTAssertEqual(next.header.transactionsRoot, MerkleTree.root([]))
        XCTAssertTrue(next.header.hasValidSignature(arbiter: chain.genesis.arbiter, chainID: chain.genesis.chainID))
    }

    func testReplayFromGenesisReproducesTheState() throws {
        var chain = try Chain()
        let blocks = chain.sealTwoBlocks()
        XCTAssertEqual(blocks.map { $0.header.height }, [1, 2])
        XCTAssertEqual(blocks[0].transactions.map(\.createdID), [1, 0, 2, 0, 0])
        XCTAssertEqual(blocks[1].transactions.map(\.createdID), [1, 0, 0, 0])
        XCTAssertEqual(blocks[1].header.previousHash, blocks[0].header.hash)

        var replica = Ledger(genesis: chain.genesis)
        for block in blocks { try replica.replay(block) }
        XCTAssertEqual(replica.state.allRows(), chain.ledger.state.allRows())
        XCTAssertEqual(replica.height, 2)
        XCTAssertEqual(replica.tipHash, chain.ledger.tipHash)
        XCTAssertEqual(replica.tipTimeMilliseconds, chain.ledger.tipTimeMilliseconds)
        XCTAssertTrue(replica.pending.isEmpty)
        XCTAssertEqual(replica.state.holderCount(of: 1), 2)
        XCTAssertEqual(replica.state.identityBalance(1, 2), 5 * Chain.slice)
    }

    func testReplayWithTransactionsVerifiedElsewhere() throws {
        var chain = try Chain()
        let blocks = chain.sealTwoBlocks()
        let chainID = chain.genesis.chainID
        func verify(_ block: Block) throws -> [VerifiedTransaction] {
            var verified: [VerifiedTransaction] = []
            for committed in block.transactions {
                verified.append(try Transaction(decoding: committed.bytes).verified(chainID: chainID))
            }
            return verified
        }
        var replica = Ledger(genesis: chain.genesis)
        for block in blocks { try replica.replay(block, verified: try verify(block)) }
        XCTAssertEqual(replica.state.allRows(), chain.ledger.state.allRows())
        XCTAssertEqual(replica.tipHash, chain.ledger.tipHash)

        // Verified transactions that are not the committed ones, in that place, are refused.
        var swapped = try verify(blocks[0])
        swapped.swapAt(0, 1)
        var other = Ledger(genesis: chain.genesis)
        do throws(ReplayError) {
            try other.replay(blocks[0], verified: swapped)
            XCTFail("a block replayed with its transactions swapped")
        } catch {
            XCTAssertTrue(error.reason.contains("not the one committed"), "\(error)")
        }
    }

    func testReplayRefusesATamperedHeaderTime() throws {
        var chain = try Chain()
        let blocks = chain.sealTwoBlocks()
        var tampered = blocks[0]
        tampered.header.timeMilliseconds += 1
        let outcome = replayFresh(chain.genesis, [tampered])
        assertRefused(outcome, atHeight: 1, mentioning: "signature")
        XCTAssertEqual(outcome.ledger.height, 0)
        XCTAssertEqual(outcome.ledger.state.allRows(), Ledger(genesis: chain.genesis).state.allRows())
    }

    func testReplayRefusesAWrongPreviousHash() throws {
        var chain = try Chain()
        let blocks = chain.sealTwoBlocks()
        var orphan = blocks[0]
        orphan.header.previousHash = Digest32.zero
        orphan.header = resigned(orphan.header, by: chain.arbiter, chainID: chain.genesis.chainID)
        let outcome = replayFresh(chain.genesis, [orphan])
        assertRefused(outcome, atHeight: 1, mentioning: "previous hash")
        XCTAssertEqual(outcome.ledger.state.allRows(), Ledger(genesis: chain.genesis).state.allRows())
        // Block 2 on top of genesis fails by height before anything else.
        assertRefused(replayFresh(chain.genesis, [blocks[1]]), atHeight: 2, mentioning: "height")
    }

    func testReplayRefusesReorderedTransactions() throws {
        var chain = try Chain()
        let blocks = chain.sealTwoBlocks()
        var reordered = blocks[0]
        reordered.transactions.swapAt(0, 1)
        assertRefused(replayFresh(chain.genesis, [reordered]), atHeight: 1, mentioning: "transactions root")
        // Even with a root and signature to match, the regulator's sequence numbers give it away.
        reordered.header.transactionsRoot = MerkleTree.root(reordered.transactions.map(\.hash))
        reordered.header = resigned(reordered.header, by: chain.arbiter, chainID: chain.genesis.chainID)
        assertRefused(replayFresh(chain.genesis, [reordered]), atHeight: 1, mentioning: "sequence_ahead")
    }

    /// The recorded result is not signed; replay recomputes it and refuses a different one.
    func testReplayRefusesATamperedCreatedID() throws {
        var chain = try Chain()
        let blocks = chain.sealTwoBlocks()
        var tampered = blocks[0]
        XCTAssertEqual(tampered.transactions[0].createdID, 1)
        tampered.transactions[0].createdID = 2
        XCTAssertEqual(tampered.header.transactionsRoot, MerkleTree.root(tampered.transactions.map(\.hash)))
        assertRefused(replayFresh(chain.genesis, [tampered]), atHeight: 1, mentioning: "recorded 2")
    }

    func testReplayRefusesABlockSignedByAnotherKey() throws {
        var chain = try Chain()
        let blocks = chain.sealTwoBlocks()
        var impostor = blocks[0]
        impostor.header = resigned(impostor.header, by: chain.regulator, chainID: chain.genesis.chainID)
        assertRefused(replayFresh(chain.genesis, [impostor]), atHeight: 1, mentioning: "signature")
        // The arbiter's own key, but signing for another chain.
        var elsewhere = blocks[0]
        elsewhere.header = resigned(elsewhere.header, by: chain.arbiter, chainID: Digest32.zero)
        assertRefused(replayFresh(chain.genesis, [elsewhere]), atHeight: 1, mentioning: "signature")
    }

    func testReplayRefusesOtherHeaderFaults() throws {
        var chain = try Chain()
        let blocks = chain.sealTwoBlocks()
        let chainID = chain.genesis.chainID
        var earlier = blocks[1]
        earlier.header.timeMilliseconds = Chain.genesisTime
        earlier.header = resigned(earlier.header, by: chain.arbiter, chainID: chainID)
        assertRefused(replayFresh(chain.genesis, [blocks[0], earlier]), atHeight: 2, mentioning: "time goes back")

        var miscounted = blocks[0]
        miscounted.header.transactionCount += 1
        miscounted.header = resigned(miscounted.header, by: chain.arbiter, chainID: chainID)
        assertRefused(replayFresh(chain.genesis, [miscounted]), atHeight: 1, mentioning: "counts")
    }

    /// A transaction changed inside a block, with the root and header redone to match, still
    /// fails: its own signature does not cover the change.
    func testReplayRefusesAForgedTransaction() throws {
        var chain = try Chain()
        let blocks = chain.sealTwoBlocks()
        var forged = blocks[1]
        var bytes = forged.transactions[1].bytes  // alice's licence transfer to bob
        bytes[bytes.count - Signature.byteCount - 1] ^= 0x01
        forged.transactions[1] = CommittedTransaction(bytes: bytes, createdID: 0)
        forged.header.transactionsRoot = MerkleTree.root(forged.transactions.map(\.hash))
        forged.header = resigned(forged.header, by: chain.arbiter, chainID: chain.genesis.chainID)
        assertRefused(replayFresh(chain.genesis, [blocks[0], forged]), atHeight: 2, mentioning: "invalid_signature")
    }

    func testLedgerRestoredFromRowsContinuesLikeTheOriginal() throws {
        var chain = try Chain()
        let blocks = chain.sealTwoBlocks()
        var restored = try Ledger(genesis: chain.genesis, tip: blocks[1].header, rows: chain.ledger.state.allRows())
        XCTAssertEqual(restored.height, 2)
        XCTAssertEqual(restored.tipHash, chain.ledger.tipHash)
        XCTAssertEqual(restored.tipTimeMilliseconds, chain.ledger.tipTimeMilliseconds)
        XCTAssertEqual(restored.state.allRows(), chain.ledger.state.allRows())

        let next = try chain.sign(chain.bob, .transfer(token: 1, to: chain.alice.publicKey, amount: Chain.slice))
        let verified = try next.verified(chainID: chain.genesis.chainID)
        let time = Chain.genesisTime + 3_000
        let original = chain.ledger.apply(verified, timeMilliseconds: time)
        let again = restored.apply(verified, timeMilliseconds: time)
        XCTAssertEqual(try original.get(), Applied())
        XCTAssertEqual(try again.get(), Applied())
        XCTAssertEqual(restored.state.allRows(), chain.ledger.state.allRows())
        // Ed25519 signatures are deterministic, so both seal the same block.
        let sealedByRestored = restored.sealBlock(arbiter: chain.arbiter)
        let sealedByOriginal = chain.ledger.sealBlock(arbiter: chain.arbiter)
        XCTAssertEqual(sealedByRestored, sealedByOriginal)
        XCTAssertEqual(sealedByRestored.header.height, 3)
    }

    /// RFC 6962 domain separation, and the odd node promoted rather than paired with itself, so
    /// [a, b, c] and [a, b, c, c] (Bitcoin's CVE-2012-2459) have different roots.
    func testMerkleRoot() {
        func digest(_ text: String) -> Digest32 { Blake2b.hash256(Array(text.utf8)) }
        func leaf(_ value: Digest32) -> Digest32 { Blake2b.hash256([0x00] + value.bytes) }
        func node(_ left: Digest32, _ right: Digest32) -> Digest32 {
            Blake2b.hash256([0x01] + left.bytes + right.bytes)
        }
        let (a, b, c, d, e) = (digest("a"), digest("b"), digest("c"), digest("d"), digest("e"))
        XCTAssertEqual(MerkleTree.root([]), Blake2b.hash256([UInt8]()))
        XCTAssertEqual(MerkleTree.root([a]), leaf(a))
        XCTAssertNotEqual(MerkleTree.root([a]), a)
        XCTAssertEqual(MerkleTree.root([a, b]), node(leaf(a), leaf(b)))
        XCTAssertNotEqual(MerkleTree.root([a, b]), MerkleTree.root([b, a]))
        XCTAssertEqual(MerkleTree.root([a, b, c]), node(node(leaf(a), leaf(b)), leaf(c)))
        XCTAssertEqual(MerkleTree.root([a, b, c, c]), node(node(leaf(a), leaf(b)), node(leaf(c), leaf(c))))
        XCTAssertNotEqual(MerkleTree.root([a, b, c]), MerkleTree.root([a, b, c, c]))
        XCTAssertEqual(
            MerkleTree.root([a, b, c, d, e]), node(node(node(leaf(a), leaf(b)), node(leaf(c), leaf(d))), leaf(e)))
    }
}
