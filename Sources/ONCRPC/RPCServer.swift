// The ONC RPC server: listens on TCP and/or UDP, hands every message to the dispatcher,
// and shuts down gracefully (stop accepting, let calls in flight finish, then close).
// Programs and authenticators are fixed at construction, so dispatch takes no locks.

import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// One address a server listens on.
public struct RPCServerEndpoint: Sendable, Hashable {
    public var transport: RPCTransport
    public var address: SocketAddress
}

/// An ONC RPC v2 server.
///
/// ```swift
/// var program = RPCProgram(number: 0x2000_0001, version: 1)
/// program.addProcedure(1) { (text: String255, request: RPCRequest) async throws -> String255 in text }
/// let server = RPCServer(programs: [program])
/// let address = try await server.listenTCP(host: "127.0.0.1", port: 0)
/// // ... later
/// await server.shutdown()
/// ```
public final class RPCServer: Sendable {
    /// Limits and behaviour; the defaults suit a production server.
    public struct Configuration: Sendable {
        /// Largest TCP record accepted; larger ones close the connection.
        public var maximumRecordSize = RecordMarkingDecoder.defaultMaximumRecordSize
        /// Close a TCP connection with no calls in flight that sent nothing for this long.
        public var idleTimeout: TimeAmount = .seconds(120)
        /// Calls one TCP connection may have running before the server stops reading from it.
        public var maximumCallsInFlightPerConnection = 64
        /// Connections beyond this are closed as soon as they are accepted.
        public var maximumConnections = 4096
        /// Entries in the UDP duplicate request cache.
        public var duplicateRequestCacheCapacity = 8192
        /// How long a UDP reply stays in the duplicate request cache.
        public var duplicateRequestCacheTimeToLive: TimeAmount = .seconds(120)
        /// How long `shutdown()` waits for calls in flight before closing connections.
        public var shutdownGracePeriod: TimeAmount = .seconds(10)
        /// Authentication flavors accepted, one authenticator per flavor.
        public var authenticators: [any RPCServerAuthenticator] = [AuthNoneServer(), AuthSysServer()]

        public init() {}
    }

    private struct State {
        var listeners: [any Channel] = []
        var endpoints: [RPCServerEndpoint] = []
        var connections: [ObjectIdentifier: any Channel] = [:]
        var isShuttingDown = false
        var shutdownHooks: [@Sendable () async -> Void] = []
    }

    public let configuration: Configuration
    public let programs: [RPCProgram]
    let dispatcher: RPCDispatcher
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    public init(
        programs: [RPCProgram],
        configuration: Configuration = Configuration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "oncrpc.server")
    ) {
        self.programs = programs
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.dispatcher = RPCDispatcher(programs: programs, authenticators: configuration.authenticators, logger: logger)
    }

    /// Where the server listens, in the order the listeners were started.
    public var endpoints: [RPCServerEndpoint] { state.withLockedValue { $0.endpoints } }

    /// Number of open TCP connections.
    public var connectionCount: Int { state.withLockedValue { $0.connections.count } }

    /// Starts listening for TCP connections; returns the bound address (port 0 picks one).
    @discardableResult
    public func listenTCP(host: String = "127.0.0.1", port: Int = 0) async throws -> SocketAddress {
        let configuration = self.configuration
        let dispatcher = self.dispatcher
        // Sockets are created on the event loop that will own them (the bootstrap makes the
        // socket on the calling thread; a thread's network namespace decides where it lives).
        let loop = group.next()
        let childGroup = group
        let channel = try await loop.flatSubmit { ServerBootstrap(group: loop, childGroup: childGroup)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [weak self] channel in
                guard let self, self.admit(channel) else {
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: configuration.idleTimeout))
                    try sync.addHandler(ByteToMessageHandler(RecordMarkingDecoder(maximumRecordSize: configuration.maximumRecordSize)))
                    try sync.addHandler(RPCServerTCPHandler(dispatcher: dispatcher, maximumInFlight: configuration.maximumCallsInFlightPerConnection))
                }
            }
            .bind(host: host, port: port)
        }.get()
        try registerListener(channel, transport: .tcp)
        logger.info("listening", metadata: ["transport": "tcp", "address": "\(channel.localAddress.map { "\($0)" } ?? "-")"])
        return channel.localAddress!
    }

    /// Starts listening on a unix-domain stream socket at `path` (replacing a stale socket
    /// file), with the given permission bits. Handlers see the caller's kernel-verified
    /// uid in `request.context.peer`.
    @discardableResult
    public func listenUnix(path: String, mode: UInt32 = 0o666) async throws -> SocketAddress {
        let configuration = self.configuration
        let dispatcher = self.dispatcher
        let loop = group.next()
        let childGroup = group
        let channel = try await loop.flatSubmit { ServerBootstrap(group: loop, childGroup: childGroup)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [weak self] channel in
                guard let self, self.admit(channel) else {
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: configuration.idleTimeout))
                    try sync.addHandler(ByteToMessageHandler(RecordMarkingDecoder(maximumRecordSize: configuration.maximumRecordSize)))
                    try sync.addHandler(RPCServerTCPHandler(dispatcher: dispatcher, maximumInFlight: configuration.maximumCallsInFlightPerConnection))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
        }.get()
        #if canImport(Glibc)
        chmod(path, mode_t(mode))
        #endif
        try registerListener(channel, transport: .tcp)
        logger.info("listening", metadata: ["transport": "unix", "path": "\(path)"])
        return channel.localAddress!
    }

    /// Starts serving UDP; returns the bound address (port 0 picks one).
    @discardableResult
    public func listenUDP(host: String = "127.0.0.1", port: Int = 0) async throws -> SocketAddress {
        let configuration = self.configuration
        let dispatcher = self.dispatcher
        let loop = group.next()
        let channel = try await loop.flatSubmit { DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            // Whole datagrams: the default 2 KiB receive buffer would truncate larger calls.
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RPCServerUDPHandler(
                        dispatcher: dispatcher,
                        cacheCapacity: configuration.duplicateRequestCacheCapacity,
                        cacheTimeToLive: configuration.duplicateRequestCacheTimeToLive
                    ))
                }
            }
            .bind(host: host, port: port)
        }.get()
        try registerListener(channel, transport: .udp)
        logger.info("listening", metadata: ["transport": "udp", "address": "\(channel.localAddress.map { "\($0)" } ?? "-")"])
        return channel.localAddress!
    }

    /// Adds work to run at the start of `shutdown()` (for example unregistering from rpcbind).
    public func onShutdown(_ hook: @escaping @Sendable () async -> Void) {
        state.withLockedValue { $0.shutdownHooks.append(hook) }
    }

    /// Stops accepting, lets calls in flight finish (up to the grace period), then closes
    /// every connection. Safe to call more than once.
    public func shutdown() async {
        let (listeners, hooks, alreadyShuttingDown) = state.withLockedValue { state in
            let result = (state.listeners, state.shutdownHooks, state.isShuttingDown)
            state.isShuttingDown = true
            state.listeners = []
            state.shutdownHooks = []
            return result
        }
        if alreadyShuttingDown && listeners.isEmpty { return }
        for hook in hooks { await hook() }
        for listener in listeners {
            try? await listener.close()
        }
        let connections = state.withLockedValue { Array($0.connections.values) }
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(RPCServerQuiesceEvent())
        }
        let deadline = NIODeadline.now() + configuration.shutdownGracePeriod
        for connection in connections {
            let remaining = deadline - .now()
            if remaining > .zero {
                let timeout = connection.eventLoop.scheduleTask(in: remaining) { connection.close(promise: nil) }
                try? await connection.closeFuture.get()
                timeout.cancel()
            } else {
                try? await connection.close()
            }
        }
        logger.info("server stopped")
    }

    // MARK: bookkeeping

    private func registerListener(_ channel: any Channel, transport: RPCTransport) throws {
        let accepted = state.withLockedValue { state -> Bool in
            if state.isShuttingDown { return false }
            state.listeners.append(channel)
            if let address = channel.localAddress {
                state.endpoints.append(RPCServerEndpoint(transport: transport, address: address))
            }
            return true
        }
        if !accepted {
            channel.close(promise: nil)
            throw ChannelError.ioOnClosedChannel
        }
    }

    /// Counts a new connection in, or refuses it when shutting down or full.
    private func admit(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let admitted = state.withLockedValue { state -> Bool in
            if state.isShuttingDown || state.connections.count >= configuration.maximumConnections {
                return false
            }
            state.connections[id] = channel
            return true
        }
        if admitted {
            channel.closeFuture.whenComplete { [weak self] _ in
                self?.state.withLockedValue { _ = $0.connections.removeValue(forKey: id) }
            }
        } else {
            logger.warning("connection refused", metadata: ["remote": "\(channel.remoteAddress.map { "\($0)" } ?? "-")"])
        }
        return admitted
    }
}
