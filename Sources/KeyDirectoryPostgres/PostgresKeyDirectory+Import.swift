// Import into PostgreSQL: one transaction for the whole file, new principals in batched
// statements, the same merge rules as the SQLite store (see `merge`), one audit row per
// principal changed and one summary row.

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
        // The store's timeout is for one statement's worth of waiting; an import is as long as
        // its file (10^6 principals: minutes), so it gets the timeout plus a millisecond per row.
        return try write(timeout: timeout + .milliseconds(entries.count)) { db in
            var report = ImportReport()
            var done = 0
            // New principals go in batches: a statement per table per batch, not per row (one
            // row at a time, 1,000,000 principals took half an hour over a unix socket). A
            // principal that exists, or that the file names twice, takes the per-row merge.
            var seen = Set<String>()
            for start in stride(from: 0, to: entries.count, by: Self.importBatch) {
                let batch = entries[start..<min(start + Self.importBatch, entries.count)]
                var firsts: [(Principal, [KeyEntry])] = [], again: [(Principal, [KeyEntry])] = []
                for entry in batch {
                    if seen.insert(entry.0.netname).inserted { firsts.append(entry) } else { again.append(entry) }
                }
                let added = try await Self.insertNew(db, firsts.map(\.0), logger: logger)
                let new = firsts.filter { added.contains($0.0.netname) }
                try await Self.insertKeys(db, new.flatMap(\.1), logger: logger)
                try await Self.logImports(db, new, actor: actor, source: source, logger: logger)
                report.added += new.count
                for (principal, keys) in firsts where !added.contains(principal.netname) {
                    try await Self.merge(db, principal, keys, replace: replace, actor: actor, source: source, into: &report, logger: logger)
                }
                for (principal, keys) in again {
                    try await Self.merge(db, principal, keys, replace: replace, actor: actor, source: source, into: &report, logger: logger)
                }
                let before = done
                done += batch.count
                if done / 1000 != before / 1000 { progress.call?(done) }
            }
            progress.call?(done)
            try await Self.log(db, actor: actor, action: "import", netname: nil, mechanism: nil,
                               detail: "\(report.summary) from \(source)", logger: logger)
            return report
        }
    }

    /// Rows per batched statement: 500 principals × 6 columns stay far below PostgreSQL's
    /// 65,535 parameters per statement, with keys at up to 4 per principal.
    static let importBatch = 500

    /// Inserts the principals that do not exist yet; returns their netnames.
    private static func insertNew(_ db: PostgresConnection, _ principals: [Principal], logger: Logger) async throws -> Set<String> {
        guard !principals.isEmpty else { return [] }
        var binds = PostgresBindings(capacity: principals.count * 6)
        var rows: [String] = []
        for (index, p) in principals.enumerated() {
            let n = index * 6
            rows.append("($\(n + 1)::text, $\(n + 2)::text, $\(n + 3)::text, $\(n + 4)::bigint, $\(n + 5)::double precision, $\(n + 6)::bytea)")
            binds.append(p.netname)
            binds.append(p.kind.rawValue)
            binds.append(p.name)
            binds.append(p.uid.map { Int64($0) })
            binds.append(p.createdAt.timeIntervalSince1970)
            try binds.append(p.passwordSalt)
        }
        let sql = "INSERT INTO principal (netname, kind, name, uid, created_at, password_salt) VALUES "
            + rows.joined(separator: ", ") + " ON CONFLICT (netname) DO NOTHING RETURNING netname"
        var added = Set<String>()
        for try await netname in try await db.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).decode(String.self) {
            added.insert(netname)
        }
        return added
    }

    /// The keys of principals just inserted, in batches.
    private static func insertKeys(_ db: PostgresConnection, _ keys: [KeyEntry], logger: Logger) async throws {
        for start in stride(from: 0, to: keys.count, by: importBatch) {
            let chunk = keys[start..<min(start + importBatch, keys.count)]
            var binds = PostgresBindings(capacity: chunk.count * 8)
            var rows: [String] = []
            for (index, k) in chunk.enumerated() {
                let n = index * 8
                rows.append("($\(n + 1)::text, $\(n + 2)::text, $\(n + 3)::text, $\(n + 4)::bytea, $\(n + 5)::text, "
                    + "$\(n + 6)::double precision, $\(n + 7)::double precision, $\(n + 8)::bytea)")
                binds.append(k.netname)
                binds.append(k.mechanism.rawValue)
                binds.append(k.publicKey)
                try binds.append(Data(k.sealedSecret))
                binds.append(k.state.rawValue)
                binds.append(k.createdAt.timeIntervalSince1970)
                binds.append(k.rotatedAt?.timeIntervalSince1970)
                try binds.append(k.passwordTag.map { Data($0) })
            }
            let sql = "INSERT INTO key_entry (netname, mechanism, public_key, sealed_secret, state, created_at, rotated_at, password_tag) VALUES "
                + rows.joined(separator: ", ")
            try await db.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        }
    }

    /// One audit row per principal added, as `log` writes them, in batches.
    private static func logImports(_ db: PostgresConnection, _ added: [(Principal, [KeyEntry])], actor: AuditActor, source: String,
                                   logger: Logger) async throws {
        guard !added.isEmpty else { return }
        let at = Date().timeIntervalSince1970, loginUID = actor.loginUID.map { Int64($0) }
        var binds = PostgresBindings(capacity: added.count * 8)
        var rows: [String] = []
        for (index, (principal, keys)) in added.enumerated() {
            let n = index * 8
            rows.append("($\(n + 1)::double precision, $\(n + 2)::text, $\(n + 3)::text, $\(n + 4)::text, $\(n + 5)::text, "
                + "$\(n + 6)::text, $\(n + 7)::text, $\(n + 8)::bigint)")
            binds.append(at)
            binds.append(actor.name)
            binds.append("import")
            binds.append(principal.netname)
            binds.append(keys.map(\.mechanism.rawValue).joined(separator: ","))
            binds.append("added from \(source)")
            binds.append(actor.sudoUser)
            binds.append(loginUID)
        }
        let sql = "INSERT INTO audit (at, actor, action, netname, mechanism, detail, sudo_user, login_uid) VALUES " + rows.joined(separator: ", ")
        try await db.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
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
