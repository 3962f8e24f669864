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
        SecureRPCEnvironment(directory: directory, keyserverSocket: keyserverSocket, netname: Netname.user(uid: getuid(), domain: domain))
    }
}

/// Why a secure client or server could not be set up.
public enum SecureRPCSetupError: Error, Equatable, CustomStringConvertible {
    case unknownServer(String)

    public var description: String {
        switch self {
        case let .unknownServer(netname): return "no dh192-des public key for the server \(netname) in the key directory"
        }
    }
}

extension RPCClient {
    /// A client that authenticates as `authentication` says.
    ///
    /// ```swift
    /// let client = try RPCClient.secure(host: "fs1", port: 20049, program: 0x2000_0200, version: 1,
    ///                                   auth: .dh(server: "unix.fs1@example.org"),
    ///                                   environment: .current(domain: "example.org"))
    /// ```
    public static func secure(
        transport: RPCTransport = .tcp, host: String, port: Int, program: UInt32, version: UInt32,
        auth: RPCAuthentication, environment: SecureRPCEnvironment, configuration: RPCClient.Configuration = .init()
    ) throws -> RPCClient {
        let authenticator: any RPCClientAuthenticator
        switch auth {
        case .none:
            authenticator = AuthNoneClient()
        case .sys:
            authenticator = AuthSysClient()
        case let .dh(server):
            let lookup = try PublicKeyLookup(path: environment.directory)
            guard let serverKey = try lookup.publicKey(netname: server, mechanism: .dh192des) else {
                throw SecureRPCSetupError.unknownServer(server)
            }
            authenticator = AuthDHClient(clientNetname: environment.netname, serverNetname: server, serverPublicKey: serverKey,
                                         keyserver: try KeyServerClient(socketPath: environment.keyserverSocket))
        }
        return try RPCClient(transport: transport, host: host, port: port, program: program, version: version,
                             authenticator: authenticator, configuration: configuration)
    }
}

/// Server-side authentication: the verifiers to install and the policy for programs.
public enum SecureRPCServer {
    /// AUTH_NONE, AUTH_SYS and AUTH_DH verifiers. AUTH_DH asks this host's keyserver (as the
    /// server process's uid) and looks client keys up in the directory.
    public static func authenticators(directory: String, keyserverSocket: String = KeyServerPaths.socket,
                                      localDomain: String? = nil) throws -> [any RPCServerAuthenticator] {
        let lookup = try PublicKeyLookup(path: directory)
        let dh = AuthDHServer(keyserver: try KeyServerClient(socketPath: keyserverSocket), localDomain: localDomain) { netname in
            try? lookup.publicKey(netname: netname, mechanism: .dh192des)
        }
        return [AuthNoneServer(), AuthSysServer(), dh]
    }

    /// A policy that accepts only the named mechanisms (NULL stays open for pings): anything
    /// below gets AUTH_TOOWEAK. The legacy AUTH_DH is accepted only when listed.
    public static func require(_ mechanisms: Set<AuthFlavor>) -> any RPCAuthorizationPolicy {
        RequireFlavors(mechanisms)
    }
}
