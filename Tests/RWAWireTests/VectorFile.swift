import Foundation

/// The JSON vector files of `proto/vectors/` (format in proto/README.md, "Test vectors"). Tests
/// compare against the files; with `RWANET_WRITE_VECTORS=1` they write them instead, which is
/// how the files were made and how they change together with the spec.
struct VectorFile: Codable, Equatable {
    struct Valid: Codable, Equatable {
        var name: String
        var description: String
        var hex: String
    }

    struct Invalid: Codable, Equatable {
        var name: String
        var description: String
        var hex: String
        var error: String
    }

    var valid: [Valid]
    var invalid: [Invalid]

    static func url(_ name: String, file: String = #filePath) -> URL {
        URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("proto/vectors/\(name)")
    }

    static var writing: Bool { ProcessInfo.processInfo.environment["RWANET_WRITE_VECTORS"] == "1" }

    static func load(_ name: String) throws -> VectorFile {
        try JSONDecoder().decode(VectorFile.self, from: Data(contentsOf: url(name)))
    }

    func write(_ name: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try FileManager.default.createDirectory(
            at: Self.url(name).deletingLastPathComponent(), withIntermediateDirectories: true)
        try (encoder.encode(self) + Data("\n".utf8)).write(to: Self.url(name))
    }
}
