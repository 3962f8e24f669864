// A daemon's --metrics address: swift-metrics bootstrapped once per process with the
// Prometheus backend (swift-prometheus), and `GET /metrics` answered in Prometheus' text
// format over HTTP/1.1 on SwiftNIO. Meant for loopback or a management network: it says how
// busy the server is and what it refused, never a key, a netname or an address.

import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// Why a metrics address could not be used.
public enum MetricsEndpointError: Error, Equatable, CustomStringConvertible {
    case badAddress(String)
    case cannotListen(String, reason: String)

    public var description: String {
        switch self {
        case let .badAddress(text): return "--metrics \(text): expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464"
        case let .cannotListen(text, reason): return "--metrics \(text): cannot listen there: \(reason)"
        }
    }
}

/// Serves the process's metrics at `http://HOST:PORT/metrics`.
public final class MetricsEndpoint: Sendable {
    /// The registry every swift-metrics instrument of this process reports to.
    public static var registry: PrometheusCollectorRegistry { bootstrap() }

    private static let bootstrapped = NIOLockedValueBox<PrometheusCollectorRegistry?>(nil)

    /// Points swift-metrics at a Prometheus registry, once per process (a second
    /// `MetricsSystem.bootstrap` would trap), and returns it.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        bootstrapped.withLockedValue { existing in
            if let existing { return existing }
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            // Handshakes and keyserver round trips take 1-50 ms here; the default buckets start at 5 ms.
            factory.defaultDurationHistogramBuckets = [
                .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                .milliseconds(500), .seconds(1), .seconds(5),
            ]
            MetricsSystem.bootstrap(factory)
            existing = registry
            return registry
        }
    }

    /// Parses `HOST:PORT` (`[v6]:PORT` for IPv6).
    public static func parse(_ text: String) throws(MetricsEndpointError) -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else { throw .badAddress(text) }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw .badAddress(text) }
        return (host, port)
    }

    /// Where it listens (the port is the real one when 0 was asked for).
    public let address: SocketAddress
    private let channel: any Channel

    private init(address: SocketAddress, channel: any Channel) {
        self.address = address
        self.channel = channel
    }

    /// What a daemon's `--metrics` option does: nothing without an address; with one, the
    /// endpoint. Call it before the daemon's server listens, so that its first calls count.
    public static func start(_ spec: String?, logger: Logger) async throws -> MetricsEndpoint? {
        guard let spec else { return nil }
        return try await start(spec, logger: logger, group: MultiThreadedEventLoopGroup.singleton)
    }

    /// Bootstraps the metrics system if needed and listens on `spec` (`HOST:PORT`).
    public static func start(_ spec: String, logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> MetricsEndpoint {
        let (host, port) = try parse(spec)
        let registry = bootstrap()
        let channel: any Channel
        do {
            channel = try await listen(host: host, port: port, registry: registry, group: group)
        } catch let error as IOError {
            throw MetricsEndpointError.cannotListen(spec, reason: "\(error.description)")
        } catch let error as SocketAddressError {
            throw MetricsEndpointError.cannotListen(spec, reason: "\(error)")
        }
        guard let address = channel.localAddress else { throw MetricsEndpointError.badAddress(spec) }
        logger.notice("metrics", metadata: ["address": "http://\(spec.hasPrefix("[") ? "[\(host)]" : host):\(address.port ?? port)/metrics"])
        return MetricsEndpoint(address: address, channel: channel)
    }

    /// Connections served at once; more are closed on accept. A scraper needs one; the cap
    /// keeps anyone who can reach the port from holding the daemon's descriptors (each
    /// connection is one, until the 30 s idle timeout).
    public static let maximumConnections = 32

    private static func listen(host: String, port: Int, registry: PrometheusCollectorRegistry, group: any EventLoopGroup) async throws -> any Channel {
        let open = NIOLockedValueBox(0)
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let admitted = open.withLockedValue { count -> Bool in
                    guard count < maximumConnections else { return false }
                    count += 1
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(30)))
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry))
                }
            }
            .bind(host: host, port: port).get()
    }

    public func close() async {
        try? await channel.close()
    }
}

/// `GET /metrics` → the registry in text format; anything else → 404 or 405.
private final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private var request: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(head):
            request = head
        case .body:
            break  // a GET has none; anything sent is ignored (the decoder bounds it)
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        var status = HTTPResponseStatus.ok
        var body: [UInt8]
        var contentType = "text/plain; version=0.0.4; charset=utf-8"
        if path != "/metrics" {
            status = .notFound
            body = Array("not found: the metrics are at /metrics\n".utf8)
            contentType = "text/plain; charset=utf-8"
        } else if head.method != .GET && head.method != .HEAD {
            status = .methodNotAllowed
            body = Array("only GET\n".utf8)
            contentType = "text/plain; charset=utf-8"
        } else {
            body = registry.emitToBuffer()
        }
        var headers = HTTPHeaders([("content-type", contentType), ("content-length", "\(body.count)")])
        if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
        if head.method == .HEAD { body = [] }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}
