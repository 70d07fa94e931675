// Goal: every `ArbiterLink` keeps one contract, so the exchange (and the coming lease service)
// can run on either: the real one (`ArbiterClient` over a TCP session on loopback with the
// `ArbiterService` on a SQLite store) and `InMemoryArbiter` (the same core, in process). A receipt
// names the transaction sent and a durable block; a rejection is the ledger's, with its code,
// and commits nothing; the same transaction sent again gets its first receipt; a subscription
// from a height gives every block from there, stored and new, in order; the status names the tip.
import NIOPosix
import RWACrypto
import RWALedger
import RWANode
import RWASession
import RWAStore
import RWATestSupport
import RWAWire
import XCTest

final class ArbiterLinkConformanceTests: XCTestCase {
    /// A link under test, with the store behind it and how to stop it.
    struct Subject {
        var name: String
        var link: any ArbiterLink
        var store: any ChainStore
        var stop: () async -> Void
    }

    func inMemory(_ fixture: ChainFixture) throws -> Subject {
        var ledger = Ledger(genesis: fixture.genesis)
        let rows = ledger.takeStateChanges().compactMap { change in
            change.row.map { StateRow(key: change.key.bytes, value: $0) }
        }
        let store = InMemoryChainStore(genesis: fixture.genesis, genesisRows: rows)
        let arbiter = try InMemoryArbiter(store: store, arbiterKey: fixture.arbiter)
        return Subject(name: "in-memory", link: arbiter, store: store, stop: { arbiter.close() })
    }

    func overTCP(_ fixture: ChainFixture) async throws -> Subject {
        let store = try fixture.createStore()
        let service = try ArbiterService(store: store, arbiterKey: fixture.arbiter)
        service.start()
        let listener = try await service.listen(.tcp, fixture)
        let client = try await ArbiterClient.connect(
            host: "127.0.0.1", port: listener.port, identity: .generate(), chainID: fixture.chainID,
            arbiter: fixture.arbiter.publicKey, group: MultiThreadedEventLoopGroup.singleton)
        return Subject(
            name: "tcp", link: client, store: store,
            stop: {
                await client.close()
                await listener.close()
                await service.shutdown()
            })
    }

    func testEveryLinkKeepsTheContract() async throws {
        try await withTimeout(60, "testEveryLinkKeepsTheContract") { [self] in
            for make in [{ try self.inMemory($0) }, { try await self.overTCP($0) }]
                as [(ChainFixture) async throws -> Subject]
            {
                let fixture = try ChainFixture()
                let subject = try await make(fixture)
                try await checkContract(subject, fixture)
                await subject.stop()
            }
        }
    }

    func checkContract(_ subject: Subject, _ fixture: ChainFixture) async throws {
        let name = subject.name
        let link = subject.link
        XCTAssertEqual(link.chainID, fixture.chainID, name)
        let receiver = SigningKeyPair.generate().publicKey
        let first = try fixture.sign(fixture.issuer, .mint(token: 0, to: receiver, amount: 5))
        let receipt = try await link.submit(first)
        XCTAssertEqual(receipt.hash, first.hash, name)
        let stored = try XCTUnwrap(
            subject.store.transaction(hash: first.hash), "\(name): the receipt's block is durable")
        XCTAssertEqual([stored.height, UInt64(stored.index)], [receipt.height, UInt64(receipt.index)], name)

        // The same bytes again: the first receipt, nothing new in the chain.
        let again = try await link.submit(first)
        XCTAssertEqual(again, receipt, "\(name): a copy gets the first receipt")

        // A rejection: the ledger's code, and no block.
        let heightBefore = try subject.store.tip()?.height
        let skipping = try Transaction(
            signedBy: fixture.issuer, chainID: fixture.chainID, sequence: 9,
            operation: .mint(token: 0, to: receiver, amount: 1))
        do {
            _ = try await link.submit(skipping)
            XCTFail("\(name): a transaction that skips a sequence number was accepted")
        } catch let rejection as Rejection {
            XCTAssertEqual(rejection.code, .sequenceAhead, name)
        }
        XCTAssertEqual(try subject.store.tip()?.height, heightBefore, "\(name): a rejection commits nothing")

        // A subscription from block 1: the stored block, then new ones, in order.
        var blocks = link.subscribe(from: 1).makeAsyncIterator()
        let firstBlock = try await blocks.require("\(name): block 1")
        XCTAssertEqual(firstBlock.transactions.map(\.hash), [first.hash], name)
        var later: [Receipt] = []
        for amount in 1...3 {
            later.append(
                try await link.submit(
                    try fixture.sign(fixture.issuer, .mint(token: 0, to: receiver, amount: UInt128(amount)))))
        }
        var seen: [Block] = [firstBlock]
        while seen.last!.header.height < later.last!.height {
            seen.append(try await blocks.require("\(name): the blocks after the subscription"))
        }
        XCTAssertEqual(seen.map(\.header.height), Array(1...later.last!.height), "\(name): every block once, in order")
        XCTAssertEqual(seen, try subject.store.blocks(from: 1, limit: 100), "\(name): the stored blocks")

        let status = try await link.status()
        XCTAssertEqual(status.height, later.last!.height, name)
        XCTAssertEqual(status.tipHash, seen.last!.header.hash, name)
    }
}
