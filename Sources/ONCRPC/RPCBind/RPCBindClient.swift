// A client for the host's rpcbind (versions 3 and 4) and portmapper (version 2). It trusts
// rpcbind's answers only as far as they decode within bounds; a registration it cannot
// make is an error the caller decides about (the example server carries on without).

import NIOCore
import NIOPosix
import XDR

/// Why talking to rpcbind failed.
public enum RPCBindError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No rpcbind answered at the address tried.
    case notRunning(String)
    /// rpcbind answered SET with FALSE: the mapping exists already or we may not set it.
    case registrationRefused(RPCBindMapping)
    /// The program/version is not registered for that transport.
    case notRegistered(program: UInt32, version: UInt32, netid: String)
    /// rpcbind returned an address we cannot use.
    case badAddress(String)

    public var description: String {
        switch self {
        case let .notRunning(reason): return "rpcbind is not running (\(reason))"
        case let .registrationRefused(m):
            return "rpcbind refused to register program \(m.program) version \(m.version) on \(m.netid) at \(m.address)"
        case let .notRegistered(program, version, netid):
            return "program \(program) version \(version) is not registered with rpcbind for \(netid)"
        case let .badAddress(text): return "rpcbind returned an unusable address \"\(text)\""
        }
    }
}

/// Talks to an rpcbind daemon.
///
/// ```swift
/// let rpcbind = RPCBindClient.local()
/// let mappings = try await rpcbind.dump()
/// let time = try await rpcbind.getTime()
/// await rpcbind.close()
/// ```
public final class RPCBindClient: Sendable {
    /// The classic local socket path (rpcbind also listens on port 111).
    public static let defaultSocketPath = "/run/rpcbind.sock"

    private let client: RPCClient
    private let address: SocketAddress
    private let timeout: TimeAmount
    private let group: any EventLoopGroup

    /// A client for rpcbind at `address` over `transport` (unix socket addresses use TCP
    /// semantics: a stream with record marking).
    public init(
        address: SocketAddress,
        transport: RPCTransport = .tcp,
        timeout: TimeAmount = .seconds(5),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.address = address
        self.timeout = timeout
        self.group = group
        var configuration = RPCClient.Configuration()
        configuration.callTimeout = timeout
        configuration.connectTimeout = timeout
        self.client = RPCClient(
            transport: transport, address: address, program: RPCBindProtocol.program, version: 4,
            authenticator: AuthSysClient(), configuration: configuration, group: group
        )
    }

    /// The host's rpcbind over its unix socket when present (rpcbind then knows our uid and
    /// records it as the owner), else over TCP on 127.0.0.1:111.
    public static func local(socketPath: String = RPCBindClient.defaultSocketPath, timeout: TimeAmount = .seconds(5)) -> RPCBindClient {
        if let address = try? SocketAddress(unixDomainSocketPath: socketPath),
           pathExists(socketPath) {
            return RPCBindClient(address: address, timeout: timeout)
        }
        return RPCBindClient(address: try! SocketAddress(ipAddress: "127.0.0.1", port: RPCBindProtocol.port), timeout: timeout)
    }

    /// A client for rpcbind on another host (port 111).
    public static func remote(host: String, transport: RPCTransport = .udp, timeout: TimeAmount = .seconds(5)) throws -> RPCBindClient {
        let address = try SocketAddress.makeAddressResolvingHost(host, port: RPCBindProtocol.port)
        return RPCBindClient(address: address, transport: transport, timeout: timeout)
    }

    public func close() async {
        await client.close()
    }

    // MARK: versions 3 and 4

    /// NULL: is rpcbind there?
    public func ping(version: UInt32 = 4) async throws {
        _ = try await call(version: version, RPCBindProtocol.Procedure.null.rawValue, XDRVoid(), returning: XDRVoid.self)
    }

    /// SET: registers a mapping. Returns false when rpcbind refused.
    public func set(_ mapping: RPCBindMapping, version: UInt32 = 4) async throws -> Bool {
        try await call(version: version, RPCBindProtocol.Procedure.set.rawValue, mapping, returning: Bool.self)
    }

    /// UNSET: removes the mapping of a program version for one netid (or all netids when
    /// `netid` is empty). Returns false when there was nothing to remove or it was refused.
    public func unset(program: UInt32, version: UInt32, netid: String = "", rpcbindVersion: UInt32 = 4) async throws -> Bool {
        let query = RPCBindMapping(program: program, version: version, netid: netid)
        return try await call(version: rpcbindVersion, RPCBindProtocol.Procedure.unset.rawValue, query, returning: Bool.self)
    }

    /// GETADDR: the universal address of a program version, or nil.
    ///
    /// rpcbind answers for the netid of the transport the query arrives on and ignores the
    /// `netid` field, so ask over the transport you want the address for (`lookup` does).
    public func getAddress(program: UInt32, version: UInt32, netid: String, rpcbindVersion: UInt32 = 4) async throws -> String? {
        let query = RPCBindMapping(program: program, version: version, netid: netid)
        let reply = try await call(version: rpcbindVersion, RPCBindProtocol.Procedure.getAddress.rawValue, query, returning: RPCBindString.self)
        return reply.value.isEmpty ? nil : reply.value
    }

    /// DUMP: every registration.
    public func dump(version: UInt32 = 4) async throws -> [RPCBindMapping] {
        try await call(version: version, RPCBindProtocol.Procedure.dump.rawValue, XDRVoid(), returning: RPCBindMappingList.self).entries
    }

    /// GETTIME: rpcbind's clock, seconds since 1970 (used for AUTH_DH clock sync).
    public func getTime(version: UInt32 = 3) async throws -> UInt32 {
        try await call(version: version, RPCBindProtocol.Procedure.getTime.rawValue, XDRVoid(), returning: UInt32.self)
    }

    // MARK: version 2 (portmapper)

    /// PMAPPROC_SET.
    public func portmapSet(_ mapping: PortMapping) async throws -> Bool {
        try await call(version: 2, RPCBindProtocol.PortmapProcedure.set.rawValue, mapping, returning: Bool.self)
    }

    /// PMAPPROC_UNSET (protocol and port are ignored by the daemon).
    public func portmapUnset(program: UInt32, version: UInt32) async throws -> Bool {
        let mapping = PortMapping(program: program, version: version, protocol: .tcp, port: 0)
        return try await call(version: 2, RPCBindProtocol.PortmapProcedure.unset.rawValue, mapping, returning: Bool.self)
    }

    /// PMAPPROC_GETPORT: the port of a program version, or nil when not registered.
    public func getPort(program: UInt32, version: UInt32, protocol: PortMapping.IPProtocol) async throws -> Int? {
        let query = PortMapping(program: program, version: version, protocol: `protocol`, port: 0)
        let port = try await call(version: 2, RPCBindProtocol.PortmapProcedure.getPort.rawValue, query, returning: UInt32.self)
        return port == 0 ? nil : Int(port)
    }

    /// PMAPPROC_DUMP.
    public func portmapDump() async throws -> [PortMapping] {
        try await call(version: 2, RPCBindProtocol.PortmapProcedure.dump.rawValue, XDRVoid(), returning: PortMappingList.self).entries
    }

    // MARK: lookups

    /// Finds where a program version listens: GETADDR (v4, then v3), then GETPORT (v2).
    /// The query goes over `transport` itself, because rpcbind answers GETADDR for the
    /// transport the query arrived on.
    public func lookup(program: UInt32, version: UInt32, transport: RPCTransport, host: String) async throws -> SocketAddress {
        let sameTransport = address.protocol == .unix ? transport == .tcp : transport == client.transport
        if !sameTransport {
            // rpcbind's unix socket carries streams only: ask its UDP port for UDP.
            let target = address.protocol == .unix
                ? try SocketAddress(ipAddress: "127.0.0.1", port: RPCBindProtocol.port) : address
            let other = RPCBindClient(address: target, transport: transport, timeout: timeout, group: group)
            do {
                let result = try await other.lookupHere(program: program, version: version, transport: transport, host: host)
                await other.close()
                return result
            } catch {
                await other.close()
                throw error
            }
        }
        return try await lookupHere(program: program, version: version, transport: transport, host: host)
    }

    private func lookupHere(program: UInt32, version: UInt32, transport: RPCTransport, host: String) async throws -> SocketAddress {
        let netid = transport.rawValue
        for rpcbindVersion: UInt32 in [4, 3] {
            do {
                guard let universal = try await getAddress(program: program, version: version, netid: netid, rpcbindVersion: rpcbindVersion) else {
                    throw RPCBindError.notRegistered(program: program, version: version, netid: netid)
                }
                guard let address = UniversalAddress.parse(universal), let port = address.port else {
                    throw RPCBindError.badAddress(universal)
                }
                // rpcbind reports the address the server bound (often 0.0.0.0): keep the host
                // we reached rpcbind at and take the port.
                return try SocketAddress.makeAddressResolvingHost(host, port: port)
            } catch RPCClientError.programMismatch {
                continue
            }
        }
        guard let port = try await getPort(program: program, version: version, protocol: transport == .tcp ? .tcp : .udp) else {
            throw RPCBindError.notRegistered(program: program, version: version, netid: netid)
        }
        return try SocketAddress.makeAddressResolvingHost(host, port: port)
    }

    private func call<Args: XDREncodable, Result: XDRDecodable>(
        version: UInt32, _ procedure: UInt32, _ arguments: Args, returning: Result.Type
    ) async throws -> Result {
        let results: ByteBuffer
        do {
            results = try await client.call(program: RPCBindProtocol.program, version: version, procedure: procedure, arguments: arguments.xdrEncoded())
        } catch let RPCClientError.cannotConnect(address, reason) {
            throw RPCBindError.notRunning("cannot connect to \(address): \(reason)")
        }
        do {
            return try results.decodeXDRExactly(Result.self)
        } catch {
            throw RPCClientError.badResults(error)
        }
    }
}

/// Whether a path exists (`access(2)`; Foundation is not needed for one call).
@inline(__always)
private func pathExists(_ path: String) -> Bool {
    #if canImport(Glibc)
    return access(path, F_OK) == 0
    #else
    return false
    #endif
}

#if canImport(Glibc)
import Glibc
#endif
