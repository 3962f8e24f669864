// The server's message pipeline, independent of sockets: decode a call, authenticate it,
// check policy, find the procedure, run it and encode the reply. Every failure is mapped to
// its wire status here and only here (`replyStatus(for:)`); peers get the status, the log
// gets the detail. Calls that can be decided without suspending never leave the event loop.

import Logging
import NIOCore
import XDR

/// What the UDP transport does with a datagram, after the duplicate request cache.
enum DuplicateCheck {
    /// Run it.
    case execute
    /// It is a retransmission of a completed call: send this reply again.
    case resend(ByteBuffer)
    /// It is a retransmission of a call still running: ignore it.
    case drop
    /// It is a new call but the socket has as many calls running as it may: ignore it (not
    /// recorded, so the client's retransmission gets another chance).
    case refused
}

/// Dispatch tables and the authentication flavors of one server. Immutable.
final class RPCDispatcher: Sendable {
    private struct ProgramKey: Hashable {
        var program: UInt32
        var version: UInt32
    }

    private let programs: [ProgramKey: RPCProgram]
    private let versionRanges: [UInt32: ClosedRange<UInt32>]
    private let authenticators: [AuthFlavor: any RPCServerAuthenticator]
    let logger: Logger

    init(programs: [RPCProgram], authenticators: [any RPCServerAuthenticator], logger: Logger) {
        var table: [ProgramKey: RPCProgram] = [:]
        var ranges: [UInt32: ClosedRange<UInt32>] = [:]
        for program in programs {
            table[ProgramKey(program: program.number, version: program.version)] = program
            if let range = ranges[program.number] {
                ranges[program.number] = min(range.lowerBound, program.version)...max(range.upperBound, program.version)
            } else {
                ranges[program.number] = program.version...program.version
            }
        }
        var auths: [AuthFlavor: any RPCServerAuthenticator] = [:]
        for authenticator in authenticators { auths[authenticator.flavor] = authenticator }
        self.programs = table
        self.versionRanges = ranges
        self.authenticators = auths
        self.logger = logger
    }

    /// Handles one message. `completion` runs on `eventLoop` exactly once, with the reply
    /// (built with 4 bytes reserved for framing, see `RPCFraming`) or nil for "no reply",
    /// and whether a stream transport closes the connection after it
    /// (``RPCAuthDecision/disconnecting(_:)``).
    func handle(
        message: ByteBuffer,
        context: RPCCallContext,
        allocator: ByteBufferAllocator,
        eventLoop: any EventLoop,
        completion: @escaping @Sendable (_ reply: ByteBuffer?, _ disconnect: Bool) -> Void
    ) {
        let call: RPCCall
        do {
            call = try RPCCall.decode(message)
        } catch {
            completion(self.replyToUndecodableCall(error, allocator: allocator, context: context), false)
            return
        }

        guard let authenticator = authenticators[call.credential.flavor] else {
            logger.debug("unsupported credential flavor", metadata: ["xid": "\(call.xid)", "flavor": "\(call.credential.flavor)"])
            completion(Self.encodeDenied(xid: call.xid, .authError(.badCredential), allocator: allocator), false)
            return
        }

        if let decision = authenticator.authenticateImmediately(call, context: context) {
            self.proceed(call: call, decision: decision, context: context, allocator: allocator, eventLoop: eventLoop, completion: completion)
            return
        }
        // The flavor needs to wait (keyserver, directory): decide in a task, then come back
        // to the event loop for the duplicate check and dispatch.
        Task {
            let decision = await authenticator.authenticate(call, context: context)
            eventLoop.execute {
                self.proceed(call: call, decision: decision, context: context, allocator: allocator, eventLoop: eventLoop, completion: completion)
            }
        }
    }

    private func proceed(
        call: RPCCall,
        decision: RPCAuthDecision,
        context: RPCCallContext,
        allocator: ByteBufferAllocator,
        eventLoop: any EventLoop,
        completion: @escaping @Sendable (_ reply: ByteBuffer?, _ disconnect: Bool) -> Void
    ) {
        let accepted: RPCAcceptedCall
        switch decision {
        case let .disconnecting(inner):
            self.proceed(call: call, decision: inner, context: context, allocator: allocator, eventLoop: eventLoop) { reply, _ in
                completion(reply, true)
            }
            return
        case .drop:
            logger.debug("call dropped by its authentication flavor", metadata: ["xid": "\(call.xid)"])
            completion(nil, false)
            return
        case let .rejected(status):
            logger.info("call denied", metadata: ["xid": "\(call.xid)", "status": "\(status)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "-")"])
            completion(Self.encodeDenied(xid: call.xid, .authError(status), allocator: allocator), false)
            return
        case let .handled(verifier, status):
            completion(Self.encodeAccepted(xid: call.xid, verifier: verifier, status, allocator: allocator), false)
            return
        case let .accepted(value):
            accepted = value
        }

        guard let program = programs[ProgramKey(program: call.program, version: call.version)] else {
            let status: AcceptedReplyStatus
            if let range = versionRanges[call.program] {
                status = .programMismatch(low: range.lowerBound, high: range.upperBound)
            } else {
                status = .programUnavailable
            }
            completion(Self.encodeAccepted(xid: call.xid, verifier: accepted.replyVerifier, status, allocator: allocator), false)
            return
        }
        guard let handler = program.procedures[call.procedure] else {
            completion(Self.encodeAccepted(xid: call.xid, verifier: accepted.replyVerifier, .procedureUnavailable, allocator: allocator), false)
            return
        }
        if let status = program.policy.authorize(accepted.caller, procedure: call.procedure) {
            logger.info("call below policy", metadata: ["xid": "\(call.xid)", "caller": "\(accepted.caller)", "status": "\(status)"])
            completion(Self.encodeDenied(xid: call.xid, .authError(status), allocator: allocator), false)
            return
        }

        let request = RPCRequest(
            xid: call.xid, program: call.program, version: call.version, procedure: call.procedure,
            caller: accepted.caller, arguments: accepted.arguments, context: context
        )
        switch handler {
        case let .immediate(body):
            let reply: ByteBuffer
            do {
                let result = try body(request)
                reply = try Self.encodeSuccess(xid: call.xid, accepted: accepted, result: result, allocator: allocator)
            } catch {
                reply = self.replyForHandlerError(error, xid: call.xid, accepted: accepted, allocator: allocator)
            }
            completion(reply, false)
        case let .async(body):
            Task {
                let reply: ByteBuffer
                do {
                    let result = try await body(request)
                    reply = try Self.encodeSuccess(xid: call.xid, accepted: accepted, result: result, allocator: allocator)
                } catch {
                    reply = self.replyForHandlerError(error, xid: call.xid, accepted: accepted, allocator: allocator)
                }
                eventLoop.execute { completion(reply, false) }
            }
        }
    }

    // MARK: error mapping (the one place failures become wire statuses)

    /// How a handler's error is answered.
    static func replyStatus(for error: any Error) -> RPCReply.Status? {
        switch error {
        case is XDRError:
            return .accepted(verifier: .none, .garbageArguments)
        case let error as RPCServerError:
            switch error {
            case .garbageArguments: return .accepted(verifier: .none, .garbageArguments)
            case .systemError: return .accepted(verifier: .none, .systemError)
            case .procedureUnavailable: return .accepted(verifier: .none, .procedureUnavailable)
            case let .authError(status): return .denied(.authError(status))
            }
        default:
            return nil
        }
    }

    private func replyForHandlerError(_ error: any Error, xid: UInt32, accepted: RPCAcceptedCall, allocator: ByteBufferAllocator) -> ByteBuffer {
        switch Self.replyStatus(for: error) {
        case let .accepted(_, status)?:
            if case .garbageArguments = status {
                logger.debug("garbage arguments", metadata: ["xid": "\(xid)", "error": "\(error)"])
            }
            return Self.encodeAccepted(xid: xid, verifier: accepted.replyVerifier, status, allocator: allocator)
        case let .denied(rejected)?:
            return Self.encodeDenied(xid: xid, rejected, allocator: allocator)
        case nil:
            logger.error("procedure failed", metadata: ["xid": "\(xid)", "error": "\(String(reflecting: error))"])
            return Self.encodeAccepted(xid: xid, verifier: accepted.replyVerifier, .systemError, allocator: allocator)
        }
    }

    private func replyToUndecodableCall(_ error: RPCMessageError, allocator: ByteBufferAllocator, context: RPCCallContext) -> ByteBuffer? {
        switch error {
        case let .rpcVersionMismatch(xid, version):
            logger.debug("RPC version mismatch", metadata: ["xid": "\(xid)", "version": "\(version)"])
            return Self.encodeDenied(xid: xid, .rpcMismatch(low: rpcProtocolVersion, high: rpcProtocolVersion), allocator: allocator)
        case let .badCredential(xid, detail):
            logger.debug("malformed credential or verifier", metadata: ["xid": "\(xid)", "error": "\(detail)"])
            return Self.encodeDenied(xid: xid, .authError(.badCredential), allocator: allocator)
        case .unreadable, .unexpectedMessageType, .garbageReply:
            // Nothing sensible to answer: libtirpc drops these too.
            logger.debug("undecodable message dropped", metadata: ["error": "\(error)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "-")"])
            return nil
        }
    }

    // MARK: encoding

    static func encodeDenied(xid: UInt32, _ rejected: RejectedReply, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = RPCFraming.startMessage(allocator: allocator, capacity: 24)
        RPCReply(xid: xid, status: .denied(rejected)).encode(into: &buffer)
        return buffer
    }

    static func encodeAccepted(xid: UInt32, verifier: OpaqueAuth, _ status: AcceptedReplyStatus, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = RPCFraming.startMessage(allocator: allocator, capacity: 32 + verifier.encodedSize)
        RPCReply(xid: xid, status: .accepted(verifier: verifier, status)).encode(into: &buffer)
        return buffer
    }

    static func encodeSuccess(xid: UInt32, accepted: RPCAcceptedCall, result: any XDREncodable, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var buffer = RPCFraming.startMessage(allocator: allocator, capacity: 64 + accepted.replyVerifier.encodedSize)
        RPCReply.encodeSuccessHeader(xid: xid, verifier: accepted.replyVerifier, into: &buffer)
        if let wrapper = accepted.resultWrapper {
            try wrapper.wrap(into: &buffer) { result.encode(into: &$0) }
        } else {
            result.encode(into: &buffer)
        }
        return buffer
    }
}
