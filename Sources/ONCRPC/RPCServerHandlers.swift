// Channel handlers that connect sockets to the dispatcher: one per TCP connection (records
// in, records out, bounded calls in flight with read backpressure, replies held back while
// the peer is not reading, idle timeout, graceful quiesce) and one per UDP socket
// (datagrams, with the duplicate request cache).
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

/// Sent down a server connection's pipeline to ask it to finish its calls and close.
struct RPCServerQuiesceEvent: Sendable {}

final class RPCServerTCPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let dispatcher: RPCDispatcher
    private let maximumInFlight: Int
    private var inFlight = 0
    /// Too many calls running: stop reading until half of them are done.
    private var pausedForCalls = false
    /// Whether reading is currently switched off (autoRead false).
    private var readsPaused = false
    /// Records received while the channel was not writable. A peer that does not read its
    /// replies must not make the server run its calls and queue every reply: calls wait here
    /// (reading is off, so at most what one read delivered) until the replies drain.
    private var held = CircularBuffer<ByteBuffer>()
    private var quiescing = false
    private var insideRead = false
    private var flushPending = false
    private var callContext = RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil)

    init(dispatcher: RPCDispatcher, maximumInFlight: Int) {
        self.dispatcher = dispatcher
        self.maximumInFlight = maximumInFlight
    }

    func channelActive(context: ChannelHandlerContext) {
        callContext = RPCCallContext(transport: .tcp, remoteAddress: context.channel.remoteAddress, localAddress: context.channel.localAddress)
        if context.channel.localAddress?.protocol == .unix, let provider = context.channel as? any SocketOptionProvider {
            // SO_PEERCRED (17) fills a struct ucred {pid, uid, gid}; the kernel's answer, not
            // the caller's claim. On the event loop the future is already complete.
            let credentials: EventLoopFuture<PeerCredentialsLayout> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: 17)
            credentials.assumeIsolated().whenSuccess { value in
                self.callContext.peer = PeerCredentials(pid: value.pid, uid: value.uid, gid: value.gid)
            }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let record = Self.unwrapInboundIn(data)
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
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        dispatcher.handle(
            message: record, context: callContext, allocator: context.channel.allocator, eventLoop: context.eventLoop
        ) { reply in
            let (handler, context) = bound.value
            handler.finished(reply: reply, context: context)
        }
    }

    private func finished(reply: ByteBuffer?, context: ChannelHandlerContext) {
        inFlight -= 1
        if var reply, context.channel.isActive {
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
        if quiescing && inFlight == 0 {
            if flushPending { context.flush() }
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
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
        let pause = pausedForCalls || !held.isEmpty
        guard pause != readsPaused else { return }
        readsPaused = pause
        context.channel.setOption(ChannelOptions.autoRead, value: !pause).whenComplete { _ in }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RPCServerQuiesceEvent {
            quiescing = true
            if inFlight == 0 { context.close(promise: nil) }
            return
        }
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            // Nothing arrived for the idle period: a silent peer, one that sent part of a
            // record and stalled, or one whose calls are held because it reads no replies.
            // Calls still running keep the connection open.
            if inFlight == 0 {
                dispatcher.logger.debug("closing idle connection", metadata: ["remote": "\(callContext.remoteAddress.map { "\($0)" } ?? "-")"])
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Framing errors (oversized record) and socket errors end this connection only.
        dispatcher.logger.debug("closing connection after error", metadata: ["error": "\(error)", "remote": "\(callContext.remoteAddress.map { "\($0)" } ?? "-")"])
        context.close(promise: nil)
    }
}

final class RPCServerUDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let dispatcher: RPCDispatcher
    private var cache: DuplicateRequestCache
    private var localAddress: SocketAddress?
    private var insideRead = false
    private var flushPending = false

    init(dispatcher: RPCDispatcher, cacheCapacity: Int, cacheTimeToLive: TimeAmount) {
        self.dispatcher = dispatcher
        self.cache = DuplicateRequestCache(capacity: cacheCapacity, timeToLive: cacheTimeToLive)
    }

    func channelActive(context: ChannelHandlerContext) {
        localAddress = context.channel.localAddress
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        let remote = envelope.remoteAddress
        let callContext = RPCCallContext(transport: .udp, remoteAddress: remote, localAddress: localAddress)
        // Exact retransmissions are answered (or ignored while the original runs) before
        // anything else looks at them.
        let key = DuplicateRequestCache.key(for: envelope.data, from: remote)
        if let key {
            switch cache.check(key, now: .now()) {
            case .execute:
                break
            case .drop:
                return
            case var .resend(reply):
                RPCFraming.finishDatagram(&reply)
                context.writeAndFlush(Self.wrapOutboundOut(AddressedEnvelope(remoteAddress: remote, data: reply)), promise: nil)
                return
            }
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        insideRead = true
        dispatcher.handle(
            message: envelope.data, context: callContext, allocator: context.channel.allocator, eventLoop: context.eventLoop,
            completion: { reply in
                let (handler, context) = bound.value
                if let key {
                    handler.cache.complete(key, reply: reply, now: .now())
                }
                guard var reply else { return }
                RPCFraming.finishDatagram(&reply)
                let out = AddressedEnvelope(remoteAddress: remote, data: reply)
                if handler.insideRead {
                    context.write(Self.wrapOutboundOut(out), promise: nil)
                    handler.flushPending = true
                } else {
                    context.writeAndFlush(Self.wrapOutboundOut(out), promise: nil)
                }
            }
        )
        insideRead = false
    }

    func channelReadComplete(context: ChannelHandlerContext) {
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
