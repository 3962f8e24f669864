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

    /// An imported principal that exists already: the rules are ImportMerge's (shared with
    /// the SQLite store).
    private static func merge(_ db: PostgresConnection, _ principal: Principal, _ imported: [KeyEntry], replace: Bool,
                              actor: AuditActor, source: String, into report: inout ImportReport, logger: Logger) async throws {
        let existing = try await keys(db, of: principal.netname, logger: logger)
        let saltHere = try await Self.principal(db, principal.netname, logger: logger)?.passwordSalt
        let merge = ImportMerge.plan(principal, imported, existing: existing, saltHere: saltHere, replace: replace, into: &report)
        for write in merge.writes {
            switch write {
            case let .insert(key): try await insertKey(db, key, logger: logger)
            case let .upsert(key): try await upsert(db, key, logger: logger)
            }
        }
        if !merge.done.isEmpty {
            try await log(db, actor: actor, action: "import", netname: principal.netname, mechanism: merge.mechanisms,
                          detail: merge.done.joined(separator: "; ") + " from \(source)", logger: logger)
            report.replaced += 1
        }
    }
}
