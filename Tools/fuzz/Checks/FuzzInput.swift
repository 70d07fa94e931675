import Foundation

/// The fuzzer's bytes read as a stream of choices: each read takes what it needs from the front
/// and yields zero once the input is used up, so every input is a complete, deterministic run.
public struct FuzzInput {
    private let bytes: [UInt8]
    private var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isExhausted: Bool { position >= bytes.count }

    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func choice(_ count: Int) -> Int { Int(byte()) % count }

    public mutating func bool() -> Bool { byte() & 1 == 1 }

    public mutating func u16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    public mutating func u64() -> UInt64 { (0..<8).reduce(0) { value, _ in value << 8 | UInt64(byte()) } }

    /// An amount: mostly small (where the interesting boundaries are), sometimes any `u128`.
    public mutating func amount() -> UInt128 {
        switch choice(4) {
        case 0: return UInt128(byte())
        case 1: return UInt128(u16()) * 1_000
        case 2: return UInt128(u64())
        default: return UInt128(u64()) << 64 | UInt128(u64())
        }
    }

    public mutating func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, position + count)
        defer { position = end }
        return Array(bytes[min(position, end)..<end])
    }

    /// The rest of the input.
    public mutating func rest() -> [UInt8] { take(bytes.count - position) }
}

/// A property the target checks broke: the fuzzer treats the trap as a crash and keeps the input.
public func violated(_ property: String, file: StaticString = #file, line: UInt = #line) -> Never {
    fatalError("fuzz property violated: \(property)", file: file, line: line)
}

/// Without libFuzzer (an ordinary build), a fuzz target runs `check` over the files it is
/// given: how a reproducer is replayed.
public func runFiles(_ check: ([UInt8]) -> Void) {
    for path in CommandLine.arguments.dropFirst() {
        guard let data = FileManager.default.contents(atPath: path) else {
            print("cannot read \(path)")
            exit(2)
        }
        check([UInt8](data))
        print("\(path): ok")
    }
}

/// With RWANET_FUZZ_TRACE set (when replaying a reproducer), a check says what it does.
let tracing = ProcessInfo.processInfo.environment["RWANET_FUZZ_TRACE"] != nil

func trace(_ line: @autoclosure () -> String) {
    // To standard error, unbuffered: the line before a trap is the one that matters.
    if tracing { FileHandle.standardError.write(Data((line() + "\n").utf8)) }
}
