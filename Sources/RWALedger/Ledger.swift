import RWACrypto
import RWAWire

/// The arbiter's state machine: it orders verified transactions into blocks, applying each to
/// the state as it comes. It reads no clock (a block's time is handed in) and does no I/O, so
/// the arbiter, `rwa-arbiter verify`, the tests and the simulator all run the same code.
///
/// Every operation checks all of its conditions before it writes anything, so a rejected
/// transaction leaves the state exactly as it was.
public struct Ledger: Sendable {
    public let genesis: Genesis
    public let chainID: Digest32
    public internal(set) var state: LedgerState
    public private(set) var height: UInt64
    public private(set) var tipHash: Digest32
    public private(set) var tipTimeMilliseconds: UInt64
    /// The time of the block being built, in milliseconds: fixed when its first transaction is
    /// applied, judged by deadlines and pool accumulators, and written into its header, so that
    /// replaying the block sees the same time.
    public private(set) var blockTimeMilliseconds: UInt64
    /// Transactions applied since the last block, in order, with what each created.
    public private(set) var pending: [CommittedTransaction] = []

    /// A new chain: the genesis state (the stablecoin, the issuers' accounts) at height 0.
    public init(genesis: Genesis) {
        self.genesis = genesis
        self.chainID = genesis.chainID
        self.height = 0
        self.tipHash = chainID
        self.tipTimeMilliseconds = genesis.timeMilliseconds
        self.blockTimeMilliseconds = genesis.timeMilliseconds
        var state = LedgerState()
        for issuer in genesis.claimIssuers + [genesis.stablecoinIssuer] where state.accounts[issuer] == nil {
            state.setAccount(issuer, Account())
        }
        state.setToken(
            Token(
                id: 0, kind: .stablecoin, symbol: genesis.stablecoinSymbol, decimals: genesis.stablecoinDecimals,
                agents: [genesis.stablecoinIssuer], maxSupply: .max, compliance: nil, resource: nil))
        state.bumpCounters()
        self.state = state
    }

    /// A chain restored from its store: the state after block `tip`.
    public init(genesis: Genesis, tip: BlockHeader?, rows: [StateRow]) throws(WireError) {
        self.genesis = genesis
        self.chainID = genesis.chainID
        self.state = try LedgerState(rows: rows)
        self.height = tip?.height ?? 0
        self.tipHash = tip?.hash ?? chainID
        self.tipTimeMilliseconds = tip?.timeMilliseconds ?? genesis.timeMilliseconds
        self.blockTimeMilliseconds = tipTimeMilliseconds
    }

    /// The rows of the genesis state, which the store writes when it creates a chain.
    public mutating func takeStateChanges() -> [(key: StateKey, row: [UInt8]?)] { state.takeChanges() }

    /// Applies one transaction on top of the pending ones. On success it joins the next block
    /// and the result says what it did. The first transaction of a block fixes the block's time
    /// at `time` (raised to the previous block's if the clock went back); later ones share it.
    @discardableResult
    public mutating func apply(_ verified: VerifiedTransaction, timeMilliseconds time: UInt64) -> Result<
        Applied, Rejection
    > {
        if pending.isEmpty { blockTimeMilliseconds = max(time, tipTimeMilliseconds) }
        do throws(Rejection) {
            let applied = try execute(verified.transaction)
            pending.append(
                CommittedTransaction(bytes: verified.bytes, hash: verified.hash, createdID: applied.createdID))
            return .success(applied)
        } catch {
            return .failure(error)
        }
    }

    /// Closes the pending transactions into the next block, signed by the arbiter, at the time
    /// its first transaction fixed.
    public mutating func sealBlock(arbiter: SigningKeyPair) -> Block {
        precondition(arbiter.publicKey == genesis.arbiter, "only the genesis arbiter seals blocks")
        let unsigned = BlockHeader(
            height: height + 1, previousHash: tipHash, transactionsRoot: MerkleTree.root(pending.map(\.hash)),
            timeMilliseconds: blockTimeMilliseconds, transactionCount: UInt32(pending.count),
            signature: try! Signature(bytes: [UInt8](repeating: 0, count: Signature.byteCount)))
        var header = unsigned
        header.signature = arbiter.sign(unsigned.unsignedBytes, domain: BlockHeader.domain(chainID))
        let block = Block(header: header, transactions: pending)
        advance(to: header)
        return block
    }

    /// Replays a block from the chain, as `rwa-arbiter verify` and a restart check do: the
    /// header must follow the tip and carry the arbiter's signature, and every transaction must
    /// verify, apply and produce the recorded result.
    public mutating func replay(_ block: Block) throws(ReplayError) {
        try checkHeader(of: block)
        var verified: [VerifiedTransaction] = []
        verified.reserveCapacity(block.transactions.count)
        for (index, committed) in block.transactions.enumerated() {
            do {
                verified.append(try Transaction.verify(bytes: committed.bytes, chainID: chainID))
            } catch {
                throw .init(height: block.header.height, "transaction \(index): \(error)")
            }
        }
        try applyTransactions(of: block, verified: verified)
    }

    /// `replay` for a block whose signatures were checked elsewhere (in parallel).
    public mutating func replay(_ block: Block, verified: [VerifiedTransaction]) throws(ReplayError) {
        precondition(verified.count == block.transactions.count)
        try checkHeader(of: block)
        try applyTransactions(of: block, verified: verified)
    }

    /// Replays a block as a follower that trusts the arbiter (the exchange): the header must follow
    /// the tip and carry the arbiter's signature, and its transactions root commits to every
    /// transaction, so their signatures are not checked again. `observe` sees each transaction
    /// after it applies, with what it moved in a pool.
    public mutating func follow(
        _ block: Block, observe: (_ index: Int, _ transaction: Transaction, _ fill: PoolFill?) -> Void
    ) throws(ReplayError) {
        try checkHeader(of: block)
        var verified: [VerifiedTransaction] = []
        verified.reserveCapacity(block.transactions.count)
        for (index, committed) in block.transactions.enumerated() {
            do {
                let transaction = try Transaction(decoding: committed.bytes)
                guard transaction.chainID == chainID else { throw Rejection(.wrongChainID, "another chain's") }
                verified.append(
                    VerifiedTransaction(transaction: transaction, bytes: committed.bytes, hash: committed.hash))
            } catch {
                throw .init(height: block.header.height, "transaction \(index): \(error)")
            }
        }
        try applyTransactions(of: block, verified: verified) { index, fill in
            observe(index, verified[index].transaction, fill)
        }
    }

    private func checkHeader(of block: Block) throws(ReplayError) {
        let header = block.header
        guard header.height == height + 1 else { throw .init(height: header.height, "height follows \(height)") }
        guard header.previousHash == tipHash else {
            throw .init(height: header.height, "previous hash is not the tip's")
        }
        guard header.timeMilliseconds >= tipTimeMilliseconds else {
            throw .init(height: header.height, "time goes back")
        }
        guard header.hasValidSignature(arbiter: genesis.arbiter, chainID: chainID) else {
            throw .init(height: header.height, "arbiter signature does not verify")
        }
        guard Int(header.transactionCount) == block.transactions.count else {
            throw .init(height: header.height, "header counts \(header.transactionCount) transactions")
        }
        guard MerkleTree.root(block.transactions.map(\.hash)) == header.transactionsRoot else {
            throw .init(height: header.height, "transactions root does not match")
        }
    }

    private mutating func applyTransactions(
        of block: Block, verified: [VerifiedTransaction], observe: (Int, PoolFill?) -> Void = { _, _ in }
    ) throws(ReplayError) {
        precondition(pending.isEmpty, "replay runs on a ledger with nothing pending")
        for (index, committed) in block.transactions.enumerated() {
            let applied = try replayVerified(verified[index], committed: committed, header: block.header, index: index)
            observe(index, applied.fill)
        }
        advance(to: block.header)
    }

    @discardableResult
    private mutating func replayVerified(
        _ verified: VerifiedTransaction, committed: CommittedTransaction, header: BlockHeader, index: Int
    ) throws(ReplayError) -> Applied {
        guard verified.hash == committed.hash else {
            throw .init(height: header.height, "transaction \(index) is not the one committed")
        }
        switch apply(verified, timeMilliseconds: header.timeMilliseconds) {
        case .failure(let rejection):
            throw .init(height: header.height, "transaction \(index) \(verified.hash) is rejected: \(rejection)")
        case .success(let applied) where applied.createdID != committed.createdID:
            throw .init(
                height: header.height,
                "transaction \(index) created \(applied.createdID), recorded \(committed.createdID)")
        case .success(let applied):
            return applied
        }
    }

    private mutating func advance(to header: BlockHeader) {
        height = header.height
        tipHash = header.hash
        tipTimeMilliseconds = header.timeMilliseconds
        blockTimeMilliseconds = header.timeMilliseconds
        pending.removeAll(keepingCapacity: true)
    }
}

/// What an applied transaction did: the id it created (an identity, a resource or a pool's share
/// token; 0 for anything else), and what a pool operation moved. Returned by `apply` rather than
/// kept in the ledger, so a caller cannot read one transaction's outcome as another's.
public struct Applied: Sendable, Equatable {
    public var createdID: UInt64
    public var fill: PoolFill?
    /// Stablecoin collected by `claim_rent`.
    public var claimed: UInt128

    public init(createdID: UInt64 = 0, fill: PoolFill? = nil, claimed: UInt128 = 0) {
        self.createdID = createdID
        self.fill = fill
        self.claimed = claimed
    }
}

/// A block that does not replay: which height and why.
public struct ReplayError: Error, Equatable, CustomStringConvertible {
    public var height: UInt64
    public var reason: String

    init(height: UInt64, _ reason: String) {
        self.height = height
        self.reason = reason
    }

    public var description: String { "block \(height): \(reason)" }
}

// MARK: - Operations

extension Ledger {
    private mutating func execute(_ transaction: Transaction) throws(Rejection) -> Applied {
        let signer = transaction.signer
        guard let account = state.accounts[signer] else {
            throw Rejection(.unknownAccount, "signer \(signer) has no account on this chain")
        }
        if transaction.sequence < account.nextSequence {
            throw Rejection(
                .sequenceReused, "sequence \(transaction.sequence) is used; the next is \(account.nextSequence)")
        }
        if transaction.sequence > account.nextSequence {
            throw Rejection(
                .sequenceAhead, "sequence \(transaction.sequence) skips ahead; the next is \(account.nextSequence)")
        }
        let applied = try perform(transaction.operation, signer: signer)
        var updated = state.accounts[signer]!  // `perform` may have changed the signer's account
        updated.nextSequence += 1
        state.setAccount(signer, updated)
        return applied
    }

    private mutating func perform(_ operation: LedgerOperation, signer: AccountID) throws(Rejection) -> Applied {
        switch operation {
        case .transfer(let tokenID, let to, let amount):
            let token = try existingToken(tokenID)
            try requirePositive(amount)
            try requireNotPool(to)
            try checkTransfer(token, from: signer, to: to, amount: amount)
            move(tokenID, from: signer, to: to, amount: amount, unfreezing: false)

        case .mint(let tokenID, let to, let amount):
            let token = try agentToken(tokenID, signer: signer)
            try requirePositive(amount)
            guard amount <= token.maxSupply - token.totalSupply else {
                throw Rejection(.supplyExceeded, "mint of \(amount) takes token \(tokenID) above \(token.maxSupply)")
            }
            try requireNotPool(to)
            try checkReceiver(token, from: nil, to: to, amount: amount)
            mint(tokenID, to: to, amount: amount)

        case .burn(let tokenID, let from, let amount):
            _ = try agentToken(tokenID, signer: signer)
            try requirePositive(amount)
            try requireNotPool(from)
            let holding = state.holding(tokenID, from)
            guard holding.balance >= amount else {
                throw Rejection(.insufficientBalance, "\(from) holds \(holding.balance), cannot burn \(amount)")
            }
            burn(tokenID, from: from, amount: amount)

        case .setFrozen(let tokenID, let account, let frozen):
            _ = try agentToken(tokenID, signer: signer)
            try requireAccount(account)
            var holding = state.holding(tokenID, account)
            holding.frozen = frozen
            state.setHolding(tokenID, account, holding)

        case .freezePartial(let tokenID, let account, let amount):
            _ = try agentToken(tokenID, signer: signer)
            try requirePositive(amount)
            try requireAccount(account)
            var holding = state.holding(tokenID, account)
            guard amount <= holding.freeBalance else {
                throw Rejection(
                    .insufficientBalance, "\(account) has \(holding.freeBalance) unfrozen, cannot freeze \(amount)")
            }
            holding.frozenAmount += amount
            state.setHolding(tokenID, account, holding)

        case .unfreezePartial(let tokenID, let account, let amount):
            _ = try agentToken(tokenID, signer: signer)
            try requirePositive(amount)
            try requireAccount(account)
            var holding = state.holding(tokenID, account)
            guard amount <= holding.frozenAmount else {
                throw Rejection(
                    .invalidOperation, "\(account) has \(holding.frozenAmount) frozen, cannot unfreeze \(amount)")
            }
            holding.frozenAmount -= amount
            state.setHolding(tokenID, account, holding)

        case .forcedTransfer(let tokenID, let from, let to, let amount):
            // ERC-3643: an agent's forced transfer skips pause, freezes and the compliance
            // modules, but the receiver must still be verified; frozen tokens are released as needed.
            let token = try agentToken(tokenID, signer: signer)
            try requirePositive(amount)
            try requireNotPool(from)
            try requireNotPool(to)
            let balance = state.holding(tokenID, from).balance
            guard balance >= amount else {
                throw Rejection(.insufficientBalance, "\(from) holds \(balance), cannot move \(amount)")
            }
            if token.compliance != nil { try checkVerified(token, to) }
            move(tokenID, from: from, to: to, amount: amount, unfreezing: true)

        case .recoverWallet(let tokenID, let lost, let replacement):
            let token = try agentToken(tokenID, signer: signer)
            let old = state.holding(tokenID, lost)
            guard old.balance > 0 || old.frozen else {
                throw Rejection(.invalidOperation, "\(lost) holds nothing of token \(tokenID) to recover")
            }
            guard lost != replacement else { throw Rejection(.invalidOperation, "the replacement is the lost wallet") }
            try requireNotPool(lost)
            try requireNotPool(replacement)
            if token.compliance != nil {
                let lostIdentity = state.accounts[lost]?.identity
                guard let lostIdentity, state.accounts[replacement]?.identity == lostIdentity else {
                    throw Rejection(
                        .identityMismatch, "\(replacement) is not a wallet of the lost wallet's identity")
                }
            }
            var new = state.holding(tokenID, replacement)
            new.balance += old.balance
            new.frozenAmount += old.frozenAmount
            new.frozen = new.frozen || old.frozen
            state.setHolding(tokenID, lost, Holding())
            state.setHolding(tokenID, replacement, new)

        case .setPaused(let tokenID, let paused):
            var token = try agentToken(tokenID, signer: signer)
            token.paused = paused
            state.setToken(token)

        case .setCompliance(let tokenID, let rules):
            var token = try agentToken(tokenID, signer: signer)
            guard token.compliance != nil else {
                throw Rejection(.invalidOperation, "token \(tokenID) is not a security token")
            }
            try validate(rules)
            token.compliance = rules
            state.setToken(token)

        case .registerIdentity(let account, let country):
            try requireClaimIssuer(signer)
            try validate(country: country)
            try requireUsableKey(account)
            if state.accounts[account]?.identity != nil {
                throw Rejection(.alreadyRegistered, "\(account) already belongs to an identity")
            }
            try requireNoSecurityHoldings(account)
            return Applied(createdID: createIdentity(for: account, country: country))

        case .linkWallet(let account, let identityID):
            try requireClaimIssuer(signer)
            try requireUsableKey(account)
            _ = try existingIdentity(identityID)
            if state.accounts[account]?.identity != nil {
                throw Rejection(.alreadyRegistered, "\(account) already belongs to an identity")
            }
            try requireNoSecurityHoldings(account)
            var updated = state.accounts[account] ?? Account()
            updated.identity = identityID
            state.setAccount(account, updated)

        case .addClaim(let identityID, let topic):
            try requireClaimIssuer(signer)
            var identity = try existingIdentity(identityID)
            guard !identity.claims.contains(where: { $0.topic == topic }) else {
                throw Rejection(.alreadyRegistered, "identity \(identityID) already holds claim \(topic)")
            }
            guard identity.claims.count < LedgerLimits.claimsPerIdentityMax else {
                throw Rejection(.invalidOperation, "identity \(identityID) holds the most claims allowed")
            }
            identity.claims.append(Claim(topic: topic, issuer: signer))
            identity.claims.sort { $0.topic < $1.topic }
            state.setIdentity(identity)

        case .revokeClaim(let identityID, let topic):
            try requireClaimIssuer(signer)
            var identity = try existingIdentity(identityID)
            guard let index = identity.claims.firstIndex(where: { $0.topic == topic }) else {
                throw Rejection(.invalidOperation, "identity \(identityID) holds no claim \(topic)")
            }
            guard identity.claims[index].issuer == signer else {
                throw Rejection(.notAuthorized, "claim \(topic) was issued by \(identity.claims[index].issuer)")
            }
            identity.claims.remove(at: index)
            state.setIdentity(identity)

        case .registerResource(let registration):
            return Applied(createdID: try register(registration, registrar: signer))

        case .createPool(let token, let country):
            return Applied(createdID: try createPool(token: token, country: country, signer: signer))

        case .addLiquidity(
            let token, let licenceDesired, let stablecoinDesired, let licenceMinimum, let stablecoinMinimum,
            let deadline):
            return Applied(
                fill: try addLiquidity(
                    token: token, licenceDesired: licenceDesired, stablecoinDesired: stablecoinDesired,
                    licenceMinimum: licenceMinimum, stablecoinMinimum: stablecoinMinimum, deadline: deadline,
                    signer: signer))

        case .removeLiquidity(let token, let shares, let licenceMinimum, let stablecoinMinimum, let deadline):
            return Applied(
                fill: try removeLiquidity(
                    token: token, shares: shares, licenceMinimum: licenceMinimum, stablecoinMinimum: stablecoinMinimum,
                    deadline: deadline, signer: signer))

        case .swapExactIn(let token, let side, let amountIn, let minimumOut, let deadline):
            return Applied(
                fill: try swap(
                    token: token, side: side, exactIn: true, amount: amountIn, limit: minimumOut, deadline: deadline,
                    signer: signer))

        case .swapExactOut(let token, let side, let amountOut, let maximumIn, let deadline):
            return Applied(
                fill: try swap(
                    token: token, side: side, exactIn: false, amount: amountOut, limit: maximumIn, deadline: deadline,
                    signer: signer))

        case .openChannel(let terms, let lessorSignature, let lesseeSignature):
            try openChannel(terms, lessorSignature: lessorSignature, lesseeSignature: lesseeSignature, signer: signer)
        case .closeChannel(let coSigned):
            try closeChannel(coSigned, signer: signer)
        case .registerState(let channel, let coSigned):
            try registerState(channelID: channel, coSigned, signer: signer)
        case .challenge(let coSigned):
            try challenge(coSigned, signer: signer)
        case .settleChannel(let channel):
            try settleChannel(channel)
        case .claimRent(let token):
            return Applied(claimed: try claimRent(token, signer: signer))
        }
        return Applied()
    }

    private mutating func register(_ registration: ResourceRegistration, registrar: AccountID) throws(Rejection)
        -> UInt64
    {
        try requireClaimIssuer(registrar)
        guard registration.valuation > 0 else { throw Rejection(.invalidResource, "valuation must be positive") }
        guard !registration.name.isEmpty else { throw Rejection(.invalidResource, "a resource needs a name") }
        let isLicence = registration.kind == .radioSpectrum
        guard (registration.spectrum != nil) == isLicence, (registration.compliance != nil) == isLicence else {
            throw Rejection(
                .invalidResource, "band and compliance rules are given for radio spectrum and only for it")
        }
        guard state.accounts[registration.owner]?.identity != nil else {
            throw Rejection(.receiverNotVerified, "owner \(registration.owner) has no identity")
        }
        let id = state.nextResource
        var token: Token?
        if let spectrum = registration.spectrum, let rules = registration.compliance {
            if let reason = spectrum.invalidReason { throw Rejection(.invalidResource, reason) }
            // Judged against the block's time, like deadlines: a licence that has expired
            // cannot become a token (one valid later, or already running, can).
            guard spectrum.validUntil > blockTimeMilliseconds / 1000 else {
                throw Rejection(
                    .invalidResource,
                    "the licence expired at \(spectrum.validUntil); the block's time is \(blockTimeMilliseconds / 1000)"
                )
            }
            try validate(rules)
            let decimals: UInt8 = 6
            let supply = UInt128(SpectrumLicence.sliceCount) * 1_000_000
            let licenceToken = Token(
                id: id, kind: .licenceOwnership, symbol: "LIC\(id)", decimals: decimals, agents: [registrar],
                maxSupply: supply, compliance: rules, resource: id)
            guard state.tokens[id] == nil else { throw Rejection(.invalidResource, "token \(id) exists") }
            try checkReceiver(licenceToken, from: nil, to: registration.owner, amount: supply)
            token = licenceToken
        }
        let resource = Resource(
            id: id, registration: registration, registrar: registrar, height: height + 1, token: token?.id)
        state.nextResource += 1
        state.bumpCounters()
        state.setResource(resource)
        if let token {
            state.setToken(token)
            mint(token.id, to: registration.owner, amount: token.maxSupply)
        }
        return id
    }

    // MARK: Checks (no writes)

    /// ERC-3643's order: paused, frozen, free balance, verified receiver, compliance modules.
    func checkTransfer(_ token: Token, from: AccountID, to: AccountID, amount: UInt128) throws(Rejection) {
        if token.paused { throw Rejection(.tokenPaused, "token \(token.id) is paused") }
        let sender = state.holding(token.id, from)
        if sender.frozen { throw Rejection(.accountFrozen, "\(from) is frozen for token \(token.id)") }
        if state.holding(token.id, to).frozen {
            throw Rejection(.accountFrozen, "\(to) is frozen for token \(token.id)")
        }
        guard sender.freeBalance >= amount else {
            throw Rejection(
                .insufficientBalance,
                "\(from) has \(sender.freeBalance) of token \(token.id) free (\(sender.balance) held), sends \(amount)")
        }
        try checkReceiver(token, from: from, to: to, amount: amount)
    }

    /// The receiver side of a transfer or mint: verified identity and the compliance modules.
    func checkReceiver(_ token: Token, from: AccountID?, to: AccountID, amount: UInt128) throws(Rejection) {
        guard let rules = token.compliance else { return }
        let identity = try checkVerified(token, to)
        if !rules.allowedCountries.isEmpty && !rules.allowedCountries.contains(identity.country) {
            throw Rejection(.countryNotAllowed, "country \(identity.country) is not on token \(token.id)'s allow list")
        }
        if rules.deniedCountries.contains(identity.country) {
            throw Rejection(.countryNotAllowed, "country \(identity.country) is on token \(token.id)'s deny list")
        }
        let senderIdentity = from.flatMap { state.accounts[$0]?.identity }
        guard senderIdentity != identity.id else { return }  // between one identity's wallets
        let receiverBalance = state.identityBalance(token.id, identity.id)
        if rules.maxBalancePerIdentity > 0
            && amount > rules.maxBalancePerIdentity - min(rules.maxBalancePerIdentity, receiverBalance)
        {
            throw Rejection(
                .balanceLimitExceeded,
                "identity \(identity.id) would hold \(receiverBalance) + \(amount), above \(rules.maxBalancePerIdentity)"
            )
        }
        // Only a transfer that adds a holder can break the cap: one to a new holder from a sender
        // who keeps a balance. (The count may already be above a cap that was lowered, or after
        // a forced transfer; transfers that do not add a holder stay allowed then.)
        let senderLeaves = senderIdentity.map { state.identityBalance(token.id, $0) == amount } ?? false
        if rules.maxHolders > 0 && receiverBalance == 0 && !senderLeaves
            && state.holderCount(of: token.id) >= Int(rules.maxHolders)
        {
            throw Rejection(
                .holderLimitExceeded,
                "token \(token.id) has \(state.holderCount(of: token.id)) holders, at most \(rules.maxHolders)")
        }
    }

    @discardableResult
    func checkVerified(_ token: Token, _ account: AccountID) throws(Rejection) -> Identity {
        guard let id = state.accounts[account]?.identity, let identity = state.identities[id] else {
            throw Rejection(.receiverNotVerified, "\(account) has no identity")
        }
        let required = token.compliance?.requiredClaims ?? []
        guard identity.hasClaims(required) else {
            let missing = required.filter { topic in !identity.claims.contains { $0.topic == topic } }
            throw Rejection(
                .receiverNotVerified,
                "identity \(id) lacks claims \(missing.map(ClaimTopic.name)) required by token \(token.id)")
        }
        return identity
    }

    func existingToken(_ id: TokenID) throws(Rejection) -> Token {
        guard let token = state.tokens[id] else { throw Rejection(.unknownToken, "no token \(id)") }
        return token
    }

    func agentToken(_ id: TokenID, signer: AccountID) throws(Rejection) -> Token {
        let token = try existingToken(id)
        guard token.agents.contains(signer) else {
            throw Rejection(.notAuthorized, "\(signer) is not an agent of token \(id)")
        }
        return token
    }

    private func existingIdentity(_ id: IdentityID) throws(Rejection) -> Identity {
        guard let identity = state.identities[id] else { throw Rejection(.unknownIdentity, "no identity \(id)") }
        return identity
    }

    private func requireAccount(_ account: AccountID) throws(Rejection) {
        guard state.accounts[account] != nil else { throw Rejection(.unknownAccount, "no account \(account)") }
    }

    func requireClaimIssuer(_ signer: AccountID) throws(Rejection) {
        guard genesis.claimIssuers.contains(signer) else {
            throw Rejection(.notAuthorized, "\(signer) is not a trusted claim issuer")
        }
    }

    /// Identities are registered rarely, so their wallets get the full point check (as costly as
    /// a verification) that every other key on the wire skips: a wallet nobody can sign for
    /// must not become a verified holder.
    private func requireUsableKey(_ account: AccountID) throws(Rejection) {
        guard account.isUsable else {
            throw Rejection(.invalidOperation, "\(account) is not a usable Ed25519 public key")
        }
    }

    func requirePositive(_ amount: UInt128) throws(Rejection) {
        guard amount > 0 else { throw Rejection(.zeroAmount, "amount must be positive") }
    }

    /// A wallet that holds a security token has an identity; it cannot be given one afterwards
    /// (a wallet without one can only hold the stablecoin), so the per-identity totals stay exact.
    private func requireNoSecurityHoldings(_ account: AccountID) throws(Rejection) {
        for id in state.tokens.keys.sorted()
        where state.tokens[id]!.compliance != nil && !state.holding(id, account).isEmpty {
            throw Rejection(.invalidOperation, "\(account) already holds token \(id)")
        }
    }

    func validate(country: CountryCode) throws(Rejection) {
        guard (1...999).contains(country) else {
            throw Rejection(.invalidOperation, "country \(country) is not an ISO 3166 numeric code")
        }
    }

    private func validate(_ rules: ComplianceRules) throws(Rejection) {
        for country in rules.allowedCountries + rules.deniedCountries { try validate(country: country) }
    }

    // MARK: Writes (after every check has passed)

    mutating func move(
        _ token: TokenID, from: AccountID, to: AccountID, amount: UInt128, unfreezing: Bool
    ) {
        guard from != to else { return }
        var sender = state.holding(token, from)
        if unfreezing && sender.freeBalance < amount { sender.frozenAmount -= amount - sender.freeBalance }
        sender.balance -= amount
        state.setHolding(token, from, sender)
        var receiver = state.holding(token, to)
        receiver.balance += amount
        state.setHolding(token, to, receiver)
    }

    /// A new identity (the next number) for `account`, whose account record is created if needed.
    @discardableResult
    mutating func createIdentity(for account: AccountID, country: CountryCode, claims: [Claim] = []) -> IdentityID {
        var identity = Identity(id: state.nextIdentity, country: country)
        identity.claims = claims
        state.nextIdentity += 1
        state.bumpCounters()
        state.setIdentity(identity)
        var updated = state.accounts[account] ?? Account()
        updated.identity = identity.id
        state.setAccount(account, updated)
        return identity.id
    }

    mutating func burn(_ tokenID: TokenID, from: AccountID, amount: UInt128) {
        var holding = state.holding(tokenID, from)
        holding.frozenAmount -= min(holding.frozenAmount, amount - min(amount, holding.freeBalance))
        holding.balance -= amount
        state.setHolding(tokenID, from, holding)
        var token = state.tokens[tokenID]!
        token.totalSupply -= amount
        state.setToken(token)
    }

    mutating func mint(_ tokenID: TokenID, to: AccountID, amount: UInt128) {
        var token = state.tokens[tokenID]!
        token.totalSupply += amount
        state.setToken(token)
        var holding = state.holding(tokenID, to)
        holding.balance += amount
        state.setHolding(tokenID, to, holding)
    }
}
