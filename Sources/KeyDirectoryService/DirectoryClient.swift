// A host's connection to its site's directory servers (keydird). Trust comes only from the
// pinned fingerprint in securerpc.conf: KD_DIRECTORY_KEYS is asked without credentials, and a
// server whose answer holds no key with the pinned fingerprint is refused — not talked to
// at all. With the pinned key, the client makes an RPCSEC_GSS srpc-dh context as this
// process's principal (its keyserver does the Diffie-Hellman), so every answer is bound to
// the directory's key: a forged, flipped or replayed reply fails the GSS checks. Servers are
// tried in the configured order; a server that cannot be reached or refuses us is skipped and
// retried later.

import Foundation
import KeyCrypto
import KeyServer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import SecureRPC
import SiteConfig
#if canImport(Glibc)
import Glibc
#endif

/// Why the directory could not answer.
public enum DirectoryClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// securerpc.conf names no directory server.
    case noDirectoryConfigured(String?)
    /// A server presented keys, none with the pinned fingerprint.
    case fingerprintMismatch(server: String, pinned: String, presented: [String])
    /// No server answered; one reason per server tried.
    case unreachable([String])
    /// The directory answered, and refused: its status and message.
    case refused(server: String, status: String, message: String)

    public var description: String {
        switch self {
        case let .noDirectoryConfigured(source):
            return "no directory server is configured (add a 'directory HOST NETNAME FINGERPRINT' line to \(source ?? SiteConfiguration.defaultPath))"
        case let .fingerprintMismatch(server, pinned, presented):
            let shown = presented.isEmpty ? "no keys" : presented.joined(separator: ", ")
            return "the directory \(server) did not present the pinned key \(pinned) (it presented \(shown)); refusing to talk to it — check securerpc.conf against `keyadmin fingerprint` on the directory host"
        case let .unreachable(reasons):
            return "no directory server answered: " + reasons.joined(separator: "; ")
        case let .refused(server, status, message):
            return "the directory \(server) refused: \(message.isEmpty ? status : message)"
        }
    }
}

/// Who this process is to the directory.
public struct DirectoryCaller: Sendable {
    /// The principal the calls are made as (logged in to the keyserver at `keyserverSocket`).
    public var netname: String
    public var keyserverSocket: String
    /// The uid the keyserver answers for: this process's, or — for root acting for another
    /// uid, as keyserverd does for its host principal (uid 0) — the one named.
    public var uid: UInt32

    public init(netname: String, keyserverSocket: String = KeyServerPaths.socket, uid: UInt32 = getuid()) {
        self.netname = netname
        self.keyserverSocket = keyserverSocket
        self.uid = uid
    }
}

/// Calls to the site's directory servers, with fail-over in the configured order.
///
/// ```swift
/// let site = try SiteConfiguration.load()
/// let directory = DirectoryClient(site: site, caller: DirectoryCaller(netname: "unix.fs1@example.org"))
/// let key = try await directory.call { try await $0.kdLookup(KdLookupArg(netname: "unix.1001@example.org", mechanism: "ffdhe3072")) }
/// ```
public final class DirectoryClient: Sendable {
    public let site: SiteConfiguration
    public let caller: DirectoryCaller
    /// Lookups need integrity; sealed keys and administration need privacy.
    public let service: GSSService
    public let timeout: TimeAmount
    private let logger: Logger

    private struct Connected {
        var server: SiteConfiguration.DirectoryServer
        var client: KeydirV1Client
    }

    private struct State {
        var current: Connected?
        var closed = false
    }

    private let state = NIOLockedValueBox(State())
    /// One connection attempt at a time: concurrent first calls share it.
    private let connecting = NIOLockedValueBox<Task<Connected, any Error>?>(nil)

    public init(site: SiteConfiguration, caller: DirectoryCaller, service: GSSService = .integrity,
                timeout: TimeAmount = .seconds(5), logger: Logger = Logger(label: "securerpc.directory")) {
        self.site = site
        self.caller = caller
        self.service = service
        self.timeout = timeout
        self.logger = logger
    }

    /// The server answering now, if connected.
    public var currentServer: SiteConfiguration.DirectoryServer? { state.withLockedValue { $0.current?.server } }

    /// Runs `body` against a directory server, connecting (or failing over) as needed. A
    /// transport failure or a lost context moves to the next server once; refusals are
    /// returned as they are.
    public func call<T: Sendable>(_ body: @Sendable (KeydirV1Client) async throws -> T) async throws -> T {
        var failures: [String] = []
        while true {
            let connection = try await connection()
            do {
                return try await body(connection.client)
            } catch let error as RPCClientError where Self.isTransportFailure(error) {
                failures.append("\(connection.server.address): \(error)")
                await drop(connection)
                // Once more, from the first server in order; then it is an outage.
                if failures.count > 1 { throw DirectoryClientError.unreachable(failures) }
                logger.notice("directory server failed, trying again", metadata: ["server": "\(connection.server)", "error": "\(error)"])
            }
        }
    }

    /// Forgets the current server (its connection is closed); the next call connects anew.
    public func reset() async {
        if let current = state.withLockedValue({ $0.current }) { await drop(current) }
    }

    public func close() async {
        let current = state.withLockedValue { state -> Connected? in
            state.closed = true
            defer { state.current = nil }
            return state.current
        }
        if let current { await current.client.close() }
    }

    private func drop(_ connection: Connected) async {
        let mine = state.withLockedValue { state -> Bool in
            guard let current = state.current, current.client.rpcClient === connection.client.rpcClient else { return false }
            state.current = nil
            return true
        }
        if mine { await connection.client.close() }
    }

    private func connection() async throws -> Connected {
        if let current = state.withLockedValue({ $0.current }) { return current }
        let task = connecting.withLockedValue { pending -> Task<Connected, any Error> in
            if let pending { return pending }
            let task = Task { try await self.connectToFirstAnswering() }
            pending = task
            return task
        }
        defer { connecting.withLockedValue { if $0 == task { $0 = nil } } }
        let connected = try await task.value
        state.withLockedValue { if $0.current == nil, !$0.closed { $0.current = connected } }
        return connected
    }

    private func connectToFirstAnswering() async throws -> Connected {
        guard !site.directories.isEmpty else { throw DirectoryClientError.noDirectoryConfigured(site.source) }
        var reasons: [String] = []
        var mismatch: DirectoryClientError?
        for server in site.directories {
            do {
                let connected = try await connect(to: server)
                logger.debug("directory server connected", metadata: ["server": "\(server)"])
                return connected
            } catch let error as DirectoryClientError {
                if case .fingerprintMismatch = error { mismatch = mismatch ?? error }
                logger.warning("directory server refused", metadata: ["server": "\(server)", "error": "\(error)"])
                reasons.append("\(server.address): \(error)")
            } catch {
                reasons.append("\(server.address): \(error)")
            }
        }
        // A wrong key is the more important news when it was the only one answering.
        if let mismatch, reasons.count == 1 { throw mismatch }
        throw DirectoryClientError.unreachable(reasons)
    }

    /// Checks the server's keys against the pinned fingerprint, then makes the GSS client.
    private func connect(to server: SiteConfiguration.DirectoryServer) async throws -> Connected {
        let address = try await Self.resolve(server, timeout: timeout)
        var configuration = RPCClient.Configuration()
        configuration.callTimeout = timeout
        configuration.connectTimeout = timeout
        let probe = KeydirV1Client(RPCClient(transport: .tcp, address: address, program: KeydirV1Client.program,
                                             version: KeydirV1Client.version, configuration: configuration))
        let presented: KdDirectoryKeys
        do {
            presented = try await probe.kdDirectoryKeys()
            await probe.close()
        } catch {
            await probe.close()
            throw error
        }
        var pinnedKey: DHPublicKey?
        var fingerprints: [String] = []
        for entry in presented {
            guard let group = try? DHGroupName(parsing: entry.mechanism), group != .dh192des,
                  let key = try? DHPublicKey(group: group, hex: entry.publicKey) else { continue }
            fingerprints.append(key.fingerprint)
            if key.fingerprint == server.fingerprint, entry.state == .kdActive { pinnedKey = key }
        }
        guard let pinnedKey else {
            throw DirectoryClientError.fingerprintMismatch(server: server.description, pinned: server.fingerprint, presented: fingerprints)
        }
        let gss = try GSSClient(clientNetname: caller.netname, serverNetname: server.netname, serverPublicKey: pinnedKey,
                                service: service, keyserver: try KeyServerClient(socketPath: caller.keyserverSocket, uid: caller.uid),
                                refreshServerKey: { pinnedKey })
        let client = RPCClient(transport: .tcp, address: address, program: KeydirV1Client.program,
                               version: KeydirV1Client.version, authenticator: gss, configuration: configuration)
        return Connected(server: server, client: KeydirV1Client(client))
    }

    static func resolve(_ server: SiteConfiguration.DirectoryServer, timeout: TimeAmount) async throws -> SocketAddress {
        if let port = server.port {
            return try SocketAddress.makeAddressResolvingHost(server.host, port: port)
        }
        let rpcbind = RPCBindClient(address: try SocketAddress.makeAddressResolvingHost(server.host, port: 111), timeout: timeout)
        do {
            let address = try await rpcbind.lookup(program: KeydirV1Client.program, version: KeydirV1Client.version, transport: .tcp, host: server.host)
            await rpcbind.close()
            return address
        } catch {
            await rpcbind.close()
            throw error
        }
    }

    static func isTransportFailure(_ error: RPCClientError) -> Bool {
        switch error {
        case .cannotConnect, .timedOut, .connectionClosed: return true
        default: return false
        }
    }
}
