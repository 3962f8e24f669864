// The embedded directory: one SQLite file through GRDB on the system libsqlite3. WAL so
// readers never wait for a writer, a busy timeout so concurrent writers (two keyadmin
// runs) queue instead of failing, migrations for the schema, one transaction per change,
// and only prepared statements with bound arguments: no SQL is built from user text.
// The audit table is append-only, enforced by triggers in the database itself.

import Foundation
import GRDB
import GRDBSQLite
import KeyCrypto

/// The SQLite-backed key directory.
///
/// ```swift
/// let directory = try SQLiteKeyDirectory(path: "/var/lib/securerpc/keys.db")
/// let key = try directory.publicKey(netname: "unix.1001@example.org", mechanism: .ffdhe3072)
/// ```
public final class SQLiteKeyDirectory: KeyDirectoryStore {
    /// Where `keyadmin` and the daemons look unless told otherwise.
    public static let defaultPath = "/var/lib/securerpc/keys.db"

    /// A DatabasePool (WAL, concurrent readers) for read-write use; a read-only DatabaseQueue
    /// for `readOnly`, which never tries to change the journal mode.
    let pool: any DatabaseWriter

    /// Opens (creating and migrating if needed) the database at `path`. `readOnly` opens an
    /// existing database without writing to it (for users' tools such as keylogin, which may
    /// read the directory but not change it).
    public init(path: String, readOnly: Bool = false, busyTimeout: TimeInterval = 10) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.readonly = readOnly
        configuration.prepareDatabase { db in
            if !readOnly {
                try db.execute(sql: "PRAGMA foreign_keys = ON")
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                // Keep the -wal and -shm files after the last writer closes: a user's
                // read-only connection (keylogin) cannot create them in a root-owned
                // directory, and SQLite refuses to read a WAL database without them.
                var persist: Int32 = 1
                sqlite3_file_control(db.sqliteConnection, nil, SQLITE_FCNTL_PERSIST_WAL, &persist)
            }
        }
        do {
            if readOnly {
                pool = try DatabaseQueue(path: path, configuration: configuration)
                return
            }
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch let error as DatabaseError {
            throw DirectoryError.storage("\(path): \(error.message ?? "\(error)")")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE principal (
                    netname TEXT PRIMARY KEY NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('user', 'host')),
                    name TEXT NOT NULL,
                    uid INTEGER,
                    created_at REAL NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE key_entry (
                    netname TEXT NOT NULL REFERENCES principal(netname) ON DELETE CASCADE,
                    mechanism TEXT NOT NULL,
                    public_key TEXT NOT NULL,
                    sealed_secret BLOB NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
                    created_at REAL NOT NULL,
                    rotated_at REAL,
                    PRIMARY KEY (netname, mechanism)
                ) WITHOUT ROWID;
                CREATE TABLE audit (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at REAL NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    netname TEXT,
                    mechanism TEXT,
                    detail TEXT
                );
                CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
                    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
                CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
                    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
                """)
        }
        return migrator
    }

    // MARK: reads

    public func publicKey(netname: String, mechanism: DHGroupName) throws -> DHPublicKey? {
        let hex = try readOneStatement { db in
            try String.fetchOne(db.cachedStatement(sql: "SELECT public_key FROM key_entry WHERE netname = ? AND mechanism = ? AND state = 'active'"),
                                arguments: [netname, mechanism.rawValue])
        }
        return try hex.map { try DHPublicKey(group: mechanism, hex: $0) }
    }

    /// The active public key as stored (hex), without validating it: for callers that cache
    /// validated keys themselves, and for benchmarks.
    public func publicKeyHex(netname: String, mechanism: DHGroupName) throws -> String? {
        try readOneStatement { db in
            try String.fetchOne(db.cachedStatement(sql: "SELECT public_key FROM key_entry WHERE netname = ? AND mechanism = ? AND state = 'active'"),
                                arguments: [netname, mechanism.rawValue])
        }
    }

    public func principal(_ netname: String) throws -> Principal? {
        try read { db in try Row.fetchOne(db, sql: "SELECT * FROM principal WHERE netname = ?", arguments: [netname]).map(Self.principal) }
    }

    public func keys(of netname: String) throws -> [KeyEntry] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM key_entry WHERE netname = ? ORDER BY mechanism", arguments: [netname]).compactMap(Self.key)
        }
    }

    public func allEntries() throws -> [(Principal, [KeyEntry])] {
        try read { db in
            let principals = try Row.fetchAll(db, sql: "SELECT * FROM principal ORDER BY netname").map(Self.principal)
            var keys: [String: [KeyEntry]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM key_entry ORDER BY netname, mechanism") {
                if let key = Self.key(row) { keys[key.netname, default: []].append(key) }
            }
            return principals.map { ($0, keys[$0.netname] ?? []) }
        }
    }

    public func audit(limit: Int) throws -> [AuditEvent] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit ORDER BY id DESC LIMIT ?", arguments: [limit]).map { row in
                AuditEvent(id: row["id"], at: Date(timeIntervalSince1970: row["at"]), actor: row["actor"], action: row["action"],
                           netname: row["netname"], mechanism: row["mechanism"], detail: row["detail"])
            }
        }
    }

    /// How many principals there are.
    public func count() throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM principal") ?? 0 }
    }

    // MARK: writes

    public func add(_ principal: Principal, keys: [KeyEntry], actor: String) throws {
        try Netname.validate(principal.netname)
        try write { db in
            if try Self.exists(db, principal.netname) { throw DirectoryError.principalExists(principal.netname) }
            try Self.insert(db, principal)
            for key in keys { try Self.upsert(db, key) }
            try Self.log(db, actor: actor, action: "newkey", netname: principal.netname,
                         mechanism: keys.map(\.mechanism.rawValue).joined(separator: ","), detail: principal.kind.rawValue)
        }
    }

    public func put(_ key: KeyEntry, replacing: Bool, actor: String, action: String) throws {
        try write { db in
            guard try Self.exists(db, key.netname) else { throw DirectoryError.noSuchPrincipal(key.netname) }
            let present = try Bool.fetchOne(db, sql: "SELECT 1 FROM key_entry WHERE netname = ? AND mechanism = ?",
                                            arguments: [key.netname, key.mechanism.rawValue]) ?? false
            if present && !replacing { throw DirectoryError.keyExists(key.netname, key.mechanism) }
            if !present && replacing { throw DirectoryError.noSuchKey(key.netname, key.mechanism) }
            try Self.upsert(db, key)
            try Self.log(db, actor: actor, action: action, netname: key.netname, mechanism: key.mechanism.rawValue, detail: nil)
        }
    }

    public func revoke(netname: String, mechanism: DHGroupName?, actor: String) throws {
        try write { db in
            guard try Self.exists(db, netname) else { throw DirectoryError.noSuchPrincipal(netname) }
            if let mechanism {
                try db.execute(sql: "UPDATE key_entry SET state = 'revoked' WHERE netname = ? AND mechanism = ?",
                               arguments: [netname, mechanism.rawValue])
                if db.changesCount == 0 { throw DirectoryError.noSuchKey(netname, mechanism) }
            } else {
                try db.execute(sql: "UPDATE key_entry SET state = 'revoked' WHERE netname = ?", arguments: [netname])
            }
            try Self.log(db, actor: actor, action: "revoke", netname: netname, mechanism: mechanism?.rawValue, detail: nil)
        }
    }

    public func remove(netname: String, actor: String) throws {
        try write { db in
            try db.execute(sql: "DELETE FROM principal WHERE netname = ?", arguments: [netname])
            if db.changesCount == 0 { throw DirectoryError.noSuchPrincipal(netname) }
            try Self.log(db, actor: actor, action: "remove", netname: netname, mechanism: nil, detail: nil)
        }
    }

    public func importEntries(_ entries: [(Principal, [KeyEntry])], actor: String, source: String,
                              progress: ((Int) -> Void)?) throws -> Int {
        try write { db in
            let upsertPrincipal = try db.cachedStatement(sql: """
                INSERT INTO principal (netname, kind, name, uid, created_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(netname) DO NOTHING
                """)
            var done = 0
            for (principal, keys) in entries {
                try upsertPrincipal.execute(arguments: [principal.netname, principal.kind.rawValue, principal.name,
                                                        principal.uid.map { Int64($0) }, principal.createdAt.timeIntervalSince1970])
                for key in keys { try Self.upsert(db, key) }
                done += 1
                if done % 1000 == 0 { progress?(done) }
            }
            progress?(done)
            try Self.log(db, actor: actor, action: "import", netname: nil, mechanism: nil, detail: "\(done) principals from \(source)")
            return done
        }
    }

    // MARK: helpers

    private func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch let error as DatabaseError {
            throw DirectoryError.storage(error.message ?? "\(error)")
        }
    }

    /// For a single SELECT: SQLite runs one statement atomically, so the snapshot
    /// transaction `read` wraps around every access (BEGIN … COMMIT, two more statements)
    /// buys nothing here and costs a third of a lookup.
    private func readOneStatement<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.unsafeRead(body)
        } catch let error as DatabaseError {
            throw DirectoryError.storage(error.message ?? "\(error)")
        }
    }

    private func write<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.write(body)
        } catch let error as DatabaseError {
            throw DirectoryError.storage(error.message ?? "\(error)")
        }
    }

    private static func exists(_ db: Database, _ netname: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM principal WHERE netname = ?"), arguments: [netname]) ?? false
    }

    private static func insert(_ db: Database, _ p: Principal) throws {
        try db.cachedStatement(sql: "INSERT INTO principal (netname, kind, name, uid, created_at) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [p.netname, p.kind.rawValue, p.name, p.uid.map { Int64($0) }, p.createdAt.timeIntervalSince1970])
    }

    private static func upsert(_ db: Database, _ k: KeyEntry) throws {
        try db.cachedStatement(sql: """
            INSERT INTO key_entry (netname, mechanism, public_key, sealed_secret, state, created_at, rotated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(netname, mechanism) DO UPDATE SET public_key = excluded.public_key,
                sealed_secret = excluded.sealed_secret, state = excluded.state, rotated_at = excluded.rotated_at
            """).execute(arguments: [k.netname, k.mechanism.rawValue, k.publicKey, Data(k.sealedSecret), k.state.rawValue,
                                     k.createdAt.timeIntervalSince1970, k.rotatedAt?.timeIntervalSince1970])
    }

    private static func log(_ db: Database, actor: String, action: String, netname: String?, mechanism: String?, detail: String?) throws {
        try db.cachedStatement(sql: "INSERT INTO audit (at, actor, action, netname, mechanism, detail) VALUES (?, ?, ?, ?, ?, ?)")
            .execute(arguments: [Date().timeIntervalSince1970, actor, action, netname, mechanism, detail])
    }

    private static func principal(_ row: Row) -> Principal {
        Principal(netname: row["netname"], kind: PrincipalKind(rawValue: row["kind"]) ?? .user, name: row["name"],
                  uid: (row["uid"] as Int64?).map { UInt32(truncatingIfNeeded: $0) },
                  createdAt: Date(timeIntervalSince1970: row["created_at"]))
    }

    private static func key(_ row: Row) -> KeyEntry? {
        guard let mechanism = DHGroupName(rawValue: row["mechanism"]) else { return nil }
        let sealed: Data = row["sealed_secret"]
        return KeyEntry(netname: row["netname"], mechanism: mechanism, publicKey: row["public_key"], sealedSecret: Array(sealed),
                        state: KeyState(rawValue: row["state"]) ?? .revoked, createdAt: Date(timeIntervalSince1970: row["created_at"]),
                        rotatedAt: (row["rotated_at"] as Double?).map { Date(timeIntervalSince1970: $0) })
    }
}
