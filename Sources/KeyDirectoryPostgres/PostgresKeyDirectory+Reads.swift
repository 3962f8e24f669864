// The PostgreSQL store's reads: lookups, listings, the audit and the change feed, with the
// same answers as SQLite's for the same rows.

import Foundation
import KeyCrypto
import KeyDirectory
import Logging
import PostgresNIO

extension PostgresKeyDirectory {
    static let principalColumns = "netname, kind, name, uid, created_at, password_salt"
    static let keyColumns = "netname, mechanism, public_key, sealed_secret, state, created_at, rotated_at, password_tag"

    public func publicKey(netname: String, mechanism: DHGroupName) throws -> DHPublicKey? {
        try publicKeyHex(netname: netname, mechanism: mechanism).map { try DHPublicKey(group: mechanism, hex: $0) }
    }

    public func publicKeyHex(netname: String, mechanism: DHGroupName) throws -> String? {
        let logger = self.logger
        return try read { connection in
            try await Self.first(connection.execute(ActiveKeyStatement(netname: netname, mechanism: mechanism.rawValue), logger: logger))
        }
    }

    public func principal(_ netname: String) throws -> Principal? {
        let logger = self.logger
        return try read { try await Self.principal($0, netname, logger: logger) }
    }

    public func keys(of netname: String) throws -> [KeyEntry] {
        let logger = self.logger
        return try read { try await Self.keys($0, of: netname, logger: logger) }
    }

    public func allEntries() throws -> [(Principal, [KeyEntry])] {
        let logger = self.logger
        let (principals, keys) = try readSnapshot { connection in
            var principals: [Principal] = []
            for try await row in try await connection.query(
                PostgresQuery(unsafeSQL: "SELECT \(Self.principalColumns) FROM principal ORDER BY netname"), logger: logger) {
                principals.append(try Self.principal(row))
            }
            var keys: [String: [KeyEntry]] = [:]
            for try await row in try await connection.query(
                PostgresQuery(unsafeSQL: "SELECT \(Self.keyColumns) FROM key_entry ORDER BY netname, mechanism"), logger: logger) {
                if let key = try Self.key(row) { keys[key.netname, default: []].append(key) }
            }
            return (principals, keys)
        }
        return principals.map { ($0, keys[$0.netname] ?? []) }
    }

    /// How many principals there are.
    public func count() throws -> Int {
        let logger = self.logger
        return try read { try await Self.first($0.query("SELECT COUNT(*) FROM principal", logger: logger).decode(Int.self)) ?? 0 }
    }

    public func audit(limit: Int) throws -> [AuditEvent] {
        try audit(limit: limit, netname: nil)
    }

    public func audit(limit: Int, netname: String?) throws -> [AuditEvent] {
        let logger = self.logger, limit = max(0, limit)
        return try read { connection in
            let query: PostgresQuery = netname.map {
                "SELECT id, at, actor, action, netname, mechanism, detail, sudo_user, login_uid FROM audit WHERE netname = \($0) ORDER BY id DESC LIMIT \(limit)"
            } ?? "SELECT id, at, actor, action, netname, mechanism, detail, sudo_user, login_uid FROM audit ORDER BY id DESC LIMIT \(limit)"
            var events: [AuditEvent] = []
            let rows = try await connection.query(query, logger: logger)
                .decode((Int64, Double, String, String, String?, String?, String?, String?, Int64?).self)
            for try await (id, at, actor, action, netname, mechanism, detail, sudoUser, loginUID) in rows {
                events.append(AuditEvent(id: id, at: Date(timeIntervalSince1970: at), actor: actor, action: action, netname: netname,
                                         mechanism: mechanism, detail: detail, sudoUser: sudoUser,
                                         loginUID: loginUID.map { UInt32(truncatingIfNeeded: $0) }))
            }
            return events
        }
    }

    public func roles(of netname: String) throws -> Set<PrincipalRole> {
        let logger = self.logger
        return try read { connection in
            var roles: Set<PrincipalRole> = []
            for try await role in try await connection.query("SELECT role FROM role WHERE netname = \(netname)", logger: logger).decode(String.self) {
                if let role = PrincipalRole(rawValue: role) { roles.insert(role) }
            }
            return roles
        }
    }

    public func changes(since serial: UInt64, limit: Int) throws -> DirectoryChanges {
        let logger = self.logger, limit = max(0, limit), after = Int64(clamping: serial)
        return try readSnapshot { connection in
            var changes: [DirectoryChanges.Change] = []
            let rows = try await connection.query("""
                SELECT id, netname, mechanism FROM audit WHERE id > \(after) AND netname IS NOT NULL ORDER BY id LIMIT \(limit)
                """, logger: logger).decode((Int64, String, String?).self)
            for try await (id, netname, mechanism) in rows {
                changes.append(.init(serial: UInt64(id), netname: netname, mechanism: mechanism ?? ""))
            }
            // A full page ends at its last row (more follow); otherwise at the newest row of all.
            let newest = try await Self.first(connection.query("SELECT COALESCE(MAX(id), 0) FROM audit", logger: logger).decode(Int64.self)) ?? 0
            let through = changes.count == limit ? (changes.last?.serial ?? serial) : max(serial, UInt64(newest))
            return DirectoryChanges(serial: through, changes: changes)
        }
    }

    // MARK: rows

    static func first<S: AsyncSequence>(_ rows: S) async throws -> S.Element? {
        for try await value in rows { return value }
        return nil
    }

    static func principal(_ connection: PostgresConnection, _ netname: String, logger: Logger) async throws -> Principal? {
        for try await row in try await connection.query(
            "SELECT netname, kind, name, uid, created_at, password_salt FROM principal WHERE netname = \(netname)", logger: logger) {
            return try principal(row)
        }
        return nil
    }

    static func keys(_ connection: PostgresConnection, of netname: String, logger: Logger) async throws -> [KeyEntry] {
        var keys: [KeyEntry] = []
        for try await row in try await connection.query("""
            SELECT netname, mechanism, public_key, sealed_secret, state, created_at, rotated_at, password_tag
            FROM key_entry WHERE netname = \(netname) ORDER BY mechanism
            """, logger: logger) {
            if let key = try key(row) { keys.append(key) }
        }
        return keys
    }

    static func principal(_ row: PostgresRow) throws -> Principal {
        let (netname, kind, name, uid, createdAt, salt) = try row.decode((String, String, String, Int64?, Double, Data?).self)
        return Principal(netname: netname, kind: PrincipalKind(rawValue: kind) ?? .user, name: name,
                         uid: uid.map { UInt32(truncatingIfNeeded: $0) }, createdAt: Date(timeIntervalSince1970: createdAt), passwordSalt: salt)
    }

    /// Nil for a mechanism this program does not know (a newer program wrote it), as SQLite's.
    static func key(_ row: PostgresRow) throws -> KeyEntry? {
        let (netname, mechanism, publicKey, sealed, state, createdAt, rotatedAt, tag) =
            try row.decode((String, String, String, Data, String, Double, Double?, Data?).self)
        guard let mechanism = DHGroupName(rawValue: mechanism) else { return nil }
        return KeyEntry(netname: netname, mechanism: mechanism, publicKey: publicKey, sealedSecret: Array(sealed),
                        state: KeyState(rawValue: state) ?? .revoked, createdAt: Date(timeIntervalSince1970: createdAt),
                        rotatedAt: rotatedAt.map { Date(timeIntervalSince1970: $0) }, passwordTag: tag.map(Array.init))
    }
}
