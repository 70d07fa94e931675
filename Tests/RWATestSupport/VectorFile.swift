import Foundation
import RWAWire

/// The JSON vector files of `proto/vectors/` (format in proto/README.md, "Test vectors"). Tests
/// compare against the files; with `RWANET_WRITE_VECTORS=1` they write them instead, which is
/// how the files were made and how they change together with the spec.
public struct VectorFile: Codable, Equatable {
    public struct Valid: Codable, Equatable {
        public var name: String
        public var description: String
        public var hex: String

        public init(name: String, description: String, hex: String) {
            self.name = name
            self.description = description
            self.hex = hex
        }
    }

    public struct Invalid: Codable, Equatable {
        public var name: String
        public var description: String
        public var hex: String
        public var error: String

        public init(name: String, description: String, hex: String, error: String) {
            self.name = name
            self.description = description
            self.hex = hex
            self.error = error
        }
    }

    public init(valid: [Valid], invalid: [Invalid]) {
        self.valid = valid
        self.invalid = invalid
    }

    public var valid: [Valid]
    public var invalid: [Invalid]

    public static func url(_ name: String, file: String = #filePath) -> URL {
        URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("proto/vectors/\(name)")
    }

    public static var writing: Bool { ProcessInfo.processInfo.environment["RWANET_WRITE_VECTORS"] == "1" }

    public static func load(_ name: String) throws -> VectorFile {
        try JSONDecoder().decode(VectorFile.self, from: Data(contentsOf: url(name)))
    }

    public func write(_ name: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try FileManager.default.createDirectory(
            at: Self.url(name).deletingLastPathComponent(), withIntermediateDirectories: true)
        try (encoder.encode(self) + Data("\n".utf8)).write(to: Self.url(name))
    }
}

extension WireError {
    /// The error class a vector file names for an invalid input.
    public var className: String {
        switch self {
        case .truncated: return "truncated"
        case .trailingBytes: return "trailing_bytes"
        case .lengthAboveMaximum: return "length_above_maximum"
        case .nonCanonical: return "non_canonical"
        case .invalidValue: return "invalid_value"
        case .unknownRequiredType: return "unknown_required_type"
        case .recordTooLarge: return "record_too_large"
        case .recordTooShort: return "record_too_short"
        }
    }
}
