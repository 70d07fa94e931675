import Foundation
import GRDB
import NIOCore
import RWAChannel
import RWACrypto
import RWAWire

/// A channel as a lessor or lessee daemon keeps it: its terms and both signatures over them
/// (what the open transaction needs), where it stands, and the block that committed its open.
public struct StoredChannel: Equatable, Sendable {
    public enum Status: String, Sendable, CaseIterable {
        /// Both parties signed the terms; the open is not yet committed.
        case accepted
        /// The open is committed; updates flow.
        case open
        /// A close, registration or challenge was submitted; the channel awaits settlement.
        case closing
        /// Settled on the chain.
        case closed
    }

    public var role: LeaseRole
    public var terms: LeaseTerms
    public var lessorSignature: Signature
    public var lesseeSignature: Signature
    public var status: Status
    /// The block that committed the open, once it has.
    public var openHeight: UInt64?
    /// Lessee: where the lessor listens (`host:port`), to go back after a restart.
    public var peerAddress: String?

    public var channelID: Digest32 { terms.channelID }

    public init(
        role: LeaseRole, terms: LeaseTerms, lessorSignature: Signature, lesseeSignature: Signature,
        status: Status = .accepted, openHeight: UInt64? = nil, peerAddress: String? = nil
    ) {
        self.peerAddress = peerAddress
        self.role = role
        self.terms = terms
        self.lessorSignature = lessorSignature
        self.lesseeSignature = lesseeSignature
        self.status = status
        self.openHeight = openHeight
    }
}

/// What a lessor or lessee daemon keeps durably: its channels and the latest co-signed state of
/// each, written before the daemon acts on it, so a crash never loses a state it countersigned.
/// `PeerStore` (SQLite) and `InMemoryChannelStore` pass one conformance suite
/// (`ChannelStoreConformanceTests`).
public protocol ChannelStore: AnyObject, Sendable {
    func channels() throws -> [StoredChannel]
    func latestState(of channel: Digest32) throws -> CoSignedState?
    /// Inserts the channel or replaces its record (not its state).
    func save(_ channel: StoredChannel) throws
    /// Forgets a channel the ledger refused to open: one still `accepted`, with no state. Refuses
    /// any other, leaving the store as it was: a channel that may hold funds is never forgotten.
    func forget(_ channel: Digest32) throws
    /// Makes `state` the channel's latest. Refuses a state of an unknown channel and one whose
    /// nonce is not above the stored one's, leaving the store as it was. Durable when it returns.
    func saveState(_ state: CoSignedState) throws
    /// `saveState` for several channels at once, all or nothing, with one flush to the disk (a
    /// group commit): how a daemon with many channels keeps up.
    func saveStates(_ states: [CoSignedState]) throws
}

/// A `ChannelStore` in memory, for tests and the simulation: its contents outlive a simulated
/// crash of the daemon that holds it.
public final class InMemoryChannelStore: ChannelStore, @unchecked Sendable {
    private let lock = NSLock()
    private var records: [Digest32: StoredChannel] = [:]
    private var order: [Digest32] = []
    private var states: [Digest32: CoSignedState] = [:]

    public init() {}

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    public func channels() throws -> [StoredChannel] { locked { order.map { records[$0]! } } }

    public func latestState(of channel: Digest32) throws -> CoSignedState? { locked { states[channel] } }

    public func save(_ channel: StoredChannel) throws {
        locked {
            if records[channel.channelID] == nil { order.append(channel.channelID) }
            records[channel.channelID] = channel
        }
    }

    public func forget(_ channel: Digest32) throws {
        try locked {
            try PeerStore.checkForgettable(channel, status: records[channel]?.status, hasState: states[channel] != nil)
            records[channel] = nil
            order.removeAll { $0 == channel }
        }
    }

    public func saveState(_ state: CoSignedState) throws { try saveStates([state]) }

    /// Checks every state first, then stores them all.
    public func saveStates(_ batch: [CoSignedState]) throws {
        try locked {
            var staged: [Digest32: CoSignedState] = [:]
            for state in batch {
                let id = state.state.channelID
                try PeerStore.checkNewer(
                    state, storedNonce: (staged[id] ?? states[id])?.state.nonce, known: records[id] != nil)
                staged[id] = state
            }
            states.merge(staged) { $1 }
        }
    }
}

/// The daemon's SQLite file, `<dir>/peer.sqlite` (WAL, `synchronous = FULL`; proto/README.md,
/// "The peer store"): tables `schema`, `channels` and `states`.
public final class PeerStore: ChannelStore {
    public let path: String
    private let queue: DatabaseQueue

    /// The layout's version in the `schema` table; another is refused, not misread.
    public static let layoutVersion = 1

    static let schemaSQL = """
        CREATE TABLE schema (version INTEGER NOT NULL);
        CREATE TABLE channels (
            channel_id BLOB PRIMARY KEY, position INTEGER NOT NULL, role TEXT NOT NULL, terms BLOB NOT NULL,
            lessor_signature BLOB NOT NULL, lessee_signature BLOB NOT NULL, status TEXT NOT NULL,
            open_height INTEGER, peer_address TEXT) WITHOUT ROWID;
        CREATE TABLE states (
            channel_id BLOB PRIMARY KEY REFERENCES channels (channel_id), nonce INTEGER NOT NULL,
            state BLOB NOT NULL) WITHOUT ROWID;
        """

    private init(path: String, queue: DatabaseQueue) {
        self.path = path
        self.queue = queue
    }

    /// Opens the store at `path`, creating it (with its layout) if there is no file yet.
    public static func open(path: String) throws -> PeerStore {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // FULL: a countersigned state survives power loss, not only a crash of the daemon.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let exists = FileManager.default.fileExists(atPath: path)
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
        if !exists {
            try queue.write { db in
                try db.execute(sql: schemaSQL)
                try db.execute(sql: "INSERT INTO schema (version) VALUES (?)", arguments: [layoutVersion])
            }
        }
        let versions = try queue.read { db in
            try db.tableExists("schema") ? try Int.fetchAll(db, sql: "SELECT version FROM schema") : []
        }
        guard versions == [layoutVersion] else {
            let found =
                versions.isEmpty
                ? "no layout version" : "layout version \(versions.map(String.init).joined(separator: ", "))"
            throw StoreError("\(path) has \(found); this rwanet reads peer stores of version \(layoutVersion) only")
        }
        return PeerStore(path: path, queue: queue)
    }

    public func channels() throws -> [StoredChannel] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM channels ORDER BY position").map { row in
                guard let role = LeaseRole(rawValue: row["role"]),
                    let status = StoredChannel.Status(rawValue: row["status"])
                else { throw StoreError("\(path): a channel with an unknown role or status") }
                var terms = ByteBuffer(bytes: [UInt8](row["terms"] as Data))
                return StoredChannel(
                    role: role, terms: try LeaseTerms(decoding: &terms),
                    lessorSignature: try Signature(bytes: [UInt8](row["lessor_signature"] as Data)),
                    lesseeSignature: try Signature(bytes: [UInt8](row["lessee_signature"] as Data)), status: status,
                    openHeight: (row["open_height"] as Int64?).map { UInt64($0) }, peerAddress: row["peer_address"])
            }
        }
    }

    public func latestState(of channel: Digest32) throws -> CoSignedState? {
        let bytes = try queue.read { db in
            try Data.fetchOne(
                db, sql: "SELECT state FROM states WHERE channel_id = ?", arguments: [Data(channel.bytes)])
        }
        guard let bytes else { return nil }
        var buffer = ByteBuffer(bytes: [UInt8](bytes))
        return try CoSignedState(decoding: &buffer)
    }

    public func save(_ channel: StoredChannel) throws {
        try queue.write { db in
            let position = try Int64.fetchOne(db, sql: "SELECT coalesce(max(position), 0) + 1 FROM channels") ?? 1
            try db.execute(
                sql: """
                    INSERT INTO channels (channel_id, position, role, terms, lessor_signature, lessee_signature,
                        status, open_height, peer_address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (channel_id) DO UPDATE SET status = excluded.status, open_height = excluded.open_height,
                        lessor_signature = excluded.lessor_signature, lessee_signature = excluded.lessee_signature,
                        peer_address = excluded.peer_address
                    """,
                arguments: [
                    Data(channel.channelID.bytes), position, channel.role.rawValue, Data(channel.terms.encoded),
                    Data(channel.lessorSignature.bytes), Data(channel.lesseeSignature.bytes), channel.status.rawValue,
                    channel.openHeight.map { Int64($0) }, channel.peerAddress,
                ])
        }
    }

    public func forget(_ channel: Digest32) throws {
        let id = Data(channel.bytes)
        try queue.write { db in
            let status = try String.fetchOne(
                db, sql: "SELECT status FROM channels WHERE channel_id = ?", arguments: [id])
            let hasState =
                try Bool.fetchOne(db, sql: "SELECT 1 FROM states WHERE channel_id = ?", arguments: [id]) ?? false
            try Self.checkForgettable(channel, status: status.flatMap(StoredChannel.Status.init), hasState: hasState)
            try db.execute(sql: "DELETE FROM channels WHERE channel_id = ?", arguments: [id])
        }
    }

    static func checkForgettable(_ channel: Digest32, status: StoredChannel.Status?, hasState: Bool) throws {
        guard let status else { throw StoreError("no channel \(channel) in the store") }
        guard status == .accepted, !hasState else {
            throw StoreError("channel \(channel) is \(status.rawValue): only a channel never opened is forgotten")
        }
    }

    public func saveState(_ state: CoSignedState) throws { try saveStates([state]) }

    public func saveStates(_ states: [CoSignedState]) throws {
        try queue.write { db in
            for state in states { try Self.write(state, db) }
        }
    }

    private static func write(_ state: CoSignedState, _ db: Database) throws {
        let id = Data(state.state.channelID.bytes)
        // One cached statement tells both whether the channel is known and which nonce it holds.
        let lookup = try db.cachedStatement(
            sql:
                "SELECT s.nonce FROM channels c LEFT JOIN states s ON s.channel_id = c.channel_id WHERE c.channel_id = ?"
        )
        let row = try Row.fetchOne(lookup, arguments: [id])
        let storedNonce = (row?[0] as Int64?).map { UInt64(bitPattern: $0) }
        try Self.checkNewer(state, storedNonce: storedNonce, known: row != nil)
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO states (channel_id, nonce, state) VALUES (?, ?, ?)")
            .execute(arguments: [id, Int64(bitPattern: state.state.nonce), Data(state.encoded)])
    }

    static func checkNewer(_ state: CoSignedState, storedNonce: UInt64?, known: Bool) throws {
        guard known else { throw StoreError("no channel \(state.state.channelID) in the store") }
        if let storedNonce, storedNonce >= state.state.nonce {
            throw StoreError(
                "channel \(state.state.channelID) holds state \(storedNonce); state \(state.state.nonce) is not newer"
            )
        }
    }
}
