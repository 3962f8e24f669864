// Channel handlers that connect sockets to the dispatcher: one per TCP connection (records
// in, records out, bounded calls in flight with read backpressure, replies held back while
// the peer is not reading, idle timeout, a deadline for each begun record, graceful
// quiesce) and one per UDP socket (datagrams, with the duplicate request cache and a cap
// on calls in flight), plus two on each TCP listener: admission and failed-accept counting.
// They trust nothing from the peer; the record decoder in front has already capped sizes.

import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The memory layout of Linux's `struct ucred` (declared only under _GNU_SOURCE).
struct PeerCredentialsLayout: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

extension PeerCredentials {
    /// Who is at the other end of a unix-domain connection, by SO_PEERCRED; nil for other
    /// sockets. Call on the channel's event loop (the child channel initializer runs there),
    /// where the answer is at hand without waiting.
    static func of(_ channel: any Channel) -> PeerCredentials? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        channel.eventLoop.preconditionInEventLoop()
        // SO_PEERCRED (17) fills a struct ucred {pid, uid, gid}.
        let future: EventLoopFuture<PeerCredentialsLayout> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: 17)
        var credentials: PeerCredentials?
        future.assumeIsolated().whenSuccess { value in
            credentials = PeerCredentials(pid: value.pid, uid: value.uid, gid: value.gid)
        }
        return credentials
    }
}

/// Sent down a server connection's pipeline to ask it to finish its calls and close.
struct RPCServerQuiesceEvent: Sendable {}

/// On a listener: when accept() fails (EMFILE, ENFILE, ENOBUFS, ENOMEM), stops accepting
/// for `pause` and counts the failure (logged at a bounded rate). The listening socket
/// stays readable while a connection waits that cannot be accepted, and epoll is
/// level-triggered, so without the pause the event loop retries at once, forever: 100 %
/// CPU for as long as the descriptors are gone (ATTACKS.md #6). NIO's own
/// `AcceptBackoffHandler` does not help here: it delays the next `read()`, but after a
/// failed accept the channel still has its read pending and stays registered for
/// readability, so no `read()` comes through the pipeline to delay. Switching autoRead off
/// does unregister it.
final class ListenerBackoffHandler: ChannelInboundHandler {
    typealias InboundIn = any Channel

    private let monitor: RPCServerMonitor
    private let pause: TimeAmount
    private var paused = false

    init(monitor: RPCServerMonitor, pause: TimeAmount = .milliseconds(250)) {
        self.monitor = monitor
        self.pause = pause
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        monitor.record(.acceptError, detail: ["error": "\(error)"]) { $0.acceptErrors += 1 }
        guard !paused, context.channel.isActive else { return }
        paused = true
        context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: pause) {
            let (handler, context) = bound.value
            handler.paused = false
            if context.channel.isActive {
                context.channel.setOption(.autoRead, value: true).whenComplete { _ in }
            }
        }
    }
}

/// On a TCP listener, ahead of NIO's accept handler: asks `admit` about each accepted
/// connection and closes a refused one at once, so that it never gets socket options, a
/// pipeline or an event-loop registration. Refused in the child initializer instead, each
/// connection of a churn flood cost the server about 75 µs of CPU and three hops between
/// event-loop threads (docs/RELIABILITY.md, churn).
final class ConnectionAdmissionHandler: ChannelInboundHandler {
    typealias InboundIn = any Channel

    private let admit: (any Channel) -> Bool

    init(admit: @escaping (any Channel) -> Bool) {
        self.admit = admit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let accepted = unwrapInboundIn(data)
        if admit(accepted) {
            context.fireChannelRead(data)
        } else {
            accepted.close(promise: nil)
        }
    }
}

/// One TCP connection: bytes in, records framed here (``RecordMarkingDecoder/nextRecord(from:)``),
/// calls dispatched, replies out. The framing and the idle timeout live in this handler
/// rather than in NIO's `ByteToMessageHandler` and `IdleStateHandler` ahead of it: each
/// pipeline stage costs every call a traversal in each direction, and the two cost about
/// 5,000 of the ~30,000 instructions a small call took in the server's user space
/// (callgrind, docs/PERFORMANCE.md).
final class RPCServerTCPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let dispatcher: RPCDispatcher
    private let monitor: RPCServerMonitor
    private let maximumInFlight: Int
    private let recordDeadline: TimeAmount
    private let idleTimeout: TimeAmount
    private let peer: PeerCredentials?
    /// Holds at most one record's worth plus what one read delivered: the decoder refuses a
    /// fragment header over the record limit before its bytes are kept.
    private var records: RecordStream
    private var inFlight = 0
    /// A record has begun and has not been passed on: it arrived in more than one read, and
    /// its deadline is armed (while reading is on).
    private var recordOpen = false
    /// Closes the connection when the open record is not complete in time; armed only
    /// while a record is open and reading is on.
    private var recordTimer: Scheduled<Void>?
    /// When something was last read, for the idle timeout; checked by `idleTimer`.
    private var lastReadAt = NIODeadline.now()
    private var readSinceCheck = false
    private var idleTimer: Scheduled<Void>?
    /// Too many calls running: stop reading until half of them are done.
    private var pausedForCalls = false
    /// Whether reading is currently switched off (autoRead false).
    private var readsPaused = false
    /// Records received while the channel was not writable. A peer that does not read its
    /// replies must not make the server run its calls and queue every reply: calls wait here
    /// (reading is off, so at most what one read delivered) until the replies drain.
    private var held = CircularBuffer<ByteBuffer>()
    private var quiescing = false
    /// A call's flavor asked for this connection to be closed (``RPCAuthDecision/disconnecting(_:)``).
    private var disconnecting = false
    /// The channel went inactive: nothing more is framed or run.
    private var closed = false
    private var insideRead = false
    private var flushPending = false
    private var callContext = RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil)

    /// `peer`: the kernel-verified credentials of a unix-socket peer (nil on TCP).
    init(dispatcher: RPCDispatcher, monitor: RPCServerMonitor, maximumInFlight: Int, maximumRecordSize: Int,
         recordDeadline: TimeAmount, idleTimeout: TimeAmount, peer: PeerCredentials?) {
        self.dispatcher = dispatcher
        self.monitor = monitor
        self.maximumInFlight = maximumInFlight
        self.records = RecordStream(maximumRecordSize: maximumRecordSize)
        self.recordDeadline = recordDeadline
        self.idleTimeout = idleTimeout
        self.peer = peer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startIdleTimer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        callContext = RPCCallContext(transport: .tcp, remoteAddress: context.channel.remoteAddress, localAddress: context.channel.localAddress, peer: peer)
        startIdleTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        records.discard()
        cancelRecordTimer()
        cancelIdleTimer()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelRecordTimer()
        cancelIdleTimer()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        readSinceCheck = true
        // Bytes that were already in the read buffer when the connection was condemned.
        guard !disconnecting, !closed else { return }
        records.append(Self.unwrapInboundIn(data))
        do {
            while !disconnecting, !closed, let record = try records.nextRecord() {
                received(record, context: context)
            }
        } catch {
            errorCaught(context: context, error: error)
            return
        }
        if !closed, !recordOpen, records.hasPartialRecord {
            // The read ended inside a record: from now until it is whole, it has a deadline,
            // so that a peer trickling bytes cannot keep a half record (and this connection).
            recordOpen = true
            armRecordTimer(context: context)
        }
    }

    private func received(_ record: ByteBuffer, context: ChannelHandlerContext) {
        // The open record (if any) is this one, and it is complete.
        recordOpen = false
        cancelRecordTimer()
        if !held.isEmpty || !context.channel.isWritable {
            held.append(record)
            updateReading(context: context)
            return
        }
        insideRead = true
        dispatch(record, context: context)
        insideRead = false
    }

    private func dispatch(_ record: ByteBuffer, context: ChannelHandlerContext) {
        inFlight += 1
        if inFlight >= maximumInFlight {
            pausedForCalls = true
            updateReading(context: context)
        }
        let outcome = dispatcher.handle(
            message: record, context: callContext, allocator: context.channel.allocator, eventLoop: context.eventLoop
        ) {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            return { reply, disconnect in
                let (handler, context) = bound.value
                handler.finished(reply: reply, disconnect: disconnect, context: context)
            }
        }
        switch consume outcome {
        case let .answered(reply, disconnect):
            finished(reply: reply, disconnect: disconnect, context: context)
        case .pending:
            break
        }
    }

    private func finished(reply: consuming ByteBuffer?, disconnect: Bool, context: ChannelHandlerContext) {
        inFlight -= 1
        // Owned, not borrowed, all the way from the dispatcher: writing the record mark into
        // the reserved 4 bytes then mutates the only reference instead of copying the reply.
        if var reply = consume reply, context.channel.isActive {
            RPCFraming.finishRecord(&reply)
            if insideRead {
                // Answered without suspending: batch the flush with the rest of this read.
                context.write(Self.wrapOutboundOut(reply), promise: nil)
                flushPending = true
            } else {
                context.writeAndFlush(Self.wrapOutboundOut(reply), promise: nil)
            }
        }
        if pausedForCalls && inFlight < maximumInFlight / 2 + 1 {
            pausedForCalls = false
            updateReading(context: context)
        }
        if disconnect && !disconnecting {
            // The caller's flavor refused it and wants it gone (a source over its rate):
            // read nothing more, drop what waits, close once the calls running have answered.
            disconnecting = true
            held.removeAll()
            monitor.record(.rateLimitedDisconnect, detail: ["remote": "\(remoteDescription)"]) {
                $0.connectionsClosedRateLimited += 1
            }
            updateReading(context: context)
        }
        if (quiescing || disconnecting) && inFlight == 0 {
            if flushPending {
                flushPending = false
                context.flush()
            }
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if readSinceCheck {
            readSinceCheck = false
            lastReadAt = .now()
        }
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The peer read some replies: run the held calls until the buffer fills again. This
        // is outside a read, so each reply is flushed at once (no channelReadComplete comes
        // while reading is off).
        while context.channel.isWritable, context.channel.isActive, let record = held.popFirst() {
            dispatch(record, context: context)
        }
        updateReading(context: context)
        context.fireChannelWritabilityChanged()
    }

    private func updateReading(context: ChannelHandlerContext) {
        let pause = disconnecting || pausedForCalls || !held.isEmpty
        guard pause != readsPaused else { return }
        readsPaused = pause
        context.channel.setOption(ChannelOptions.autoRead, value: !pause).whenComplete { _ in }
        // While the server is not reading, an open record cannot complete through any fault
        // of the peer: its deadline stops, and starts afresh when reading resumes.
        if pause {
            cancelRecordTimer()
        } else {
            armRecordTimer(context: context)
        }
    }

    private func armRecordTimer(context: ChannelHandlerContext) {
        guard recordOpen, !readsPaused, recordTimer == nil, context.channel.isActive else { return }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        recordTimer = context.eventLoop.scheduleTask(in: recordDeadline) {
            let (handler, context) = bound.value
            handler.recordTimer = nil
            guard handler.recordOpen, !handler.readsPaused else { return }
            handler.monitor.record(.recordDeadline, detail: ["remote": "\(handler.remoteDescription)"]) {
                $0.connectionsClosedRecordDeadline += 1
            }
            context.close(promise: nil)
        }
    }

    private func cancelRecordTimer() {
        recordTimer?.cancel()
        recordTimer = nil
    }

    private var remoteDescription: String {
        if let peer { return "uid \(peer.uid)" }
        return callContext.remoteAddress.map { "\($0)" } ?? "-"
    }

    private func startIdleTimer(context: ChannelHandlerContext) {
        guard idleTimer == nil, !closed else { return }
        lastReadAt = .now()
        scheduleIdleCheck(in: idleTimeout, context: context)
    }

    private func scheduleIdleCheck(in delay: TimeAmount, context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = bound.value
            handler.checkIdle(context: context)
        }
    }

    private func checkIdle(context: ChannelHandlerContext) {
        idleTimer = nil
        guard !closed else { return }
        let idleFor = NIODeadline.now() - lastReadAt
        guard idleFor >= idleTimeout else {
            scheduleIdleCheck(in: idleTimeout - idleFor, context: context)
            return
        }
        // Nothing arrived for the idle period: a silent peer, one that sent part of a record
        // and stalled, or one whose calls are held because it reads no replies. Calls still
        // running keep the connection open (and it is checked again a period later).
        if inFlight == 0 {
            dispatcher.logger.debug("closing idle connection", metadata: ["remote": "\(remoteDescription)"])
            context.close(promise: nil)
        } else {
            scheduleIdleCheck(in: idleTimeout, context: context)
        }
    }

    private func cancelIdleTimer() {
        idleTimer?.cancel()
        idleTimer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RPCServerQuiesceEvent {
            quiescing = true
            if inFlight == 0 { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Framing errors (oversized record) and socket errors end this connection only.
        // Framing errors are what garbage on the port looks like (an HTTP request reads as a
        // 1.1 GB fragment): counted and logged once per interval, however many come.
        if error is RecordMarkingError {
            monitor.record(.framingError, detail: ["remote": "\(remoteDescription)", "error": "\(error)"]) {
                $0.connectionsClosedFramingError += 1
            }
        } else {
            dispatcher.logger.debug("closing connection after error", metadata: ["error": "\(error)", "remote": "\(remoteDescription)"])
        }
        context.close(promise: nil)
    }
}

final class RPCServerUDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let dispatcher: RPCDispatcher
    private let monitor: RPCServerMonitor
    private let maximumInFlight: Int
    private var cache: DuplicateRequestCache
    private var localAddress: SocketAddress?
    private var insideRead = false
    private var flushPending = false
    /// Calls started and not yet completed: each may hold a task, its datagram and
    /// whatever its authentication or procedure allocated.
    private var inFlight = 0
    private var highWater = 0
    /// Datagrams counted here and added to the shared statistics once per read batch.
    private var receivedUnreported = 0
    private var purgeTask: RepeatedTask?

    init(dispatcher: RPCDispatcher, monitor: RPCServerMonitor, maximumInFlight: Int, cache: DuplicateRequestCache) {
        precondition(maximumInFlight > 0)
        self.dispatcher = dispatcher
        self.monitor = monitor
        self.maximumInFlight = maximumInFlight
        self.cache = cache
    }

    func channelActive(context: ChannelHandlerContext) {
        localAddress = context.channel.localAddress
        // Expired replies go when their time is up even if no datagram comes to push them
        // out: a quiet socket gives its memory back.
        let period = TimeAmount.nanoseconds(max(cache.timeToLive.nanoseconds / 2, 1_000_000_000))
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        purgeTask = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            bound.value.cache.dropExpired(now: .now())
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        purgeTask?.cancel()
        purgeTask = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        purgeTask?.cancel()
        purgeTask = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        let remote = envelope.remoteAddress
        receivedUnreported += 1
        let room = inFlight < maximumInFlight
        // Exact retransmissions are answered (or ignored while the original runs) before
        // anything else looks at them, even when no new call may start.
        let key = DuplicateRequestCache.key(for: envelope.data, from: remote)
        if let key {
            switch cache.check(key, now: .now(), admit: room) {
            case .execute:
                break
            case .drop:
                return
            case .refused:
                refuse(remote)
                return
            case var .resend(reply):
                RPCFraming.finishDatagram(&reply)
                context.writeAndFlush(Self.wrapOutboundOut(AddressedEnvelope(remoteAddress: remote, data: reply)), promise: nil)
                return
            }
        } else if !room {
            refuse(remote)
            return
        }
        inFlight += 1
        if inFlight > highWater {
            highWater = inFlight
            let value = highWater
            monitor.count { $0.udpCallsInFlightHighWater = max($0.udpCallsInFlightHighWater, value) }
        }
        let callContext = RPCCallContext(transport: .udp, remoteAddress: remote, localAddress: localAddress)
        insideRead = true
        let outcome = dispatcher.handle(
            message: envelope.data, context: callContext, allocator: context.channel.allocator, eventLoop: context.eventLoop
        ) {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            return { reply, _ in  // no connection to close
                let (handler, context) = bound.value
                handler.finished(reply: reply, key: key, remote: remote, context: context)
            }
        }
        switch consume outcome {
        case let .answered(reply, _):
            finished(reply: reply, key: key, remote: remote, context: context)
        case .pending:
            break
        }
        insideRead = false
    }

    private func finished(reply: consuming ByteBuffer?, key: DuplicateRequestCache.Key?, remote: SocketAddress, context: ChannelHandlerContext) {
        inFlight -= 1
        if let key {
            cache.complete(key, reply: reply, now: .now())
        }
        guard var reply = consume reply else { return }
        RPCFraming.finishDatagram(&reply)
        let out = AddressedEnvelope(remoteAddress: remote, data: reply)
        if insideRead {
            context.write(Self.wrapOutboundOut(out), promise: nil)
            flushPending = true
        } else {
            context.writeAndFlush(Self.wrapOutboundOut(out), promise: nil)
        }
    }

    /// Drops a new call because the socket has as many running as it may: like a datagram
    /// lost on the way, which UDP clients already retransmit for.
    private func refuse(_ remote: SocketAddress) {
        monitor.record(.udpInFlightLimit, detail: ["remote": "\(remote)", "limit": "\(maximumInFlight)"]) {
            $0.udpCallsDroppedInFlightLimit += 1
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if receivedUnreported > 0 {
            let received = receivedUnreported
            receivedUnreported = 0
            monitor.count { $0.udpDatagramsReceived += received }
        }
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A datagram socket error (e.g. ICMP port unreachable from a vanished client) is not
        // fatal for the socket.
        dispatcher.logger.debug("UDP error", metadata: ["error": "\(error)"])
    }
}
