// The ONC RPC client: async/await calls over one TCP connection (many outstanding calls,
// matched by xid) or a connected UDP socket (retransmission with backoff). The connection
// is made on first use and made again after it drops, so a restarted server is reached by
// the next call. Authentication is a plug-in (`RPCClientAuthenticator`).

import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XDR

/// The transport a client uses.
public enum RPCTransport: String, Sendable, CaseIterable {
    case tcp, udp
}

/// A client for one program version on one server.
///
/// ```swift
/// let client = try RPCClient(transport: .tcp, host: "127.0.0.1", port: 2049,
///                            program: 100003, version: 3, authenticator: AuthSysClient())
/// let reply: UInt32 = try await client.call(1, XDRVoid(), returning: UInt32.self)
/// await client.close()
/// ```
public final class RPCClient: Sendable {
    /// Timeouts and limits.
    public struct Configuration: Sendable {
        /// Time allowed for one call, retransmissions included (libtirpc's default is 25 s).
        public var callTimeout: TimeAmount = .seconds(25)
        public var connectTimeout: TimeAmount = .seconds(10)
        /// Largest reply record accepted over TCP.
        public var maximumRecordSize = RecordMarkingDecoder.defaultMaximumRecordSize
        /// First UDP retransmission after this long, then doubling…
        public var udpInitialRetransmitInterval: TimeAmount = .milliseconds(500)
        /// …up to this interval.
        public var udpMaximumRetransmitInterval: TimeAmount = .seconds(4)
        /// How often a call is sent again after the server denies it and the authenticator
        /// refreshes its credentials.
        public var maximumAuthRefreshes = 2
        /// When a TCP connection closes before a call's reply arrived (typically: the server
        /// restarted), connect again and retransmit the call once with the same xid, as
        /// kernel RPC clients do. The server may then run the call twice if it had already run
        /// it; turn this off for procedures where that matters and the server has no
        /// duplicate request cache.
        public var retransmitAfterReconnect = true

        public init() {}
    }

    private enum ConnectionState {
        case idle
        case connecting(EventLoopFuture<Connection>)
        case connected(Connection)
        case closed
    }

    /// A channel and its call handler, which calls are handed to directly on the channel's
    /// event loop (see `RPCClientHandler`).
    private struct Connection: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<RPCClientHandler>
    }

    public let transport: RPCTransport
    public let address: SocketAddress
    public let program: UInt32
    public let version: UInt32
    public let authenticator: any RPCClientAuthenticator
    public let configuration: Configuration
    /// The event loop the client's connection lives on (chosen from `group` once, so that a
    /// reconnection stays on it too).
    public let eventLoop: any EventLoop
    /// Runs a task's jobs on ``eventLoop``. Calls made from a task that prefers it
    /// (`withTaskExecutorPreference(client.taskExecutor) { … }`, child tasks included) are
    /// written and resumed on the connection's own thread: no thread hop per call, about
    /// 1.5× the sequential call rate of a task on Swift's pool (docs/PERFORMANCE.md). The
    /// task then runs on an I/O thread, so it must not block.
    public let taskExecutor: EventLoopTaskExecutor
    private let connection = NIOLockedValueBox(ConnectionState.idle)
    /// Serialises credential-making and writing for authenticators that need calls in order.
    private let transmissionOrder = OrderedTransmissionGate()
    private let nextXID: NIOLockedValueBox<UInt32>

    public init(
        transport: RPCTransport,
        address: SocketAddress,
        program: UInt32,
        version: UInt32,
        authenticator: any RPCClientAuthenticator = AuthNoneClient(),
        configuration: Configuration = Configuration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.transport = transport
        self.address = address
        self.program = program
        self.version = version
        self.authenticator = authenticator
        self.configuration = configuration
        self.eventLoop = group.next()
        self.taskExecutor = EventLoopTaskExecutor(eventLoop)
        // Random start so that a restarted client does not reuse the xids of its previous
        // life inside the server's duplicate request cache.
        self.nextXID = NIOLockedValueBox(UInt32.random(in: 1...UInt32.max))
    }

    /// A client for `host:port` (a numeric address or a name resolved now).
    public convenience init(
        transport: RPCTransport,
        host: String,
        port: Int,
        program: UInt32,
        version: UInt32,
        authenticator: any RPCClientAuthenticator = AuthNoneClient(),
        configuration: Configuration = Configuration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        let address: SocketAddress
        do {
            address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        } catch {
            throw RPCClientError.cannotConnect(address: "\(host):\(port)", reason: "cannot resolve host: \(error)")
        }
        self.init(
            transport: transport, address: address, program: program, version: version,
            authenticator: authenticator, configuration: configuration, group: group
        )
    }

    deinit {
        if case let .connected(current) = connection.withLockedValue({ $0 }) {
            current.channel.close(promise: nil)
        }
    }

    // MARK: calls

    /// Calls `procedure` with XDR-encoded `arguments`; returns the XDR-encoded results.
    @inlinable
    public func call(
        procedure: UInt32,
        arguments: ByteBuffer = ByteBuffer(),
        timeout: TimeAmount? = nil
    ) async throws -> ByteBuffer {
        try await call(program: program, version: version, procedure: procedure, arguments: arguments, timeout: timeout)
    }

    /// Calls `procedure` with typed arguments and decodes the typed result, which must use
    /// the results exactly.
    public func call<Args: XDREncodable, Result: XDRDecodable>(
        _ procedure: UInt32,
        _ arguments: Args,
        returning: Result.Type = Result.self,
        timeout: TimeAmount? = nil
    ) async throws -> Result {
        let results = try await call(procedure: procedure, arguments: arguments.xdrEncoded(), timeout: timeout)
        do {
            return try results.decodeXDRExactly(Result.self)
        } catch {
            throw RPCClientError.badResults(error)
        }
    }

    /// Calls NULL (procedure 0): the classic "is it there" ping.
    public func ping(timeout: TimeAmount? = nil) async throws {
        _ = try await call(procedure: 0, timeout: timeout)
    }

    /// Calls a procedure of another program or version on the same server and connection
    /// (rpcbind clients speak several versions).
    @inlinable
    public func call(
        program: UInt32,
        version: UInt32,
        procedure: UInt32,
        arguments: ByteBuffer,
        timeout: TimeAmount? = nil
    ) async throws -> ByteBuffer {
        try await call(program: program, version: version, procedure: procedure, arguments: arguments,
                       timeout: timeout, authenticator: authenticator)
    }

    /// Calls a procedure with another authenticator than the client's own, on the same
    /// connection. RPCSEC_GSS uses this for its context-creation and destruction calls.
    public func call(
        program: UInt32,
        version: UInt32,
        procedure: UInt32,
        arguments: ByteBuffer,
        timeout: TimeAmount? = nil,
        authenticator: any RPCClientAuthenticator
    ) async throws -> ByteBuffer {
        let timeout = timeout ?? configuration.callTimeout
        var refreshes = 0
        while true {
            let xid = nextXID.withLockedValue { value -> UInt32 in
                defer { value = value &+ 1 == 0 ? 1 : value &+ 1 }
                return value
            }
            let header = RPCCallHeader(xid: xid, program: program, version: version, procedure: procedure)
            let prepared: RPCPreparedCall
            let reply: RPCReply
            // A turn is held until the reply has been validated (below): a call that holds
            // the order until its reply (AUTH_DH's fullname) lets the next one go only once
            // the authenticator has taken what the reply brings (the nickname).
            var turn: OrderedTransmissionGate.Turn?
            defer { turn?.release() }
            if authenticator.requiresOrderedTransmission,
               let sent = try await sendInOrderWithoutWaiting(header, arguments: arguments, authenticator: authenticator, timeout: timeout) {
                (prepared, reply) = sent
            } else {
                turn = authenticator.requiresOrderedTransmission ? await transmissionOrder.acquire() : nil
                if let made = try authenticator.prepareImmediately(header, arguments: arguments), !made.holdsOrderUntilReply {
                    prepared = made
                } else {
                    prepared = try await authenticator.prepare(header, arguments: arguments, client: self)
                }
                let message = Self.encode(header, prepared, for: transport)
                let rebuild: (@Sendable () async throws -> ByteBuffer)?
                if authenticator.freshCredentialsPerTransmission {
                    let transmissions = NIOLockedValueBox(0)
                    rebuild = { [weak self] in
                        guard let self else { throw RPCClientError.clientClosed }
                        var again = header
                        again.transmission = transmissions.withLockedValue { $0 += 1; return $0 }
                        return Self.encode(again, try await authenticator.prepare(again, arguments: arguments, client: self), for: self.transport)
                    }
                } else {
                    rebuild = nil
                }
                reply = try await send(xid: xid, message: message, timeout: timeout, rebuild: rebuild,
                                       written: prepared.holdsOrderUntilReply ? nil : turn)
            }

            switch reply.status {
            case let .accepted(verifier, .success(results)):
                do {
                    return try prepared.validateReply(verifier, results)
                } catch let error as RPCClientError {
                    throw error
                } catch {
                    throw RPCClientError.replyVerificationFailed("\(error)")
                }
            case .accepted(_, .programUnavailable):
                throw RPCClientError.programUnavailable(program: program)
            case let .accepted(_, .programMismatch(low, high)):
                throw RPCClientError.programMismatch(program: program, version: version, low: low, high: high)
            case .accepted(_, .procedureUnavailable):
                throw RPCClientError.procedureUnavailable(procedure: procedure)
            case .accepted(_, .garbageArguments):
                throw RPCClientError.garbageArguments
            case .accepted(_, .systemError):
                throw RPCClientError.systemError
            case let .denied(.rpcMismatch(low, high)):
                throw RPCClientError.rpcMismatch(low: low, high: high)
            case let .denied(.authError(status)):
                if refreshes < configuration.maximumAuthRefreshes, await authenticator.refresh(after: status) {
                    refreshes += 1
                    continue
                }
                throw RPCClientError.authError(status)
            }
        }
    }

    /// The whole message, with its TCP record mark already written: the mark goes into the
    /// reserved 4 bytes while this is the buffer's only reference. Written later, by the
    /// channel handler, it cost a copy of the whole message per call, because the call and
    /// its retry keep references to the buffer (issue 18).
    private static func encode(_ header: RPCCallHeader, _ prepared: RPCPreparedCall, for transport: RPCTransport) -> ByteBuffer {
        var buffer = RPCFraming.startMessage(
            allocator: ByteBufferAllocator(),
            capacity: 40 + prepared.credential.encodedSize + prepared.verifier.encodedSize + prepared.arguments.readableBytes
        )
        RPCCall.encodeHeader(
            xid: header.xid, program: header.program, version: header.version, procedure: header.procedure,
            credential: prepared.credential, verifier: prepared.verifier, into: &buffer
        )
        var arguments = prepared.arguments
        buffer.writeBuffer(&arguments)
        if transport == .tcp { RPCFraming.finishRecord(&buffer) }
        return buffer
    }

    /// An ordered call without waiting for a turn: when no call holds the transmission
    /// order or waits for it, and the authenticator can make the credentials at once, they
    /// are made and the write is queued on the channel's event loop under the order's lock,
    /// so the next call may go as soon as the lock is let go (a turn handed from task to task
    /// costs a task switch per call). nil: take a turn (`prepare` may wait). If the write or
    /// the connection fails, the same message is sent again as `send` would.
    private func sendInOrderWithoutWaiting(
        _ header: RPCCallHeader, arguments: ByteBuffer, authenticator: any RPCClientAuthenticator, timeout: TimeAmount
    ) async throws -> (RPCPreparedCall, RPCReply)? {
        struct MustWait: Error {}
        let connection: Connection
        if let open = openConnection() { connection = open } else { connection = try await activeConnection() }
        var prepared: RPCPreparedCall?
        var message: ByteBuffer?
        do {
            let reply = try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<RPCReply, any Error>) in
                do {
                    let queued = try transmissionOrder.ifFree { () throws -> Bool in
                        guard let made = try authenticator.prepareImmediately(header, arguments: arguments) else { return false }
                        precondition(!made.holdsOrderUntilReply, "prepareImmediately returned a call that holds the order")
                        let encoded = Self.encode(header, made, for: transport)
                        try checkSize(encoded)
                        prepared = made
                        message = encoded
                        Self.queue(encoded, xid: header.xid, timeout: timeout, rebuild: nil, on: connection, replyTo: continuation)
                        return true
                    }
                    if queued != true { continuation.resume(throwing: MustWait()) }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            return (prepared!, reply)
        } catch is MustWait {
            return nil
        } catch is RPCCallNotSent {
            forget(connection.channel)
        } catch RPCClientError.connectionClosed where transport == .tcp && configuration.retransmitAfterReconnect {
            forget(connection.channel)
        }
        // The first attempt failed after the message was made: once more, as `send` does.
        guard let prepared, let message else { throw RPCClientError.connectionClosed }
        return (prepared, try await send(xid: header.xid, message: message, timeout: timeout, rebuild: nil, attemptsMade: 1))
    }

    /// Hands one call to the connection's handler: at once when the caller runs on the
    /// connection's event loop (a task preferring its `EventLoopTaskExecutor`), otherwise
    /// queued onto the loop in order. Its reply, or `RPCCallNotSent` when the connection is
    /// already gone, resumes `continuation` on the event loop. Not awaited: one suspension
    /// per call (for the reply) instead of two.
    private static func queue(_ message: ByteBuffer, xid: UInt32, timeout: TimeAmount, rebuild: (@Sendable () async throws -> ByteBuffer)?,
                              on connection: Connection, replyTo continuation: UnsafeContinuation<RPCReply, any Error>) {
        let loop = connection.channel.eventLoop
        let call = OutboundRPCCall(
            xid: xid, message: message, reply: PendingReply(eventLoop: loop, continuation: continuation),
            timeout: timeout, rebuild: rebuild
        )
        if loop.inEventLoop {
            connection.handler.value.send(call)
        } else {
            let handler = connection.handler
            loop.execute { handler.value.send(call) }
        }
    }

    /// A message the transport cannot carry (a UDP datagram's limit, the record size) is
    /// refused before it is written.
    private func checkSize(_ message: ByteBuffer) throws {
        let size = message.readableBytes - 4
        if transport == .udp && size > 65_507 {
            throw RPCClientError.messageTooLarge(size: size, maximum: 65_507)
        }
        if transport == .tcp && size > configuration.maximumRecordSize {
            throw RPCClientError.messageTooLarge(size: size, maximum: configuration.maximumRecordSize)
        }
    }

    /// Sends one message and waits for the reply with its xid. If the connection turns out
    /// to be dead before the message could be written, connects again and sends once more
    /// (the server cannot have seen it); if it closes before the reply, retransmits once on
    /// a new connection when `retransmitAfterReconnect` allows.
    private func send(
        xid: UInt32, message: ByteBuffer, timeout: TimeAmount, rebuild: (@Sendable () async throws -> ByteBuffer)?,
        written: OrderedTransmissionGate.Turn? = nil, attemptsMade: Int = 0
    ) async throws -> RPCReply {
        try checkSize(message)
        var attempt = attemptsMade
        var message = message
        while true {
            attempt += 1
            // A resend after a reconnect needs fresh credentials too (RPCSEC_GSS: a new
            // sequence number, or the server would drop it as a replay).
            if attempt > 1, let rebuild { message = try await rebuild() }
            let connection: Connection
            if let open = openConnection() { connection = open } else { connection = try await activeConnection() }
            do {
                return try await withUnsafeThrowingContinuation { continuation in
                    Self.queue(message, xid: xid, timeout: timeout, rebuild: rebuild, on: connection, replyTo: continuation)
                    // The write is queued on the channel's event loop in order: the next call may go.
                    written?.release()
                }
            } catch is RPCCallNotSent {
                // The server cannot have seen it: connect again and send it once more.
                forget(connection.channel)
                if attempt < 2 { continue }
                throw RPCClientError.connectionClosed
            } catch RPCClientError.connectionClosed where transport == .tcp && configuration.retransmitAfterReconnect && attempt < 2 {
                forget(connection.channel)
                continue
            }
        }
    }

    // MARK: connection management

    /// The open connection, or nil: the synchronous check before `activeConnection()`, made
    /// first because an async function costs a frame and a task switch check per call even
    /// when it returns at once (issue 18).
    private func openConnection() -> Connection? {
        connection.withLockedValue { state in
            if case let .connected(current) = state, current.channel.isActive { return current }
            return nil
        }
    }

    /// The open connection, or a new one once it is made.
    private func activeConnection() async throws -> Connection {
        enum Next {
            case use(Connection)
            case wait(EventLoopFuture<Connection>)
        }
        let next: Next = try connection.withLockedValue { state in
            switch state {
            case .closed:
                throw RPCClientError.clientClosed
            case let .connected(current) where current.channel.isActive:
                return .use(current)
            case let .connecting(future):
                return .wait(future)
            case .idle, .connected:
                let future = self.connect()
                state = .connecting(future)
                return .wait(future)
            }
        }
        switch next {
        case let .use(current):
            return current
        case let .wait(future):
            do {
                return try await future.get()
            } catch let error as RPCClientError {
                throw error
            } catch {
                throw RPCClientError.cannotConnect(address: "\(address)", reason: errorInWords(error))
            }
        }
    }

    /// Starts a connection; the state is updated when it completes. Called with the lock held.
    private func connect() -> EventLoopFuture<Connection> {
        let configuration = self.configuration
        let remote = self.address
        let transport = self.transport
        // Create the socket on the event loop that will own it, not on whichever thread the
        // calling task runs on (a thread's network namespace decides where a socket lives).
        let loop = eventLoop
        let future: EventLoopFuture<Connection> = loop.flatSubmit {
            Self.makeChannel(transport: transport, remote: remote, configuration: configuration, loop: loop)
        }.flatMapThrowing { channel in
            do {
                let handler = try channel.pipeline.syncOperations.handler(type: RPCClientHandler.self)
                return Connection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
            } catch {
                channel.close(promise: nil)  // no handler (closed at once, handlers removed): not kept open
                throw error
            }
        }
        future.whenComplete { [weak self] result in
            guard let self else { return }
            self.connection.withLockedValue { state in
                guard case .connecting = state else {
                    // Closed meanwhile.
                    if case let .success(made) = result { made.channel.close(promise: nil) }
                    return
                }
                switch result {
                case let .success(made): state = .connected(made)
                case .failure: state = .idle
                }
            }
            if case let .success(made) = result {
                let channel = made.channel
                channel.closeFuture.whenComplete { [weak self] _ in self?.forget(channel) }
            }
        }
        return future
    }

    private static func makeChannel(
        transport: RPCTransport, remote: SocketAddress, configuration: Configuration, loop: any EventLoop
    ) -> EventLoopFuture<any Channel> {
        switch transport {
        case .tcp:
            // IPPROTO_TCP-level TCP_NODELAY (NIO skips it on unix sockets). The SOL_SOCKET-level
            // spelling would set SO_DEBUG, which unprivileged processes may not.
            return ClientBootstrap(group: loop)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            RPCClientHandler(isDatagram: false, retransmit: nil, maximumRecordSize: configuration.maximumRecordSize))
                    }
                }
                .connect(to: remote)
        case .udp:
            let bindHost = remote.protocol == .inet6 ? "::" : "0.0.0.0"
            return DatagramBootstrap(group: loop)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(DatagramToBufferHandler(remote: remote))
                        try sync.addHandler(RPCClientHandler(
                            isDatagram: true,
                            retransmit: RetransmitPolicy(
                                initial: configuration.udpInitialRetransmitInterval,
                                maximum: configuration.udpMaximumRetransmitInterval
                            )
                        ))
                    }
                }
                .bind(host: bindHost, port: 0)
                .flatMap { channel in
                    // Connect so the kernel only delivers datagrams from the server.
                    channel.connect(to: remote).map { channel }
                }
        }
    }

    /// Drops a dead channel so the next call connects again.
    private func forget(_ channel: any Channel) {
        connection.withLockedValue { state in
            if case let .connected(current) = state, current.channel === channel {
                state = .idle
            }
        }
    }

    /// Closes the connection; calls still waiting fail with `connectionClosed`, later calls
    /// with `clientClosed`.
    public func close() async {
        if case .closed = connection.withLockedValue({ $0 }) { return }
        await authenticator.clientWillClose(self)
        let previous = connection.withLockedValue { state -> ConnectionState in
            let previous = state
            state = .closed
            return previous
        }
        switch previous {
        case let .connected(current):
            try? await current.channel.close()
        case let .connecting(future):
            if let made = try? await future.get() { try? await made.channel.close() }
        case .idle, .closed:
            break
        }
    }
}

/// One call at a time through "make credentials, queue the write"; FIFO.
final class OrderedTransmissionGate: Sendable {
    private struct State {
        var busy = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let state = NIOLockedValueBox(State())

    /// Held by one call until its write is queued; releasing twice is harmless.
    final class Turn: Sendable {
        private let gate: OrderedTransmissionGate
        private let released = NIOLockedValueBox(false)
        init(gate: OrderedTransmissionGate) { self.gate = gate }
        func release() {
            let first = released.withLockedValue { done -> Bool in
                defer { done = true }
                return !done
            }
            if first { gate.pass() }
        }
    }

    func acquire() async -> Turn {
        let mustWait = state.withLockedValue { state -> Bool in
            if !state.busy {
                state.busy = true
                return false
            }
            return true
        }
        if mustWait {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if !state.busy {
                        state.busy = true
                        return true
                    }
                    state.waiting.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
        return Turn(gate: self)
    }

    /// Runs `body` holding the order, without waiting: only when no call holds it and none
    /// waits for it (a waiting call came first and goes first). nil, without running
    /// `body`, otherwise. `body` runs under the gate's lock: it must not block or wait.
    func ifFree<T>(_ body: () throws -> T) rethrows -> T? {
        try state.withLockedValue { state -> T? in
            guard !state.busy, state.waiting.isEmpty else { return nil }
            return try body()
        }
    }

    /// Hands the gate to the next waiter, or frees it.
    fileprivate func pass() {
        let next = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
