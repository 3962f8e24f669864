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
    /// Calls by program, procedure, flavor and outcome; refused authentications by reason.
    let metrics = RPCCallMetrics()

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
        completion: @escaping @Sendable (_ reply: consuming ByteBuffer?, _ disconnect: Bool) -> Void
    ) {
        let call: RPCCall
        do {
            call = try RPCCall.decode(message)
        } catch {
            metrics.call(program: nil, version: nil, procedure: nil, flavor: nil, .undecodable)
            completion(self.replyToUndecodableCall(error, allocator: allocator, context: context), false)
            return
        }

        guard let authenticator = authenticators[call.credential.flavor] else {
            logger.debug("unsupported credential flavor", metadata: ["xid": "\(call.xid)", "flavor": "\(call.credential.flavor)"])
            record(call, flavorServed: false, .authError)
            metrics.authenticationFailed(flavor: nil, .badCredential)
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
        completion: @escaping @Sendable (_ reply: consuming ByteBuffer?, _ disconnect: Bool) -> Void
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
            record(call, .dropped)
            completion(nil, false)
            return
        case let .rejected(status):
            logger.info("call denied", metadata: ["xid": "\(call.xid)", "status": "\(status)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "-")"])
            record(call, .authError)
            metrics.authenticationFailed(flavor: call.credential.flavor, status)
            completion(Self.encodeDenied(xid: call.xid, .authError(status), allocator: allocator), false)
            return
        case let .handled(verifier, status):
            record(call, Self.outcome(of: status))
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
            record(call, Self.outcome(of: status))
            completion(Self.encodeAccepted(xid: call.xid, verifier: accepted.replyVerifier, status, allocator: allocator), false)
            return
        }
        guard let handler = program.procedures[call.procedure] else {
            record(call, .procedureUnavailable)
            completion(Self.encodeAccepted(xid: call.xid, verifier: accepted.replyVerifier, .procedureUnavailable, allocator: allocator), false)
            return
        }
        if let status = program.policy.authorize(accepted.caller, procedure: call.procedure) {
            logger.info("call below policy", metadata: ["xid": "\(call.xid)", "caller": "\(accepted.caller)", "status": "\(status)"])
            record(call, .authError)
            metrics.authenticationFailed(flavor: call.credential.flavor, status)
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
                record(call, .success)
            } catch {
                reply = self.replyForHandlerError(error, call: call, accepted: accepted, allocator: allocator)
            }
            completion(consume reply, false)  // the only reference: the transport frames it in place
        case let .async(body):
            Task {
                let reply: ByteBuffer
                do {
                    let result = try await body(request)
                    reply = try Self.encodeSuccess(xid: call.xid, accepted: accepted, result: result, allocator: allocator)
                    self.record(call, .success)
                } catch {
                    reply = self.replyForHandlerError(error, call: call, accepted: accepted, allocator: allocator)
                }
                eventLoop.execute { completion(reply, false) }
            }
        }
    }

    // MARK: metrics

    /// Counts `call` under labels the server chose: numbers it does not serve become "other".
    private func record(_ call: RPCCall, flavorServed: Bool = true, _ outcome: RPCCallOutcome) {
        let served = programs[ProgramKey(program: call.program, version: call.version)]
        let knownProgram = versionRanges[call.program] != nil
        let procedure = served?.procedures[call.procedure] != nil || call.procedure == 0 && served != nil ? call.procedure : nil
        metrics.call(program: knownProgram ? call.program : nil, version: served != nil ? call.version : nil,
                     procedure: procedure, flavor: flavorServed ? call.credential.flavor : nil, outcome)
    }

    static func outcome(of status: AcceptedReplyStatus) -> RPCCallOutcome {
        switch status {
        case .success: return .success
        case .programUnavailable: return .programUnavailable
        case .programMismatch: return .programMismatch
        case .procedureUnavailable: return .procedureUnavailable
        case .garbageArguments: return .garbageArguments
        case .systemError: return .systemError
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

    private func replyForHandlerError(_ error: any Error, call: RPCCall, accepted: RPCAcceptedCall, allocator: ByteBufferAllocator) -> ByteBuffer {
        let xid = call.xid
        switch Self.replyStatus(for: error) {
        case let .accepted(_, status)?:
            if case .garbageArguments = status {
                logger.debug("garbage arguments", metadata: ["xid": "\(xid)", "error": "\(error)"])
            }
            record(call, Self.outcome(of: status))
            return Self.encodeAccepted(xid: xid, verifier: accepted.replyVerifier, status, allocator: allocator)
        case let .denied(rejected)?:
            record(call, .authError)
            if case let .authError(status) = rejected { metrics.authenticationFailed(flavor: call.credential.flavor, status) }
            return Self.encodeDenied(xid: xid, rejected, allocator: allocator)
        case nil:
            logger.error("procedure failed", metadata: ["xid": "\(xid)", "error": "\(String(reflecting: error))"])
            record(call, .systemError)
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
