// A program version as a server offers it: procedure numbers mapped to handlers, and the
// authorization policy for its callers. Built before the server starts and immutable
// afterwards, so dispatch reads it without locks.

import NIOCore
import XDR

/// One incoming call as a procedure handler sees it.
public struct RPCRequest: Sendable {
    public var xid: UInt32
    public var program: UInt32
    public var version: UInt32
    public var procedure: UInt32
    /// The authenticated caller.
    public var caller: RPCCaller
    /// The XDR-encoded arguments (already unwrapped by the authentication flavor).
    public var arguments: ByteBuffer
    public var context: RPCCallContext

    public init(xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32, caller: RPCCaller, arguments: ByteBuffer, context: RPCCallContext) {
        self.xid = xid
        self.program = program
        self.version = version
        self.procedure = procedure
        self.caller = caller
        self.arguments = arguments
        self.context = context
    }

    /// Decodes the arguments as `T`, which must consume them exactly. Throws `XDRError`,
    /// which the server answers with GARBAGE_ARGS.
    public func decodeArguments<T: XDRDecodable>(_ type: T.Type = T.self) throws(XDRError) -> T {
        try arguments.decodeXDRExactly(T.self)
    }
}

/// Errors a handler can throw to choose the reply status. Any `XDRError` is answered
/// with GARBAGE_ARGS and any other error with SYSTEM_ERR.
public enum RPCServerError: Error, Equatable, Sendable {
    case garbageArguments
    case systemError
    case procedureUnavailable
    /// Deny with MSG_DENIED / AUTH_ERROR (e.g. `.tooWeak` for a caller below policy).
    case authError(AuthStatus)
}

/// How a procedure runs.
public enum RPCProcedureHandler: Sendable {
    /// Runs on the connection's event loop without suspending: for short, non-blocking work.
    /// Cheapest path (no task, no thread hop).
    case immediate(@Sendable (RPCRequest) throws -> any XDREncodable)
    /// Runs in a task: for work that awaits (files, other services).
    case async(@Sendable (RPCRequest) async throws -> any XDREncodable)
}

/// One version of one program, as served.
///
/// ```swift
/// var echo = RPCProgram(number: 0x2000_0001, version: 1)
/// echo.addProcedure(1) { (text: EchoText, request: RPCRequest) async throws -> EchoText in
///     text
/// }
/// server.register(echo)
/// ```
public struct RPCProgram: Sendable {
    public let number: UInt32
    public let version: UInt32
    public private(set) var procedures: [UInt32: RPCProcedureHandler]
    /// Who may call which procedure; runs after authentication.
    public var policy: any RPCAuthorizationPolicy

    /// A program version with the NULL procedure (0) already defined, as every ONC RPC
    /// program has.
    public init(number: UInt32, version: UInt32, policy: any RPCAuthorizationPolicy = AllowAnyFlavor()) {
        self.number = number
        self.version = version
        self.policy = policy
        // NULL takes void: arguments there are garbage like anywhere else (ATTACKS.md #12).
        self.procedures = [0: .immediate { request in try request.decodeArguments(XDRVoid.self) }]
    }

    /// Sets the handler for a procedure number.
    public mutating func setProcedure(_ number: UInt32, _ handler: RPCProcedureHandler) {
        procedures[number] = handler
    }

    /// Adds an async procedure with typed arguments and result.
    public mutating func addProcedure<Args: XDRDecodable & Sendable, Result: XDREncodable & Sendable>(
        _ number: UInt32,
        _ body: @escaping @Sendable (Args, RPCRequest) async throws -> Result
    ) {
        procedures[number] = .async { request in
            let args = try request.decodeArguments(Args.self)
            return try await body(args, request)
        }
    }

    /// Adds a procedure that runs on the event loop; it must not block.
    public mutating func addImmediateProcedure<Args: XDRDecodable & Sendable, Result: XDREncodable & Sendable>(
        _ number: UInt32,
        _ body: @escaping @Sendable (Args, RPCRequest) throws -> Result
    ) {
        procedures[number] = .immediate { request in
            let args = try request.decodeArguments(Args.self)
            return try body(args, request)
        }
    }
}
