import Logging
import NIOConcurrencyHelpers
import NIOCore
import RWAArbiter
import RWACrypto
import RWALedger
import RWASession
import RWAWire

/// A committed transaction's place in the chain.
public struct Receipt: Sendable, Equatable {
    public var hash: Digest32
    public var height: UInt64
    public var index: UInt32
    /// The identity or resource the transaction created, or 0.
    public var createdID: UInt64
}

/// The arbiter's view of its chain.
public struct ChainStatus: Sendable, Equatable {
    public var chainID: Digest32
    public var height: UInt64
    public var tipHash: Digest32
    /// Unix milliseconds of the last block (0 before the first).
    public var tipTimeMilliseconds: UInt64
}

/// A failed request: the arbiter's code and reason, or the session's end.
public struct ArbiterRequestError: Error, CustomStringConvertible, Equatable {
    public var code: ErrorCode
    public var reason: String
    public var description: String { "\(code.name): \(reason)" }
}

/// A peer's side of the arbiter protocol over one session: requests are pipelined, each answered
/// by request id. `submit` returns only when the transaction's block is durable (or throws the
/// ledger's `Rejection`).
public final class ArbiterClient: Sendable {
    public let session: PeerSession
    public let chainID: Digest32
    private let state: NIOLoopBoundBox<State>
    private let requests: PendingRequests<ArbiterMessage>

    private struct State {
        var subscription: AsyncThrowingStream<Block, Error>.Continuation?
        var stream = BlockStreamAssembler()
    }

    /// Wraps an established session with the arbiter. Takes over the session's inbox.
    public init(session: PeerSession, chainID: Digest32) async {
        self.session = session
        self.chainID = chainID
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: session.eventLoop)
        let requests = PendingRequests<ArbiterMessage>(session: session)
        self.requests = requests
        let state = self.state
        try? await session.eventLoop.submit {
            session.inbox.consumeOnEventLoop { event in
                switch event {
                case .message(.arbiter(let message)):
                    Self.handle(message, state: state, requests: requests, session: session)
                case .message:
                    return
                case .finished(let error):
                    let failure = error ?? SessionError(.closed, "the arbiter closed the session", fromPeer: true)
                    requests.end(failure)
                    state.value.subscription?.finish(throwing: failure)
                    state.value.subscription = nil
                }
            }
        }.get()
    }

    /// Dials the arbiter and wraps the session.
    public static func connect(
        host: String, port: Int, transport: TransportKind = .tcp, identity: SigningKeyPair, chainID: Digest32,
        arbiter: SigningPublicKey? = nil, group: EventLoopGroup, logger: Logger = Logger(label: "rwanet.client")
    ) async throws -> ArbiterClient {
        let session = try await transport.dialService(
            host: host, port: port, identity: identity, chainID: chainID, expectedPeer: arbiter, group: group,
            logger: logger)
        return await ArbiterClient(session: session, chainID: chainID)
    }

    public func close() async { await session.close() }

    private static func handle(
        _ message: ArbiterMessage, state: NIOLoopBoundBox<State>, requests: PendingRequests<ArbiterMessage>,
        session: PeerSession
    ) {
        switch message {
        case .blockCommitted, .transactionCommitted:
            do {
                if let block = try state.value.stream.take(message) { state.value.subscription?.yield(block) }
            } catch {
                session.beginClose(reporting: SessionError(error))
            }
        case .submitTransaction, .getState, .getBlock, .getTransaction, .subscribeBlocks, .getStatus,
            .transactionReceipt, .transactionRejected, .stateAnswer, .blockAnswer, .transactionAnswer, .statusAnswer,
            .requestFailed:
            requests.answer(message.requestID, message)
        }
    }

    /// Sends a request built around a fresh request id and waits for its answer.
    private func request(_ build: @escaping @Sendable (UInt64) -> ArbiterMessage) -> EventLoopFuture<ArbiterMessage> {
        requests.send { .arbiter(build($0)) }
    }

    /// Submits a signed transaction; the future succeeds with its receipt once its block is
    /// durable, and fails with the ledger's `Rejection` or the session's error. An answer about
    /// another transaction than the one sent (by its hash, computed here) is an error, not a receipt.
    public func submitPipelined(_ transaction: Transaction) -> EventLoopFuture<Receipt> {
        let bytes = transaction.encoded
        let expected = Blake2b.hash256(bytes)
        return request { .submitTransaction(requestID: $0, transaction: bytes) }.flatMapThrowing { answer in
            switch answer {
            case .transactionReceipt(_, let hash, let height, let index, let createdID):
                guard hash == expected else {
                    throw ArbiterRequestError(
                        code: .unexpectedMessage, reason: "the receipt names transaction \(hash), not \(expected)")
                }
                return Receipt(hash: hash, height: height, index: index, createdID: createdID)
            case .transactionRejected(_, let hash, let code, let reason):
                // A transaction that does not decode is rejected under the hash of its bytes too.
                guard hash == expected else {
                    throw ArbiterRequestError(
                        code: .unexpectedMessage, reason: "the rejection names transaction \(hash), not \(expected)")
                }
                throw Rejection(code, reason)
            case .submitTransaction, .getState, .getBlock, .getTransaction, .subscribeBlocks, .getStatus, .stateAnswer,
                .blockAnswer, .transactionAnswer, .statusAnswer, .requestFailed, .blockCommitted, .transactionCommitted:
                throw ArbiterRequestError(code: .unexpectedMessage, reason: "\(answer.type) answers a submission")
            }
        }
    }

    public func submit(_ transaction: Transaction) async throws -> Receipt {
        try await submitPipelined(transaction).get()
    }

    /// Signs `operation` with `signer` at the signer's next sequence number (read from the
    /// arbiter) and submits it.
    public func sign(_ operation: LedgerOperation, with signer: SigningKeyPair) async throws -> Receipt {
        let sequence = try await account(signer.publicKey)?.nextSequence ?? 0
        return try await submit(
            try Transaction(signedBy: signer, chainID: chainID, sequence: sequence, operation: operation))
    }

    public func stateRow(_ key: StateKey) async throws -> [UInt8]? {
        let keyBytes = key.bytes
        let answer = try await request { .getState(requestID: $0, key: keyBytes) }.get()
        switch answer {
        case .stateAnswer(_, _, let value): return value
        case .requestFailed(_, let code, let reason): throw ArbiterRequestError(code: code, reason: reason)
        case .submitTransaction, .getState, .getBlock, .getTransaction, .subscribeBlocks, .getStatus,
            .transactionReceipt, .transactionRejected, .blockAnswer, .transactionAnswer, .statusAnswer, .blockCommitted,
            .transactionCommitted:
            throw ArbiterRequestError(code: .unexpectedMessage, reason: "\(answer.type) answers get_state")
        }
    }

    public func record(_ key: StateKey) async throws -> StateRecord? {
        guard let row = try await stateRow(key) else { return nil }
        return try StateRecord(key: key, value: row)
    }

    public func account(_ id: AccountID) async throws -> Account? {
        guard case .account(let account)? = try await record(.account(id)) else { return nil }
        return account
    }

    public func holding(token: TokenID, account: AccountID) async throws -> Holding {
        guard case .holding(let holding)? = try await record(.holding(token, account)) else { return Holding() }
        return holding
    }

    public func identity(_ id: IdentityID) async throws -> Identity? {
        guard case .identity(let identity)? = try await record(.identity(id)) else { return nil }
        return identity
    }

    public func token(_ id: TokenID) async throws -> Token? {
        guard case .token(let token)? = try await record(.token(id)) else { return nil }
        return token
    }

    public func resource(_ id: ResourceID) async throws -> Resource? {
        guard case .resource(let resource)? = try await record(.resource(id)) else { return nil }
        return resource
    }

    public func status() async throws -> ChainStatus {
        let answer = try await request { .getStatus(requestID: $0) }.get()
        guard case .statusAnswer(_, let chainID, let height, let tipHash, let tipTimeMilliseconds) = answer else {
            throw ArbiterRequestError(code: .unexpectedMessage, reason: "\(answer.type) answers get_status")
        }
        return ChainStatus(chainID: chainID, height: height, tipHash: tipHash, tipTimeMilliseconds: tipTimeMilliseconds)
    }

    public func blockHeader(height: UInt64) async throws -> BlockHeader? {
        let answer = try await request { .getBlock(requestID: $0, height: height) }.get()
        guard case .blockAnswer(_, let header) = answer else {
            throw ArbiterRequestError(code: .unexpectedMessage, reason: "\(answer.type) answers get_block")
        }
        return try header.map { try BlockHeader(decoding: $0) }
    }

    public func transaction(hash: Digest32) async throws -> CommittedTransactionInfo? {
        let answer = try await request { .getTransaction(requestID: $0, hash: hash) }.get()
        guard case .transactionAnswer(_, let found) = answer else {
            throw ArbiterRequestError(code: .unexpectedMessage, reason: "\(answer.type) answers get_transaction")
        }
        return found
    }

    /// Every committed block from `height` on, the stored ones first, then each as it commits.
    /// A peer that reconnects passes the height after the last block it saw and misses nothing.
    /// One subscription per session. The stream buffers what the consumer has not taken yet, so
    /// a consumer catching up on a long chain should take blocks as they come.
    public func subscribe(from height: UInt64) -> AsyncThrowingStream<Block, Error> {
        let (stream, continuation) = AsyncThrowingStream<Block, Error>.makeStream(bufferingPolicy: .unbounded)
        let state = state
        let requests = requests
        let session = session
        session.eventLoop.execute {
            if let ended = requests.ended {
                continuation.finish(throwing: ended)
                return
            }
            guard state.value.subscription == nil else {
                continuation.finish(
                    throwing: ArbiterRequestError(code: .badQuery, reason: "one subscription per session"))
                return
            }
            state.value.subscription = continuation
            session.sendPipelined(.arbiter(.subscribeBlocks(requestID: 0, fromHeight: height))).whenFailure {
                continuation.finish(throwing: $0)
            }
        }
        return stream
    }
}
