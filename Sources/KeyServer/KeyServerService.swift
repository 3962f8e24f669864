// KEY_PROG versions 1 and 2 over a unix socket. The trust boundary is here: every call
// that touches a uid's keys runs for the AUTH_SYS uid only if the kernel's peer
// credentials agree (the same uid, or root, who may act for anyone); anything else gets
// AUTH_TOOWEAK. KEY_GEN and KEY_GETCRED are open to every local caller, as classically.

import Foundation
import KeyCrypto
import Logging
import NIOCore
import XDR
import ONCRPC
#if canImport(Glibc)
import Glibc
#endif

/// The keyserver's RPC programs.
public struct KeyServerService: KeyVersService, KeyVers2Service {
    public let core: KeyServerCore
    private let logger: Logger

    public init(core: KeyServerCore, logger: Logger = Logger(label: "keyserverd")) {
        self.core = core
        self.logger = logger
    }

    /// Both versions, ready for an `RPCServer`. Every legacy procedure is quick (a cache hit,
    /// a DES block, or one 192-bit exponentiation of ~15 µs) and never waits, so they run on
    /// the event loop (`.immediate`) instead of as tasks: half the cost of a round trip. The
    /// generated `rpcProgram()` would run them as async tasks.
    public var programs: [RPCProgram] {
        [1, 2].map { (version: UInt32) -> RPCProgram in
            var program = RPCProgram(number: KeyVers2Client.program, version: version)
            func on<Argument, Result: XDREncodable & Sendable>(
                _ procedure: UInt32,
                _ decode: @escaping @Sendable (inout ByteBuffer) throws -> Argument,
                _ body: @escaping @Sendable (Argument, RPCRequest) throws -> Result
            ) {
                program.setProcedure(procedure, .immediate { request in
                    var arguments = request.arguments
                    let argument = try decode(&arguments)
                    if arguments.readableBytes != 0 { throw XDRError.trailingBytes(count: arguments.readableBytes) }
                    return try body(argument, request)
                })
            }
            let keybuf: @Sendable (inout ByteBuffer) throws -> [UInt8] = { try $0.readXDRFixedOpaqueBytes(count: 48) }
            on(1, keybuf) { try self.set($0, request: $1) }
            on(2, { try Cryptkeyarg(xdr: &$0) }) { try self.crypt(byName: $0, encrypt: true, request: $1) }
            on(3, { try Cryptkeyarg(xdr: &$0) }) { try self.crypt(byName: $0, encrypt: false, request: $1) }
            on(4, { _ in () }) { _, _ in DESBlockResult(bytes: SunDES.randomKey().copyBytes()) }
            on(5, { try $0.readXDRString(maxLength: 255) }) { name, _ in
                Self.unixCredentials(netname: name).map(Getcredres.keySuccess) ?? .default(discriminant: .keyUnknown)
            }
            if version == 2 {
                on(6, { try Cryptkeyarg2(xdr: &$0) }) { try self.crypt(byKey: $0, encrypt: true, request: $1) }
                on(7, { try Cryptkeyarg2(xdr: &$0) }) { try self.crypt(byKey: $0, encrypt: false, request: $1) }
                on(8, { try KeyNetstarg(xdr: &$0) }) { try self.netPut($0, request: $1) }
                on(9, { _ in () }) { _, request in try self.netGet(request: request) }
                on(10, keybuf) { try self.core.conversationKey(uid: self.actingUID($1), peerPublicKey: $0) }
            }
            return program
        }
    }

    /// `desblock`: fixed 8 bytes on the wire.
    struct DESBlockResult: XDREncodable, Sendable {
        var bytes: [UInt8]
        func encode(into buffer: inout ByteBuffer) { buffer.writeXDRFixedOpaque(bytes) }
    }

    func set(_ argument: Keybuf, request: RPCRequest) throws -> Keystatus {
        let uid = try actingUID(request)
        let status = core.setSecret(uid: uid, hex: argument)
        logger.info("KEY_SET", metadata: ["uid": "\(uid)", "status": "\(status)"])
        return status
    }

    func crypt(byName argument: Cryptkeyarg, encrypt: Bool, request: RPCRequest) throws -> Cryptkeyres {
        core.crypt(uid: try actingUID(request), peerNetname: argument.remotename, block: argument.deskey, encrypt: encrypt)
    }

    func crypt(byKey argument: Cryptkeyarg2, encrypt: Bool, request: RPCRequest) throws -> Cryptkeyres {
        core.crypt(uid: try actingUID(request), peerPublicKey: argument.remotekey, block: argument.deskey, encrypt: encrypt)
    }

    func netPut(_ argument: KeyNetstarg, request: RPCRequest) throws -> Keystatus {
        let uid = try actingUID(request)
        let status = core.setSecret(uid: uid, hex: argument.stPrivKey, netname: argument.stNetname.isEmpty ? nil : argument.stNetname)
        logger.info("KEY_NET_PUT", metadata: ["uid": "\(uid)", "netname": "\(argument.stNetname)", "status": "\(status)"])
        return status
    }

    func netGet(request: RPCRequest) throws -> KeyNetstres {
        guard let keys = core.netGet(uid: try actingUID(request)) else { return .default(discriminant: .keyNosecret) }
        return .keySuccess(keys)
    }

    /// The uid a call may act for: its AUTH_SYS uid, provided the socket's peer is that uid
    /// or root. Everything else is AUTH_TOOWEAK.
    func actingUID(_ request: RPCRequest) throws -> UInt32 {
        guard let peer = request.context.peer else {
            logger.warning("keyserver call not over a unix socket refused")
            throw RPCServerError.authError(.tooWeak)
        }
        guard request.caller.flavor == .sys, let claimed = request.caller.uid else {
            throw RPCServerError.authError(.tooWeak)
        }
        guard peer.uid == 0 || peer.uid == claimed else {
            logger.notice("uid mismatch refused", metadata: ["peer_uid": "\(peer.uid)", "claimed_uid": "\(claimed)", "pid": "\(peer.pid)"])
            throw RPCServerError.authError(.tooWeak)
        }
        return claimed
    }

    // MARK: version 1 (and the same procedures of version 2)

    public func keySet(_ argument: Keybuf, request: RPCRequest) async throws -> Keystatus {
        try set(argument, request: request)
    }

    public func keyEncrypt(_ argument: Cryptkeyarg, request: RPCRequest) async throws -> Cryptkeyres {
        core.crypt(uid: try actingUID(request), peerNetname: argument.remotename, block: argument.deskey, encrypt: true)
    }

    public func keyDecrypt(_ argument: Cryptkeyarg, request: RPCRequest) async throws -> Cryptkeyres {
        core.crypt(uid: try actingUID(request), peerNetname: argument.remotename, block: argument.deskey, encrypt: false)
    }

    public func keyGen(request: RPCRequest) async throws -> Desblock {
        SunDES.randomKey().copyBytes()
    }

    public func keyGetcred(_ argument: Netnamestr, request: RPCRequest) async throws -> Getcredres {
        guard let credentials = Self.unixCredentials(netname: argument) else { return .default(discriminant: .keyUnknown) }
        return .keySuccess(credentials)
    }

    // MARK: version 2

    public func keyEncryptPk(_ argument: Cryptkeyarg2, request: RPCRequest) async throws -> Cryptkeyres {
        core.crypt(uid: try actingUID(request), peerPublicKey: argument.remotekey, block: argument.deskey, encrypt: true)
    }

    public func keyDecryptPk(_ argument: Cryptkeyarg2, request: RPCRequest) async throws -> Cryptkeyres {
        core.crypt(uid: try actingUID(request), peerPublicKey: argument.remotekey, block: argument.deskey, encrypt: false)
    }

    public func keyNetPut(_ argument: KeyNetstarg, request: RPCRequest) async throws -> Keystatus {
        try netPut(argument, request: request)
    }

    public func keyNetGet(request: RPCRequest) async throws -> KeyNetstres {
        try netGet(request: request)
    }

    public func keyGetConv(_ argument: Keybuf, request: RPCRequest) async throws -> Cryptkeyres {
        core.conversationKey(uid: try actingUID(request), peerPublicKey: argument)
    }

    // MARK: credentials

    /// `unix.UID@domain` → uid, primary gid and up to 16 groups from the local user database.
    /// Only well-formed netnames map (`NetnameSyntax`: one `@`, printable, bounded); with a
    /// `domain`, only netnames of that domain. KEY_GETCRED passes nil: like keyserv, it
    /// answers for any domain.
    public static func unixCredentials(netname: String, domain: String? = nil) -> Unixcred? {
        guard NetnameSyntax.isWellFormed(netname) else { return nil }
        let uid: UInt32
        if let domain {
            guard let local = NetnameSyntax.localUID(netname, domain: domain) else { return nil }
            uid = local
        } else {
            let at = netname.firstIndex(of: "@")!
            guard let any = UInt32(netname[netname.index(netname.startIndex, offsetBy: 5)..<at]) else { return nil }
            uid = any
        }
        guard let entry = getpwuid(uid) else { return Unixcred(uid: uid, gid: 65534, gids: []) }
        let gid = entry.pointee.pw_gid
        var groups = [gid_t](repeating: 0, count: 64)
        var count = Int32(groups.count)
        if let name = entry.pointee.pw_name, getgrouplist(name, gid, &groups, &count) >= 0 {
            return Unixcred(uid: uid, gid: gid, gids: Array(groups.prefix(Int(min(count, 16)))))
        }
        return Unixcred(uid: uid, gid: gid, gids: [])
    }
}

