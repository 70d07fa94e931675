import Foundation
import NIOCore
import NIOPosix

/// The daemons' control socket: a Unix-domain socket, mode 0600, so only the daemon's user can
/// command it. Framing (README, "Leasing"): each request and each answer is one JSON object,
/// sent as `u32 length (big-endian) | UTF-8 JSON`, at most 1 MiB. A request names a `command`;
/// an answer carries `"ok": true` and the command's fields, or `"ok": false`, a `code` and an
/// `error`. `watch` answers with one frame per event until the client hangs up.
public enum ControlFraming {
    public static let frameBytesMax = 1 << 20

    public static func frame(_ object: [String: Any]) throws -> [UInt8] {
        let body = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return withUnsafeBytes(of: UInt32(body.count).bigEndian, Array.init) + [UInt8](body)
    }
}

/// Splits the byte stream into frames; refuses a length above the maximum before reading it.
final class ControlFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= ControlFraming.frameBytesMax else {
            throw ControlError("a control frame of \(length) bytes; at most \(ControlFraming.frameBytesMax)")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

public struct ControlError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Answers control requests with `handle`, which returns the answer frames' objects (several
/// for a stream, through `stream`).
final class ControlHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let handle: @Sendable ([String: Any], _ reply: @escaping @Sendable ([String: Any]) -> Void) async -> Void

    init(
        handle: @escaping @Sendable ([String: Any], _ reply: @escaping @Sendable ([String: Any]) -> Void) async -> Void
    ) {
        self.handle = handle
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let body = unwrapInboundIn(data)
        let channel = context.channel
        let request = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
        @Sendable func reply(_ object: [String: Any]) {
            guard let bytes = try? ControlFraming.frame(object) else { return }
            channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
        }
        guard let request else {
            reply(["ok": false, "code": "bad_request", "error": "a control frame must hold one JSON object"])
            return
        }
        nonisolated(unsafe) let unsafeRequest = request
        let handle = handle
        Task { await handle(unsafeRequest, reply) }
    }
}

/// Listens on the control socket at `path` (replacing a stale one), mode 0600.
public func listenControl(
    path: String,
    handle: @escaping @Sendable ([String: Any], _ reply: @escaping @Sendable ([String: Any]) -> Void) async -> Void
) async throws -> Channel {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ControlFrameDecoder()))
                try channel.pipeline.syncOperations.addHandler(ControlHandler(handle: handle))
            }
        }
        .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    return channel
}

/// A blocking client of the control socket, for the CLI: one request, then answers.
public final class ControlClient {
    private let descriptor: Int32

    public init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ControlError("cannot create a socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(descriptor)
            throw ControlError("the control socket path \(path) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            close(descriptor)
            throw ControlError("no daemon answers at \(path) (is `run` going, with this --dir?)")
        }
    }

    deinit { close(descriptor) }

    public func send(_ request: [String: Any]) throws {
        let frame = try ControlFraming.frame(request)
        var written = 0
        while written < frame.count {
            let result = frame[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            guard result > 0 else { throw ControlError("the daemon hung up") }
            written += result
        }
    }

    /// The next answer; nil when the daemon closed the connection.
    public func receive() throws -> [String: Any]? {
        guard let header = try read(4) else { return nil }
        let length = Int(UInt32(header[0]) << 24 | UInt32(header[1]) << 16 | UInt32(header[2]) << 8 | UInt32(header[3]))
        guard length <= ControlFraming.frameBytesMax else { throw ControlError("an answer of \(length) bytes") }
        guard let body = try read(length) else { throw ControlError("the daemon hung up mid-answer") }
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw ControlError("the daemon's answer is not a JSON object")
        }
        return object
    }

    private func read(_ count: Int) throws -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let result = bytes[got...].withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if result == 0 {
                if got == 0 { return nil }
                throw ControlError("the daemon hung up mid-answer")
            }
            guard result > 0 else { throw ControlError("reading the control socket failed") }
            got += result
        }
        return bytes
    }
}
