// AUTH_NONE (flavor 0) on both sides: no credential, no verifier, anonymous caller.

import NIOCore

/// Client side of AUTH_NONE.
public struct AuthNoneClient: RPCClientAuthenticator {
    public init() {}
    public var flavor: AuthFlavor { .none }
    public func prepare(_ header: RPCCallHeader, arguments: ByteBuffer) async throws -> RPCPreparedCall {
        try prepareImmediately(header, arguments: arguments)!
    }

    /// Never waits for anything, so `RPCClient` takes this path for every call.
    public func prepareImmediately(_ header: RPCCallHeader, arguments: ByteBuffer) throws -> RPCPreparedCall? {
        RPCPreparedCall(credential: .none, verifier: .none, arguments: arguments)
    }
}

/// Server side of AUTH_NONE: every call is accepted as ``RPCCaller/anonymous``.
public struct AuthNoneServer: RPCServerAuthenticator {
    public init() {}
    public var flavor: AuthFlavor { .none }

    public func authenticateImmediately(_ call: RPCCall, context: RPCCallContext) -> RPCAuthDecision? {
        .accepted(RPCAcceptedCall(caller: .anonymous, arguments: call.arguments))
    }

    public func authenticate(_ call: RPCCall, context: RPCCallContext) async -> RPCAuthDecision {
        authenticateImmediately(call, context: context)!
    }
}
