// The client's hot path, on the connection's event loop: writes calls, matches replies to
// calls by xid (many outstanding calls on one connection), enforces per-call timeouts and,
// on UDP, retransmits with exponential backoff. Replies are trusted only as far as their
// xid matches an outstanding call; their content is checked by the async caller.

import NIOCore

/// The reply side of one call. Completed at most once, always on the channel's event loop
/// by the handler (with the reply, or the reason there is none), so it needs no lock.
final class PendingReply: @unchecked Sendable {
    // The awaiting task's continuation, resumed once, on the event loop. (A promise and its
    // future's `get()` cost three allocations per call more: issue 18.)
    private let eventLoop: any EventLoop
    private var continuation: UnsafeContinuation<RPCReply, any Error>?

    init(eventLoop: any EventLoop, continuation: UnsafeContinuation<RPCReply, any Error>) {
        self.eventLoop = eventLoop
        self.continuation = continuation
    }

    deinit {
        // Dropped unanswered (never reached a handler: its loop was shut down): never leave
        // the caller waiting.
        continuation?.resume(throwing: RPCClientError.connectionClosed)
    }

    /// The reply, handed over without wrapping it in a `Result` (each copy of a reply
    /// retains its buffers again).
    func succeed(_ reply: RPCReply) {
        eventLoop.preconditionInEventLoop()
        guard let continuation else { return }
        self.continuation = nil
        continuation.resume(returning: reply)
    }

    func fail(_ error: any Error) {
        eventLoop.preconditionInEventLoop()
        guard let continuation else { return }
        self.continuation = nil
        continuation.resume(throwing: error)
    }
}

/// The call never reached the socket (the connection was already gone).
struct RPCCallNotSent: Error {}

/// A call on its way to the wire.
struct OutboundRPCCall: Sendable {
    var xid: UInt32
    /// Encoded message with 4 bytes reserved at the front (see `RPCFraming`).
    var message: ByteBuffer
    var reply: PendingReply
    var timeout: TimeAmount
    /// Builds a fresh message for a retransmission (RPCSEC_GSS needs a new sequence
    /// number each time); nil resends the same bytes.
    var rebuild: (@Sendable () async throws -> ByteBuffer)?
}

/// Retransmission schedule for UDP.
struct RetransmitPolicy: Sendable {
    var initial: TimeAmount
    var maximum: TimeAmount
}

/// Calls reach the handler through `send(_:)`, called on the event loop, not through the
/// pipeline's `write`: a call wrapped in `NIOAny` (boxed, then cast back) with a write
/// promise and its callback cost about 4,000 instructions a call, a fifth of the client's
/// user-space work (issue 18). A call that cannot be written (the connection is gone)
/// fails with `RPCCallNotSent`; one written before the connection failed fails when the
/// connection closes.
final class RPCClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var reply: PendingReply
        var deadline: NIODeadline
        var timeout: TimeAmount
        var retransmitTask: Scheduled<Void>?
        /// Datagrams only, for retransmission (a stream call is sent again by `RPCClient`
        /// after a reconnection); nil on a stream, where keeping it cost a retain and a
        /// release per call.
        var message: ByteBuffer?
        var interval: TimeAmount
        var rebuild: (@Sendable () async throws -> ByteBuffer)?
    }

    private let isDatagram: Bool
    private let retransmit: RetransmitPolicy?
    /// TCP: records are framed here, not by a `ByteToMessageHandler` ahead of this handler
    /// (one pipeline stage less for every reply; see `RPCServerTCPHandler`). Nil for UDP,
    /// where each datagram is one message.
    private var records: RecordStream?
    private var flushScheduled = false
    /// Made once: a closure per flush cost an allocation per call.
    private var flushTask: (() -> Void)?
    private var pending: [UInt32: Pending] = [:]
    private var context: ChannelHandlerContext?
    /// One timer for every call's timeout, armed for the earliest deadline: a timer per call
    /// cost three allocations and a cancel on each call (issue 18).
    private var timeoutTimer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    /// `maximumRecordSize`: the largest reply record a stream connection accepts.
    init(isDatagram: Bool, retransmit: RetransmitPolicy?, maximumRecordSize: Int = RecordMarkingDecoder.defaultMaximumRecordSize) {
        self.isDatagram = isDatagram
        self.retransmit = retransmit
        self.records = isDatagram ? nil : RecordStream(maximumRecordSize: maximumRecordSize)
    }

    var outstandingCalls: Int { pending.count }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Holds the handler (a flush still queued when the connection goes must find it
        // alive); the cycle is broken in handlerRemoved, which every pipeline calls.
        flushTask = {
            self.flushScheduled = false
            self.context?.flush()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        flushTask = nil
        failAll(RPCClientError.connectionClosed)
    }

    /// Writes a call and waits for its reply. On the event loop only.
    func send(_ call: OutboundRPCCall) {
        guard let context, context.channel.isActive else {
            call.reply.fail(RPCCallNotSent())
            return
        }
        guard pending[call.xid] == nil else {
            // Our xids are unique per client; a clash means a wrapped counter with a call
            // still outstanding 2^32 calls later.
            call.reply.fail(RPCClientError.garbageReply("duplicate xid \(call.xid)"))
            return
        }
        let xid = call.xid
        let deadline = NIODeadline.now() + call.timeout
        armTimeoutTimer(for: deadline, context: context)
        var entry = Pending(
            reply: call.reply, deadline: deadline, timeout: call.timeout, retransmitTask: nil,
            message: isDatagram ? call.message : nil, interval: retransmit?.initial ?? .zero, rebuild: call.rebuild
        )
        if retransmit != nil {
            entry.retransmitTask = scheduleRetransmit(xid: xid, after: entry.interval, context: context)
        }
        pending[xid] = entry
        context.write(Self.wrapOutboundOut(frame(call.message)), promise: nil)
        scheduleFlush(context: context)
    }

    /// A rebuilt retransmission (fresh credentials) of a call still waiting. On the event loop only.
    func resend(xid: UInt32, message: ByteBuffer) {
        guard let context, var entry = pending[xid] else { return }
        entry.message = message
        pending[xid] = entry
        context.write(Self.wrapOutboundOut(frame(message)), promise: nil)
        scheduleFlush(context: context)
    }

    /// Coalesces flushes: one flush per event loop turn sends every call written in that
    /// turn (by tasks on this loop or handed over from other threads) in one syscall.
    private func scheduleFlush(context: ChannelHandlerContext) {
        guard !flushScheduled, let flushTask else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute(flushTask)
    }

    private func frame(_ message: ByteBuffer) -> ByteBuffer {
        var framed = message
        if isDatagram {
            RPCFraming.finishDatagram(&framed)
        } else {
            RPCFraming.finishRecord(&framed)
        }
        return framed
    }

    private func scheduleRetransmit(xid: UInt32, after delay: TimeAmount, context: ChannelHandlerContext) -> Scheduled<Void> {
        context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.retransmitNow(xid: xid, context: context)
        }
    }

    private func retransmitNow(xid: UInt32, context: ChannelHandlerContext) {
        guard var entry = pending[xid], let policy = retransmit else { return }
        entry.interval = min(entry.interval * 2, policy.maximum)
        entry.retransmitTask = scheduleRetransmit(xid: xid, after: entry.interval, context: context)
        pending[xid] = entry
        if let rebuild = entry.rebuild {
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            Task {
                guard let message = try? await rebuild() else { return }
                handler.eventLoop.execute { handler.value.resend(xid: xid, message: message) }
            }
        } else if let message = entry.message {
            context.writeAndFlush(Self.wrapOutboundOut(frame(message)), promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = Self.unwrapInboundIn(data)
        guard records != nil else { return received(bytes) }
        records!.append(bytes)
        do {
            while let record = try records!.nextRecord() {
                received(record)
            }
        } catch {
            // A reply record over the limit, or garbage: the stream cannot be resynchronised.
            errorCaught(context: context, error: error)
        }
    }

    private func received(_ message: ByteBuffer) {
        do {
            let reply = try RPCReply.decode(message)
            // Late or unknown replies are dropped.
            takePending(xid: reply.xid)?.succeed(reply)
        } catch {
            switch error {
            case let .garbageReply(xid, reason):
                takePending(xid: xid)?.fail(RPCClientError.garbageReply(reason))
            default:
                // Not a reply to anything we can name: ignore it, as libtirpc does.
                break
            }
        }
    }

    /// The call waiting for `xid`, no longer waiting (its retransmissions stopped); nil for
    /// a late or unknown reply.
    private func takePending(xid: UInt32) -> PendingReply? {
        guard let entry = pending.removeValue(forKey: xid) else { return nil }
        entry.retransmitTask?.cancel()
        return entry.reply
    }

    private func armTimeoutTimer(for deadline: NIODeadline, context: ChannelHandlerContext) {
        if let armed = timerDeadline, armed <= deadline { return }
        timeoutTimer?.cancel()
        timerDeadline = deadline
        timeoutTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.expireCalls(context: context)
        }
    }

    /// Fails every call past its deadline and re-arms for the earliest one left. Runs about
    /// once per timeout period when calls are answered in time.
    private func expireCalls(context: ChannelHandlerContext) {
        timeoutTimer = nil
        timerDeadline = nil
        let now = NIODeadline.now()
        var expired: [(UInt32, TimeAmount)] = []
        var next: NIODeadline?
        for (xid, entry) in pending {
            if entry.deadline <= now {
                expired.append((xid, entry.timeout))
            } else if next.map({ entry.deadline < $0 }) ?? true {
                next = entry.deadline
            }
        }
        for (xid, timeout) in expired {
            takePending(xid: xid)?.fail(RPCClientError.timedOut(milliseconds: timeout.nanoseconds / 1_000_000))
        }
        if let next, self.context != nil { armTimeoutTimer(for: next, context: context) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        records?.discard()
        failAll(RPCClientError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if isDatagram {
            // ICMP errors (port unreachable while the server restarts) are not fatal for UDP:
            // retransmission carries on until the call's timeout.
            return
        }
        failAll(RPCClientError.connectionClosed)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        let entries = pending
        pending = [:]
        timeoutTimer?.cancel()
        timeoutTimer = nil
        timerDeadline = nil
        for (_, entry) in entries {
            entry.retransmitTask?.cancel()
            entry.reply.fail(error)
        }
    }
}

/// Adapts a connected UDP channel to plain buffers for `RPCClientHandler`.
final class DatagramToBufferHandler: ChannelDuplexHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let remote: SocketAddress

    init(remote: SocketAddress) {
        self.remote = remote
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        context.fireChannelRead(Self.wrapInboundOut(envelope.data))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = Self.unwrapOutboundIn(data)
        context.write(Self.wrapOutboundOut(AddressedEnvelope(remoteAddress: remote, data: buffer)), promise: promise)
    }
}
