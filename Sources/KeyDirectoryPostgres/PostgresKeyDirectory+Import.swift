// Import into PostgreSQL: one transaction for the whole file, the same merge rules as the
// SQLite store (see `merge`), one audit row per principal changed and one summary row.

import Foundation
import KeyCrypto
import KeyDirectory
import Logging
import PostgresNIO

/// keyadmin's progress printer is not Sendable; it runs while keyadmin's thread is blocked
/// in `wait`, so it is never called from two threads at once.
private struct ProgressCallback: @unchecked Sendable {
    let call: ((Int) -> Void)?
}

extension PostgresKeyDirectory {
    public func importEntries(_ entries: [(Principal, [KeyEntry])], actor: AuditActor, source: String, replace: Bool,
                              progress: ((Int) -> Void)?) throws -> ImportReport {
        let logger = self.logger, progress = ProgressCallback(call: progress)
        return try write { db in
            var report = ImportReport()
            var done = 0
            for (principal, keys) in entries {
                if try await Self.insertIfNew(db, principal, logger: logger) {
                    for key in keys { try await Self.insertKey(db, key, logger: logger) }
                    try await Self.log(db, actor: actor, action: "import", netname: principal.netname,
                                       mechanism: keys.map(\.mechanism.rawValue).joined(separator: ","),
                                       detail: "added from \(source)", logger: logger)
                    report.added += 1
                } else {
                    try await Self.merge(db, principal, keys, replace: replace, actor: actor, source: source, into: &report, logger: logger)
                }
                done += 1
                if done % 1000 == 0 { progress.call?(done) }
            }
            progress.call?(done)
            try await Self.log(db, actor: actor, action: "import", netname: nil, mechanism: nil,
                               detail: "\(report.summary) from \(source)", logger: logger)
            return report
        }
    }

    /// An imported principal that exists already. Without `replace` nothing of it changes
    /// (an old export must not bring back rotated keys); with it, keys that differ are
    /// replaced unless older than the key here, and a key revoked here stays revoked whatever
    /// the file says. Revocations in the file are applied.
    private static func merge(_ db: PostgresConnection, _ principal: Principal, _ imported: [KeyEntry], replace: Bool,
                              actor: AuditActor, source: String, into report: inout ImportReport, logger: Logger) async throws {
        let existing = try await keys(db, of: principal.netname, logger: logger)
        let saltHere = try await Self.principal(db, principal.netname, logger: logger)?.passwordSalt
        var differences: [(KeyEntry, KeyEntry?)] = []
        for key in imported {
            let present = existing.first { $0.mechanism == key.mechanism }
            if let present, present.publicKey == key.publicKey, present.sealedSecret == key.sealedSecret, present.state == key.state { continue }
            differences.append((key, present))
        }
        if differences.isEmpty {
            report.unchanged += 1
            return
        }
        guard replace else {
            let what = differences.map { key, present in
                present == nil ? "adds a \(key.mechanism.rawValue) key" : "has another \(key.mechanism.rawValue) key"
            }
            report.keptAsTheyWere.append(.init(netname: principal.netname, reason: what.joined(separator: ", ")))
            return
        }
        var done: [String] = []
        for (key, present) in differences {
            var incoming = key
            // Tags compare only under one salt: foreign ones would make verify see
            // different passwords where there may be none.
            if principal.passwordSalt == nil || principal.passwordSalt != saltHere { incoming.passwordTag = nil }
            guard let present else {
                try await insertKey(db, incoming, logger: logger)
                done.append("added \(key.mechanism.rawValue)")
                continue
            }
            if present.state == .revoked {
                report.stillRevoked.append("\(principal.netname) \(key.mechanism.rawValue)")
                if present.publicKey == key.publicKey { continue }
                incoming.state = .revoked
                try await upsert(db, incoming, logger: logger)
                done.append("replaced \(key.mechanism.rawValue) (stays revoked)")
                continue
            }
            let importedTime = key.rotatedAt ?? key.createdAt, hereTime = present.rotatedAt ?? present.createdAt
            if present.publicKey != key.publicKey || present.sealedSecret != key.sealedSecret, importedTime < hereTime {
                report.keptAsTheyWere.append(.init(netname: principal.netname,
                                                   reason: "has an older \(key.mechanism.rawValue) key than the one here"))
                continue
            }
            try await upsert(db, incoming, logger: logger)
            done.append(key.state == .revoked && present.state == .active ? "revoked \(key.mechanism.rawValue)" : "replaced \(key.mechanism.rawValue)")
        }
        if !done.isEmpty {
            try await log(db, actor: actor, action: "import", netname: principal.netname,
                          mechanism: differences.map(\.0.mechanism.rawValue).joined(separator: ","),
                          detail: done.joined(separator: "; ") + " from \(source)", logger: logger)
            report.replaced += 1
        }
    }
}
