import RWACrypto
import RWALedger
import RWAWire

/// The ledger fed transaction sequences the input chooses, signed by a few funded accounts, the
/// regulator and the issuer: transfers, mints and burns, freezes, pauses, forced transfers, pool
/// deposits, withdrawals and swaps both ways, rent claims, with wrong sequence numbers among
/// them. After every transaction each token's balances sum to its supply; a refused one leaves
/// the state exactly as it was; and replaying the accepted ones on a fresh copy gives the same
/// state.
public enum LedgerChecks {
    static func key(_ byte: UInt8) -> SigningKeyPair { try! SigningKeyPair(seed: [UInt8](repeating: byte, count: 32)) }
    static let regulator = key(1)
    static let issuer = key(2)
    static let accounts = [key(3), key(4), key(5)]
    /// Known to no identity: compliance refuses it.
    static let stranger = key(6)
    static let genesis = Genesis(
        networkName: "rwanet-fuzz", timeMilliseconds: 1_800_000_000_000, arbiter: key(7).publicKey,
        claimIssuers: [regulator.publicKey], stablecoinIssuer: issuer.publicKey)
    static let start: (ledger: Ledger, licence: TokenID) = {
        var ledger = Ledger(genesis: genesis)
        var sequences: [SigningPublicKey: UInt64] = [:]
        func apply(_ signer: SigningKeyPair, _ operation: LedgerOperation) -> UInt64 {
            let transaction = try! Transaction(
                signedBy: signer, chainID: genesis.chainID, sequence: sequences[signer.publicKey, default: 0],
                operation: operation)
            sequences[signer.publicKey, default: 0] += 1
            return try! ledger.apply(
                try! transaction.verified(chainID: genesis.chainID), timeMilliseconds: genesis.timeMilliseconds + 1
            ).get().createdID
        }
        for account in accounts {
            let identity = apply(regulator, .registerIdentity(account: account.publicKey, country: 840))
            _ = apply(regulator, .addClaim(identity: identity, topic: ClaimTopic.kyc))
            _ = apply(issuer, .mint(token: 0, to: account.publicKey, amount: 1_000_000_000_000))
        }
        let licence = apply(
            regulator,
            .registerResource(
                ResourceRegistration(
                    kind: .radioSpectrum, owner: accounts[0].publicKey, name: "fuzz", valuation: 1_000_000,
                    spectrum: SpectrumLicence(
                        centreHz: 3_500_000_000, widthHz: 10_000_000, country: 840, region: "fuzz",
                        validFrom: 1_700_000_000, validUntil: 2_000_000_000),
                    compliance: ComplianceRules())))
        _ = apply(regulator, .createPool(token: licence, country: 840))
        _ = apply(
            accounts[0],
            .addLiquidity(
                token: licence, licenceDesired: 40_000_000, stablecoinDesired: 4_000_000_000, licenceMinimum: 0,
                stablecoinMinimum: 0, deadlineMilliseconds: .max))
        _ = apply(accounts[0], .transfer(token: licence, to: accounts[1].publicKey, amount: 10_000_000))
        _ = ledger.sealBlock(arbiter: key(7))
        return (ledger, licence)
    }()

    public static func check(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        var ledger = start.ledger
        let licence = start.licence
        let signers = accounts + [regulator, issuer, stranger]
        let targets = (accounts + [stranger, regulator]).map(\.publicKey)
        let tokens: [TokenID] = [0, licence, PoolRecord.shareToken(for: licence), 99]
        var time = genesis.timeMilliseconds + 1_000
        // The accepted transactions and where blocks were sealed, to replay.
        var history: [(VerifiedTransaction, UInt64)?] = []
        var steps = 0
        while !input.isExhausted && steps < 32 {
            steps += 1
            let signer = signers[input.choice(signers.count)]
            let token = tokens[input.choice(tokens.count)]
            let target = targets[input.choice(targets.count)]
            let other = targets[input.choice(targets.count)]
            let deadline = input.bool() ? UInt64.max : time + UInt64(input.u16())
            let side: TradeSide = input.bool() ? .buy : .sell
            let operation: LedgerOperation
            switch input.choice(12) {
            case 0: operation = .transfer(token: token, to: target, amount: input.amount())
            case 1: operation = .mint(token: token, to: target, amount: input.amount())
            case 2: operation = .burn(token: token, from: target, amount: input.amount())
            case 3: operation = .setFrozen(token: token, account: target, frozen: input.bool())
            case 4: operation = .freezePartial(token: token, account: target, amount: input.amount())
            case 5: operation = .forcedTransfer(token: token, from: target, to: other, amount: input.amount())
            case 6: operation = .setPaused(token: token, paused: input.bool())
            case 7:
                operation = .addLiquidity(
                    token: licence, licenceDesired: input.amount(), stablecoinDesired: input.amount(),
                    licenceMinimum: input.amount() % 1_000, stablecoinMinimum: input.amount() % 1_000,
                    deadlineMilliseconds: deadline)
            case 8:
                operation = .removeLiquidity(
                    token: licence, shares: input.amount(), licenceMinimum: 0, stablecoinMinimum: 0,
                    deadlineMilliseconds: deadline)
            case 9:
                operation = .swapExactIn(
                    token: licence, side: side, amountIn: input.amount(), minimumOut: input.amount() % 100,
                    deadlineMilliseconds: deadline)
            case 10:
                operation = .swapExactOut(
                    token: licence, side: side, amountOut: input.amount(), maximumIn: input.amount(),
                    deadlineMilliseconds: deadline)
            default:
                operation = .claimRent(token: token)
            }
            // Mostly the right sequence number; sometimes one already used, or one ahead.
            let next = ledger.state.accounts[signer.publicKey]?.nextSequence ?? 0
            let sequence: UInt64
            switch input.choice(8) {
            case 0: sequence = next &- 1
            case 1: sequence = next &+ 1
            default: sequence = next
            }
            time += UInt64(input.byte()) * 100
            guard
                let transaction = try? Transaction(
                    signedBy: signer, chainID: genesis.chainID, sequence: sequence, operation: operation),
                let verified = try? transaction.verified(chainID: genesis.chainID)
            else { continue }
            let before = ledger.state.digest
            switch ledger.apply(verified, timeMilliseconds: time) {
            case .success:
                history.append((verified, time))
            case .failure(let rejection):
                guard ledger.state.digest == before else {
                    violated("\(operation.name) refused (\(rejection.code.name)) yet changed the state")
                }
            }
            checkConservation(ledger.state)
            if input.choice(4) == 0 {
                _ = ledger.sealBlock(arbiter: key(7))
                history.append(nil)
            }
        }
        // The accepted transactions, replayed on a fresh copy, give the same state.
        var replayed = start.ledger
        for entry in history {
            guard let (verified, time) = entry else {
                _ = replayed.sealBlock(arbiter: key(7))
                continue
            }
            guard case .success = replayed.apply(verified, timeMilliseconds: time) else {
                violated("an accepted transaction was refused on replay")
            }
        }
        guard replayed.state.digest == ledger.state.digest else { violated("the replay reached another state") }
    }

    static func checkConservation(_ state: LedgerState) {
        var sums: [TokenID: UInt128] = [:]
        for (key, holding) in state.holdings {
            guard case .holding(let token, _) = key else { continue }
            let (sum, overflow) = sums[token, default: 0].addingReportingOverflow(holding.balance)
            guard !overflow else { violated("token \(token)'s balances overflow") }
            sums[token] = sum
        }
        for (id, token) in state.tokens where sums[id, default: 0] != token.totalSupply {
            violated("token \(id): balances sum to \(sums[id, default: 0]), supply is \(token.totalSupply)")
        }
    }
}
