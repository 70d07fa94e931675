import RWACrypto
import RWALedger
import RWAWire

/// The chain a simulated run starts from: a genesis, and a first block in which the regulator
/// verifies every trader, the issuer funds them, trader 0 registers a 3.5 GHz licence, the
/// regulator opens its pool, trader 0 seeds it and gives every other trader 10 slices to sell;
/// and the lessor registers a second licence (3.6 GHz), leased to the lessees, of which the
/// traders hold 5 slices each and its pool 20, so its rent has many holders.
struct World {
    static let genesisTime: UInt64 = 1_800_000_000_000
    static let stablecoin: TokenID = 0
    static let slice: UInt128 = 1_000_000
    static let country: CountryCode = 840

    let arbiter: SigningKeyPair
    let regulator: SigningKeyPair
    let issuer: SigningKeyPair
    let traders: [SigningKeyPair]
    /// The owner of `leaseLicence`, and the lessees' lessor.
    let lessor: SigningKeyPair
    let lessees: [SigningKeyPair]
    let genesis: Genesis
    let genesisRows: [StateRow]
    let licence: TokenID
    /// The licence the lessees lease.
    let leaseLicence: TokenID
    let setupBlock: Block
    let setupChanges: [(key: StateKey, row: [UInt8]?)]

    /// Usage-right periods of one second, so leases run within a simulated run.
    static let periodSeconds: UInt32 = 1

    init(traderCount: Int, lesseeCount: Int, random: inout SimulationRandom) throws {
        func key() throws -> SigningKeyPair { try SigningKeyPair(seed: random.bytes(SigningKeyPair.seedByteCount)) }
        arbiter = try key()
        regulator = try key()
        issuer = try key()
        traders = try (0..<traderCount).map { _ in try key() }
        lessor = try key()
        lessees = try (0..<lesseeCount).map { _ in try key() }
        genesis = Genesis(
            networkName: "rwanet-simulation", timeMilliseconds: Self.genesisTime, arbiter: arbiter.publicKey,
            claimIssuers: [regulator.publicKey], stablecoinIssuer: issuer.publicKey, periodSeconds: Self.periodSeconds)
        var ledger = Ledger(genesis: genesis)
        genesisRows = ledger.takeStateChanges().compactMap { change in
            change.row.map { StateRow(key: change.key.bytes, value: $0) }
        }
        var sequences: [SigningPublicKey: UInt64] = [:]
        let chainID = genesis.chainID
        func apply(_ signer: SigningKeyPair, _ operation: LedgerOperation) throws -> UInt64 {
            let transaction = try Transaction(
                signedBy: signer, chainID: chainID, sequence: sequences[signer.publicKey, default: 0],
                operation: operation)
            sequences[signer.publicKey, default: 0] += 1
            let applied = try ledger.apply(
                try transaction.verified(chainID: chainID), timeMilliseconds: Self.genesisTime + 1
            ).get()
            return applied.createdID
        }
        for trader in traders + [lessor] + lessees {
            let identity = try apply(regulator, .registerIdentity(account: trader.publicKey, country: Self.country))
            _ = try apply(regulator, .addClaim(identity: identity, topic: ClaimTopic.kyc))
            _ = try apply(issuer, .mint(token: Self.stablecoin, to: trader.publicKey, amount: 10_000_000_000))
        }
        let spectrum = SpectrumLicence(
            centreHz: 3_500_000_000, widthHz: 10_000_000, country: Self.country, region: "US-CA San Francisco",
            validFrom: 1_700_000_000, validUntil: 2_015_000_000)
        licence = try apply(
            regulator,
            .registerResource(
                ResourceRegistration(
                    kind: .radioSpectrum, owner: traders[0].publicKey, name: "CBRS 3.5 GHz", valuation: 2_500_000_000,
                    spectrum: spectrum, compliance: ComplianceRules())))
        _ = try apply(regulator, .createPool(token: licence, country: Self.country))
        _ = try apply(
            traders[0],
            .addLiquidity(
                token: licence, licenceDesired: 40 * Self.slice, stablecoinDesired: 4_000_000_000, licenceMinimum: 0,
                stablecoinMinimum: 0, deadlineMilliseconds: .max))
        for trader in traders.dropFirst() {
            _ = try apply(traders[0], .transfer(token: licence, to: trader.publicKey, amount: 10 * Self.slice))
        }
        leaseLicence = try apply(
            regulator,
            .registerResource(
                ResourceRegistration(
                    kind: .radioSpectrum, owner: lessor.publicKey, name: "CBRS 3.6 GHz", valuation: 2_500_000_000,
                    spectrum: SpectrumLicence(
                        centreHz: 3_600_000_000, widthHz: 10_000_000, country: Self.country,
                        region: "US-CA San Francisco", validFrom: 1_700_000_000, validUntil: 2_015_000_000),
                    compliance: ComplianceRules())))
        _ = try apply(regulator, .createPool(token: leaseLicence, country: Self.country))
        _ = try apply(
            lessor,
            .addLiquidity(
                token: leaseLicence, licenceDesired: 20 * Self.slice, stablecoinDesired: 2_000_000_000,
                licenceMinimum: 0, stablecoinMinimum: 0, deadlineMilliseconds: .max))
        for trader in traders {
            _ = try apply(lessor, .transfer(token: leaseLicence, to: trader.publicKey, amount: 5 * Self.slice))
        }
        setupBlock = ledger.sealBlock(arbiter: arbiter)
        setupChanges = ledger.takeStateChanges()
    }
}
