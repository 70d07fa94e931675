// Goal: the ledger's byte layouts (genesis, every operation's transaction, a block header, state
// keys and records, Merkle roots) are pinned by proto/vectors/ledger.json and checked both ways:
// built from fixed seeds they match the file, and every file vector decodes and re-encodes to
// itself. Ed25519 signatures are deterministic, so the file is reproducible by any implementation.
import Foundation
import NIOCore
import RWACrypto
import RWALedger
import RWATestSupport
import RWAWire
import XCTest

final class LedgerVectorTests: XCTestCase {
    static let arbiter = try! SigningKeyPair(seed: [UInt8](repeating: 0x01, count: 32))
    static let regulator = try! SigningKeyPair(seed: [UInt8](repeating: 0x02, count: 32))
    static let issuer = try! SigningKeyPair(seed: [UInt8](repeating: 0x03, count: 32))
    static let alice = try! SigningKeyPair(seed: [UInt8](repeating: 0x0a, count: 32))
    static let bob = try! SigningKeyPair(seed: [UInt8](repeating: 0x0b, count: 32))
    static let spare = try! SigningKeyPair(seed: [UInt8](repeating: 0x0c, count: 32))
    static let genesis = Genesis(
        networkName: "rwanet-vectors", timeMilliseconds: 1_767_225_600_000, arbiter: arbiter.publicKey,
        claimIssuers: [regulator.publicKey], stablecoinIssuer: issuer.publicKey)

    static let licence = ResourceRegistration(
        kind: .radioSpectrum, owner: alice.publicKey, name: "n78 Leeds", metadata: "3.5 GHz TDD",
        valuation: 5_000_000_000,
        legalClarity: CriterionScore(score: 2, reason: "UK spectrum trading is licensed"),
        spectrum: SpectrumLicence(
            centreHz: 3_500_000_000, widthHz: 10_000_000, country: 826, region: "Leeds", validFrom: 1_767_225_600,
            validUntil: 1_924_992_000),
        compliance: ComplianceRules(
            requiredClaims: [ClaimTopic.kyc], allowedCountries: [826, 372], deniedCountries: [],
            maxBalancePerIdentity: 100_000_000, maxHolders: 50))

    /// One transaction per operation, in an order the ledger accepts, with who signs it.
    static let script: [(String, SigningKeyPair, LedgerOperation)] = [
        ("register_identity", regulator, .registerIdentity(account: alice.publicKey, country: 826)),
        ("add_claim", regulator, .addClaim(identity: 1, topic: ClaimTopic.kyc)),
        ("register_identity_bob", regulator, .registerIdentity(account: bob.publicKey, country: 372)),
        ("add_claim_bob", regulator, .addClaim(identity: 2, topic: ClaimTopic.kyc)),
        ("revoke_claim", regulator, .revokeClaim(identity: 2, topic: ClaimTopic.kyc)),
        ("add_claim_bob_again", regulator, .addClaim(identity: 2, topic: ClaimTopic.kyc)),
        ("register_resource", regulator, .registerResource(licence)),
        ("mint", issuer, .mint(token: 0, to: alice.publicKey, amount: 1_000_000)),
        ("transfer", alice, .transfer(token: 1, to: bob.publicKey, amount: 2_500_000)),
        ("set_frozen", regulator, .setFrozen(token: 1, account: bob.publicKey, frozen: true)),
        ("set_frozen_off", regulator, .setFrozen(token: 1, account: bob.publicKey, frozen: false)),
        ("freeze_partial", regulator, .freezePartial(token: 1, account: bob.publicKey, amount: 500_000)),
        ("unfreeze_partial", regulator, .unfreezePartial(token: 1, account: bob.publicKey, amount: 200_000)),
        (
            "forced_transfer", regulator,
            .forcedTransfer(token: 1, from: bob.publicKey, to: alice.publicKey, amount: 1_000_000)
        ),
        ("burn", regulator, .burn(token: 1, from: alice.publicKey, amount: 1_000_000)),
        ("set_paused", regulator, .setPaused(token: 1, paused: true)),
        (
            "set_compliance", regulator,
            .setCompliance(token: 1, rules: ComplianceRules(requiredClaims: [ClaimTopic.kyc], deniedCountries: [4]))
        ),
        ("link_wallet", regulator, .linkWallet(account: spare.publicKey, identity: 1)),
        (
            "recover_wallet", regulator,
            .recoverWallet(token: 1, lost: alice.publicKey, replacement: spare.publicKey)
        ),
        ("set_paused_off", regulator, .setPaused(token: 1, paused: false)),
        ("create_pool", regulator, .createPool(token: 1, country: 826)),
        ("mint_spare", issuer, .mint(token: 0, to: spare.publicKey, amount: 1_000_000)),
        (
            "add_liquidity", spare,
            .addLiquidity(
                token: 1, licenceDesired: 10_000_000, stablecoinDesired: 500_000, licenceMinimum: 0,
                stablecoinMinimum: 0, deadlineMilliseconds: deadline)
        ),
        (
            "swap_exact_in", alice,
            .swapExactIn(token: 1, side: .buy, amountIn: 100_000, minimumOut: 1, deadlineMilliseconds: deadline)
        ),
        (
            "swap_exact_out", bob,
            .swapExactOut(
                token: 1, side: .sell, amountOut: 10_000, maximumIn: 1_000_000, deadlineMilliseconds: deadline)
        ),
        (
            "remove_liquidity", spare,
            .removeLiquidity(
                token: 1, shares: 1_000_000, licenceMinimum: 0, stablecoinMinimum: 0, deadlineMilliseconds: deadline)
        ),
    ]
    /// Alice leases slices 0–1 of licence 1 to bob for the first two hours of 2026.
    static let leaseTerms = LeaseTerms(
        chainID: genesis.chainID, lessor: alice.publicKey, lessee: bob.publicKey, licence: 1, firstSlice: 0,
        sliceCount: 2, startSeconds: 1_767_225_600, hours: 2, periodSeconds: 3_600, ratePerSliceHour: 1_000,
        deposit: 4_000, paymentIncrement: 1_000, challengePeriodMilliseconds: 60_000, nonce: 1)

    static func leaseState(nonce: UInt64, paid: UInt128, final: Bool = false) -> CoSignedState {
        let state = ChannelState(
            channelID: leaseTerms.channelID, nonce: nonce, paid: paid,
            paidThroughSeconds: leaseTerms.paidThroughSeconds(paid: paid), final: final)
        return CoSignedState(
            state: state, lessorSignature: state.signed(by: alice, chainID: genesis.chainID),
            lesseeSignature: state.signed(by: bob, chainID: genesis.chainID))
    }

    /// The channel operations, after the script's others: an open, a registration of the opening
    /// state, a challenge with state 2, a cooperative close with the final state 3, and the
    /// licence holder's rent.
    static let channelScript: [(String, SigningKeyPair, LedgerOperation)] = [
        ("mint_bob", issuer, .mint(token: 0, to: bob.publicKey, amount: 10_000)),
        (
            "open_channel", bob,
            .openChannel(
                terms: leaseTerms, lessorSignature: alice.sign(leaseTerms.encoded, domain: leaseTerms.signatureDomain),
                lesseeSignature: bob.sign(leaseTerms.encoded, domain: leaseTerms.signatureDomain))
        ),
        ("register_state", bob, .registerState(channel: leaseTerms.channelID, state: nil)),
        ("challenge", alice, .challenge(leaseState(nonce: 2, paid: 2_000))),
        ("close_channel", alice, .closeChannel(leaseState(nonce: 3, paid: 3_000, final: true))),
        ("claim_rent", spare, .claimRent(token: 1)),
    ]

    /// Orders' deadlineMilliseconds: a minute and a half after the block's time.
    static let deadline: UInt64 = 1_767_225_700_000

    func built() throws -> VectorFile {
        var valid: [VectorFile.Valid] = []
        valid.append(
            .init(
                name: "genesis",
                description: "arbiter seed 0x01*32, regulator 0x02*32, stablecoin issuer 0x03*32, time 1767225600000",
                hex: Self.genesis.encoded.hexString))
        valid.append(
            .init(
                name: "chain_id", description: "BLAKE2b-256 of the genesis encoding",
                hex: Self.genesis.chainID.bytes.hexString))
        var ledger = Ledger(genesis: Self.genesis)
        var sequences: [AccountID: UInt64] = [:]
        var hashes: [Digest32] = []
        for (name, signer, operation) in Self.script + Self.channelScript {
            let sequence = sequences[signer.publicKey, default: 0]
            sequences[signer.publicKey] = sequence + 1
            let transaction = try Transaction(
                signedBy: signer, chainID: Self.genesis.chainID, sequence: sequence, operation: operation)
            let result = ledger.apply(
                try transaction.verified(chainID: Self.genesis.chainID), timeMilliseconds: 1_767_225_601_000)
            if case .failure(let rejection) = result { XCTFail("\(name): \(rejection)") }
            valid.append(
                .init(
                    name: "transaction_\(name)",
                    description: "\(operation.name) signed by seed \(signer.exportSeed()[0]) at sequence \(sequence)",
                    hex: transaction.encoded.hexString))
            hashes.append(transaction.hash)
        }
        valid.append(
            .init(
                name: "transaction_hash_register_identity", description: "BLAKE2b-256 of transaction_register_identity",
                hex: hashes[0].bytes.hexString))
        let block = ledger.sealBlock(arbiter: Self.arbiter)
        valid.append(
            .init(
                name: "block_header",
                description: "block 1 holding every transaction above, time 1767225601000, signed by the arbiter",
                hex: block.header.encoded.hexString))
        valid.append(
            .init(
                name: "block_hash", description: "BLAKE2b-256 of the header without its signature",
                hex: block.header.hash.bytes.hexString))
        valid.append(
            .init(
                name: "merkle_root_1", description: "root over the first transaction hash",
                hex: MerkleTree.root(Array(hashes.prefix(1))).bytes.hexString))
        valid.append(
            .init(
                name: "merkle_root_3", description: "root over the first three (the third is promoted)",
                hex: MerkleTree.root(Array(hashes.prefix(3))).bytes.hexString))
        let keys: [(String, StateKey)] = [
            ("counters", .counters), ("account_alice", .account(Self.alice.publicKey)), ("identity_1", .identity(1)),
            ("token_0", .token(0)), ("token_1", .token(1)), ("holding_1_bob", .holding(1, Self.bob.publicKey)),
            ("resource_1", .resource(1)), ("pool_1", .pool(1)),
            ("token_share_1", .token(PoolRecord.shareToken(for: 1))),
            ("holding_share_1_spare", .holding(PoolRecord.shareToken(for: 1), Self.spare.publicKey)),
            ("channel", .channel(Self.leaseTerms.channelID)), ("rent_index_1", .rentIndex(1)),
            ("rent_position_1_spare", .rentPosition(1, Self.spare.publicKey)),
        ]
        for (name, key) in keys {
            valid.append(.init(name: "state_key_\(name)", description: "\(key)", hex: key.bytes.hexString))
            valid.append(
                .init(
                    name: "state_row_\(name)", description: "\(key) after block 1",
                    hex: ledger.state.row(key)!.hexString))
        }
        // The settle operation cannot apply in the same block as the registration: encoded only.
        let settle = try Transaction(
            signedBy: Self.bob, chainID: Self.genesis.chainID, sequence: sequences[Self.bob.publicKey, default: 0],
            operation: .settleChannel(Self.leaseTerms.channelID))
        valid.append(
            .init(
                name: "transaction_settle_channel", description: "settle_channel by bob (not applied: the period runs)",
                hex: settle.encoded.hexString))
        valid.append(
            .init(
                name: "state_key_leased_slice_hour", description: "slice 1 of licence 1 in hour 490896 (freed now)",
                hex: StateKey.leasedSliceHour(1, 1, 490_896).bytes.hexString))
        let transfer = hexOf(valid, "transaction_transfer")
        var unknownTag = transfer
        unknownTag[72] = 0x0b
        var badBool = hexOf(valid, "transaction_set_frozen")
        badBool[72 + 1 + 8 + 32] = 0x02
        let invalid: [VectorFile.Invalid] = [
            .init(
                name: "transaction_trailing_byte", description: "transaction_transfer with one more byte",
                hex: (transfer + [0]).hexString, error: "trailing_bytes"),
            .init(
                name: "transaction_truncated", description: "transaction_transfer without its last byte",
                hex: transfer.dropLast().hexString, error: "truncated"),
            .init(
                name: "transaction_unknown_operation", description: "transaction_transfer with operation tag 0x0b",
                hex: unknownTag.hexString, error: "invalid_value"),
            .init(
                name: "transaction_bool_2", description: "set_frozen whose frozen byte is 2", hex: badBool.hexString,
                error: "non_canonical"),
        ]
        return VectorFile(valid: valid, invalid: invalid)
    }

    func hexOf(_ vectors: [VectorFile.Valid], _ name: String) -> [UInt8] {
        [UInt8](hex: vectors.first { $0.name == name }!.hex)!
    }

    func testVectorsBothWays() throws {
        let expected = try built()
        if VectorFile.writing { try expected.write("ledger.json") }
        let file = try VectorFile.load("ledger.json")
        XCTAssertEqual(file, expected, "proto/vectors/ledger.json differs from what the code builds")
        for vector in file.valid
        where vector.name.hasPrefix("transaction_") && !vector.name.hasPrefix("transaction_hash") {
            let bytes = try XCTUnwrap([UInt8](hex: vector.hex))
            let transaction = try Transaction(decoding: bytes)
            XCTAssertEqual(transaction.encoded, bytes, vector.name)
            XCTAssertNoThrow(try transaction.verified(chainID: Self.genesis.chainID), vector.name)
        }
        let genesis = try Genesis(decoding: hexOf(file.valid, "genesis"))
        XCTAssertEqual(genesis.chainID.bytes, hexOf(file.valid, "chain_id"))
        let header = try BlockHeader(decoding: hexOf(file.valid, "block_header"))
        XCTAssertTrue(header.hasValidSignature(arbiter: Self.arbiter.publicKey, chainID: genesis.chainID))
        XCTAssertEqual(header.hash.bytes, hexOf(file.valid, "block_hash"))
        for vector in file.valid
        where vector.name.hasPrefix("state_key_") && vector.name != "state_key_leased_slice_hour" {
            let key = try StateKey(bytes: try XCTUnwrap([UInt8](hex: vector.hex)))
            let row = hexOf(file.valid, "state_row_" + vector.name.dropFirst("state_key_".count))
            XCTAssertNoThrow(try StateRecord(key: key, value: row), vector.name)
        }
        for vector in file.invalid {
            XCTAssertThrowsError(try Transaction(decoding: try XCTUnwrap([UInt8](hex: vector.hex)))) { error in
                XCTAssertEqual((error as? WireError)?.className, vector.error, vector.name)
            }
        }
    }
}
