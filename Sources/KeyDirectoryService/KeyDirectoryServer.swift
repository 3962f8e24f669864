// keydird's procedures over a KeyDirectoryStore. The RPC layer has already proven the caller
// (RPCSEC_GSS srpc-dh; the program's policy turns away anything weaker per procedure with
// AUTH_TOOWEAK); this file makes the access decisions, in one place each:
//   - lookups and the change feed: any proven principal;
//   - sealed secret keys: the principal itself, or an enrolled host (role "host") asking for a
//     user's keys on behalf of that user's keylogin — never for another host or a service;
//   - a principal's own new keys (KD_CHKEY_SELF): that principal only;
//   - administration: principals holding the role "admin".
// Every change is audited under the caller's proven netname and address. A standby (a
// directory on a read-only replica) answers reads and refuses every write naming its primary.
// It trusts the store, and nothing in an argument beyond its decoded shape: netnames,
// mechanisms, keys and sealed blobs are checked before they reach the store.

import Foundation
import KeyCrypto
import KeyDirectory
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC
import SecureRPC

/// The keydird service: serve it with `program`.
///
/// ```swift
/// let store = try SQLiteKeyDirectory(path: "/var/lib/securerpc/keys.db", create: false)
/// let directory = KeyDirectoryServer(store: store, configuration: .init(directoryNetname: "unix.dir1@example.org"))
/// let server = RPCServer(programs: [directory.program], configuration: rpcConfiguration)
/// ```
public final class KeyDirectoryServer: KeydirV1Service {
    public struct Configuration: Sendable {
        /// The directory host's principal: KD_DIRECTORY_KEYS answers with its public keys.
        public var directoryNetname: String
        /// Set on a standby: writes are refused with a message naming this primary.
        public var primary: String?
        /// Most changes in one KD_CHANGES answer.
        public var maximumChangesPerAnswer = 4096
        /// Most principals in one KD_ADM_LIST answer.
        public var maximumListPage = 1000

        public init(directoryNetname: String, primary: String? = nil) {
            self.directoryNetname = directoryNetname
            self.primary = primary
        }
    }

    public let store: any KeyDirectoryStore
    public let configuration: Configuration
    private let logger: Logger
    private let threadPool: NIOThreadPool

    public init(store: any KeyDirectoryStore, configuration: Configuration, logger: Logger = Logger(label: "keydird"),
                threadPool: NIOThreadPool = .singleton) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.threadPool = threadPool
    }

    /// The program with its policy: every procedure but KD_DIRECTORY_KEYS needs RPCSEC_GSS;
    /// lookups and the feed integrity at least, everything carrying secrets or changing
    /// anything privacy.
    public var program: RPCProgram { rpcProgram(policy: Self.policy) }

    public static let policy: SecurityPolicy = {
        let lookups = SecurityRequirement.gss(minimumGroup: .ffdhe2048, minimumService: .integrity)
        var procedures: [UInt32: SecurityRequirement] = [1: .anyone]
        for procedure: UInt32 in [2, 3, 4] { procedures[procedure] = lookups }
        return SecurityPolicy(.gss(minimumGroup: .ffdhe2048, minimumService: .privacy), procedures: procedures)
    }()

    // MARK: open to anyone

    public func kdDirectoryKeys(request: RPCRequest) async throws -> KdDirectoryKeys {
        try await blocking {
            try self.store.keys(of: self.configuration.directoryNetname)
                .filter { $0.mechanism != .dh192des && $0.state == .active }
                .map { Self.wire($0, sealed: false).key }
        }
    }

    // MARK: lookups (any proven principal)

    public func kdLookup(_ argument: KdLookupArg, request: RPCRequest) async throws -> KdLookupRes {
        guard try proven(request) != nil else { return .default(discriminant: .kdDenied) }
        guard let mechanism = try? DHGroupName(parsing: argument.mechanism), NetnameSyntax.isWellFormed(argument.netname) else {
            return .default(discriminant: .kdInvalid)
        }
        return try await blocking {
            try self.store.publicKeyHex(netname: argument.netname, mechanism: mechanism).map(KdLookupRes.kdOk) ?? .default(discriminant: .kdNotFound)
        }
    }

    public func kdLookupBatch(_ argument: KdLookupBatchArg, request: RPCRequest) async throws -> KdLookupBatchRes {
        guard try proven(request) != nil else { return KdLookupBatchRes(serial: 0, results: argument.map { _ in .default(discriminant: .kdDenied) }) }
        return try await blocking {
            // The serial first: a change after it is reported by the feed, never missed.
            let serial = try self.store.changes(since: UInt64.max, limit: 1).serial
            let results = try argument.map { item -> KdLookupRes in
                guard let mechanism = try? DHGroupName(parsing: item.mechanism), NetnameSyntax.isWellFormed(item.netname) else {
                    return .default(discriminant: .kdInvalid)
                }
                return try self.store.publicKeyHex(netname: item.netname, mechanism: mechanism).map(KdLookupRes.kdOk) ?? .default(discriminant: .kdNotFound)
            }
            return KdLookupBatchRes(serial: serial, results: results)
        }
    }

    public func kdChanges(_ argument: UInt64, request: RPCRequest) async throws -> KdChangesRes {
        guard try proven(request) != nil else { return KdChangesRes(serial: 0, complete: false, changes: []) }
        let limit = configuration.maximumChangesPerAnswer
        return try await blocking {
            let page = try self.store.changes(since: argument, limit: limit)
            // The audit trail is append-only and never trimmed: the feed is always complete.
            return KdChangesRes(serial: page.serial, complete: true,
                                changes: page.changes.map { KdChange(serial: $0.serial, netname: $0.netname, mechanism: $0.mechanism) })
        }
    }

    // MARK: a principal's own keys

    public func kdSealedKeys(_ argument: KdNetname, request: RPCRequest) async throws -> KdSealedRes {
        guard let caller = try proven(request) else { return .default(discriminant: .kdDenied, value: "not a proven caller") }
        return try await blocking {
            guard let principal = try self.store.principal(argument) else {
                return .default(discriminant: .kdNotFound, value: "no principal \(argument)")
            }
            if caller != argument {
                let roles = try self.store.roles(of: caller)
                guard roles.contains(.host), principal.kind == .user else {
                    self.logger.warning("sealed keys refused", metadata: ["caller": "\(caller)", "for": "\(argument)", "from": "\(Self.address(request))"])
                    return .default(discriminant: .kdDenied, value: "\(caller) may not fetch the keys of \(argument) (only the principal itself, or an enrolled host for a user)")
                }
            }
            let keys = try self.store.keys(of: argument)
            self.logger.notice("sealed keys released", metadata: ["for": "\(argument)", "to": "\(caller)", "from": "\(Self.address(request))"])
            return .kdOk(KdEntry(principal: Self.wire(principal, roles: []), keys: keys.map { Self.wire($0, sealed: true) }))
        }
    }

    public func kdChkeySelf(_ argument: KdChkeySelfArg, request: RPCRequest) async throws -> KdResult {
        guard let caller = try proven(request) else { return KdResult(status: .kdDenied, message: "not a proven caller") }
        if let refused = standbyRefusal() { return refused }
        return await change(request, caller: caller) {
            let existing = try self.store.keys(of: caller)
            var changes: [KeyChange] = []
            for sealed in argument.keys {
                let entry = try Self.entry(sealed, netname: caller)
                let present = existing.contains { $0.mechanism == entry.mechanism }
                changes.append(KeyChange(entry, present ? .replace : .add, action: "chkey-self"))
            }
            guard !changes.isEmpty else { throw DirectoryError.inconsistent(caller, "no keys given") }
            try self.store.apply(changes, to: caller, passwordSalt: argument.passwordSalt.isEmpty ? nil : Data(argument.passwordSalt),
                                 actor: Self.actor(caller, request))
            return "\(caller): \(changes.count) key(s) changed"
        }
    }

    // MARK: administration (role admin)

    public func kdAdmNewkey(_ argument: KdNewkeyArg, request: RPCRequest) async throws -> KdResult {
        await admin(request) { caller in
            let (principal, keys) = try Self.entry(argument.entry)
            try self.store.add(principal, keys: keys, actor: Self.actor(caller, request))
            return "\(principal.netname) added with \(keys.map(\.mechanism.rawValue).joined(separator: ", "))"
        }
    }

    public func kdAdmEnrollHost(_ argument: KdNewkeyArg, request: RPCRequest) async throws -> KdResult {
        await admin(request) { caller in
            let (principal, keys) = try Self.entry(argument.entry)
            guard principal.kind == .host else { throw DirectoryError.invalidNetname(principal.netname, "a host principal is unix.HOSTNAME@DOMAIN") }
            let actor = Self.actor(caller, request)
            if try self.store.principal(principal.netname) == nil {
                try self.store.add(principal, keys: keys, actor: actor)
            }
            try self.store.grant(.host, to: principal.netname, actor: actor)
            return "\(principal.netname) enrolled"
        }
    }

    public func kdAdmPutkey(_ argument: KdPutkeyArg, request: RPCRequest) async throws -> KdResult {
        await admin(request) { caller in
            let entry = try Self.entry(argument.key, netname: argument.netname)
            let action = argument.action.isEmpty ? "chkey" : String(argument.action.prefix(32))
            try self.store.put(entry, replacing: argument.replacing, actor: Self.actor(caller, request), action: action)
            return "\(argument.netname) \(entry.mechanism.rawValue): \(action)"
        }
    }

    public func kdAdmRevoke(_ argument: KdNetmechArg, request: RPCRequest) async throws -> KdResult {
        await admin(request) { caller in
            try self.store.revoke(netname: argument.netname, mechanism: try Self.mechanism(argument.mechanism), actor: Self.actor(caller, request))
            return "\(argument.netname) revoked"
        }
    }

    public func kdAdmEnable(_ argument: KdNetmechArg, request: RPCRequest) async throws -> KdResult {
        await admin(request) { caller in
            try self.store.enable(netname: argument.netname, mechanism: try Self.mechanism(argument.mechanism), actor: Self.actor(caller, request))
            return "\(argument.netname) enabled"
        }
    }

    public func kdAdmRemove(_ argument: KdNetname, request: RPCRequest) async throws -> KdResult {
        await admin(request) { caller in
            try self.store.remove(netname: argument, actor: Self.actor(caller, request))
            return "\(argument) removed"
        }
    }

    public func kdAdmImport(_ argument: KdImportArg, request: RPCRequest) async throws -> KdImportRes {
        let outcome = NIOLockedValueBox(ImportReport())
        let result = await admin(request) { caller in
            let entries = try argument.entries.map(Self.entry)
            let report = try self.store.importEntries(entries, actor: Self.actor(caller, request),
                                                      source: String(argument.source.prefix(200)), replace: argument.replace, progress: nil)
            outcome.withLockedValue { $0 = report }
            return report.summary
        }
        let report = outcome.withLockedValue { $0 }
        return KdImportRes(result: result, added: UInt32(report.added), replaced: UInt32(report.replaced), unchanged: UInt32(report.unchanged))
    }

    public func kdAdmList(_ argument: KdListArg, request: RPCRequest) async throws -> KdListRes {
        let limit = max(1, min(Int(argument.limit), configuration.maximumListPage))
        return await adminRead(request, refused: { .default(discriminant: $0, value: $1) }) { _ in
            let all = try self.store.allEntries()
            let page = all.lazy
                .filter { argument.after.isEmpty || $0.0.netname > argument.after }
                .filter { argument.pattern.isEmpty || fnmatch(argument.pattern, $0.0.netname, 0) == 0 }
                .prefix(limit)
            return .kdOk(try page.map { principal, keys in
                KdEntry(principal: Self.wire(principal, roles: try self.store.roles(of: principal.netname)),
                        keys: keys.map { Self.wire($0, sealed: argument.withSealed) })
            })
        }
    }

    public func kdAdmShow(_ argument: KdNetname, request: RPCRequest) async throws -> KdShowRes {
        await adminRead(request, refused: { .default(discriminant: $0, value: $1) }) { _ in
            guard let principal = try self.store.principal(argument) else { throw DirectoryError.noSuchPrincipal(argument) }
            return .kdOk(KdEntry(principal: Self.wire(principal, roles: try self.store.roles(of: argument)),
                                 keys: try self.store.keys(of: argument).map { Self.wire($0, sealed: false) }))
        }
    }

    public func kdAdmAudit(_ argument: KdAuditArg, request: RPCRequest) async throws -> KdAuditRes {
        await adminRead(request, refused: { .default(discriminant: $0, value: $1) }) { _ in
            let limit = max(1, min(Int(argument.limit), Int(KeydirdConstants.kdMaxaudit)))
            let events = try self.store.audit(limit: limit, netname: argument.netname.isEmpty ? nil : argument.netname)
            return .kdOk(events.map { event in
                KdAuditEvent(id: event.id, at: Int64(event.at.timeIntervalSince1970), actor: Self.describe(event),
                             action: event.action, netname: event.netname ?? "", mechanism: event.mechanism ?? "", detail: event.detail ?? "")
            })
        }
    }

    public func kdAdmGrant(_ argument: KdRoleArg, request: RPCRequest) async throws -> KdResult {
        await admin(request) { caller in
            guard let role = PrincipalRole(rawValue: argument.role) else { throw DirectoryError.badImportFile("unknown role \"\(argument.role)\" (admin or host)") }
            try self.store.grant(role, to: argument.netname, actor: Self.actor(caller, request))
            return "\(argument.netname) holds \(role.rawValue)"
        }
    }

    public func kdAdmRevokeRole(_ argument: KdRoleArg, request: RPCRequest) async throws -> KdResult {
        await admin(request) { caller in
            guard let role = PrincipalRole(rawValue: argument.role) else { throw DirectoryError.badImportFile("unknown role \"\(argument.role)\" (admin or host)") }
            if role == .admin, caller == argument.netname {
                throw DirectoryError.inconsistent(caller, "an administrator cannot take their own admin role (another administrator can)")
            }
            try self.store.revokeRole(role, from: argument.netname, actor: Self.actor(caller, request))
            return "\(argument.netname) no longer holds \(role.rawValue)"
        }
    }

    // MARK: decisions

    /// The caller's proven netname, or nil (the policy should have refused already).
    private func proven(_ request: RPCRequest) throws -> String? {
        guard request.caller.isVerified, let netname = request.caller.netname else { return nil }
        return netname
    }

    private func standbyRefusal() -> KdResult? {
        guard let primary = configuration.primary else { return nil }
        return KdResult(status: .kdReadOnly, message: "this directory is a read-only standby: make changes through the primary, \(primary)")
    }

    /// Runs an administration change for a caller with the admin role.
    private func admin(_ request: RPCRequest, _ body: @escaping @Sendable (String) throws -> String) async -> KdResult {
        guard let caller = try? proven(request) else { return KdResult(status: .kdDenied, message: "not a proven caller") }
        if let refused = standbyRefusal() { return refused }
        return await change(request, caller: caller) {
            guard try self.store.roles(of: caller).contains(.admin) else {
                throw AccessRefused(message: "\(caller) is not an administrator of this directory (an administrator runs: keyadmin grant admin \(caller))")
            }
            return try body(caller)
        }
    }

    /// Reads for administrators (they hold sealed keys and the audit trail).
    private func adminRead<T: Sendable>(_ request: RPCRequest, refused: @escaping @Sendable (KdStatus, String) -> T,
                                        _ body: @escaping @Sendable (String) throws -> T) async -> T {
        guard let caller = try? proven(request) else { return refused(.kdDenied, "not a proven caller") }
        do {
            return try await blocking {
                guard try self.store.roles(of: caller).contains(.admin) else {
                    return refused(.kdDenied, "\(caller) is not an administrator of this directory")
                }
                return try body(caller)
            }
        } catch {
            let (status, message) = Self.status(for: error)
            return refused(status, message)
        }
    }

    private func change(_ request: RPCRequest, caller: String, _ body: @escaping @Sendable () throws -> String) async -> KdResult {
        do {
            let message = try await blocking(body)
            logger.notice("directory changed", metadata: ["by": "\(caller)", "from": "\(Self.address(request))", "what": "\(message)"])
            return KdResult(status: .kdOk, message: message)
        } catch {
            let (status, message) = Self.status(for: error)
            logger.info("directory change refused", metadata: ["by": "\(caller)", "status": "\(status)", "why": "\(message)"])
            return KdResult(status: status, message: message)
        }
    }

    struct AccessRefused: Error { var message: String }

    /// The one mapping from failures to wire statuses.
    static func status(for error: any Error) -> (KdStatus, String) {
        switch error {
        case let refused as AccessRefused:
            return (.kdDenied, refused.message)
        case let error as DirectoryError:
            switch error {
            case .noSuchPrincipal, .noSuchKey, .noSuchRole: return (.kdNotFound, "\(error)")
            case .principalExists, .keyExists: return (.kdExists, "\(error)")
            case .invalidNetname, .badImportLine, .badImportFile, .inconsistent: return (.kdInvalid, "\(error)")
            case .storage, .noDirectory, .notADirectory: return (.kdStorage, "the directory's database failed; nothing was changed")
            }
        default:
            return (.kdStorage, "the directory failed; nothing was changed")
        }
    }

    /// SQLite calls block: they run on NIO's thread pool, not on Swift concurrency's threads.
    private func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await threadPool.runIfActive(body)
    }

    // MARK: conversions (wire ⇄ store), checking what comes in

    static func actor(_ caller: String, _ request: RPCRequest) -> AuditActor {
        AuditActor(name: "\(caller) from \(address(request))")
    }

    static func address(_ request: RPCRequest) -> String {
        request.context.remoteAddress?.ipAddress ?? "-"
    }

    static func describe(_ event: AuditEvent) -> String {
        var text = event.actor
        if let sudo = event.sudoUser { text += " (sudo by \(sudo))" }
        if let login = event.loginUID { text += " (login uid \(login))" }
        return text
    }

    static func mechanism(_ text: String) throws -> DHGroupName? {
        if text.isEmpty { return nil }
        do { return try DHGroupName(parsing: text) } catch { throw DirectoryError.badImportFile("unknown mechanism \"\(text)\"") }
    }

    static func wire(_ principal: Principal, roles: Set<PrincipalRole>) -> KdPrincipal {
        KdPrincipal(netname: principal.netname, kind: principal.kind.rawValue, name: principal.name, uid: principal.uid,
                    created: Int64(principal.createdAt.timeIntervalSince1970), roles: roles.sorted().map(\.rawValue),
                    passwordSalt: principal.passwordSalt.map { Array($0) } ?? [])
    }

    public static func wire(_ key: KeyEntry, sealed: Bool) -> KdSealedKey {
        KdSealedKey(key: KdKey(mechanism: key.mechanism.rawValue, publicKey: key.publicKey, state: key.state == .active ? .kdActive : .kdRevoked,
                               created: Int64(key.createdAt.timeIntervalSince1970), rotated: Int64(key.rotatedAt?.timeIntervalSince1970 ?? 0)),
                    sealed: sealed ? key.sealedSecret : [], passwordTag: key.passwordTag ?? [])
    }

    /// The keys of a KD_SEALED_KEYS answer, checked (keylogin on a host without keys.db):
    /// the answer must be for `netname`, and every key well formed.
    public static func keyEntries(of wire: KdEntry, netname: String) throws -> [KeyEntry] {
        guard wire.principal.netname == netname else {
            throw DirectoryError.inconsistent(netname, "the directory answered for \(wire.principal.netname)")
        }
        return try wire.keys.map { try entry($0, netname: netname) }
    }

    /// A key from the wire, for `netname`: its mechanism known, its public key a valid group
    /// element, its sealed blob well formed.
    static func entry(_ sealed: KdSealedKey, netname: String) throws -> KeyEntry {
        guard let mechanism = try? DHGroupName(parsing: sealed.key.mechanism) else {
            throw DirectoryError.inconsistent(netname, "unknown mechanism \"\(sealed.key.mechanism)\"")
        }
        let entry = KeyEntry(netname: netname, mechanism: mechanism, publicKey: sealed.key.publicKey.lowercased(), sealedSecret: sealed.sealed,
                             state: sealed.key.state == .kdActive ? .active : .revoked,
                             createdAt: sealed.key.created > 0 ? Date(timeIntervalSince1970: TimeInterval(sealed.key.created)) : Date(),
                             rotatedAt: sealed.key.rotated > 0 ? Date(timeIntervalSince1970: TimeInterval(sealed.key.rotated)) : nil,
                             passwordTag: sealed.passwordTag.isEmpty ? nil : sealed.passwordTag)
        let problems = entry.verify()
        guard problems.isEmpty else { throw DirectoryError.inconsistent(netname, "\(mechanism.rawValue): " + problems.joined(separator: "; ")) }
        return entry
    }

    static func entry(_ wire: KdEntry) throws -> (Principal, [KeyEntry]) {
        let netname = wire.principal.netname
        try Netname.validate(netname)
        let classified = Netname.classify(netname)
        let kind = PrincipalKind(rawValue: wire.principal.kind) ?? classified.kind
        guard kind == classified.kind else {
            throw DirectoryError.invalidNetname(netname, "a \(kind.rawValue) principal's netname has the form of a \(classified.kind.rawValue)")
        }
        let principal = Principal(netname: netname, kind: kind, name: wire.principal.name.isEmpty ? classified.name : wire.principal.name,
                                  uid: classified.uid,
                                  createdAt: wire.principal.created > 0 ? Date(timeIntervalSince1970: TimeInterval(wire.principal.created)) : Date(),
                                  passwordSalt: wire.principal.passwordSalt.isEmpty ? nil : Data(wire.principal.passwordSalt))
        var seen: Set<DHGroupName> = []
        let keys = try wire.keys.map { sealed -> KeyEntry in
            let key = try entry(sealed, netname: netname)
            guard seen.insert(key.mechanism).inserted else { throw DirectoryError.inconsistent(netname, "two \(key.mechanism.rawValue) keys") }
            return key
        }
        return (principal, keys)
    }
}
