// Goal: the arbiter served over real sockets (TCP and UDP on loopback) with the real store:
// receipts only for committed blocks, every rejection with its code and no state change, queries,
// block rules, and subscriptions that resume from a height without missing anything.
import Foundation
import NIOCore
import NIOPosix
import RWACrypto
import RWALedger
import RWASession
import RWAStore
import RWATestSupport
import RWAWire
import XCTest

@testable import RWANode

final class ServiceTests: XCTestCase {
    struct Running {
        let fixture: ChainFixture
        let store: LedgerStore
        let service: ArbiterService
        let listeners: [SessionListener]

        func port(_ transport: TransportKind) -> Int { listeners.first { $0.transport == transport }?.port ?? 0 }

        func client(_ transport: TransportKind = .tcp, identity: SigningKeyPair = .generate()) async throws
            -> ArbiterClient
        {
            try await ArbiterClient.connect(
                host: "127.0.0.1", port: port(transport), transport: transport, identity: identity,
                chainID: fixture.chainID, arbiter: fixture.arbiter.publicKey,
                group: MultiThreadedEventLoopGroup.singleton)
        }

        func stop() async {
            for listener in listeners { await listener.close() }
            await service.shutdown()
        }
    }

    func start(rules: BlockRules = .standard) async throws -> Running {
        let fixture = try ChainFixture()
        let store = try fixture.createStore()
        let service = try ArbiterService(store: store, arbiterKey: fixture.arbiter, rules: rules)
        service.start()
        var listeners: [SessionListener] = []
        for transport in TransportKind.allCases { listeners.append(try await service.listen(transport, fixture)) }
        return Running(fixture: fixture, store: store, service: service, listeners: listeners)
    }

    /// The sequencer reads time only from its `TimeSource`: with a manual one, a block waits for
    /// its delay until the test moves the clock, and takes the source's wall time.
    func testBlocksTakeTheirDelayAndTimeFromTheTimeSource() async throws {
        try await withTimeout(60, "testBlocksTakeTheirDelayAndTimeFromTheTimeSource") {
            let fixture = try ChainFixture()
            let store = try fixture.createStore()
            let time = ManualTimeSource(unixMilliseconds: 1_800_000_123_000)
            let service = try ArbiterService(
                store: store, arbiterKey: fixture.arbiter,
                rules: BlockRules(maxTransactions: 100, maxDelay: .milliseconds(10)), time: time)
            service.start()
            let listener = try await service.listen(.tcp, fixture)
            let client = try await ArbiterClient.connect(
                host: "127.0.0.1", port: listener.port, identity: .generate(), chainID: fixture.chainID,
                group: MultiThreadedEventLoopGroup.singleton)
            let pending = client.submitPipelined(
                try fixture.sign(fixture.issuer, .mint(token: 0, to: SigningKeyPair.generate().publicKey, amount: 1)))
            try await Task.sleep(for: .milliseconds(200))
            XCTAssertNil(try store.tip(), "the source has not moved, so the block's delay has not passed")
            time.advance(byNanoseconds: 10_000_000)
            let receipt = try await pending.get()
            XCTAssertEqual(try store.header(height: receipt.height)?.timeMilliseconds, 1_800_000_123_000)
            await client.close()
            await listener.close()
            await service.shutdown()
        }
    }

    /// The service runs on any `ChainStore`: here the in-memory one the simulation will use.
    func testTheArbiterRunsOnTheInMemoryStore() async throws {
        try await withTimeout(60, "testTheArbiterRunsOnTheInMemoryStore") {
            let fixture = try ChainFixture()
            var ledger = Ledger(genesis: fixture.genesis)
            let rows = ledger.takeStateChanges().compactMap { change in
                change.row.map { StateRow(key: change.key.bytes, value: $0) }
            }
            let store = InMemoryChainStore(genesis: fixture.genesis, genesisRows: rows)
            let service = try ArbiterService(store: store, arbiterKey: fixture.arbiter)
            service.start()
            let listener = try await service.listen(.tcp, fixture)
            let client = try await ArbiterClient.connect(
                host: "127.0.0.1", port: listener.port, identity: .generate(), chainID: fixture.chainID,
                arbiter: fixture.arbiter.publicKey, group: MultiThreadedEventLoopGroup.singleton)
            let receiver = SigningKeyPair.generate().publicKey
            let receipt = try await client.submit(
                try fixture.sign(fixture.issuer, .mint(token: 0, to: receiver, amount: 7)))
            XCTAssertEqual(try store.tip()?.height, receipt.height, "committed to the in-memory store")
            XCTAssertEqual(try store.transaction(hash: receipt.hash)?.index, receipt.index)
            let holding = try await client.holding(token: 0, account: receiver)
            XCTAssertEqual(holding.balance, 7, "and read back from it")
            await client.close()
            await listener.close()
            await service.shutdown()
        }
    }

    func testTransactionsCommitAndQueriesAnswerOverTCPAndUDP() async throws {
        try await withTimeout(120, "testTransactionsCommitAndQueriesAnswerOverTCPAndUDP") { [self] in
            let running = try await start()
            let alice = SigningKeyPair.generate()
            let bob = SigningKeyPair.generate()
            for transport in TransportKind.allCases {
                let client = try await running.client(transport)
                let minted = try await client.sign(
                    .mint(token: 0, to: alice.publicKey, amount: 1_000), with: running.fixture.issuer)
                XCTAssertGreaterThan(minted.height, 0)
                let located = try await client.transaction(hash: minted.hash)
                XCTAssertEqual(
                    located?.height, minted.height,
                    "the receipted transaction is in the store (that no receipt precedes its commit is the crash test's to show)"
                )
                let sent = try await client.sign(.transfer(token: 0, to: bob.publicKey, amount: 400), with: alice)
                XCTAssertGreaterThanOrEqual(sent.height, minted.height)
                let beyond = try await client.blockHeader(height: .max)
                XCTAssertNil(beyond, "a height past any block is not found (and does not crash the arbiter)")
                let header = try await client.blockHeader(height: sent.height)
                XCTAssertEqual(header?.height, sent.height)
                XCTAssertTrue(
                    header?.hasValidSignature(
                        arbiter: running.fixture.arbiter.publicKey, chainID: running.fixture.chainID)
                        ?? false)
                await client.close()
            }
            let client = try await running.client(.udp)
            let aliceHolding = try await client.holding(token: 0, account: alice.publicKey)
            let bobHolding = try await client.holding(token: 0, account: bob.publicKey)
            XCTAssertEqual(aliceHolding.balance, 1_200)
            XCTAssertEqual(bobHolding.balance, 800)
            let status = try await client.status()
            XCTAssertEqual(status.chainID, running.fixture.chainID)
            XCTAssertEqual(status.height, try running.store.tip()?.height)
            let stablecoin = try await client.token(0)
            XCTAssertEqual(stablecoin?.totalSupply, 2_000)
            await client.close()
            await running.stop()
            XCTAssertNoThrow(try ChainVerifier.verify(running.store))
        }
    }

    /// Each bad submission gets its own code over the wire, and the stored state does not move.
    func testEveryRejectionHasItsCodeAndChangesNothing() async throws {
        try await withTimeout(120, "testEveryRejectionHasItsCodeAndChangesNothing") { [self] in
            let running = try await start()
            let fixture = running.fixture
            let client = try await running.client()
            let alice = SigningKeyPair.generate()
            let bob = SigningKeyPair.generate()
            for transaction in try fixture.onboard(alice.publicKey, identity: 1)
                + fixture.onboard(bob.publicKey, identity: 2)
            {
                _ = try await client.submit(transaction)
            }
            _ = try await client.submit(
                try fixture.sign(
                    fixture.regulator,
                    .registerResource(
                        fixture.licence(owner: alice.publicKey, rules: ComplianceRules(deniedCountries: [4])))
                ))
            _ = try await client.submit(
                try fixture.sign(fixture.issuer, .mint(token: 0, to: alice.publicKey, amount: 100)))
            let denied = SigningKeyPair.generate()
            _ = try await client.submit(
                try fixture.sign(fixture.regulator, .registerIdentity(account: denied.publicKey, country: 4)))
            _ = try await client.submit(
                try fixture.sign(fixture.regulator, .addClaim(identity: 3, topic: ClaimTopic.kyc)))
            let heightBefore = try running.store.tip()?.height

            func expect(_ code: ErrorCode, _ transaction: Transaction, line: UInt = #line) async {
                do {
                    _ = try await client.submit(transaction)
                    XCTFail("accepted; expected \(code.name)", line: line)
                } catch let rejection as Rejection {
                    XCTAssertEqual(rejection.code, code, rejection.reason, line: line)
                } catch {
                    XCTFail("\(error)", line: line)
                }
            }
            let aliceSequence = try await client.account(alice.publicKey)?.nextSequence ?? 0
            func signed(_ signer: SigningKeyPair, _ operation: LedgerOperation, sequence: UInt64? = nil) throws
                -> Transaction
            {
                try Transaction(
                    signedBy: signer, chainID: fixture.chainID, sequence: sequence ?? aliceSequence,
                    operation: operation)
            }
            var tampered = try signed(alice, .transfer(token: 0, to: bob.publicKey, amount: 1))
            tampered.operation = .transfer(token: 0, to: bob.publicKey, amount: 2)
            await expect(.invalidSignature, tampered)
            await expect(
                .wrongChainID,
                try Transaction(
                    signedBy: alice, chainID: ChainIDs.devnet, sequence: aliceSequence,
                    operation: .transfer(token: 0, to: bob.publicKey, amount: 1)))
            await expect(
                .sequenceAhead,
                try signed(alice, .transfer(token: 0, to: bob.publicKey, amount: 1), sequence: aliceSequence + 1))
            await expect(.insufficientBalance, try signed(alice, .transfer(token: 0, to: bob.publicKey, amount: 101)))
            await expect(
                .unknownAccount, try signed(.generate(), .transfer(token: 0, to: bob.publicKey, amount: 1), sequence: 0)
            )
            await expect(.notAuthorized, try signed(alice, .mint(token: 0, to: alice.publicKey, amount: 1)))
            await expect(.countryNotAllowed, try signed(alice, .transfer(token: 1, to: denied.publicKey, amount: 1)))
            await expect(
                .receiverNotVerified,
                try signed(alice, .transfer(token: 1, to: SigningKeyPair.generate().publicKey, amount: 1)))
            await expect(.unknownToken, try signed(alice, .transfer(token: 99, to: bob.publicKey, amount: 1)))

            XCTAssertEqual(try running.store.tip()?.height, heightBefore, "no rejection made a block")

            // A reused sequence number: the same signer's earlier, different transaction holds it.
            _ = try await client.submit(try signed(alice, .transfer(token: 0, to: bob.publicKey, amount: 1)))
            await expect(.sequenceReused, try signed(alice, .transfer(token: 0, to: bob.publicKey, amount: 3)))

            // Malformed bytes never reach the ledger; they are refused by the decoder with their own code.
            let raw = try await TransportKind.tcp.dial(
                host: "127.0.0.1", port: running.port(.tcp),
                configuration: try SessionConfiguration(
                    handshake: HandshakeConfiguration(identity: .generate(), chainID: fixture.chainID)),
                group: MultiThreadedEventLoopGroup.singleton)
            var garbage = try signed(alice, .transfer(token: 0, to: bob.publicKey, amount: 1)).encoded
            garbage.append(0)
            try await raw.send(.arbiter(.submitTransaction(requestID: 7, transaction: garbage)))
            var iterator = raw.inbox.makeAsyncIterator()
            let answer = try await iterator.next()
            guard case .arbiter(.transactionRejected(7, _, let code, let reason))? = answer else {
                return XCTFail("unexpected \(String(describing: answer))")
            }
            XCTAssertEqual(code, .malformedTransaction, reason)
            await raw.close()

            // A rejection that had changed anything in the arbiter's ledger would be written with the
            // next block's changes; one more block, then the whole chain is replayed from its genesis
            // and every stored row compared with the replay.
            _ = try await client.submit(try fixture.sign(fixture.issuer, .mint(token: 0, to: bob.publicKey, amount: 5)))
            XCTAssertEqual(
                try running.store.tip()?.height, (heightBefore ?? 0) + 2, "only the two good transactions made blocks")
            let report = try ChainVerifier.verify(running.store)
            XCTAssertEqual(report.height, (heightBefore ?? 0) + 2)
            let aliceAccount = try await client.account(alice.publicKey)
            XCTAssertEqual(aliceAccount?.nextSequence, aliceSequence + 1, "only the one good transfer used a sequence")
            let aliceStablecoin = try await client.holding(token: 0, account: alice.publicKey).balance
            XCTAssertEqual(aliceStablecoin, 99, "only the one good transfer moved alice's stablecoin")
            await client.close()
            await running.stop()
        }
    }

    /// A client that lost its connection sends the same signed transaction again: it gets the
    /// original receipt, not a sequence error, and the transaction is in the chain once.
    /// A session that keeps sending what is refused (here transactions with forged signatures,
    /// pipelined) gets its refusals up to the budget, then is closed with `overloaded`; another
    /// session is served as before.
    func testASessionRefusedTooOftenIsClosedAndOthersAreServed() async throws {
        try await withTimeout(120, "testASessionRefusedTooOftenIsClosedAndOthersAreServed") { [self] in
            let running = try await start()
            let fixture = running.fixture
            let hostile = try await running.client()
            let forger = SigningKeyPair.generate()
            var forged = try Transaction(
                signedBy: forger, chainID: fixture.chainID, sequence: 0,
                operation: .transfer(token: 0, to: forger.publicKey, amount: 1))
            forged.operation = .transfer(token: 0, to: forger.publicKey, amount: 2)
            // The whole burst and more, pipelined: every one is answered (the answers are out
            // before the close), and then the session ends.
            let sent = PacedOutbox.refusalBurst + 300
            var refused = 0
            for future in (0..<sent).map({ _ in hostile.submitPipelined(forged) }) {
                do {
                    _ = try await future.get()
                    XCTFail("a forged transaction was accepted")
                } catch let rejection as Rejection {
                    XCTAssertEqual(rejection.code, .invalidSignature)
                    refused += 1
                } catch {
                    break  // the close overtook the last answers
                }
            }
            XCTAssertGreaterThanOrEqual(refused, PacedOutbox.refusalBurst, "the whole burst is answered")
            try await hostile.session.closeFuture.get()
            do {
                _ = try await hostile.submit(forged)
                XCTFail("the session still takes submissions")
            } catch let error as SessionError {
                XCTAssertEqual(error.code, .overloaded, "\(error)")
            }
            // Another session is served as before.
            let client = try await running.client()
            let receipt = try await client.submit(
                try fixture.sign(fixture.issuer, .mint(token: 0, to: forger.publicKey, amount: 1)))
            XCTAssertGreaterThan(receipt.height, 0)
            await client.close()
            await hostile.close()
            await running.stop()
        }
    }

    func testResubmittingACommittedTransactionReturnsItsReceipt() async throws {
        try await withTimeout(120, "testResubmittingACommittedTransactionReturnsItsReceipt") { [self] in
            let running = try await start()
            let client = try await running.client()
            let transaction = try running.fixture.sign(
                running.fixture.issuer, .mint(token: 0, to: SigningKeyPair.generate().publicKey, amount: 5))
            let first = try await client.submit(transaction)
            let again = try await client.submit(transaction)
            XCTAssertEqual(first, again)
            XCTAssertEqual(try running.store.blocks(from: 1, limit: 100).flatMap(\.transactions).count, 1)
            await client.close()
            await running.stop()
        }
    }

    func testBlocksCloseAtTheirSizeOrTheirDelay() async throws {
        try await withTimeout(120, "testBlocksCloseAtTheirSizeOrTheirDelay") { [self] in
            XCTAssertEqual(BlockRules.paper, BlockRules(maxTransactions: 10, maxDelay: .seconds(5)))
            let running = try await start(rules: BlockRules(maxTransactions: 10, maxDelay: .milliseconds(400)))
            let client = try await running.client()
            let receiver = SigningKeyPair.generate().publicKey
            let transactions = try (0..<25).map { _ in
                try running.fixture.sign(running.fixture.issuer, .mint(token: 0, to: receiver, amount: 1))
            }
            let started = ContinuousClock.now
            // Pipelined on one session, so they reach the arbiter in sequence order.
            let futures = transactions.map { client.submitPipelined($0) }
            var receipts: [Receipt] = []
            for future in futures { receipts.append(try await future.get()) }
            let elapsed = ContinuousClock.now - started
            let perBlock = Dictionary(grouping: receipts, by: \.height).mapValues(\.count)
            XCTAssertEqual(perBlock.values.sorted(), [5, 10, 10], "two full blocks, then the rest at the delay")
            XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(400), "the last block waited for its delay")
            await client.close()
            await running.stop()
        }
    }

    /// A subscriber gets every block from the height it names: the stored ones, then live ones;
    /// one that reconnects with the next height misses nothing and sees nothing twice.
    func testSubscriptionResumesFromAHeightAndMissesNothing() async throws {
        try await withTimeout(120, "testSubscriptionResumesFromAHeightAndMissesNothing") { [self] in
            let running = try await start(rules: BlockRules(maxTransactions: 3, maxDelay: .milliseconds(5)))
            let writer = try await running.client()
            let receiver = SigningKeyPair.generate().publicKey
            func mint(_ count: Int) async throws {
                for _ in 0..<count {
                    _ = try await writer.submit(
                        try running.fixture.sign(running.fixture.issuer, .mint(token: 0, to: receiver, amount: 1)))
                }
            }
            try await mint(4)
            var seen: [Block] = []
            let first = try await running.client(.udp)
            var blocks = first.subscribe(from: 1).makeAsyncIterator()
            let storedHeight = try XCTUnwrap(running.store.tip()).height
            while seen.last?.header.height ?? 0 < storedHeight {
                seen.append(try await blocks.require("the subscription"))
            }
            try await mint(3)
            let target = try XCTUnwrap(running.store.tip()).height
            while (seen.last?.header.height ?? 0) < target { seen.append(try await blocks.require("the subscription")) }
            await first.close()
            try await mint(5)  // committed while nobody listens
            let second = try await running.client(.tcp)
            var resumed = second.subscribe(from: (seen.last?.header.height ?? 0) + 1).makeAsyncIterator()
            let finalHeight = try XCTUnwrap(running.store.tip()).height
            while (seen.last?.header.height ?? 0) < finalHeight {
                seen.append(try await resumed.require("the subscription"))
            }
            XCTAssertEqual(seen.map(\.header.height), Array(1...finalHeight), "every height once, in order")
            XCTAssertEqual(seen, try running.store.blocks(from: 1, limit: 1000), "the same blocks as stored")
            XCTAssertEqual(seen.flatMap(\.transactions).count, 12)
            await second.close()
            await writer.close()
            await running.stop()
        }
    }

    /// A subscriber over UDP catching up on thousands of stored transactions receives them all:
    /// the arbiter paces its events inside UDP's window instead of overrunning it.
    func testAUDPSubscriberCatchesUpOnThousandsOfTransactions() async throws {
        try await withTimeout(120, "testAUDPSubscriberCatchesUpOnThousandsOfTransactions") { [self] in
            let running = try await start(rules: BlockRules(maxTransactions: 1000, maxDelay: .milliseconds(20)))
            let writer = try await running.client()
            let receiver = SigningKeyPair.generate().publicKey
            let transactions = try (0..<3000).map { _ in
                try running.fixture.sign(running.fixture.issuer, .mint(token: 0, to: receiver, amount: 1))
            }
            let futures = transactions.map { writer.submitPipelined($0) }
            for future in futures { _ = try await future.get() }
            let tip = try XCTUnwrap(running.store.tip()).height
            let subscriber = try await running.client(.udp)
            var blocks = subscriber.subscribe(from: 1).makeAsyncIterator()
            var received: [Block] = []
            while received.last?.header.height ?? 0 < tip {
                received.append(try await blocks.require("the subscription"))
            }
            XCTAssertEqual(received.flatMap(\.transactions).count, 3000)
            let stored = try running.store.blocks(from: 1, limit: 1000)
            XCTAssertEqual(received.map(\.header.hash), stored.map(\.header.hash))
            XCTAssertEqual(received.flatMap(\.transactions).map(\.hash), stored.flatMap(\.transactions).map(\.hash))
            await subscriber.close()
            await writer.close()
            await running.stop()
        }
    }
}
