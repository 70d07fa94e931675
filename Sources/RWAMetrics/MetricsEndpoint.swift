import ArgumentParser
import CoreMetrics
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// A daemon's metrics for Prometheus: makes swift-prometheus the process's swift-metrics backend
/// and serves its text exposition at `GET /metrics` over plain HTTP/1.1 (NIOHTTP1, already in
/// the build through swift-nio). Start it before the daemon serves anything: the recording side
/// (`NodeMetrics`) makes its handlers on first use, and a handler made before the bootstrap stays
/// a no-op.
public final class MetricsEndpoint: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// The port bound (the one asked for, or the one the system picked for port 0).
    public let port: Int
    private let channel: any Channel

    private init(registry: PrometheusCollectorRegistry, channel: any Channel) {
        self.registry = registry
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    /// Bootstraps the backend (once per process) and listens on `host:port`.
    public static func start(
        host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> MetricsEndpoint {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(ExpositionHandler(registry: registry))
                }
            }
            .bind(host: host, port: port).get()
        return MetricsEndpoint(registry: registry, channel: channel)
    }

    public func stop() async { try? await channel.close() }
}

/// Answers `GET /metrics` (and `/`) with the exposition, anything else with 404, then closes:
/// a scrape is one request every few seconds, not worth keep-alive bookkeeping.
private final class ExpositionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private var path = ""
    private var method = HTTPMethod.GET

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = String(head.uri.prefix { $0 != "?" })
            method = head.method
        case .body:
            break
        case .end:
            respond(context: context)
        }
    }

    private func respond(context: ChannelHandlerContext) {
        let status: HTTPResponseStatus
        var body = context.channel.allocator.buffer(capacity: 4_096)
        var headers = HTTPHeaders()
        if method == .GET && (path == "/metrics" || path == "/") {
            status = .ok
            body.writeBytes(registry.emitToBuffer())
            headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
        } else {
            status = .notFound
            body.writeString("rwanet serves its metrics at GET /metrics\n")
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        }
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        headers.add(name: "Connection", value: "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [context] _ in context.close(promise: nil) }
    }
}

/// `--metrics host:port`, shared by every daemon: off unless given.
public struct MetricsOptions: ParsableArguments {
    public init() {}

    @Option(help: "Serve Prometheus metrics at http://<host:port>/metrics (port 0: any free port); off by default.")
    public var metrics: String?

    public func validate() throws { _ = try address() }

    private func address() throws -> (host: String, port: Int)? {
        guard let metrics else { return nil }
        guard let colon = metrics.lastIndex(of: ":"), let port = Int(metrics[metrics.index(after: colon)...]),
            (0...65_535).contains(port), colon > metrics.startIndex
        else { throw ValidationError("--metrics must be host:port, not '\(metrics)'") }
        return (String(metrics[..<colon]), port)
    }

    /// Starts the endpoint, if asked for, and prints `metrics <host> <port>`; call it before the
    /// daemon serves anything.
    @discardableResult
    public func start() async throws -> MetricsEndpoint? {
        guard let (host, port) = try address() else { return nil }
        let endpoint = try await MetricsEndpoint.start(host: host, port: port)
        FileHandle.standardOutput.write(Data("metrics \(host) \(endpoint.port)\n".utf8))
        return endpoint
    }
}
