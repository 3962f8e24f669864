// The directory's hot path for servers: public key by netname and mechanism, once per new
// caller. A dedicated read-only connection with one prepared statement driven through the
// SQLite C API (GRDB's connection, GRDB's system libsqlite3): no transaction wrapper, no
// argument boxing. Reads see committed data only (WAL), so writers are never blocked; when
// the WAL files are gone and cannot be made, reads go to the main file (ReadOnlyDatabase).

import Foundation
import GRDB
import GRDBSQLite
import KeyCrypto

/// Fast public-key lookups on a directory file.
///
/// ```swift
/// let lookup = try PublicKeyLookup(path: "/var/lib/securerpc/keys.db")
/// let key = try lookup.publicKey(netname: "unix.1001@example.org", mechanism: .ffdhe3072)
/// ```
public final class PublicKeyLookup: @unchecked Sendable {
    // `database` serialises every use of the connection and of `statement`.
    private let database: ReadOnlyDatabase
    private var statement: OpaquePointer?

    /// Opens the directory read-only; works with or without its -wal/-shm files, in a
    /// directory the caller cannot write and on a read-only mount (`ReadOnlyDatabase`).
    public convenience init(path: String) throws {
        try self.init(path: path, mainFileFirst: false)
    }

    /// `mainFileFirst`: see `ReadOnlyDatabase` (tests).
    init(path: String, mainFileFirst: Bool) throws {
        database = try ReadOnlyDatabase(path: path, busyTimeout: 10, mainFileFirst: mainFileFirst)
        // A new connection needs its own statement.
        database.willReopen = { [unowned self] _ in
            sqlite3_finalize(self.statement)
            self.statement = nil
        }
    }

    deinit {
        let statement = self.statement
        _ = try? database.read { _ in sqlite3_finalize(statement) }
    }

    /// Whether lookups read the main file alone (its -wal file is gone); for tests and logs.
    public var readsMainFileOnly: Bool { database.readsMainFileOnly }

    /// The active public key as hex, or nil.
    public func publicKeyHex(netname: String, mechanism: DHGroupName) throws -> String? {
        try database.read { db in
            if statement == nil {
                let sql = "SELECT public_key FROM key_entry WHERE netname = ?1 AND mechanism = ?2 AND state = 'active'"
                guard sqlite3_prepare_v3(db.sqliteConnection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK else {
                    throw DirectoryError.storage(String(cString: sqlite3_errmsg(db.sqliteConnection)))
                }
            }
            defer {
                sqlite3_reset(statement)
                sqlite3_clear_bindings(statement)
            }
            let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
            sqlite3_bind_text(statement, 1, netname, -1, transient)
            sqlite3_bind_text(statement, 2, mechanism.rawValue, -1, transient)
            switch sqlite3_step(statement) {
            case SQLITE_ROW:
                guard let text = sqlite3_column_text(statement, 0) else { return nil }
                let count = Int(sqlite3_column_bytes(statement, 0))
                return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
            case SQLITE_DONE:
                return nil
            default:
                throw DirectoryError.storage(String(cString: sqlite3_errmsg(db.sqliteConnection)))
            }
        }
    }

    /// The active public key, validated for its group.
    public func publicKey(netname: String, mechanism: DHGroupName) throws -> DHPublicKey? {
        try publicKeyHex(netname: netname, mechanism: mechanism).map { try DHPublicKey(group: mechanism, hex: $0) }
    }
}
