import NIOConcurrencyHelpers
import RWAArbiter
import RWACrypto
import RWALedger
import RWAStore
import RWAWire

/// What a peer needs of the arbiter: submit a signed transaction and learn its receipt once its
/// block is durable (or the ledger's `Rejection`), read the chain's status, and follow the
/// committed blocks from a height. `ArbiterClient` is the real link, over a session;
/// `InMemoryArbiter` runs the arbiter's own core in the same process. The exchange takes any
/// link; `ArbiterLinkConformanceTests` holds both to one contract.
public protocol ArbiterLink: Sendable {
    var chainID: Digest32 { get }
    /// `completion` runs once, with the receipt, the ledger's `Rejection`, or the link's error.
    func submit(_ transaction: Transaction, completion: @escaping @Sendable (Result<Receipt, Error>) -> Void)
    func status() async throws -> ChainStatus
    /// Every committed block from `height`, in order, then each new one as it becomes durable.
    func subscribe(from height: UInt64) -> AsyncThrowingStream<Block, Error>
    /// The committed state row under `key`.
    func stateRow(_ key: StateKey) async throws -> [UInt8]?
}

extension ArbiterLink {
    /// The sequence number `account`'s next transaction must carry.
    public func nextSequence(of account: AccountID) async throws -> UInt64 {
        guard let row = try await stateRow(.account(account)) else { return 0 }
        guard case .account(let record) = try StateRecord(key: .account(account), value: row) else { return 0 }
        return record.nextSequence
    }

    public func submit(_ transaction: Transaction) async throws -> Receipt {
        try await withCheckedThrowingContinuation { continuation in
            submit(transaction) { continuation.resume(with: $0) }
        }
    }
}

extension ArbiterClient: ArbiterLink {
    public func submit(_ transaction: Transaction, completion: @escaping @Sendable (Result<Receipt, Error>) -> Void) {
        submitPipelined(transaction).whenComplete { completion($0) }
    }
}

/// The arbiter in the same process: its core (`ArbiterCore`) on a `ChainStore`, one block per
/// submission, written before the answer, with no sockets, threads or timers. For tests, and
/// for peers that need an arbiter without running one.
public final class InMemoryArbiter: ArbiterLink {
    public let chainID: Digest32
    private let store: any ChainStore
    private let time: any TimeSource
    private let state: NIOLockedValueBox<State>

    private struct State {
        var core: ArbiterCore<Int>
        var waiting: [Int: @Sendable (Result<Receipt, Error>) -> Void] = [:]
        var nextWaiter = 0
        var subscribers: [(next: UInt64, continuation: AsyncThrowingStream<Block, Error>.Continuation)] = []
    }

    /// Blocks take their time from `time`.
    public init(store: any ChainStore, arbiterKey: SigningKeyPair, time: any TimeSource = SystemTimeSource()) throws {
        let ledger = try store.loadLedger()
        guard ledger.genesis.arbiter == arbiterKey.publicKey else {
            throw StoreError("this key is not the arbiter named in the genesis")
        }
        chainID = ledger.chainID
        self.store = store
        self.time = time
        state = NIOLockedValueBox(
            State(core: ArbiterCore(ledger: ledger, arbiter: arbiterKey, maxTransactions: 1, maxDelayNanoseconds: 0)))
    }

    public func submit(_ transaction: Transaction, completion: @escaping @Sendable (Result<Receipt, Error>) -> Void) {
        let bytes = transaction.encoded
        let checked = Result { () throws(Rejection) in try Transaction.verify(bytes: bytes, chainID: chainID) }
        // Blocks go to subscribers under the lock, so each sees them in order; answers are given
        // after it, so a completion may submit again.
        let answers = state.withLockedValue { state -> [(Int, Result<Receipt, Error>)] in
            let waiter = state.nextWaiter
            state.nextWaiter += 1
            state.waiting[waiter] = completion
            var queue = state.core.submit(
                checked, bytes: bytes, reply: waiter, now: 0, timeMilliseconds: time.unixMilliseconds)
            queue += state.core.tick(now: 0, draining: true)
            var answers: [(Int, Result<Receipt, Error>)] = []
            while !queue.isEmpty {
                let action = queue.removeFirst()
                switch action {
                case .persist(let block, let changes):
                    do {
                        try store.commit(block, changes: changes)
                    } catch {
                        preconditionFailure(
                            "the in-memory arbiter cannot commit block \(block.header.height): \(error)")
                    }
                    queue += state.core.persisted(height: block.header.height, now: 0)
                case .answer(let reply, let answer):
                    answers.append((reply, Self.result(answer)))
                case .answerFromChain(let reply, let hash, let otherwise):
                    if let located = try? store.transaction(hash: hash) {
                        answers.append(
                            (
                                reply,
                                .success(
                                    Receipt(
                                        hash: hash, height: located.height, index: located.index,
                                        createdID: located.transaction.createdID))
                            ))
                    } else {
                        answers.append((reply, .failure(otherwise)))
                    }
                case .publish(let height):
                    Self.publish(&state.subscribers, upTo: height, store: store)
                }
            }
            return answers
        }
        for (waiter, result) in answers {
            state.withLockedValue { $0.waiting.removeValue(forKey: waiter) }?(result)
        }
    }

    private static func result(_ answer: ArbiterCore<Int>.Answer) -> Result<Receipt, Error> {
        switch answer {
        case .receipt(let hash, let height, let index, let createdID):
            return .success(Receipt(hash: hash, height: height, index: index, createdID: createdID))
        case .rejected(_, let rejection):
            return .failure(rejection)
        }
    }

    public func status() async throws -> ChainStatus {
        let tip = try store.tip()
        return ChainStatus(
            chainID: chainID, height: tip?.height ?? 0, tipHash: tip?.hash ?? chainID,
            tipTimeMilliseconds: tip?.timeMilliseconds ?? 0)
    }

    public func stateRow(_ key: StateKey) async throws -> [UInt8]? { try store.stateRow(key: key.bytes) }

    public func subscribe(from height: UInt64) -> AsyncThrowingStream<Block, Error> {
        let (stream, continuation) = AsyncThrowingStream<Block, Error>.makeStream(bufferingPolicy: .unbounded)
        state.withLockedValue { state in
            state.subscribers.append((max(1, height), continuation))
            Self.publish(&state.subscribers, upTo: (try? store.tip()?.height) ?? 0, store: store)
        }
        return stream
    }

    /// Ends every subscription.
    public func close() {
        for subscriber in state.withLockedValue({ state in
            defer { state.subscribers = [] }
            return state.subscribers
        }) {
            subscriber.continuation.finish()
        }
    }

    /// Sends each subscriber the durable blocks it is owed up to `height`.
    private static func publish(
        _ subscribers: inout [(next: UInt64, continuation: AsyncThrowingStream<Block, Error>.Continuation)],
        upTo height: UInt64, store: any ChainStore
    ) {
        for index in subscribers.indices where subscribers[index].next <= height {
            let from = subscribers[index].next
            let blocks = (try? store.blocks(from: from, limit: Int(height - from + 1))) ?? []
            subscribers[index].next = from + UInt64(blocks.count)
            for block in blocks { subscribers[index].continuation.yield(block) }
        }
    }
}
