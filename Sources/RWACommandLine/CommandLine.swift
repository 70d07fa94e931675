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

/// A small JSON writer with sorted keys, so the output of `--json` is stable byte for byte.
/// Amounts (`UInt128`) are written as decimal strings: JSON numbers lose precision above 2^53.
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
        case let number as UInt64: return String(number)
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
