// The ONC RPC server: listens on TCP and/or UDP, hands every message to the dispatcher,
// and shuts down gracefully (stop accepting, let calls in flight finish, then close).
// Programs and authenticators are fixed at construction, so dispatch takes no locks.
// It trusts no peer to behave: connections are capped globally and per peer (address or
// uid), records must complete in time, UDP calls in flight are capped, accept failures
// back off instead of spinning, and every refusal is counted and logged at a bounded rate.

import Foundation
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
        /// Connections one client may hold on a TCP listener (one IPv4 address, or one IPv6
        /// /64); more are closed as soon as they are accepted. The default, 1/16 of
        /// `maximumConnections`, lets a busy multi-user client host (every user's process
        /// with its own connection) in, while one address alone can take at most a
        /// sixteenth of the server.
        public var maximumConnectionsPerAddress = 256
        /// New connections one TCP client address (IPv4, or IPv6 /64) may open: a burst, then
        /// so many per second; more are closed as soon as they are accepted, before any
        /// handler is set up. A client opening and dropping connections as fast as it can
        /// costs the server an accept, a pipeline and a close each (9,000 a second from one
        /// address took 73 % of a CPU here), at every other client's expense. The default
        /// is far above what one client host's processes open.
        public var connectionRatePerAddress = ConnectionRate(perSecond: 250, burst: 1000)
        /// Connections one local user (the uid the kernel reports) may hold on a unix-socket
        /// listener; more are closed as soon as they are accepted. The default, 1/32 of
        /// `maximumConnections`, is far above what one user's processes hold on a keyserver
        /// (one connection per client), and keeps any local user from locking others out of
        /// `keylogin` or secure calls.
        public var maximumConnectionsPerUID = 128
        /// Uids that `maximumConnectionsPerUID` does not apply to (they still count towards
        /// `maximumConnections`). Root by default: root can stop the server anyway, so a cap
        /// protects nobody from it, and root's daemons (servers verifying callers through
        /// the keyserver) are the keyserver's heaviest legitimate clients.
        public var connectionLimitExemptUIDs: Set<UInt32> = [0]
        /// Once the first bytes of a record have arrived, the whole record must arrive
        /// within this, or the connection is closed: a peer trickling a byte now and then
        /// keeps the idle timeout from firing, but not this. 30 s is ample for a 1 MiB
        /// record even at 1 Mbit/s. (Not counted while the server itself has stopped
        /// reading from the connection.)
        public var recordDeadline: TimeAmount = .seconds(30)
        /// Calls one UDP socket may have running at once (calls whose authentication or
        /// procedure suspends); datagrams beyond are dropped, as a lost datagram would be,
        /// and the client retransmits. 256 held datagrams are at most 16 MiB.
        public var maximumUDPCallsInFlight = 256
        /// Entries in the UDP duplicate request cache.
        public var duplicateRequestCacheCapacity = 8192
        /// Bytes of replies the UDP duplicate request cache may hold; the oldest go first.
        public var duplicateRequestCacheMaximumBytes = 16 << 20
        /// How long a UDP reply stays in the duplicate request cache.
        public var duplicateRequestCacheTimeToLive: TimeAmount = .seconds(120)
        /// Refused connections, dropped datagrams and closed connections are logged at most
        /// once per this interval for each kind, with a count.
        public var refusalLogInterval: TimeAmount = .seconds(10)
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
        var admission: ConnectionAdmission
        var isShuttingDown = false
        var shutdownHooks: [@Sendable () async -> Void] = []
    }

    public let configuration: Configuration
    public let programs: [RPCProgram]
    let dispatcher: RPCDispatcher
    let monitor: RPCServerMonitor
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state: NIOLockedValueBox<State>

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
        self.monitor = RPCServerMonitor(logger: logger, interval: configuration.refusalLogInterval, timers: group)
        self.state = NIOLockedValueBox(State(admission: ConnectionAdmission(
            maximumConnections: configuration.maximumConnections,
            maximumPerAddress: configuration.maximumConnectionsPerAddress,
            maximumPerUID: configuration.maximumConnectionsPerUID,
            exemptUIDs: configuration.connectionLimitExemptUIDs,
            rate: configuration.connectionRatePerAddress
        )))
    }

    /// Where the server listens, in the order the listeners were started.
    public var endpoints: [RPCServerEndpoint] { state.withLockedValue { $0.endpoints } }

    /// Number of open TCP connections.
    public var connectionCount: Int { state.withLockedValue { $0.connections.count } }

    /// What the server has refused, dropped or closed to protect itself so far.
    public var statistics: RPCServerStatistics { monitor.statistics }

    /// Starts listening for TCP connections; returns the bound address (port 0 picks one).
    @discardableResult
    public func listenTCP(host: String = "127.0.0.1", port: Int = 0) async throws -> SocketAddress {
        // Sockets are created on the event loop that will own them (the bootstrap makes the
        // socket on the calling thread; a thread's network namespace decides where it lives).
        let loop = group.next()
        let childGroup = group
        let monitor = self.monitor
        let channel = try await loop.flatSubmit { ServerBootstrap(group: loop, childGroup: childGroup)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { [weak self] channel in
                // Admission runs on the listener, ahead of NIO's accept handler: a refused
                // connection is closed before it gets options, a pipeline or a loop.
                Self.addListenerHandlers(to: channel, monitor: monitor, admission: ConnectionAdmissionHandler { [weak self] accepted in
                    self?.admitAccepted(accepted) ?? false
                })
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [weak self] channel in
                guard let self else { return channel.close() }
                return self.addConnectionHandlers(to: channel, peer: nil)
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
        let loop = group.next()
        let childGroup = group
        let monitor = self.monitor
        let channel = try await loop.flatSubmit { ServerBootstrap(group: loop, childGroup: childGroup)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelInitializer { channel in Self.addListenerHandlers(to: channel, monitor: monitor) }
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [weak self] channel in
                guard let self else { return channel.close() }
                // The kernel's word on who connected: it decides the per-uid cap and is what
                // handlers see in `request.context.peer`.
                return self.initializeConnection(channel, peer: PeerCredentials.of(channel))
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
        let monitor = self.monitor
        let loop = group.next()
        let channel = try await loop.flatSubmit { DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            // Whole datagrams: the default 2 KiB receive buffer would truncate larger calls.
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RPCServerUDPHandler(
                        dispatcher: dispatcher,
                        monitor: monitor,
                        maximumInFlight: configuration.maximumUDPCallsInFlight,
                        cache: DuplicateRequestCache(
                            capacity: configuration.duplicateRequestCacheCapacity,
                            timeToLive: configuration.duplicateRequestCacheTimeToLive,
                            maximumReplyBytes: configuration.duplicateRequestCacheMaximumBytes
                        )
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
        monitor.flushAll()
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

    /// Admits a new unix-domain connection and builds its pipeline, or closes it at once.
    /// (The uid comes from the socket, read on the connection's own loop, so unix admission
    /// runs here; TCP connections were admitted on the listener.)
    private func initializeConnection(_ channel: any Channel, peer credentials: PeerCredentials?) -> EventLoopFuture<Void> {
        guard admit(channel, peer: credentials.map { ConnectionPeer.uid($0.uid) }) else {
            return channel.close()
        }
        return addConnectionHandlers(to: channel, peer: credentials)
    }

    /// Builds an admitted connection's pipeline.
    private func addConnectionHandlers(to channel: any Channel, peer credentials: PeerCredentials?) -> EventLoopFuture<Void> {
        let configuration = self.configuration
        let handler = RPCServerTCPHandler(
            dispatcher: dispatcher, monitor: monitor, maximumInFlight: configuration.maximumCallsInFlightPerConnection,
            maximumRecordSize: configuration.maximumRecordSize, recordDeadline: configuration.recordDeadline,
            idleTimeout: configuration.idleTimeout, peer: credentials
        )
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(handler)
        }
    }

    /// A TCP connection, on the listener. One whose peer address is already gone (reset
    /// before it was accepted) is refused: it is dead, and without an address it would
    /// escape the per-address bounds.
    private func admitAccepted(_ channel: any Channel) -> Bool {
        guard let peer = ConnectionPeer(remote: channel.remoteAddress) else { return false }
        return admit(channel, peer: peer)
    }

    /// Counts a new connection in, or refuses it when shutting down, full, or when its peer
    /// holds as many connections as one peer may.
    private func admit(_ channel: any Channel, peer: ConnectionPeer?) -> Bool {
        let id = ObjectIdentifier(channel)
        let now = Date().timeIntervalSince1970
        let (shuttingDown, refusal) = state.withLockedValue { state -> (Bool, ConnectionAdmission.Refusal?) in
            if state.isShuttingDown { return (true, nil) }
            if let refusal = state.admission.admit(peer, now: now) { return (false, refusal) }
            state.connections[id] = channel
            return (false, nil)
        }
        if shuttingDown { return false }
        guard let refusal else {
            channel.closeFuture.whenComplete { [weak self] _ in
                self?.state.withLockedValue { state in
                    state.connections.removeValue(forKey: id)
                    state.admission.release(peer)
                }
            }
            return true
        }
        // Refusals come in floods when they come at all: counted, and logged once per interval.
        switch refusal {
        case .serverFull:
            monitor.record(.refusedServerFull, detail: ["remote": "\(channel.remoteAddress.map { "\($0)" } ?? "-")"]) {
                $0.connectionsRefusedServerFull += 1
            }
        case .peerFull:
            monitor.record(.refusedPeerFull, detail: ["peer": "\(peer.map { "\($0)" } ?? "-")"]) {
                $0.connectionsRefusedPeerFull += 1
            }
        case .peerRate:
            monitor.record(.refusedPeerRate, detail: ["peer": "\(peer.map { "\($0)" } ?? "-")"]) {
                $0.connectionsRefusedPeerRate += 1
            }
        }
        return false
    }

    /// A listener's handlers: a pause in accepting when accept() fails for want of file
    /// descriptors or memory, instead of spinning (ATTACKS.md #6; see `ListenerBackoffHandler`),
    /// and, for TCP, admission of each accepted connection.
    private static func addListenerHandlers(to channel: any Channel, monitor: RPCServerMonitor,
                                            admission: ConnectionAdmissionHandler? = nil) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(ListenerBackoffHandler(monitor: monitor))
            if let admission { try sync.addHandler(admission) }
        }
    }
}
