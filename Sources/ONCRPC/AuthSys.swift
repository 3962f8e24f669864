// AUTH_SYS (flavor 1, historically AUTH_UNIX): the client states its uid, gid and groups
// and the server takes its word for it. Nothing here is verified; it exists for
// compatibility and for the local keyserver, which checks the uid against the socket's
// peer credentials instead.

import NIOCore
import XDR

/// The body of an AUTH_SYS credential (RFC 5531 Appendix A).
public struct AuthSysParameters: XDRCodable, Sendable, Hashable {
    public static let maximumMachineNameLength: UInt32 = 255
    public static let maximumGroups: UInt32 = 16

    public var stamp: UInt32
    public var machineName: String
    public var uid: UInt32
    public var gid: UInt32
    public var gids: [UInt32]

    public init(stamp: UInt32 = 0, machineName: String, uid: UInt32, gid: UInt32, gids: [UInt32] = []) {
        self.stamp = stamp
        self.machineName = machineName
        self.uid = uid
        self.gid = gid
        self.gids = gids
    }

    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        stamp = try buffer.readXDRUInt32()
        machineName = try buffer.readXDRString(maxLength: Self.maximumMachineNameLength)
        uid = try buffer.readXDRUInt32()
        gid = try buffer.readXDRUInt32()
        gids = try buffer.readXDRArray(of: UInt32.self, maxCount: Self.maximumGroups)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeXDR(stamp)
        buffer.writeXDR(machineName)
        buffer.writeXDR(uid)
        buffer.writeXDR(gid)
        buffer.writeXDRArray(gids)
    }

    /// The parameters of the running process: its uid, gid, supplementary groups
    /// (at most 16) and host name.
    public static func currentProcess() -> AuthSysParameters {
        #if canImport(Glibc)
        var host = [UInt8](repeating: 0, count: 256)
        _ = host.withUnsafeMutableBufferPointer { gethostname($0.baseAddress!, 255) }
        let name = String(decoding: host.prefix { $0 != 0 }, as: UTF8.self)
        var groups = [gid_t](repeating: 0, count: 64)
        let n = getgroups(Int32(groups.count), &groups)
        let gids = n > 0 ? Array(groups.prefix(Int(n)).prefix(16)) : []
        return AuthSysParameters(
            stamp: UInt32(truncatingIfNeeded: time(nil)), machineName: String(name.prefix(255)),
            uid: getuid(), gid: getgid(), gids: gids
        )
        #else
        return AuthSysParameters(machineName: "localhost", uid: 65534, gid: 65534)
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Client side of AUTH_SYS.
public struct AuthSysClient: RPCClientAuthenticator {
    public let parameters: AuthSysParameters
    private let credential: OpaqueAuth

    public init(_ parameters: AuthSysParameters = .currentProcess()) {
        self.parameters = parameters
        self.credential = OpaqueAuth(flavor: .sys, body: parameters.xdrEncoded())
    }

    public var flavor: AuthFlavor { .sys }

    public func prepare(_ header: RPCCallHeader, arguments: ByteBuffer) async throws -> RPCPreparedCall {
        try prepareImmediately(header, arguments: arguments)!
    }

    /// Never waits for anything, so `RPCClient` takes this path for every call.
    public func prepareImmediately(_ header: RPCCallHeader, arguments: ByteBuffer) throws -> RPCPreparedCall? {
        RPCPreparedCall(credential: credential, verifier: .none, arguments: arguments)
    }
}

/// Server side of AUTH_SYS: decodes the claimed identity. The body must decode exactly;
/// anything else is AUTH_BADCRED.
public struct AuthSysServer: RPCServerAuthenticator {
    public init() {}
    public var flavor: AuthFlavor { .sys }

    public func authenticateImmediately(_ call: RPCCall, context: RPCCallContext) -> RPCAuthDecision? {
        guard let parameters = try? call.credential.body.decodeXDRExactly(AuthSysParameters.self) else {
            return .rejected(.badCredential)
        }
        let caller = RPCCaller(
            flavor: .sys, machineName: parameters.machineName,
            uid: parameters.uid, gid: parameters.gid, gids: parameters.gids
        )
        return .accepted(RPCAcceptedCall(caller: caller, arguments: call.arguments))
    }

    public func authenticate(_ call: RPCCall, context: RPCCallContext) async -> RPCAuthDecision {
        authenticateImmediately(call, context: context)!
    }
}
