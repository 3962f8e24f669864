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

    private enum Backend {
        /// keyadmin: a DatabasePool (WAL, concurrent readers), migrated on open.
        case readWrite(DatabasePool)
        /// keylogin and other users' tools: never writes, works without -wal/-shm files.
        case readOnly(ReadOnlyDatabase)
    }

    private let backend: Backend

    /// The connection (for tests): the pool, or the read-only queue of the moment.
    var pool: any DatabaseWriter {
        switch backend {
        case let .readWrite(pool): return pool
        case let .readOnly(database): return database.currentQueue
        }
    }

    /// Opens the database at `path`.
    ///
    /// - Parameters:
    ///   - path: the database file.
    ///   - readOnly: open an existing database without ever writing to it (users' tools such
    ///     as keylogin, which may read the directory but not change it; daemons on a
    ///     read-only mount). Works whether or not the -wal/-shm files exist.
    ///   - create: create the file (and its directory) when missing. Only `keyadmin init`
    ///     asks for this; every other opener gets `DirectoryError.noDirectory` for a
    ///     mistyped path instead of a new empty directory.
    ///   - busyTimeout: how long a write waits for another process's transaction to end.
    public init(path: String, readOnly: Bool = false, create: Bool = true, busyTimeout: TimeInterval = 10) throws {
        if readOnly {
            guard FileManager.default.fileExists(atPath: path) else { throw DirectoryError.noDirectory(path) }
            let database = try ReadOnlyDatabase(path: path, busyTimeout: busyTimeout)
            guard try database.read({ try $0.tableExists("principal") }) else { throw DirectoryError.notADirectory(path) }
            backend = .readOnly(database)
            return
        }
        if !create {
            guard FileManager.default.fileExists(atPath: path) else { throw DirectoryError.noDirectory(path) }
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // Keep the -wal and -shm files after the last writer closes: readers that
            // cannot create them then use them (ReadOnlyDatabase copes when they are gone).
            var persist: Int32 = 1
            sqlite3_file_control(db.sqliteConnection, nil, SQLITE_FCNTL_PERSIST_WAL, &persist)
        }
        do {
            let directory = (path as NSString).deletingLastPathComponent
            if create && !directory.isEmpty {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            let pool = try DatabasePool(path: path, configuration: configuration)
            if !create, try !pool.read({ try $0.tableExists("principal") }) {
                throw DirectoryError.notADirectory(path)
            }
            try Self.migrator.migrate(pool)
            backend = .readWrite(pool)
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
        // v2: password tags (a salt per principal, a tag per key: what verify can tell about
        // passwords without knowing them) and who invoked a change under sudo or su.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: """
                ALTER TABLE principal ADD COLUMN password_salt BLOB;
                ALTER TABLE key_entry ADD COLUMN password_tag BLOB;
                ALTER TABLE audit ADD COLUMN sudo_user TEXT;
                ALTER TABLE audit ADD COLUMN login_uid INTEGER;
                """)
        }
        // v3: the site. Service principals (a kind the v1 CHECK did not allow: the table is
        // rebuilt, with foreign keys off while it is, as GRDB's deferred checks do) and roles.
        migrator.registerMigration("v3") { db in
            try db.execute(sql: """
                CREATE TABLE principal_v3 (
                    netname TEXT PRIMARY KEY NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('user', 'host', 'service')),
                    name TEXT NOT NULL,
                    uid INTEGER,
                    created_at REAL NOT NULL,
                    password_salt BLOB
                ) WITHOUT ROWID;
                INSERT INTO principal_v3 (netname, kind, name, uid, created_at, password_salt)
                    SELECT netname, kind, name, uid, created_at, password_salt FROM principal;
                DROP TABLE principal;
                ALTER TABLE principal_v3 RENAME TO principal;
                CREATE TABLE role (
                    netname TEXT NOT NULL REFERENCES principal(netname) ON DELETE CASCADE,
                    role TEXT NOT NULL CHECK (role IN ('admin', 'host')),
                    granted_at REAL NOT NULL,
                    PRIMARY KEY (netname, role)
                ) WITHOUT ROWID;
                CREATE INDEX audit_by_netname ON audit (netname, id);
                """)
        }
        return migrator
    }

    // MARK: reads

    public func publicKey(netname: String, mechanism: DHGroupName) throws -> DHPublicKey? {
        try publicKeyHex(netname: netname, mechanism: mechanism).map { try DHPublicKey(group: mechanism, hex: $0) }
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
        try read { db in try Self.keys(db, of: netname) }
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
        try audit(limit: limit, netname: nil)
    }

    public func audit(limit: Int, netname: String?) throws -> [AuditEvent] {
        try read { db in
            let rows: [Row]
            if let netname {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM audit WHERE netname = ? ORDER BY id DESC LIMIT ?", arguments: [netname, limit])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM audit ORDER BY id DESC LIMIT ?", arguments: [limit])
            }
            return rows.map { row in
                AuditEvent(id: row["id"], at: Date(timeIntervalSince1970: row["at"]), actor: row["actor"], action: row["action"],
                           netname: row["netname"], mechanism: row["mechanism"], detail: row["detail"],
                           sudoUser: row["sudo_user"], loginUID: (row["login_uid"] as Int64?).map { UInt32(truncatingIfNeeded: $0) })
            }
        }
    }

    /// How many principals there are.
    public func count() throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM principal") ?? 0 }
    }

    /// SQLite's own checks of the file — `PRAGMA integrity_check` (pages, b-trees, indexes)
    /// and `PRAGMA foreign_key_check` (keys whose principal is gone) — as one line per
    /// problem; empty when the file is sound. A file too damaged to check is one problem.
    public func integrityProblems() -> [String] {
        do {
            return try read { db in
                // One row may hold several lines, under a "*** in database main ***" heading.
                var problems = try String.fetchAll(db, sql: "PRAGMA integrity_check")
                    .flatMap { $0.split(separator: "\n").map(String.init) }
                    .filter { $0 != "ok" && !$0.hasPrefix("*** in database") }
                    .map { "integrity_check: \($0)" }
                for row in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") {
                    let table: String = row[0], parent: String = row[2]
                    // key_entry's rows are named one by one below.
                    if table != "key_entry" { problems.append("foreign_key_check: a row of \(table) refers to a missing \(parent)") }
                }
                for row in try Row.fetchAll(db, sql: """
                    SELECT netname, mechanism FROM key_entry WHERE netname NOT IN (SELECT netname FROM principal)
                    """) {
                    let netname: String = row[0], mechanism: String = row[1]
                    problems.append("foreign_key_check: \(netname) \(mechanism): a key without its principal")
                }
                return problems
            }
        } catch {
            return ["the database cannot be checked: \(error)"]
        }
    }

    public func roles(of netname: String) throws -> Set<PrincipalRole> {
        try read { db in
            Set(try String.fetchAll(db, sql: "SELECT role FROM role WHERE netname = ?", arguments: [netname]).compactMap(PrincipalRole.init(rawValue:)))
        }
    }

    public func changes(since serial: UInt64, limit: Int) throws -> DirectoryChanges {
        try read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT id, netname, mechanism FROM audit WHERE id > ? AND netname IS NOT NULL ORDER BY id LIMIT ?
                """, arguments: [Int64(clamping: serial), limit])
            let changes = rows.map { row in
                DirectoryChanges.Change(serial: UInt64(row["id"] as Int64), netname: row["netname"], mechanism: (row["mechanism"] as String?) ?? "")
            }
            // A full page ends at its last row (more follow); otherwise at the newest row of all.
            let newest = UInt64(try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(id), 0) FROM audit") ?? 0)
            let through = changes.count == limit ? (changes.last?.serial ?? serial) : max(serial, newest)
            return DirectoryChanges(serial: through, changes: changes)
        }
    }

    // MARK: writes

    public func grant(_ role: PrincipalRole, to netname: String, actor: AuditActor) throws {
        try write { db in
            guard try Self.exists(db, netname) else { throw DirectoryError.noSuchPrincipal(netname) }
            try db.execute(sql: "INSERT OR IGNORE INTO role (netname, role, granted_at) VALUES (?, ?, ?)",
                           arguments: [netname, role.rawValue, Date().timeIntervalSince1970])
            if db.changesCount > 0 {
                try Self.log(db, actor: actor, action: "grant", netname: netname, mechanism: nil, detail: role.rawValue)
            }
        }
    }

    public func revokeRole(_ role: PrincipalRole, from netname: String, actor: AuditActor) throws {
        try write { db in
            guard try Self.exists(db, netname) else { throw DirectoryError.noSuchPrincipal(netname) }
            try db.execute(sql: "DELETE FROM role WHERE netname = ? AND role = ?", arguments: [netname, role.rawValue])
            if db.changesCount == 0 { throw DirectoryError.noSuchRole(netname, role) }
            try Self.log(db, actor: actor, action: "revoke-role", netname: netname, mechanism: nil, detail: role.rawValue)
        }
    }


    public func add(_ principal: Principal, keys: [KeyEntry], actor: AuditActor) throws {
        try Netname.validate(principal.netname)
        try write { db in
            if try Self.exists(db, principal.netname) { throw DirectoryError.principalExists(principal.netname) }
            try Self.insert(db, principal)
            for key in keys { try Self.upsert(db, key) }
            try Self.log(db, actor: actor, action: "newkey", netname: principal.netname,
                         mechanism: keys.map(\.mechanism.rawValue).joined(separator: ","), detail: principal.kind.rawValue)
        }
    }

    public func apply(_ changes: [KeyChange], to netname: String, passwordSalt: Data?, actor: AuditActor) throws {
        try write { db in
            guard let current = try Row.fetchOne(db, sql: "SELECT * FROM principal WHERE netname = ?", arguments: [netname]).map(Self.principal) else {
                throw DirectoryError.noSuchPrincipal(netname)
            }
            if let passwordSalt, passwordSalt != current.passwordSalt {
                try db.execute(sql: "UPDATE principal SET password_salt = ? WHERE netname = ?", arguments: [passwordSalt, netname])
            }
            let existing = try Self.keys(db, of: netname)
            for change in changes {
                let key = change.entry
                guard key.netname == netname else { throw DirectoryError.inconsistent(key.netname, "a change for another principal") }
                let present = existing.first { $0.mechanism == key.mechanism }
                switch change.kind {
                case .add:
                    if present != nil { throw DirectoryError.keyExists(netname, key.mechanism) }
                    try Self.upsert(db, key)
                case .replace:
                    guard let present else { throw DirectoryError.noSuchKey(netname, key.mechanism) }
                    // A new password or key pair never changes the key's state: a revoked key
                    // comes back only through `enable`.
                    var replaced = key
                    replaced.state = present.state
                    try Self.upsert(db, replaced)
                case .retag:
                    guard let present, present.publicKey == key.publicKey, present.sealedSecret == key.sealedSecret else {
                        throw DirectoryError.inconsistent(netname, "\(key.mechanism.rawValue) changed while being checked; nothing was changed")
                    }
                    try db.execute(sql: "UPDATE key_entry SET password_tag = ? WHERE netname = ? AND mechanism = ?",
                                   arguments: [key.passwordTag.map { Data($0) }, netname, key.mechanism.rawValue])
                }
                if let action = change.action {
                    try Self.log(db, actor: actor, action: action, netname: netname, mechanism: key.mechanism.rawValue, detail: change.detail)
                }
            }
        }
    }

    public func revoke(netname: String, mechanism: DHGroupName?, actor: AuditActor) throws {
        try setState(.revoked, netname: netname, mechanism: mechanism, actor: actor, action: "revoke")
    }

    public func enable(netname: String, mechanism: DHGroupName?, actor: AuditActor) throws {
        try setState(.active, netname: netname, mechanism: mechanism, actor: actor, action: "enable")
    }

    private func setState(_ state: KeyState, netname: String, mechanism: DHGroupName?, actor: AuditActor, action: String) throws {
        try write { db in
            guard try Self.exists(db, netname) else { throw DirectoryError.noSuchPrincipal(netname) }
            if let mechanism {
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM key_entry WHERE netname = ? AND mechanism = ?",
                                        arguments: [netname, mechanism.rawValue]) ?? false else {
                    throw DirectoryError.noSuchKey(netname, mechanism)
                }
                try db.execute(sql: "UPDATE key_entry SET state = ? WHERE netname = ? AND mechanism = ?",
                               arguments: [state.rawValue, netname, mechanism.rawValue])
            } else {
                try db.execute(sql: "UPDATE key_entry SET state = ? WHERE netname = ?", arguments: [state.rawValue, netname])
            }
            try Self.log(db, actor: actor, action: action, netname: netname, mechanism: mechanism?.rawValue, detail: nil)
        }
    }

    public func remove(netname: String, actor: AuditActor) throws {
        try write { db in
            let mechanisms = try String.fetchAll(db, sql: "SELECT mechanism FROM key_entry WHERE netname = ? ORDER BY mechanism", arguments: [netname])
            try db.execute(sql: "DELETE FROM principal WHERE netname = ?", arguments: [netname])
            if db.changesCount == 0 { throw DirectoryError.noSuchPrincipal(netname) }
            try Self.log(db, actor: actor, action: "remove", netname: netname, mechanism: mechanisms.joined(separator: ","), detail: nil)
        }
    }

    public func importEntries(_ entries: [(Principal, [KeyEntry])], actor: AuditActor, source: String, replace: Bool,
                              progress: ((Int) -> Void)?) throws -> ImportReport {
        try write { db in
            var report = ImportReport()
            let insertPrincipal = try db.cachedStatement(sql: """
                INSERT INTO principal (netname, kind, name, uid, created_at, password_salt) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(netname) DO NOTHING
                """)
            var done = 0
            for (principal, keys) in entries {
                try insertPrincipal.execute(arguments: [principal.netname, principal.kind.rawValue, principal.name,
                                                        principal.uid.map { Int64($0) }, principal.createdAt.timeIntervalSince1970,
                                                        principal.passwordSalt])
                if db.changesCount == 1 {
                    for key in keys { try Self.insertKey(db, key) }
                    try Self.log(db, actor: actor, action: "import", netname: principal.netname,
                                 mechanism: keys.map(\.mechanism.rawValue).joined(separator: ","), detail: "added from \(source)")
                    report.added += 1
                } else {
                    try Self.merge(db, principal, keys, replace: replace, actor: actor, source: source, into: &report)
                }
                done += 1
                if done % 1000 == 0 { progress?(done) }
            }
            progress?(done)
            try Self.log(db, actor: actor, action: "import", netname: nil, mechanism: nil, detail: "\(report.summary) from \(source)")
            return report
        }
    }

    /// An imported principal that exists already: the rules are ImportMerge's.
    private static func merge(_ db: Database, _ principal: Principal, _ imported: [KeyEntry], replace: Bool,
                              actor: AuditActor, source: String, into report: inout ImportReport) throws {
        let existing = try keys(db, of: principal.netname)
        let here = try Row.fetchOne(db, sql: "SELECT password_salt FROM principal WHERE netname = ?", arguments: [principal.netname])
        let saltHere: Data? = here?["password_salt"]
        let merge = ImportMerge.plan(principal, imported, existing: existing, saltHere: saltHere, replace: replace, into: &report)
        for write in merge.writes {
            switch write {
            case let .insert(key): try insertKey(db, key)
            case let .upsert(key): try upsert(db, key)
            }
        }
        if !merge.done.isEmpty {
            try log(db, actor: actor, action: "import", netname: principal.netname, mechanism: merge.mechanisms,
                    detail: merge.done.joined(separator: "; ") + " from \(source)")
            report.replaced += 1
        }
    }

    // MARK: helpers

    private func read<T>(_ body: (Database) throws -> T) throws -> T {
        switch backend {
        case let .readOnly(database):
            return try database.read(body)
        case let .readWrite(pool):
            do {
                return try pool.read(body)
            } catch let error as DatabaseError {
                throw DirectoryError.storage(error.message ?? "\(error)")
            }
        }
    }

    /// For a single SELECT: SQLite runs one statement atomically, so the snapshot
    /// transaction `read` wraps around every access (BEGIN … COMMIT, two more statements)
    /// buys nothing here and costs a third of a lookup.
    private func readOneStatement<T>(_ body: (Database) throws -> T) throws -> T {
        switch backend {
        case let .readOnly(database):
            return try database.read(body)
        case let .readWrite(pool):
            do {
                return try pool.unsafeRead(body)
            } catch let error as DatabaseError {
                throw DirectoryError.storage(error.message ?? "\(error)")
            }
        }
    }

    private func write<T>(_ body: (Database) throws -> T) throws -> T {
        guard case let .readWrite(pool) = backend else {
            throw DirectoryError.storage("opened read-only")
        }
        do {
            return try pool.write(body)
        } catch let error as DatabaseError {
            throw DirectoryError.storage(error.message ?? "\(error)")
        }
    }

    private static func exists(_ db: Database, _ netname: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM principal WHERE netname = ?"), arguments: [netname]) ?? false
    }

    private static func keys(_ db: Database, of netname: String) throws -> [KeyEntry] {
        try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM key_entry WHERE netname = ? ORDER BY mechanism"), arguments: [netname]).compactMap(key)
    }

    private static func insert(_ db: Database, _ p: Principal) throws {
        try db.cachedStatement(sql: "INSERT INTO principal (netname, kind, name, uid, created_at, password_salt) VALUES (?, ?, ?, ?, ?, ?)")
            .execute(arguments: [p.netname, p.kind.rawValue, p.name, p.uid.map { Int64($0) }, p.createdAt.timeIntervalSince1970, p.passwordSalt])
    }

    private static func insertKey(_ db: Database, _ k: KeyEntry) throws {
        try db.cachedStatement(sql: """
            INSERT INTO key_entry (netname, mechanism, public_key, sealed_secret, state, created_at, rotated_at, password_tag)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: arguments(k))
    }

    private static func upsert(_ db: Database, _ k: KeyEntry) throws {
        try db.cachedStatement(sql: """
            INSERT INTO key_entry (netname, mechanism, public_key, sealed_secret, state, created_at, rotated_at, password_tag)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(netname, mechanism) DO UPDATE SET public_key = excluded.public_key,
                sealed_secret = excluded.sealed_secret, state = excluded.state, rotated_at = excluded.rotated_at,
                password_tag = excluded.password_tag
            """).execute(arguments: arguments(k))
    }

    private static func arguments(_ k: KeyEntry) -> StatementArguments {
        [k.netname, k.mechanism.rawValue, k.publicKey, Data(k.sealedSecret), k.state.rawValue,
         k.createdAt.timeIntervalSince1970, k.rotatedAt?.timeIntervalSince1970, k.passwordTag.map { Data($0) }]
    }

    private static func log(_ db: Database, actor: AuditActor, action: String, netname: String?, mechanism: String?, detail: String?) throws {
        try db.cachedStatement(sql: """
            INSERT INTO audit (at, actor, action, netname, mechanism, detail, sudo_user, login_uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [Date().timeIntervalSince1970, actor.name, action, netname, mechanism, detail,
                                     actor.sudoUser, actor.loginUID.map { Int64($0) }])
    }

    private static func principal(_ row: Row) -> Principal {
        Principal(netname: row["netname"], kind: PrincipalKind(rawValue: row["kind"]) ?? .user, name: row["name"],
                  uid: (row["uid"] as Int64?).map { UInt32(truncatingIfNeeded: $0) },
                  createdAt: Date(timeIntervalSince1970: row["created_at"]), passwordSalt: row["password_salt"])
    }

    private static func key(_ row: Row) -> KeyEntry? {
        guard let mechanism = DHGroupName(rawValue: row["mechanism"]) else { return nil }
        let sealed: Data = row["sealed_secret"]
        let tag: Data? = row["password_tag"]
        return KeyEntry(netname: row["netname"], mechanism: mechanism, publicKey: row["public_key"], sealedSecret: Array(sealed),
                        state: KeyState(rawValue: row["state"]) ?? .revoked, createdAt: Date(timeIntervalSince1970: row["created_at"]),
                        rotatedAt: (row["rotated_at"] as Double?).map { Date(timeIntervalSince1970: $0) }, passwordTag: tag.map(Array.init))
    }
}
