// The public face of authenticated calls: pick a mechanism as a value, get a client or the
// server-side authenticators and policy. Mechanisms are cases of one enum, so the strong
// RPCSEC_GSS mechanism is one more case, not a new API. Public keys come from the key
// directory; every secret-key operation goes through this host's keyserver.

import Foundation
import KeyCrypto
import KeyDirectory
import KeyServer
import NIOCore
import ONCRPC
#if canImport(Glibc)
import Glibc
#endif

/// How a client proves who it is.
public enum RPCAuthentication: Sendable, Equatable {
    /// No credential.
    case none
    /// The classic unverified uid/gid claim.
    case sys
    /// AUTH_DH (Sun AUTH_DES, 192-bit DH): legacy, accepted only where policy names it.
    case dh(server: String)
    /// RPCSEC_GSS with the srpc-dh mechanism: a context made with `group` (the server's key
    /// of that group comes from the directory), then every call protected as `service`
    /// says. Never falls back to a weaker group or service.
    case gss(server: String, group: GSSGroup = .ffdhe3072, service: GSSService = .privacy)

    /// The strong default: RPCSEC_GSS, ffdhe3072, privacy.
    public static func strong(server: String) -> RPCAuthentication { .gss(server: server) }
}

/// Where this host keeps what authentication needs.
public struct SecureRPCEnvironment: Sendable {
    /// The key directory (public keys of users and servers).
    public var directory: String
    /// This host's keyserver socket.
    public var keyserverSocket: String
    /// The caller's netname; default `unix.UID@DOMAIN` with `domain`.
    public var netname: String

    public init(directory: String = SQLiteKeyDirectory.defaultPath, keyserverSocket: String = KeyServerPaths.socket, netname: String) {
        self.directory = directory
        self.keyserverSocket = keyserverSocket
        self.netname = netname
    }

    /// The environment of the running process in `domain`.
    public static func current(domain: String, directory: String = SQLiteKeyDirectory.defaultPath,
                               keyserverSocket: String = KeyServerPaths.socket) -> SecureRPCEnvironment {
        SecureRPCEnvironment(directory: directory, keyserverSocket: keyserverSocket, netname: Netname.local(uid: getuid(), domain: domain))
    }
}

/// Why a secure client or server could not be set up.
public enum SecureRPCSetupError: Error, Equatable, CustomStringConvertible {
    case unknownServer(String, mechanism: String = "dh192-des")
    /// RPCSEC_GSS takes only the RFC 7919 groups.
    case weakGroup(String)

    public var description: String {
        switch self {
        case let .unknownServer(netname, mechanism): return "no \(mechanism) public key for the server \(netname) in the key directory"
        case let .weakGroup(group): return "RPCSEC_GSS needs an ffdhe2048, ffdhe3072 or ffdhe4096 key, not \(group)"
        }
    }
}

extension RPCClient {
    /// A client that authenticates as `authentication` says. `timeHost` (AUTH_DH only): the
    /// host whose clock the credentials' timestamps follow, as libtirpc's
    /// `authdes_seccreate` takes one, for a client whose clock is not kept in step with the
    /// server's (RPCSEC_GSS needs clocks within its skew, 300 s by default).
    ///
    /// ```swift
    /// let client = try RPCClient.secure(host: "fs1", port: 20049, program: 0x2000_0200, version: 1,
    ///                                   auth: .dh(server: "unix.fs1@example.org"),
    ///                                   environment: .current(domain: "example.org"))
    /// ```
    public static func secure(
        transport: RPCTransport = .tcp, host: String, port: Int, program: UInt32, version: UInt32,
        auth: RPCAuthentication, environment: SecureRPCEnvironment, timeHost: AuthDHTimeHost? = nil,
        configuration: RPCClient.Configuration = .init()
    ) throws -> RPCClient {
        // The directory file is opened only for the flavors that need the server's key.
        var lookup: PublicKeyLookup?
        switch auth {
        case .none, .sys: break
        case .dh, .gss: lookup = try PublicKeyLookup(path: environment.directory)
        }
        let opened = lookup
        let authenticator = try makeAuthenticator(auth, environment: environment, timeHost: timeHost,
                                                  serverKey: { server, mechanism in try opened?.publicKey(netname: server, mechanism: mechanism) },
                                                  refreshServerKey: { server, mechanism, _ in { try opened?.publicKey(netname: server, mechanism: mechanism) } })
        return try RPCClient(transport: transport, host: host, port: port, program: program, version: version,
                             authenticator: authenticator, configuration: configuration)
    }

    /// The authenticator for `auth`, the server's key from `serverKey` (nil: unknown server)
    /// and, for RPCSEC_GSS, its later re-reads from `refreshServerKey` (given the key found).
    private static func makeAuthenticator(
        _ auth: RPCAuthentication, environment: SecureRPCEnvironment, timeHost: AuthDHTimeHost?,
        serverKey: (String, DHGroupName) throws -> DHPublicKey?,
        refreshServerKey: (String, DHGroupName, DHPublicKey) -> @Sendable () throws -> DHPublicKey?
    ) throws -> any RPCClientAuthenticator {
        switch auth {
        case .none:
            return AuthNoneClient()
        case .sys:
            return AuthSysClient()
        case let .dh(server):
            guard let key = try serverKey(server, .dh192des) else { throw SecureRPCSetupError.unknownServer(server) }
            return AuthDHClient(clientNetname: environment.netname, serverNetname: server, serverPublicKey: key,
                                keyserver: try KeyServerClient(socketPath: environment.keyserverSocket), timeHost: timeHost)
        case let .gss(server, group, service):
            guard let key = try serverKey(server, group.dhGroup) else {
                throw SecureRPCSetupError.unknownServer(server, mechanism: group.rawValue)
            }
            return try GSSClient(clientNetname: environment.netname, serverNetname: server, serverPublicKey: key,
                                 service: service, keyserver: try KeyServerClient(socketPath: environment.keyserverSocket),
                                 refreshServerKey: refreshServerKey(server, group.dhGroup, key))
        }
    }

    /// As ``secure(transport:host:port:program:version:auth:environment:timeHost:configuration:)``,
    /// with the server's public key from `keys` instead of the environment's directory file:
    /// on a host without keys.db, the site's directory service (`NetworkKeyLookup`), or a
    /// classic site's `/etc/publickey` (`PublicKeyFileSource`, AUTH_DH keys only).
    ///
    /// ```swift
    /// let keys = NetworkKeyLookup(directory: DirectoryClient(site: site, caller: DirectoryCaller(netname: me)))
    /// let client = try await RPCClient.secure(host: "fs1", port: 20049, program: 0x2000_0200, version: 1,
    ///                                         auth: .gss(server: "unix.fs1@example.org"),
    ///                                         environment: .current(domain: "example.org"), keys: keys)
    /// ```
    public static func secure(
        transport: RPCTransport = .tcp, host: String, port: Int, program: UInt32, version: UInt32,
        auth: RPCAuthentication, environment: SecureRPCEnvironment, keys: any PublicKeySource,
        timeHost: AuthDHTimeHost? = nil, configuration: RPCClient.Configuration = .init()
    ) async throws -> RPCClient {
        // The one key the authenticator needs, fetched first (the source may wait for the
        // network); the refresh runs where the client cannot wait: the source's cached
        // answer, else the key already held.
        var fetched: DHPublicKey?
        switch auth {
        case .none, .sys: break
        case let .dh(server): fetched = try await keys.fetchPublicKey(netname: server, mechanism: .dh192des)
        case let .gss(server, group, _): fetched = try await keys.fetchPublicKey(netname: server, mechanism: group.dhGroup)
        }
        let found = fetched
        let authenticator = try makeAuthenticator(auth, environment: environment, timeHost: timeHost, serverKey: { _, _ in found },
                                                  refreshServerKey: { server, mechanism, key in { keys.cachedPublicKey(netname: server, mechanism: mechanism) ?? key } })
        return try RPCClient(transport: transport, host: host, port: port, program: program, version: version,
                             authenticator: authenticator, configuration: configuration)
    }
}

/// Whether callers that prove nothing (AUTH_NONE, AUTH_SYS) reach a secure server's programs.
public enum UnprovenCallers: Sendable, Equatable {
    /// Only NULL (procedure 0) answers them: pings such as `rpcinfo -t`. Every other
    /// procedure answers AUTH_TOOWEAK, whatever a program's policy says, so a program built
    /// without a policy serves proven callers only. The default.
    case pingsOnly
    /// Their calls go on to the programs' policies, which decide. Say this only for a
    /// service meant to serve unproven callers on some procedures (and give those programs a
    /// policy that names them): it is the `.plaintext` of this library.
    case decidedByPolicy
}

/// Server-side authentication: the verifiers to install and the policy for programs.
public enum SecureRPCServer {
    /// The AUTH_DH verifier, RPCSEC_GSS (srpc-dh) when `gss` is given, and AUTH_NONE and
    /// AUTH_SYS for pings only unless `unproven` says otherwise. Both ask this host's
    /// keyserver (as the server process's uid) and look client keys up in the directory.
    public static func authenticators(directory: String, keyserverSocket: String = KeyServerPaths.socket,
                                      localDomain: String? = nil, gss: GSSServer.Configuration? = nil,
                                      unproven: UnprovenCallers = .pingsOnly) throws -> [any RPCServerAuthenticator] {
        try authenticators(keys: try PublicKeyLookup(path: directory), keyserverSocket: keyserverSocket, localDomain: localDomain,
                           gss: gss, unproven: unproven)
    }

    /// As ``authenticators(directory:keyserverSocket:localDomain:gss:unproven:)``, with
    /// clients' keys from any source: the local directory file, or the site's directory
    /// service (`NetworkKeyLookup`, whose change feed then ends a revoked client's
    /// conversations and contexts on this server at once).
    public static func authenticators(keys: any PublicKeySource, keyserverSocket: String = KeyServerPaths.socket,
                                      localDomain: String? = nil, gss: GSSServer.Configuration? = nil,
                                      unproven: UnprovenCallers = .pingsOnly) throws -> [any RPCServerAuthenticator] {
        let keyserver = try KeyServerClient(socketPath: keyserverSocket)
        let dh = AuthDHServer(keyserver: keyserver, localDomain: localDomain, keys: keys)
        var authenticators: [any RPCServerAuthenticator]
        switch unproven {
        case .pingsOnly: authenticators = [PingsOnly(AuthNoneServer()), PingsOnly(AuthSysServer()), dh]
        case .decidedByPolicy: authenticators = [AuthNoneServer(), AuthSysServer(), dh]
        }
        if var gss {
            if gss.localDomain == nil { gss.localDomain = localDomain }
            authenticators.append(GSSServer(configuration: gss, keyserver: keyserver, keys: keys))
        }
        return authenticators
    }

    /// A policy that accepts only RPCSEC_GSS with at least `group` and `service` (NULL stays
    /// open for pings and context creation); anything weaker gets AUTH_TOOWEAK.
    public static func require(gss group: GSSGroup, service: GSSService) -> SecurityPolicy {
        SecurityPolicy(.gss(minimumGroup: group, minimumService: service))
    }

    /// A policy that accepts only the named mechanisms (NULL stays open for pings): anything
    /// below gets AUTH_TOOWEAK. The legacy AUTH_DH is accepted only when listed.
    public static func require(_ mechanisms: Set<AuthFlavor>) -> any RPCAuthorizationPolicy {
        RequireFlavors(mechanisms)
    }
}

/// What a caller must have shown to run a procedure.
public struct SecurityRequirement: Sendable, Hashable {
    /// Flavors that qualify at all.
    public var flavors: Set<AuthFlavor>
    /// Smallest Diffie-Hellman group, in bits (0: any).
    public var minimumKeyExchangeBits: Int
    /// Weakest per-message protection.
    public var minimumProtection: RPCMessageProtection

    public init(flavors: Set<AuthFlavor>, minimumKeyExchangeBits: Int = 0, minimumProtection: RPCMessageProtection = .none) {
        self.flavors = flavors
        self.minimumKeyExchangeBits = minimumKeyExchangeBits
        self.minimumProtection = minimumProtection
    }

    /// RPCSEC_GSS with at least this group and service.
    public static func gss(minimumGroup: GSSGroup = .ffdhe3072, minimumService: GSSService = .privacy) -> SecurityRequirement {
        SecurityRequirement(flavors: [.rpcsecGSS], minimumKeyExchangeBits: minimumGroup.bits, minimumProtection: minimumService.protection)
    }

    /// Any proven caller: AUTH_DH or RPCSEC_GSS of any group and service.
    public static let verified = SecurityRequirement(flavors: [.dh, .rpcsecGSS])
    /// Anyone at all.
    public static let anyone = SecurityRequirement(flavors: [.none, .sys, .dh, .rpcsecGSS])

    public func isMet(by caller: RPCCaller) -> Bool {
        flavors.contains(caller.flavor)
            && caller.keyExchangeBits >= minimumKeyExchangeBits
            && caller.protection >= minimumProtection
            && (caller.isVerified || !(caller.flavor == .dh || caller.flavor == .rpcsecGSS))
    }
}

/// Per-program policy: one requirement for every procedure (or a choice of requirements),
/// with exceptions per procedure. NULL (procedure 0) is always open: pings and RPCSEC_GSS
/// context creation use it.
///
/// ```swift
/// // RPCSEC_GSS with ffdhe3072+ and privacy, or the legacy AUTH_DH; nothing else.
/// let policy = SecurityPolicy(anyOf: [.gss(minimumGroup: .ffdhe3072, minimumService: .privacy),
///                                     SecurityRequirement(flavors: [.dh])])
/// ```
public struct SecurityPolicy: RPCAuthorizationPolicy {
    public var requirement: SecurityRequirement
    /// Other requirements, any one of which qualifies a caller as well (for procedures
    /// without an exception). Each is a whole: meeting the flavor of one and the protection
    /// of another is not enough.
    public var alternatives: [SecurityRequirement]
    public var procedures: [UInt32: SecurityRequirement]

    public init(_ requirement: SecurityRequirement, procedures: [UInt32: SecurityRequirement] = [:]) {
        self.requirement = requirement
        self.alternatives = []
        self.procedures = procedures
    }

    /// A caller qualifies when it meets any one of `requirements` (at least one).
    public init(anyOf requirements: [SecurityRequirement], procedures: [UInt32: SecurityRequirement] = [:]) {
        precondition(!requirements.isEmpty, "a policy needs at least one requirement")
        self.requirement = requirements[0]
        self.alternatives = Array(requirements.dropFirst())
        self.procedures = procedures
    }

    public func authorize(_ caller: RPCCaller, procedure: UInt32) -> AuthStatus? {
        if procedure == 0 { return nil }
        if let exception = procedures[procedure] { return exception.isMet(by: caller) ? nil : .tooWeak }
        if requirement.isMet(by: caller) || alternatives.contains(where: { $0.isMet(by: caller) }) { return nil }
        return .tooWeak
    }
}

/// A flavor that proves nothing, accepted for NULL only (``UnprovenCallers/pingsOnly``):
/// anything else is AUTH_TOOWEAK before a program or its policy sees it.
struct PingsOnly: RPCServerAuthenticator {
    let inner: any RPCServerAuthenticator
    init(_ inner: any RPCServerAuthenticator) { self.inner = inner }
    var flavor: AuthFlavor { inner.flavor }

    func authenticateImmediately(_ call: RPCCall, context: RPCCallContext) -> RPCAuthDecision? {
        guard call.procedure == 0 else { return .rejected(.tooWeak) }
        return inner.authenticateImmediately(call, context: context)
    }

    func authenticate(_ call: RPCCall, context: RPCCallContext) async -> RPCAuthDecision {
        guard call.procedure == 0 else { return .rejected(.tooWeak) }
        return await inner.authenticate(call, context: context)
    }
}
