// What `keyadmin verify` and `init` can check of a PostgreSQL directory beyond its rows: the
// schema is the one this program knows, and the append-only triggers are still in place
// (the tables' owner could have dropped them).

import KeyDirectory
import PostgresNIO

extension PostgresKeyDirectory {
    /// One line per problem; empty when the schema is as migrations left it.
    public func integrityProblems() -> [String] {
        let logger = self.logger
        do {
            return try readSnapshot { db in
                var problems: [String] = []
                let version = try await Self.first(db.query("SELECT COALESCE(MAX(version), 0) FROM schema_version", logger: logger).decode(Int.self)) ?? 0
                if version != PostgresSchema.latest {
                    problems.append("schema version \(version), expected \(PostgresSchema.latest)")
                }
                var triggers: Set<String> = []
                for try await name in try await db.query("""
                    SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit'::regclass AND NOT tgisinternal AND tgenabled <> 'D'
                    """, logger: logger).decode(String.self) {
                    triggers.insert(name)
                }
                for expected in ["audit_no_update_or_delete", "audit_no_truncate"] where !triggers.contains(expected) {
                    problems.append("the audit trail is not protected: trigger \(expected) is missing or disabled")
                }
                return problems
            }
        } catch {
            return ["the database cannot be checked: \(error)"]
        }
    }
}
