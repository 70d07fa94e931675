import ArgumentParser
import Foundation
import RWACommandLine
import RWACrypto
import RWALedger
import RWAStore
import RWAWire

/// Reads the chain database directly (read-only; safe while `run` serves it).
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read blocks, transactions, accounts, identities, tokens and resources from the database.",
        discussion: "Readable text by default, one JSON object with --json. Safe while the arbiter runs.",
        subcommands: [
            Status.self, Blocks.self, BlockDetail.self, TransactionDetail.self, AccountDetail.self,
            IdentityDetail.self, TokenDetail.self, Tokens.self, ResourceDetail.self, Resources.self, PoolDetail.self,
        ])

    struct Options: ParsableArguments {
        @OptionGroup var chain: ChainOptions
        @Flag(help: "Print one JSON object.")
        var json = false

        func open() throws -> LedgerStore { try LedgerStore.open(path: chain.databasePath, readonly: true) }

        func show(_ value: [String: Any]) {
            emit(json ? JSON.render(value) : Describe.text(value))
        }

        func record(_ store: LedgerStore, _ key: StateKey) throws -> StateRecord {
            guard let row = try store.stateRow(key: key.bytes) else { throw CLIError("no \(key)") }
            return try StateRecord(key: key, value: row)
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Chain id, height and tip.")
        @OptionGroup var options: Options

        func run() throws {
            let store = try options.open()
            let genesis = try store.genesis()
            var value: [String: Any] = [
                "chain_id": "\(genesis.chainID)", "network_name": genesis.networkName, "arbiter": "\(genesis.arbiter)",
                "claim_issuers": genesis.claimIssuers.map { "\($0)" },
                "stablecoin_issuer": "\(genesis.stablecoinIssuer)",
                "height": 0 as UInt64,
            ]
            if let tip = try store.tip() {
                value["height"] = tip.height
                value["tip"] = Describe.header(tip)
            }
            options.show(value)
        }
    }

    struct Blocks: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Block headers from a height on.")
        @OptionGroup var options: Options
        @Option(help: "First height.") var from: UInt64 = 1
        @Option(help: "Most blocks to list.") var limit = 20

        func run() throws {
            let blocks = try options.open().blocks(from: from, limit: limit)
            if options.json {
                emit(JSON.render(["blocks": blocks.map { Describe.header($0.header) }]))
            } else {
                for block in blocks {
                    emit(
                        "block \(block.header.height) \(block.header.hash) txs \(block.header.transactionCount) "
                            + "time_ms \(block.header.timeMilliseconds)")
                }
            }
        }
    }

    struct BlockDetail: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "block", abstract: "One block with its transactions.")
        @OptionGroup var options: Options
        @Argument(help: "Height.") var height: UInt64

        func run() throws {
            guard let block = try options.open().blocks(from: height, limit: 1).first, block.header.height == height
            else { throw CLIError("no block \(height)") }
            var value = Describe.header(block.header)
            value["transactions"] = block.transactions.enumerated().map {
                Describe.transaction($1, height: height, index: $0)
            }
            options.show(value)
        }
    }

    struct TransactionDetail: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "tx", abstract: "One transaction by hash.")
        @OptionGroup var options: Options
        @Argument(help: "Transaction hash (64 hex digits).") var hash: String

        func run() throws {
            guard let bytes = [UInt8](hex: hash), let digest = try? Digest32(bytes: bytes) else {
                throw ValidationError("the hash must be 64 hex digits")
            }
            guard let located = try options.open().transaction(hash: digest) else {
                throw CLIError("no transaction \(hash)")
            }
            options.show(Describe.transaction(located.transaction, height: located.height, index: Int(located.index)))
        }
    }

    struct AccountDetail: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "account", abstract: "An account: sequence, identity and every holding.")
        @OptionGroup var options: Options
        @Argument(help: "Public key (64 hex digits).") var account: String

        func run() throws {
            let id = try parseAccount(account, "account")
            let store = try options.open()
            var value = Describe.record(try options.record(store, .account(id)))
            var holdings: [[String: Any]] = []
            for row in try store.stateRows(prefix: [0x04]) {
                guard case .holding(let token, let holder) = try StateKey(bytes: row.key), holder == id else {
                    continue
                }
                var entry = Describe.record(try StateRecord(key: .holding(token, holder), value: row.value))
                entry["token"] = token
                holdings.append(entry)
            }
            value["holdings"] = holdings
            value["account"] = "\(id)"
            options.show(value)
        }
    }

    struct IdentityDetail: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "identity", abstract: "An identity and its claims.")
        @OptionGroup var options: Options
        @Argument(help: "Identity id.") var id: UInt64

        func run() throws { options.show(Describe.record(try options.record(try options.open(), .identity(id)))) }
    }

    struct TokenDetail: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "token", abstract: "A token: supply, agents, pause, compliance rules.")
        @OptionGroup var options: Options
        @Argument(help: "Token id (0 is the stablecoin).") var id: UInt64

        func run() throws { options.show(Describe.record(try options.record(try options.open(), .token(id)))) }
    }

    struct Tokens: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every token.")
        @OptionGroup var options: Options

        func run() throws {
            let rows = try options.open().stateRows(prefix: [0x03])
            let tokens = try rows.map {
                Describe.record(try StateRecord(key: try StateKey(bytes: $0.key), value: $0.value))
            }
            if options.json {
                emit(JSON.render(["tokens": tokens]))
            } else {
                for token in tokens {
                    emit("token \(token["id"]!) \(token["symbol"]!) \(token["kind"]!) supply \(token["total_supply"]!)")
                }
            }
        }
    }

    struct ResourceDetail: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "resource", abstract: "A resource's digital twin; a licence lists its 100 slices in Hz.")
        @OptionGroup var options: Options
        @Argument(help: "Resource id.") var id: UInt64

        func run() throws { options.show(Describe.record(try options.record(try options.open(), .resource(id)))) }
    }

    struct PoolDetail: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pool", abstract: "A licence token's pool: reserves, shares, price accumulators.")
        @OptionGroup var options: Options
        @Argument(help: "Licence token id.") var token: UInt64

        func run() throws { options.show(Describe.record(try options.record(try options.open(), .pool(token)))) }
    }

    struct Resources: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every resource.")
        @OptionGroup var options: Options

        func run() throws {
            let rows = try options.open().stateRows(prefix: [0x05])
            var resources: [[String: Any]] = []
            for row in rows {
                guard
                    case .resource(let resource) = try StateRecord(key: try StateKey(bytes: row.key), value: row.value)
                else { continue }
                resources.append([
                    "id": resource.id, "kind": resource.registration.kind.name, "name": resource.registration.name,
                    "owner": "\(resource.registration.owner)", "valuation": resource.registration.valuation,
                    "token": resource.token.map { "\($0)" } ?? "none",
                ])
            }
            if options.json {
                emit(JSON.render(["resources": resources]))
            } else {
                for resource in resources {
                    emit(
                        "resource \(resource["id"]!) \(resource["kind"]!) \"\(resource["name"]!)\" owner \(resource["owner"]!) token \(resource["token"]!)"
                    )
                }
            }
        }
    }
}
