// The server's message pipeline, independent of sockets: decode a call, authenticate it,
// check policy, find the procedure, run it and encode the reply. Every failure is mapped to
// its wire status here and only here (`replyStatus(for:)`); peers get the status, the log
// gets the detail. Calls that can be decided without suspending never leave the event loop.

import CoreMetrics
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

/// What ``RPCDispatcher/handle(message:context:allocator:eventLoop:later:)`` did with a message.
enum RPCDispatchOutcome {
    /// Decided without suspending: the reply (built with 4 bytes reserved for framing, see
    /// `RPCFraming`; nil for "no reply") and whether a stream transport closes the connection
    /// after it (``RPCAuthDecision/disconnecting(_:)``).
    case answered(ByteBuffer?, disconnect: Bool)
    /// Went to a task: the completion the caller made runs on the event loop once, later.
    case pending
}

/// Takes a reply that was not ready when `handle` returned; runs on the call's event loop.
typealias RPCReplyCompletion = @Sendable (_ reply: consuming ByteBuffer?, _ disconnect: Bool) -> Void

/// Dispatch tables and the authentication flavors of one server. Immutable.
final class RPCDispatcher: Sendable {
    private struct ProgramKey: Hashable {
        var program: UInt32
        var version: UInt32
    }
    private struct ProcedureKey: Hashable, Comparable {
        var program: UInt32
        var version: UInt32
        var procedure: UInt32

        static func < (a: ProcedureKey, b: ProcedureKey) -> Bool {
            (a.program, a.version, a.procedure) < (b.program, b.version, b.procedure)
        }
    }
    private struct ServedProcedure: Sendable {
        var handler: RPCProcedureHandler
        var policy: any RPCAuthorizationPolicy
        /// This procedure's call counters, kept here so that counting a call hashes nothing.
        var counters: RPCProcedureCounters
    }

    /// One entry per procedure of every program version served, sorted by key: a call needs
    /// one binary search (a few comparisons for the tens of procedures a server has, where
    /// a dictionary hashed the key with SipHash: about 280 instructions a call).
    private let procedureKeys: [ProcedureKey]
    private let servedProcedures: [ServedProcedure]
    private let servedVersions: Set<ProgramKey>
    private let versionRanges: [UInt32: ClosedRange<UInt32>]
    /// At most a handful: a scan is cheaper than hashing.
    private let authenticators: [(flavor: AuthFlavor, authenticator: any RPCServerAuthenticator)]
    let logger: Logger
    /// Calls by program, procedure, flavor and outcome; refused authentications by reason.
    let metrics: RPCCallMetrics

    init(programs: [RPCProgram], authenticators: [any RPCServerAuthenticator], logger: Logger,
         metricsFactory: (any MetricsFactory)? = nil) {
        let metrics = RPCCallMetrics(factory: metricsFactory)
        var table: [ProcedureKey: ServedProcedure] = [:]
        var versions: Set<ProgramKey> = []
        var ranges: [UInt32: ClosedRange<UInt32>] = [:]
        for program in programs {
            // A later registration of the same program version replaces the earlier one whole.
            if versions.contains(ProgramKey(program: program.number, version: program.version)) {
                table = table.filter { $0.key.program != program.number || $0.key.version != program.version }
            }
            versions.insert(ProgramKey(program: program.number, version: program.version))
            for (number, handler) in program.procedures {
                table[ProcedureKey(program: program.number, version: program.version, procedure: number)] =
                    ServedProcedure(handler: handler, policy: program.policy,
                                    counters: metrics.counters(program: program.number, version: program.version, procedure: number))
            }
            if let range = ranges[program.number] {
                ranges[program.number] = min(range.lowerBound, program.version)...max(range.upperBound, program.version)
            } else {
                ranges[program.number] = program.version...program.version
            }
        }
        var auths: [(flavor: AuthFlavor, authenticator: any RPCServerAuthenticator)] = []
        for authenticator in authenticators {
            auths.removeAll { $0.flavor == authenticator.flavor }
            auths.append((authenticator.flavor, authenticator))
        }
        let sorted = table.sorted { $0.key < $1.key }
        self.procedureKeys = sorted.map(\.key)
        self.servedProcedures = sorted.map(\.value)
        self.metrics = metrics
        self.servedVersions = versions
        self.versionRanges = ranges
        self.authenticators = auths
        self.logger = logger
    }

    private func servedProcedure(_ call: RPCCall) -> ServedProcedure? {
        let key = ProcedureKey(program: call.program, version: call.version, procedure: call.procedure)
        var low = 0
        var high = procedureKeys.count
        while low < high {
            let middle = (low + high) / 2
            if procedureKeys[middle] < key { low = middle + 1 } else { high = middle }
        }
        return low < procedureKeys.count && procedureKeys[low] == key ? servedProcedures[low] : nil
    }

    private func authenticator(for flavor: AuthFlavor) -> (any RPCServerAuthenticator)? {
        for entry in authenticators where entry.flavor == flavor { return entry.authenticator }
        return nil
    }

    /// Handles one message. A call decided without suspending (every immediate procedure
    /// under a flavor that decides at once) is answered in the return value, and
    /// `makeCompletion` is never called: such a call costs no closure. Otherwise `handle`
    /// calls `makeCompletion` once, before it returns `.pending`, and the completion it made
    /// runs later on `eventLoop`, exactly once.
    func handle(
        message: ByteBuffer,
        context: RPCCallContext,
        allocator: ByteBufferAllocator,
        eventLoop: any EventLoop,
        later makeCompletion: () -> RPCReplyCompletion
    ) -> RPCDispatchOutcome {
        let call: RPCCall
        do {
            call = try RPCCall.decode(message)
        } catch {
            metrics.call(program: nil, version: nil, procedure: nil, flavor: nil, .undecodable)
            return .answered(self.replyToUndecodableCall(error, allocator: allocator, context: context), disconnect: false)
        }

        guard let authenticator = authenticator(for: call.credential.flavor) else {
            logger.debug("unsupported credential flavor", metadata: ["xid": "\(call.xid)", "flavor": "\(call.credential.flavor)"])
            record(call, flavorServed: false, .authError)
            metrics.authenticationFailed(flavor: nil, .badCredential)
            return .answered(Self.encodeDenied(xid: call.xid, .authError(.badCredential), allocator: allocator), disconnect: false)
        }

        if let decision = authenticator.authenticateImmediately(call, context: context) {
            return proceed(call: call, decision: decision, context: context, allocator: allocator, eventLoop: eventLoop, later: makeCompletion)
        }
        // The flavor needs to wait (keyserver, directory): decide in a task, then come back
        // to the event loop for the duplicate check and dispatch.
        let completion = makeCompletion()
        Task {
            let decision = await authenticator.authenticate(call, context: context)
            eventLoop.execute {
                switch self.proceed(call: call, decision: decision, context: context, allocator: allocator, eventLoop: eventLoop, later: { completion }) {
                case let .answered(reply, disconnect):
                    completion(reply, disconnect)
                case .pending:
                    break
                }
            }
        }
        return .pending
    }

    private func proceed(
        call: RPCCall,
        decision: RPCAuthDecision,
        context: RPCCallContext,
        allocator: ByteBufferAllocator,
        eventLoop: any EventLoop,
        later makeCompletion: () -> RPCReplyCompletion
    ) -> RPCDispatchOutcome {
        let accepted: RPCAcceptedCall
        switch decision {
        case let .disconnecting(inner):
            let outcome = self.proceed(call: call, decision: inner, context: context, allocator: allocator, eventLoop: eventLoop) {
                let completion = makeCompletion()
                return { reply, _ in completion(reply, true) }
            }
            switch outcome {
            case let .answered(reply, _): return .answered(reply, disconnect: true)
            case .pending: return .pending
            }
        case .drop:
            logger.debug("call dropped by its authentication flavor", metadata: ["xid": "\(call.xid)"])
            record(call, .dropped)
            return .answered(nil, disconnect: false)
        case let .rejected(status):
            logger.info("call denied", metadata: ["xid": "\(call.xid)", "status": "\(status)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "-")"])
            record(call, .authError)
            metrics.authenticationFailed(flavor: call.credential.flavor, status)
            return .answered(Self.encodeDenied(xid: call.xid, .authError(status), allocator: allocator), disconnect: false)
        case let .handled(verifier, status):
            record(call, Self.outcome(of: status))
            return .answered(Self.encodeAccepted(xid: call.xid, verifier: verifier, status, allocator: allocator), disconnect: false)
        case let .accepted(value):
            accepted = value
        }

        guard let served = servedProcedure(call) else {
            let status: AcceptedReplyStatus
            if servedVersions.contains(ProgramKey(program: call.program, version: call.version)) {
                status = .procedureUnavailable
            } else if let range = versionRanges[call.program] {
                status = .programMismatch(low: range.lowerBound, high: range.upperBound)
            } else {
                status = .programUnavailable
            }
            record(call, Self.outcome(of: status))
            return .answered(Self.encodeAccepted(xid: call.xid, verifier: accepted.replyVerifier, status, allocator: allocator), disconnect: false)
        }
        if let status = served.policy.authorize(accepted.caller, procedure: call.procedure) {
            logger.info("call below policy", metadata: ["xid": "\(call.xid)", "caller": "\(accepted.caller)", "status": "\(status)"])
            record(call, .authError)
            metrics.authenticationFailed(flavor: call.credential.flavor, status)
            return .answered(Self.encodeDenied(xid: call.xid, .authError(status), allocator: allocator), disconnect: false)
        }

        let request = RPCRequest(
            xid: call.xid, program: call.program, version: call.version, procedure: call.procedure,
            caller: accepted.caller, arguments: accepted.arguments, context: context
        )
        switch served.handler {
        case let .immediate(body):
            let reply: ByteBuffer
            do {
                let result = try body(request)
                reply = try Self.encodeSuccess(xid: call.xid, accepted: accepted, result: result, allocator: allocator)
                served.counters.increment(flavor: call.credential.flavor, .success)
            } catch {
                reply = self.replyForHandlerError(error, call: call, served: served, accepted: accepted, allocator: allocator)
            }
            return .answered(reply, disconnect: false)
        case let .async(body):
            let completion = makeCompletion()
            Task {
                let reply: ByteBuffer
                do {
                    let result = try await body(request)
                    reply = try Self.encodeSuccess(xid: call.xid, accepted: accepted, result: result, allocator: allocator)
                    served.counters.increment(flavor: call.credential.flavor, .success)
                } catch {
                    reply = self.replyForHandlerError(error, call: call, served: served, accepted: accepted, allocator: allocator)
                }
                eventLoop.execute { completion(reply, false) }
            }
            return .pending
        }
    }

    // MARK: metrics

    /// Counts `call` under labels the server chose: numbers it does not serve become "other".
    private func record(_ call: RPCCall, flavorServed: Bool = true, _ outcome: RPCCallOutcome) {
        let served = servedVersions.contains(ProgramKey(program: call.program, version: call.version))
        let knownProgram = versionRanges[call.program] != nil
        // NULL (0) is defined in every program version.
        let procedureServed = served && (call.procedure == 0
            || servedProcedure(call) != nil)
        metrics.call(program: knownProgram ? call.program : nil, version: served ? call.version : nil,
                     procedure: procedureServed ? call.procedure : nil, flavor: flavorServed ? call.credential.flavor : nil, outcome)
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

    private func replyForHandlerError(_ error: any Error, call: RPCCall, served: ServedProcedure, accepted: RPCAcceptedCall,
                                      allocator: ByteBufferAllocator) -> ByteBuffer {
        let xid = call.xid
        switch Self.replyStatus(for: error) {
        case let .accepted(_, status)?:
            if case .garbageArguments = status {
                logger.debug("garbage arguments", metadata: ["xid": "\(xid)", "error": "\(error)"])
            }
            served.counters.increment(flavor: call.credential.flavor, Self.outcome(of: status))
            return Self.encodeAccepted(xid: xid, verifier: accepted.replyVerifier, status, allocator: allocator)
        case let .denied(rejected)?:
            served.counters.increment(flavor: call.credential.flavor, .authError)
            if case let .authError(status) = rejected { metrics.authenticationFailed(flavor: call.credential.flavor, status) }
            return Self.encodeDenied(xid: xid, rejected, allocator: allocator)
        case nil:
            logger.error("procedure failed", metadata: ["xid": "\(xid)", "error": "\(String(reflecting: error))"])
            served.counters.increment(flavor: call.credential.flavor, .systemError)
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
