// The PostgreSQL directory's schema as numbered migrations, applied at open in one
// transaction and recorded in `schema_version`. The tables mirror SQLite's (same columns,
// same checks) so that export and import move a directory between the two unchanged; times
// are seconds since 1970 as double precision, exactly what `Date` holds, so that an export
// from either store is byte-for-byte the same.
//
// Trust: these statements are constants; nothing here is built from user text.

import KeyDirectory
import Logging
import PostgresNIO

enum PostgresSchema {
    /// Each entry is one version; each statement runs alone (the extended protocol takes one
    /// statement at a time, and function bodies hold semicolons).
    static let migrations: [[String]] = [
        // v1: principals, keys, roles and the audit trail.
        [
            """
            CREATE TABLE principal (
                netname text PRIMARY KEY,
                kind text NOT NULL CHECK (kind IN ('user', 'host', 'service')),
                name text NOT NULL,
                uid bigint,
                created_at double precision NOT NULL,
                password_salt bytea
            )
            """,
            """
            CREATE TABLE key_entry (
                netname text NOT NULL REFERENCES principal(netname) ON DELETE CASCADE,
                mechanism text NOT NULL,
                public_key text NOT NULL,
                sealed_secret bytea NOT NULL,
                state text NOT NULL CHECK (state IN ('active', 'revoked')),
                created_at double precision NOT NULL,
                rotated_at double precision,
                password_tag bytea,
                PRIMARY KEY (netname, mechanism)
            )
            """,
            """
            CREATE TABLE role (
                netname text NOT NULL REFERENCES principal(netname) ON DELETE CASCADE,
                role text NOT NULL CHECK (role IN ('admin', 'host')),
                granted_at double precision NOT NULL,
                PRIMARY KEY (netname, role)
            )
            """,
            // The id is the change feed's serial: writers hold one lock (see the store), so ids
            // are handed out in commit order and a reader never sees a gap filled later.
            """
            CREATE TABLE audit (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                at double precision NOT NULL,
                actor text NOT NULL,
                action text NOT NULL,
                netname text,
                mechanism text,
                detail text,
                sudo_user text,
                login_uid bigint
            )
            """,
            "CREATE INDEX audit_by_netname ON audit (netname, id)",
            // Append-only in the database itself, so that no client (psql included) can edit
            // history: rows can be added, never changed or removed, nor the table truncated.
            """
            CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """,
            """
            CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
                FOR EACH ROW EXECUTE FUNCTION audit_append_only()
            """,
            """
            CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
                FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()
            """,
        ],
    ]

    static var latest: Int { migrations.count }

    /// For a database this program may not write (a hot standby): its schema must be the one
    /// this program knows, since it cannot be brought up to date from here.
    static func check(_ connection: PostgresConnection, logger: Logger) async throws {
        var current = 0
        for try await version in try await connection.query("SELECT COALESCE(MAX(version), 0) FROM schema_version", logger: logger).decode(Int.self) {
            current = version
        }
        guard current == latest else {
            throw DirectoryError.storage("the directory's schema is version \(current) and this program needs \(latest); "
                + "it cannot be migrated read-only: upgrade it on the primary")
        }
    }

    /// Brings the database to the latest version; a database newer than this program is
    /// refused rather than written with the wrong idea of its tables.
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("BEGIN", logger: logger)
        do {
            // Two programs opening a new database at once: the second waits, then sees v1 done.
            _ = try await PostgresKeyDirectory.count(connection.query("SELECT pg_advisory_xact_lock(\(PostgresKeyDirectory.migrationLock))", logger: logger))
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS schema_version (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var current = 0
            for try await version in try await connection.query("SELECT COALESCE(MAX(version), 0) FROM schema_version", logger: logger).decode(Int.self) {
                current = version
            }
            guard current <= latest else {
                throw DirectoryError.storage("the directory's schema is version \(current); this program knows up to \(latest)")
            }
            for version in (current + 1)..<(latest + 1) {
                for statement in migrations[version - 1] {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO schema_version (version) VALUES (\(version))", logger: logger)
            }
            try await connection.query("COMMIT", logger: logger)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
