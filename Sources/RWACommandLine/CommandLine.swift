import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import RWACrypto
import RWALedger
import RWANode
import RWAStore
import RWAWire

// What the command-line tools share: where the chain is, how to reach the arbiter, keys,
// amounts and the JSON writer behind every `--json`.

/// Where a chain lives: `--dir` holds `chain.sqlite`, `genesis.bin` and the keys `init` made.
public struct ChainOptions: ParsableArguments {
    public init() {}

    @Option(help: "Chain directory made by `rwa-arbiter init`.")
    public var dir: String = "chain"

    @Option(help: "Chain database (default: <dir>/chain.sqlite).")
    public var db: String?

    public var databasePath: String { db ?? dir + "/chain.sqlite" }
    public var genesisPath: String { dir + "/genesis.bin" }

    public func genesis() throws -> Genesis {
        if FileManager.default.fileExists(atPath: genesisPath) {
            guard let data = FileManager.default.contents(atPath: genesisPath) else {
                throw CLIError("cannot read \(genesisPath)")
            }
            return try Genesis(decoding: [UInt8](data))
        }
        return try LedgerStore.open(path: databasePath, readonly: true).genesis()
    }
}

public struct CLIError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension TransportKind: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Writes a whole line to stdout at once, so a script reading it sees it immediately.
public func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

public func readKey(_ path: String) throws -> SigningKeyPair {
    do { return try KeyFile.read(from: path) } catch { throw CLIError("key file \(path): \(error)") }
}

public func parseAccount(_ text: String, _ name: String) throws -> AccountID {
    guard let bytes = [UInt8](hex: text), let key = try? SigningPublicKey(validating: bytes) else {
        throw ValidationError("\(name) must be a 64-hex-digit Ed25519 public key, not '\(text)'")
    }
    return key
}

public func parseAmount(_ text: String, _ name: String) throws -> UInt128 {
    guard let value = UInt128(text) else {
        throw ValidationError("\(name) must be a decimal integer of base units below 2^128, not '\(text)'")
    }
    return value
}

/// Where the arbiter is and which chain it must serve: what every command that talks to it needs.
public struct ConnectionOptions: ParsableArguments {
    public init() {}

    @OptionGroup public var chain: ChainOptions

    @Option(help: "Arbiter address, host:port.")
    public var arbiter = "127.0.0.1:7700"

    @Option(help: "Transport: tcp or udp.")
    public var transport: TransportKind = .tcp

    /// A session with the arbiter, which must prove the key the genesis names.
    public func connect(as identity: SigningKeyPair) async throws -> ArbiterClient {
        let genesis = try chain.genesis()
        let parts = arbiter.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--arbiter must be host:port") }
        do {
            return try await ArbiterClient.connect(
                host: String(parts[0]), port: port, transport: transport, identity: identity,
                chainID: genesis.chainID, arbiter: genesis.arbiter, group: MultiThreadedEventLoopGroup.singleton)
        } catch {
            throw CLIError("cannot reach the arbiter at \(arbiter): \(error)")
        }
    }
}

/// What every submitting subcommand needs: the arbiter and the signer's key.
public struct SubmitOptions: ParsableArguments {
    public init() {}

    @OptionGroup public var connection: ConnectionOptions

    @Option(help: "Key file of the account that signs (for admin operations: the regulator or an agent).")
    public var key: String

    @Flag(help: "Print the receipt as one JSON object.")
    public var json = false

    /// Signs `operation` at the signer's next sequence number, submits it, waits for the block to
    /// be durable and prints the receipt. A rejection exits 1 with the ledger's code and reason.
    public func submit(_ operation: LedgerOperation, createdName: String? = nil) async throws {
        do throws(Rejection) { try operation.checkLimits() } catch { throw CLIError(error.reason) }
        let signer = try readKey(key)
        let client = try await connection.connect(as: signer)
        let receipt: Receipt
        do {
            receipt = try await client.sign(operation, with: signer)
            await client.close()
        } catch let rejection as Rejection {
            await client.close()
            throw report(rejection, json: json)
        } catch {
            await client.close()
            throw CLIError("the arbiter did not answer: \(error)")
        }
        var value: [String: Any] = [
            "ok": true, "operation": operation.name, "hash": "\(receipt.hash)", "height": receipt.height,
            "index": receipt.index,
        ]
        if let createdName { value[createdName] = receipt.createdID }
        if json {
            emit(JSON.render(value))
        } else {
            var line = "\(operation.name) committed in block \(receipt.height) as \(receipt.hash)"
            if let createdName { line += "; \(createdName) \(receipt.createdID)" }
            emit(line)
        }
    }
}

/// A server's listeners: TCP on `port`, and UDP on `udpPort` unless `udp` is false.
public func listen(
    host: String, port: Int, udpPort: Int, udp: Bool, configuration: SessionConfiguration, logger: Logger
) async throws -> [SessionListener] {
    let group = MultiThreadedEventLoopGroup.singleton
    var listeners = [
        try await TransportKind.tcp.listen(
            host: host, port: port, configuration: configuration, group: group, logger: logger)
    ]
    if udp {
        listeners.append(
            try await TransportKind.udp.listen(
                host: host, port: udpPort, configuration: configuration, group: group, logger: logger))
    }
    return listeners
}

/// Prints a ledger's (or the exchange's) refusal, readable on standard error or as one JSON
/// object, and returns the exit status 1 to throw.
public func report(_ rejection: Rejection, json: Bool) -> ExitCode {
    if json {
        emit(JSON.render(["ok": false, "code": rejection.code.name, "reason": rejection.reason]))
    } else {
        FileHandle.standardError.write(Data("rejected: \(rejection.code.name): \(rejection.reason)\n".utf8))
    }
    return ExitCode(1)
}

/// A small JSON writer with sorted keys, so the output of `--json` is stable byte for byte.
/// Integers JSON numbers cannot hold exactly (above 2^53: amounts, share token ids) are written
/// as decimal strings.
public enum JSON {
    public static func render(_ value: Any) -> String {
        switch value {
        case let dictionary as [String: Any]:
            let members = dictionary.keys.sorted().map { "\(quote($0)):\(render(dictionary[$0]!))" }
            return "{" + members.joined(separator: ",") + "}"
        case let array as [Any]:
            return "[" + array.map(render).joined(separator: ",") + "]"
        case let text as String: return quote(text)
        case let flag as Bool: return flag ? "true" : "false"
        case let amount as UInt128: return quote(String(amount))
        case let number as UInt64: return number <= 1 << 53 ? String(number) : quote(String(number))
        case let number as UInt32: return String(number)
        case let number as UInt16: return String(number)
        case let number as UInt8: return String(number)
        case let number as Int: return String(number)
        case let number as Double: return String(format: "%.6f", number)
        case Optional<Any>.none: return "null"
        default: return quote("\(value)")
        }
    }

    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
