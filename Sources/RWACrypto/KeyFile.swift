import CSodium

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Key files hold an Ed25519 seed as one line of text: `rwanet-ed25519-seed-v1 <64 hex digits>`.
/// They are created with mode 0600 and refused if anyone but the owner can read them.
public enum KeyFile {
    static let header = "rwanet-ed25519-seed-v1"

    public static func write(_ keyPair: SigningKeyPair, to path: String) throws(CryptoError) {
        let line = "\(header) \(keyPair.exportSeed().hexString)\n"
        // O_EXCL: never overwrite an existing identity by accident.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw .keyFile("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = line.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress!, $0.count - 1) }
        guard written == line.utf8.count, fsync(fd) == 0 else { throw .keyFile("cannot write \(path)") }
    }

    public static func read(from path: String) throws(CryptoError) -> SigningKeyPair {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .keyFile("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard info.st_mode & 0o077 == 0 else {
            throw .keyFile(
                "\(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        guard let file = fopen(path, "r") else { throw .keyFile("cannot open \(path)") }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { throw .keyFile("\(path) is empty") }
        defer { buffer.withUnsafeMutableBytes { sodium_memzero($0.baseAddress!, $0.count) } }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0] == header,
            let seed = [UInt8](hex: String(parts[1])), seed.count == SigningKeyPair.seedByteCount
        else { throw .keyFile("\(path) is not an rwanet key file") }
        return try SigningKeyPair(seed: seed)
    }
}
