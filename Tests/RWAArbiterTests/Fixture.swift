import Foundation
import NIOPosix
import RWACrypto
import RWALedger
import RWANode
import RWASession
import RWAStore
import RWATestSupport
import RWAWire
import XCTest

/// A chain in a scratch directory: fixed keys, a genesis, a store, and helpers to sign
/// transactions with the right sequence numbers.
final class ChainFixture {
    let scratch: Scratch
    let arbiter = try! SigningKeyPair(seed: [UInt8](repeating: 1, count: 32))
    let regulator = try! SigningKeyPair(seed: [UInt8](repeating: 2, count: 32))
    let issuer = try! SigningKeyPair(seed: [UInt8](repeating: 3, count: 32))
    let genesis: Genesis
    let databasePath: String
    private var sequences: [AccountID: UInt64] = [:]

    init() throws {
        scratch = try Scratch()
        genesis = Genesis(
            networkName: "test", timeMilliseconds: 1_700_000_000_000, arbiter: arbiter.publicKey,
            claimIssuers: [regulator.publicKey], stablecoinIssuer: issuer.publicKey)
        databasePath = scratch.directory.appendingPathComponent("chain.sqlite").path
    }

    var chainID: Digest32 { genesis.chainID }

    /// Creates the database with the genesis state, as `rwa-arbiter init` does.
    func createStore() throws -> LedgerStore {
        var ledger = Ledger(genesis: genesis)
        let rows = ledger.takeStateChanges().compactMap { change in
            change.row.map { StateRow(key: change.key.bytes, value: $0) }
        }
        return try LedgerStore.create(path: databasePath, genesis: genesis, genesisRows: rows)
    }

    /// Signs `operation` with the signer's next sequence number (counting every call).
    func sign(_ signer: SigningKeyPair, _ operation: LedgerOperation) throws -> Transaction {
        let sequence = sequences[signer.publicKey, default: 0]
        sequences[signer.publicKey] = sequence + 1
        return try Transaction(signedBy: signer, chainID: chainID, sequence: sequence, operation: operation)
    }

    /// The operations that give `account` a KYC'd identity in `country` (identity id `identity`).
    func onboard(_ account: AccountID, identity: IdentityID, country: CountryCode = 826) throws -> [Transaction] {
        [
            try sign(regulator, .registerIdentity(account: account, country: country)),
            try sign(regulator, .addClaim(identity: identity, topic: ClaimTopic.kyc)),
        ]
    }

    func licence(owner: AccountID, rules: ComplianceRules = ComplianceRules()) -> ResourceRegistration {
        ResourceRegistration(
            kind: .radioSpectrum, owner: owner, name: "n78 test", metadata: "3.5 GHz TDD", valuation: 5_000_000_000,
            spectrum: SpectrumLicence(
                centreHz: 3_500_000_000, widthHz: 10_000_000, country: 826, region: "Leeds", validFrom: 1_767_225_600,
                validUntil: 1_924_992_000),
            compliance: rules)
    }
}

/// Applies `transactions` to `ledger` as one block and commits it to `store`; every one must apply.
@discardableResult
func commitBlock(
    _ ledger: inout Ledger, _ store: any ChainStore, _ transactions: [Transaction], arbiter: SigningKeyPair,
    time: UInt64,
    file: StaticString = #filePath, line: UInt = #line
) throws -> Block {
    for transaction in transactions {
        let result = ledger.apply(try transaction.verified(chainID: ledger.chainID), timeMilliseconds: time)
        if case .failure(let rejection) = result { XCTFail("\(rejection)", file: file, line: line) }
    }
    let block = ledger.sealBlock(arbiter: arbiter)
    try store.commit(block, changes: ledger.takeStateChanges())
    return block
}

/// The `rwa-arbiter` executable.
final class ArbiterProcess: ToolProcess {
    init(_ arguments: [String]) throws { try super.init(tool: "rwa-arbiter", arguments) }

    /// Runs a subcommand to its end; returns its exit status, standard output and standard error.
    static func run(_ arguments: [String], timeout: TimeInterval = 60) throws -> Outcome {
        try run(tool: "rwa-arbiter", arguments, timeout: timeout)
    }
}

extension ArbiterService {
    /// Serves this arbiter (with the fixture's arbiter key) on a free loopback port.
    func listen(_ transport: TransportKind = .tcp, _ fixture: ChainFixture) async throws -> SessionListener {
        let listener = try await transport.listen(
            host: "127.0.0.1", port: 0,
            configuration: try SessionConfiguration(
                handshake: HandshakeConfiguration(identity: fixture.arbiter, chainID: fixture.chainID)),
            group: MultiThreadedEventLoopGroup.singleton)
        Task { for await session in listener.sessions { self.serve(session) } }
        return listener
    }
}
