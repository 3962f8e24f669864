// The authentication plug-in points. A flavor is one client-side and one server-side
// type; the transports only call these protocols, so AUTH_DH and RPCSEC_GSS fit in
// without touching framing or dispatch. Authenticators decide who the caller is; whether
// that caller may run a procedure is the program's `RPCAuthorizationPolicy`.

import NIOCore
import XDR

// MARK: - Identity handed to handlers

/// Who made a call, as far as its authentication flavor can tell.
///
/// Only flavors that prove the caller (AUTH_DH, RPCSEC_GSS) set ``isVerified``; AUTH_SYS
/// values are the client's own claims and AUTH_NONE carries nothing.
public struct RPCCaller: Sendable, Hashable, CustomStringConvertible {
    public var flavor: AuthFlavor
    /// True when the credential was cryptographically verified.
    public var isVerified: Bool
    /// The verified principal (a netname such as `unix.1001@example.org`), if any.
    public var netname: String?
    public var machineName: String?
    public var uid: UInt32?
    public var gid: UInt32?
    public var gids: [UInt32]
    /// The security mechanism and service, e.g. "dh192-des" or "ffdhe3072/privacy".
    public var mechanism: String?
    /// How the call's arguments and results were protected on the wire.
    public var protection: RPCMessageProtection
    /// The size in bits of the group the caller's key exchange used (192 for AUTH_DH, 3072
    /// for RPCSEC_GSS with ffdhe3072); 0 when nothing was exchanged.
    public var keyExchangeBits: Int

    public init(
        flavor: AuthFlavor, isVerified: Bool = false, netname: String? = nil, machineName: String? = nil,
        uid: UInt32? = nil, gid: UInt32? = nil, gids: [UInt32] = [], mechanism: String? = nil,
        protection: RPCMessageProtection = .none, keyExchangeBits: Int = 0
    ) {
        self.protection = protection
        self.keyExchangeBits = keyExchangeBits
        self.flavor = flavor
        self.isVerified = isVerified
        self.netname = netname
        self.machineName = machineName
        self.uid = uid
        self.gid = gid
        self.gids = gids
        self.mechanism = mechanism
    }

    /// A caller that presented no credential.
    public static let anonymous = RPCCaller(flavor: .none)

    public var description: String {
        var parts = ["\(flavor)"]
        // Both come from the peer: escaped, as this text goes into logs.
        if let netname { parts.append(logSafe(netname)) }
        if let uid { parts.append("uid=\(uid)") }
        if let machineName { parts.append("host=\(logSafe(machineName))") }
        if let mechanism { parts.append("via \(mechanism)") }
        if isVerified { parts.append("verified") }
        return parts.joined(separator: " ")
    }
}

/// What protects a call's arguments and results, weakest first.
public enum RPCMessageProtection: Int, Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Nothing beyond the credential: the body can be read and changed on the way.
    case none = 0
    /// A checksum over the body: it can be read but not changed (RPCSEC_GSS integrity).
    case integrity = 1
    /// Encrypted and authenticated: neither read nor changed (RPCSEC_GSS privacy).
    case privacy = 2

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .none: return "none"
        case .integrity: return "integrity"
        case .privacy: return "privacy"
        }
    }
}

/// The peer process of a unix-domain connection, as the kernel reports it (SO_PEERCRED).
/// Unlike AUTH_SYS values, these cannot be forged by the caller.
public struct PeerCredentials: Sendable, Hashable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// Where a call came from and how.
public struct RPCCallContext: Sendable {
    public enum Transport: String, Sendable { case tcp, udp }

    /// The fields, shared: a call's context is copied several times on its way (request,
    /// flavor, handler), and a copy of two socket addresses costs two retains and two
    /// releases where a copy of this costs one of each. Copied on write.
    private final class Storage: Sendable {
        let transport: Transport
        let remoteAddress: SocketAddress?
        let localAddress: SocketAddress?
        let peer: PeerCredentials?

        init(transport: Transport, remoteAddress: SocketAddress?, localAddress: SocketAddress?, peer: PeerCredentials?) {
            self.transport = transport
            self.remoteAddress = remoteAddress
            self.localAddress = localAddress
            self.peer = peer
        }
    }

    private var storage: Storage

    public var transport: Transport {
        get { storage.transport }
        set { storage = Storage(transport: newValue, remoteAddress: remoteAddress, localAddress: localAddress, peer: peer) }
    }
    public var remoteAddress: SocketAddress? {
        get { storage.remoteAddress }
        set { storage = Storage(transport: transport, remoteAddress: newValue, localAddress: localAddress, peer: peer) }
    }
    public var localAddress: SocketAddress? {
        get { storage.localAddress }
        set { storage = Storage(transport: transport, remoteAddress: remoteAddress, localAddress: newValue, peer: peer) }
    }
    /// Set for calls over a unix-domain socket: who the kernel says is calling.
    public var peer: PeerCredentials? {
        get { storage.peer }
        set { storage = Storage(transport: transport, remoteAddress: remoteAddress, localAddress: localAddress, peer: newValue) }
    }

    public init(transport: Transport, remoteAddress: SocketAddress?, localAddress: SocketAddress?, peer: PeerCredentials? = nil) {
        storage = Storage(transport: transport, remoteAddress: remoteAddress, localAddress: localAddress, peer: peer)
    }
}

// MARK: - Server side

/// Protects results on their way back (RPCSEC_GSS integrity/privacy). Flavors that leave
/// results in the clear have none.
public protocol RPCResultWrapper: Sendable {
    /// Appends the protected results to `reply`. `encodeResults` appends the plain results
    /// wherever the wrapper calls it, so they can be protected in place without a copy.
    func wrap(into reply: inout ByteBuffer, encodeResults: (inout ByteBuffer) -> Void) throws
}

/// The outcome of a successful server-side authentication.
public struct RPCAcceptedCall: Sendable {
    public var caller: RPCCaller
    /// The verifier for the reply.
    public var replyVerifier: OpaqueAuth
    /// The procedure arguments after any unwrapping the flavor does.
    public var arguments: ByteBuffer
    public var resultWrapper: (any RPCResultWrapper)?

    public init(caller: RPCCaller, replyVerifier: OpaqueAuth = .none, arguments: ByteBuffer, resultWrapper: (any RPCResultWrapper)? = nil) {
        self.caller = caller
        self.replyVerifier = replyVerifier
        self.arguments = arguments
        self.resultWrapper = resultWrapper
    }
}

/// What a server authenticator decided about a call.
public enum RPCAuthDecision: Sendable {
    /// Run the procedure for this caller.
    case accepted(RPCAcceptedCall)
    /// Answer MSG_DENIED / AUTH_ERROR with this status.
    case rejected(AuthStatus)
    /// Send no reply at all (RPCSEC_GSS: a sequence number already seen or below the window).
    case drop
    /// The flavor answered the call itself (RPCSEC_GSS context creation and destruction).
    case handled(verifier: OpaqueAuth, AcceptedReplyStatus)
    /// Answer as the inner decision says, then close the connection (on UDP: the inner
    /// decision alone). For a source over its handshake rate: answering it on an open
    /// connection costs the server a decode and a reply per call, as fast as the source can
    /// send; closing makes it pay a new connection for each try instead.
    indirect case disconnecting(RPCAuthDecision)
}

/// Verifies calls of one flavor on the server.
///
/// Implement ``authenticateImmediately(_:context:)`` when most calls can be decided without
/// waiting (a cache hit, AUTH_SYS); return nil there to fall back to the async method.
public protocol RPCServerAuthenticator: Sendable {
    var flavor: AuthFlavor { get }
    /// Decides on the event loop, without suspending; nil means "needs the async path".
    func authenticateImmediately(_ call: RPCCall, context: RPCCallContext) -> RPCAuthDecision?
    /// Decides, possibly asking other services (a keyserver, a directory).
    func authenticate(_ call: RPCCall, context: RPCCallContext) async -> RPCAuthDecision
}

extension RPCServerAuthenticator {
    public func authenticateImmediately(_ call: RPCCall, context: RPCCallContext) -> RPCAuthDecision? { nil }
}

/// Decides whether an authenticated caller may run a procedure. Returning a status denies
/// the call with AUTH_ERROR and that status (normally `.tooWeak`).
public protocol RPCAuthorizationPolicy: Sendable {
    func authorize(_ caller: RPCCaller, procedure: UInt32) -> AuthStatus?
}

/// Accepts any caller whose flavor the server has an authenticator for.
public struct AllowAnyFlavor: RPCAuthorizationPolicy {
    public init() {}
    public func authorize(_ caller: RPCCaller, procedure: UInt32) -> AuthStatus? { nil }
}

/// Accepts only the listed flavors; others get AUTH_TOOWEAK. Procedure 0 (NULL) is
/// always allowed so that `rpcinfo` pings and RPCSEC_GSS context set-up work.
public struct RequireFlavors: RPCAuthorizationPolicy {
    public var flavors: Set<AuthFlavor>
    public init(_ flavors: Set<AuthFlavor>) { self.flavors = flavors }
    public func authorize(_ caller: RPCCaller, procedure: UInt32) -> AuthStatus? {
        if procedure == 0 || flavors.contains(caller.flavor) { return nil }
        return .tooWeak
    }
}

// MARK: - Client side

/// Credential, verifier and arguments for one call, plus how to check its reply.
public struct RPCPreparedCall: Sendable {
    public var credential: OpaqueAuth
    public var verifier: OpaqueAuth
    /// Arguments as they go on the wire (wrapped for RPCSEC_GSS integrity/privacy).
    public var arguments: ByteBuffer
    /// Checks the reply verifier and unwraps results; throws to reject the reply.
    public var validateReply: @Sendable (_ verifier: OpaqueAuth, _ results: ByteBuffer) throws -> ByteBuffer
    /// For authenticators with ``RPCClientAuthenticator/requiresOrderedTransmission``: no
    /// other call may be made until this one's reply is in (AUTH_DH's first, fullname call:
    /// the calls after it should use the nickname its reply brings).
    public var holdsOrderUntilReply = false

    public init(
        credential: OpaqueAuth, verifier: OpaqueAuth, arguments: ByteBuffer,
        validateReply: @escaping @Sendable (_ verifier: OpaqueAuth, _ results: ByteBuffer) throws -> ByteBuffer = { _, results in results }
    ) {
        self.credential = credential
        self.verifier = verifier
        self.arguments = arguments
        self.validateReply = validateReply
    }
}

/// What the client tells an authenticator about the call it is about to send.
public struct RPCCallHeader: Sendable, Hashable {
    public var xid: UInt32
    public var program: UInt32
    public var version: UInt32
    public var procedure: UInt32
    /// 0 for the first transmission of this xid, then 1, 2, … for retransmissions that
    /// asked the authenticator for fresh credentials.
    public var transmission: Int

    public init(xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32, transmission: Int = 0) {
        self.xid = xid
        self.program = program
        self.version = version
        self.procedure = procedure
        self.transmission = transmission
    }
}

/// Produces credentials for outgoing calls of one flavor.
public protocol RPCClientAuthenticator: Sendable {
    var flavor: AuthFlavor { get }
    /// Builds credential and verifier for one call. Called once per call; UDP
    /// retransmissions resend the same bytes unless ``freshCredentialsPerTransmission``.
    func prepare(_ header: RPCCallHeader, arguments: ByteBuffer) async throws -> RPCPreparedCall
    /// Called after the server denied a call with `status`. Return true when the
    /// authenticator renewed its state (new session key, new context) and the call should
    /// be sent once more.
    func refresh(after status: AuthStatus) async -> Bool
    /// RPCSEC_GSS needs a new sequence number on every transmission (RFC 2203 §5.3.3.1).
    var freshCredentialsPerTransmission: Bool { get }
    /// AUTH_DH needs its calls to reach the server in the order their credentials were made
    /// (each timestamp must be later than the last): the client then makes and writes one
    /// call at a time, while replies are still awaited concurrently.
    var requiresOrderedTransmission: Bool { get }
    /// This call's credentials made at once, without waiting for anything, or nil when they
    /// must be made by ``prepare(_:arguments:client:)`` (a new conversation, a first call
    /// whose reply brings what the next ones use). ``RPCClient`` tries it first for every
    /// call: an asynchronous `prepare` costs a task switch check and a frame per call even
    /// when it never suspends (issue 18). With ``requiresOrderedTransmission`` it is called
    /// while the client holds the transmission order without having waited for it, and the
    /// write is queued before letting go: calls then go out in credential order without
    /// handing a turn from task to task. It must not block and must never return a call that
    /// holds the order until its reply. The default returns nil.
    func prepareImmediately(_ header: RPCCallHeader, arguments: ByteBuffer) throws -> RPCPreparedCall?
    /// What ``RPCClient`` calls: like ``prepare(_:arguments:)``, with the client at hand
    /// for flavors that must talk to the server first (RPCSEC_GSS context creation).
    func prepare(_ header: RPCCallHeader, arguments: ByteBuffer, client: RPCClient) async throws -> RPCPreparedCall
    /// Called by ``RPCClient/close()`` while the connection is still up (RPCSEC_GSS
    /// destroys its context on the server).
    func clientWillClose(_ client: RPCClient) async
}

extension RPCClientAuthenticator {
    public func refresh(after status: AuthStatus) async -> Bool { false }
    public var freshCredentialsPerTransmission: Bool { false }
    public var requiresOrderedTransmission: Bool { false }
    public func prepareImmediately(_ header: RPCCallHeader, arguments: ByteBuffer) throws -> RPCPreparedCall? { nil }
    public func prepare(_ header: RPCCallHeader, arguments: ByteBuffer, client: RPCClient) async throws -> RPCPreparedCall {
        try await prepare(header, arguments: arguments)
    }
    public func clientWillClose(_ client: RPCClient) async {}
}
