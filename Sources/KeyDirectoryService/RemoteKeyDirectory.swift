// The key directory as keydird serves it, behind the same KeyDirectoryStore interface as the
// SQLite file, so `keyadmin --server HOST` runs the same subcommands remotely. Every call goes
// over RPCSEC_GSS privacy as the administrator's proven netname; keydird checks the admin role
// and audits under that name (the `actor` arguments here are not sent: the directory does not
// take a caller's word for who it is).
//
// The interface is synchronous (keyadmin is a command-line program, and the SQLite store it
// shares is): each call waits for its answer on the calling thread, which is never an event
// loop here.

import Foundation
import KeyCrypto
import KeyDirectory
import NIOConcurrencyHelpers

public final class RemoteKeyDirectory: KeyDirectoryStore, @unchecked Sendable {
    public let directory: DirectoryClient

    public init(directory: DirectoryClient) {
        self.directory = directory
    }

    public func close() {
        wait { await self.directory.close() }
    }

    /// Runs `body` and waits for it (keyadmin's commands are synchronous).
    private func wait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let result = NIOLockedValueBox<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let outcome: Result<T, any Error>
            do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
            result.withLockedValue { $0 = outcome }
            done.signal()
        }
        done.wait()
        return try result.withLockedValue { $0! }.get()
    }

    private func wait(_ body: @escaping @Sendable () async -> Void) {
        _ = try? wait { await body(); return true }
    }

    /// A refusal from keydird, as keyadmin reports it.
    private func refused(_ status: KdStatus, _ message: String, netname: String = "") -> DirectoryError {
        switch status {
        case .kdNotFound: return .noSuchPrincipal(netname.isEmpty ? message : netname)
        case .kdExists: return .principalExists(netname.isEmpty ? message : netname)
        default: return .storage("the directory \(directory.currentServer?.description ?? "") refused: \(message)")
        }
    }

    private func check(_ result: KdResult, netname: String = "") throws {
        guard result.status == .kdOk else { throw refused(result.status, result.message, netname: netname) }
    }

    // MARK: reads

    public func publicKey(netname: String, mechanism: DHGroupName) throws -> DHPublicKey? {
        try publicKeyHex(netname: netname, mechanism: mechanism).map { try DHPublicKey(group: mechanism, hex: $0) }
    }

    public func publicKeyHex(netname: String, mechanism: DHGroupName) throws -> String? {
        let answer = try wait { try await self.directory.call { try await $0.kdLookup(KdLookupArg(netname: netname, mechanism: mechanism.rawValue)) } }
        switch answer {
        case let .kdOk(hex): return hex
        case .default: return nil
        }
    }

    private func show(_ netname: String) throws -> (Principal, [KeyEntry], Set<PrincipalRole>)? {
        let answer = try wait { try await self.directory.call { try await $0.kdAdmShow(netname) } }
        switch answer {
        case let .kdOk(entry):
            let (principal, keys) = try KeyDirectoryServer.entry(entry)
            return (principal, keys, Set(entry.principal.roles.compactMap(PrincipalRole.init(rawValue:))))
        case let .default(status, message):
            if status == .kdNotFound { return nil }
            throw refused(status, message, netname: netname)
        }
    }

    public func principal(_ netname: String) throws -> Principal? { try show(netname)?.0 }

    public func keys(of netname: String) throws -> [KeyEntry] { try show(netname)?.1 ?? [] }

    public func roles(of netname: String) throws -> Set<PrincipalRole> { try show(netname)?.2 ?? [] }

    public func allEntries() throws -> [(Principal, [KeyEntry])] {
        var all: [(Principal, [KeyEntry])] = []
        var after = ""
        while true {
            let page = after
            let answer = try wait {
                try await self.directory.call { try await $0.kdAdmList(KdListArg(pattern: "", after: page, limit: 1000, withSealed: true)) }
            }
            switch answer {
            case let .kdOk(entries):
                all += try entries.map { try KeyDirectoryServer.entry($0) }
                guard entries.count == 1000, let last = entries.last else { return all }
                after = last.principal.netname
            case let .default(status, message):
                throw refused(status, message)
            }
        }
    }

    public func audit(limit: Int) throws -> [AuditEvent] { try audit(limit: limit, netname: nil) }

    public func audit(limit: Int, netname: String?) throws -> [AuditEvent] {
        let answer = try wait {
            try await self.directory.call { try await $0.kdAdmAudit(KdAuditArg(limit: UInt32(clamping: limit), netname: netname ?? "")) }
        }
        switch answer {
        case let .kdOk(events):
            return events.map { event in
                AuditEvent(id: event.id, at: Date(timeIntervalSince1970: TimeInterval(event.at)), actor: event.actor, action: event.action,
                           netname: event.netname.isEmpty ? nil : event.netname, mechanism: event.mechanism.isEmpty ? nil : event.mechanism,
                           detail: event.detail.isEmpty ? nil : event.detail)
            }
        case let .default(status, message):
            throw refused(status, message)
        }
    }

    public func changes(since serial: UInt64, limit: Int) throws -> DirectoryChanges {
        let answer = try wait { try await self.directory.call { try await $0.kdChanges(serial) } }
        // An incomplete feed (the serial is older than what the directory keeps) has no
        // equivalent in the store's answer: the caller then sees only what is listed.
        return DirectoryChanges(serial: answer.serial,
                                changes: answer.changes.prefix(limit).map { .init(serial: $0.serial, netname: $0.netname, mechanism: $0.mechanism) })
    }

    // MARK: changes (the directory audits them under the proven caller)

    public func add(_ principal: Principal, keys: [KeyEntry], actor: AuditActor) throws {
        let entry = KdEntry(principal: KeyDirectoryServer.wire(principal, roles: []), keys: keys.map { KeyDirectoryServer.wire($0, sealed: true) })
        try check(try wait { try await self.directory.call { try await $0.kdAdmNewkey(KdNewkeyArg(entry: entry)) } }, netname: principal.netname)
    }

    public func apply(_ changes: [KeyChange], to netname: String, passwordSalt: Data?, actor: AuditActor) throws {
        // KD_ADM_PUTKEY takes one key per call: only a single change keeps "all or nothing".
        guard changes.count == 1, let change = changes.first, change.kind != .retag else {
            throw DirectoryError.storage("changing several keys of a principal at once is not offered remotely (it would not be all or nothing): users run chkey; an administrator replaces one key at a time (keyadmin chkey --mechanism)")
        }
        let argument = KdPutkeyArg(netname: netname, key: KeyDirectoryServer.wire(change.entry, sealed: true), replacing: change.kind == .replace,
                                   action: change.action ?? "chkey")
        try check(try wait { try await self.directory.call { try await $0.kdAdmPutkey(argument) } }, netname: netname)
    }

    public func revoke(netname: String, mechanism: DHGroupName?, actor: AuditActor) throws {
        let argument = KdNetmechArg(netname: netname, mechanism: mechanism?.rawValue ?? "")
        try check(try wait { try await self.directory.call { try await $0.kdAdmRevoke(argument) } }, netname: netname)
    }

    public func enable(netname: String, mechanism: DHGroupName?, actor: AuditActor) throws {
        let argument = KdNetmechArg(netname: netname, mechanism: mechanism?.rawValue ?? "")
        try check(try wait { try await self.directory.call { try await $0.kdAdmEnable(argument) } }, netname: netname)
    }

    public func remove(netname: String, actor: AuditActor) throws {
        try check(try wait { try await self.directory.call { try await $0.kdAdmRemove(netname) } }, netname: netname)
    }

    public func importEntries(_ entries: [(Principal, [KeyEntry])], actor: AuditActor, source: String, replace: Bool,
                              progress: ((Int) -> Void)?) throws -> ImportReport {
        let wire = entries.map { principal, keys in
            KdEntry(principal: KeyDirectoryServer.wire(principal, roles: []), keys: keys.map { KeyDirectoryServer.wire($0, sealed: true) })
        }
        let answer = try wait {
            try await self.directory.call { try await $0.kdAdmImport(KdImportArg(entries: wire, replace: replace, source: source)) }
        }
        try check(answer.result)
        progress?(entries.count)
        var report = ImportReport()
        report.added = Int(answer.added)
        report.replaced = Int(answer.replaced)
        report.unchanged = Int(answer.unchanged)
        return report
    }

    public func grant(_ role: PrincipalRole, to netname: String, actor: AuditActor) throws {
        try check(try wait { try await self.directory.call { try await $0.kdAdmGrant(KdRoleArg(netname: netname, role: role.rawValue)) } },
                  netname: netname)
    }

    public func revokeRole(_ role: PrincipalRole, from netname: String, actor: AuditActor) throws {
        try check(try wait { try await self.directory.call { try await $0.kdAdmRevokeRole(KdRoleArg(netname: netname, role: role.rawValue)) } },
                  netname: netname)
    }
}
