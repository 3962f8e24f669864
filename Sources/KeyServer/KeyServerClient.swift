// The client side of the keyserver protocol for our own tools (keylogin, keylogout, AUTH_DH
// later): AUTH_SYS with the process's uid over the keyserver's unix socket, and errors a
// person can act on ("the keyserver is not running").

import Foundation
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where the keyserver's socket and the host's root key live by default.
public enum KeyServerPaths {
    /// The classic path FreeBSD's keyserv uses for its AF_LOCAL socket.
    public static let socket = "/var/run/keyservsock"
    /// Root's secret key, so host services survive restarts (mode 0600).
    public static let rootKey = "/etc/.rootkey"
}

/// Why a keyserver request failed.
public enum KeyServerClientError: Error, Equatable, CustomStringConvertible {
    case notRunning(String, reason: String)
    case refused(String)
    case status(Keystatus)

    public var description: String {
        switch self {
        case let .notRunning(path, reason): return "the keyserver is not running (cannot connect to \(path): \(reason))"
        case let .refused(why): return "the keyserver refused: \(why)"
        case let .status(status): return "the keyserver answered \(status)"
        }
    }
}

/// Talks to keyserverd as the calling process's uid.
public final class KeyServerClient: Sendable {
    public let socketPath: String
    public let client: KeyVers2Client
    /// The strong-mechanism extension on the same connection.
    public let strong: SrpcKeyxV1Client
    /// K_ss answers kept while the keyserver's lease lasts (`kss(_:)`).
    let leases = NIOLockedValueBox(KssLeases(capacity: 4096))
    /// Cleared once the keyserver answers KEYX_DERIVE_LEASED with PROC_UNAVAIL.
    let keyserverGrantsLeases = Atomic<Bool>(true)
    /// Seconds on a clock that only moves forward (tests pass their own).
    let leaseClock: @Sendable () -> Double

    /// - Parameters:
    ///   - socketPath: the keyserver's unix socket.
    ///   - uid: the uid to act as (AUTH_SYS; the keyserver lets only root name another).
    ///   - leaseClock: seconds for K_ss leases, for tests; the default is the monotonic
    ///     uptime clock.
    public init(socketPath: String = KeyServerPaths.socket, uid: UInt32 = getuid(),
                leaseClock: (@Sendable () -> Double)? = nil) throws {
        self.socketPath = socketPath
        self.leaseClock = leaseClock ?? { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        // libtirpc's key_call sends AUTH_SYS with an empty machine name, gid 0, no groups.
        let credentials = AuthSysParameters(machineName: "", uid: uid, gid: 0, gids: [])
        var configuration = RPCClient.Configuration()
        configuration.callTimeout = .seconds(30)
        configuration.connectTimeout = .seconds(5)
        let rpc = RPCClient(
            transport: .tcp, address: try SocketAddress(unixDomainSocketPath: socketPath),
            program: KeyVers2Client.program, version: KeyVers2Client.version,
            authenticator: AuthSysClient(credentials), configuration: configuration
        )
        client = KeyVers2Client(rpc)
        strong = SrpcKeyxV1Client(RPCClient(
            transport: .tcp, address: try SocketAddress(unixDomainSocketPath: socketPath),
            program: SrpcKeyxV1Client.program, version: SrpcKeyxV1Client.version,
            authenticator: AuthSysClient(credentials), configuration: configuration
        ))
    }

    public func close() async {
        await client.close()
        await strong.close()
    }

    /// Runs a request, turning transport failures into `KeyServerClientError`.
    public func perform<T>(_ body: (KeyVers2Client) async throws -> T) async throws -> T {
        try await mapErrors { try await body(client) }
    }

    /// Runs a request of the strong-mechanism extension.
    public func performStrong<T>(_ body: (SrpcKeyxV1Client) async throws -> T) async throws -> T {
        try await mapErrors { try await body(strong) }
    }

    /// KEYX_STATUS: what the keyserver holds for this uid (public facts only; root also
    /// learns about the key files the keyserver loads).
    public func status() async throws -> KeyxStatus {
        let answer = try await performStrong { strong in
            do {
                return try await strong.keyxStatus()
            } catch RPCClientError.procedureUnavailable {
                throw KeyServerClientError.refused("it does not know KEYX_STATUS (a keyserverd older than this tool: restart it from this release)")
            }
        }
        switch answer {
        case let .keySuccess(status): return status
        case let .default(status): throw KeyServerClientError.status(status)
        }
    }

    private func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RPCClientError {
            switch error {
            case let .cannotConnect(_, reason): throw KeyServerClientError.notRunning(socketPath, reason: reason)
            case let .authError(status): throw KeyServerClientError.refused("\(status)")
            default: throw KeyServerClientError.refused("\(error)")
            }
        }
    }
}
