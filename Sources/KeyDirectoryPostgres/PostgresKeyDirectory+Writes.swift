// The PostgreSQL store's writes. Each public method is one transaction under the writers'
// lock and follows SQLiteKeyDirectory rule for rule: all or nothing, one audit row per
// principal changed, imports that never replace without `replace`, never bring back a
// revoked key and never take an older key over a newer one.

import Foundation
import KeyCrypto
import KeyDirectory
import Logging
import PostgresNIO

extension PostgresKeyDirectory {
    public func add(_ principal: Principal, keys: [KeyEntry], actor: AuditActor) throws {
        try Netname.validate(principal.netname)
        let logger = self.logger
        try write { db in
            if try await Self.exists(db, principal.netname, logger: logger) { throw DirectoryError.principalExists(principal.netname) }
            try await Self.insert(db, principal, logger: logger)
            for key in keys { try await Self.upsert(db, key, logger: logger) }
            try await Self.log(db, actor: actor, action: "newkey", netname: principal.netname,
                               mechanism: keys.map(\.mechanism.rawValue).joined(separator: ","), detail: principal.kind.rawValue, logger: logger)
        }
    }

    public func apply(_ changes: [KeyChange], to netname: String, passwordSalt: Data?, actor: AuditActor) throws {
        let logger = self.logger
        try write { db in
            guard let current = try await Self.principal(db, netname, logger: logger) else { throw DirectoryError.noSuchPrincipal(netname) }
            if let passwordSalt, passwordSalt != current.passwordSalt {
                try await db.query("UPDATE principal SET password_salt = \(passwordSalt) WHERE netname = \(netname)", logger: logger)
            }
            let existing = try await Self.keys(db, of: netname, logger: logger)
            for change in changes {
                let key = change.entry
                guard key.netname == netname else { throw DirectoryError.inconsistent(key.netname, "a change for another principal") }
                let present = existing.first { $0.mechanism == key.mechanism }
                switch change.kind {
                case .add:
                    if present != nil { throw DirectoryError.keyExists(netname, key.mechanism) }
                    try await Self.upsert(db, key, logger: logger)
                case .replace:
                    guard let present else { throw DirectoryError.noSuchKey(netname, key.mechanism) }
                    // A new password or key pair keeps the key's state: only `enable` revives.
                    var replaced = key
                    replaced.state = present.state
                    try await Self.upsert(db, replaced, logger: logger)
                case .retag:
                    guard let present, present.publicKey == key.publicKey, present.sealedSecret == key.sealedSecret else {
                        throw DirectoryError.inconsistent(netname, "\(key.mechanism.rawValue) changed while being checked; nothing was changed")
                    }
                    let tag = key.passwordTag.map { Data($0) }
                    try await db.query("""
                        UPDATE key_entry SET password_tag = \(tag) WHERE netname = \(netname) AND mechanism = \(key.mechanism.rawValue)
                        """, logger: logger)
                }
                if let action = change.action {
                    try await Self.log(db, actor: actor, action: action, netname: netname, mechanism: key.mechanism.rawValue,
                                       detail: change.detail, logger: logger)
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
        let logger = self.logger
        try write { db in
            guard try await Self.exists(db, netname, logger: logger) else { throw DirectoryError.noSuchPrincipal(netname) }
            if let mechanism {
                let changed = try await Self.count(db.query("""
                    UPDATE key_entry SET state = \(state.rawValue) WHERE netname = \(netname) AND mechanism = \(mechanism.rawValue) RETURNING 1
                    """, logger: logger))
                if changed == 0 { throw DirectoryError.noSuchKey(netname, mechanism) }
            } else {
                try await db.query("UPDATE key_entry SET state = \(state.rawValue) WHERE netname = \(netname)", logger: logger)
            }
            try await Self.log(db, actor: actor, action: action, netname: netname, mechanism: mechanism?.rawValue, detail: nil, logger: logger)
        }
    }

    public func remove(netname: String, actor: AuditActor) throws {
        let logger = self.logger
        try write { db in
            var mechanisms: [String] = []
            for try await mechanism in try await db.query(
                "SELECT mechanism FROM key_entry WHERE netname = \(netname) ORDER BY mechanism", logger: logger).decode(String.self) {
                mechanisms.append(mechanism)
            }
            let removed = try await Self.count(db.query("DELETE FROM principal WHERE netname = \(netname) RETURNING 1", logger: logger))
            if removed == 0 { throw DirectoryError.noSuchPrincipal(netname) }
            try await Self.log(db, actor: actor, action: "remove", netname: netname, mechanism: mechanisms.joined(separator: ","), detail: nil, logger: logger)
        }
    }

    public func grant(_ role: PrincipalRole, to netname: String, actor: AuditActor) throws {
        let logger = self.logger
        try write { db in
            guard try await Self.exists(db, netname, logger: logger) else { throw DirectoryError.noSuchPrincipal(netname) }
            let now = Date().timeIntervalSince1970
            let added = try await Self.count(db.query("""
                INSERT INTO role (netname, role, granted_at) VALUES (\(netname), \(role.rawValue), \(now)) ON CONFLICT DO NOTHING RETURNING 1
                """, logger: logger))
            if added > 0 {
                try await Self.log(db, actor: actor, action: "grant", netname: netname, mechanism: nil, detail: role.rawValue, logger: logger)
            }
        }
    }

    public func revokeRole(_ role: PrincipalRole, from netname: String, actor: AuditActor) throws {
        let logger = self.logger
        try write { db in
            guard try await Self.exists(db, netname, logger: logger) else { throw DirectoryError.noSuchPrincipal(netname) }
            let removed = try await Self.count(db.query("DELETE FROM role WHERE netname = \(netname) AND role = \(role.rawValue) RETURNING 1", logger: logger))
            if removed == 0 { throw DirectoryError.noSuchRole(netname, role) }
            try await Self.log(db, actor: actor, action: "revoke-role", netname: netname, mechanism: nil, detail: role.rawValue, logger: logger)
        }
    }

    // MARK: helpers

    static func count(_ rows: PostgresRowSequence) async throws -> Int {
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    static func exists(_ db: PostgresConnection, _ netname: String, logger: Logger) async throws -> Bool {
        try await count(db.query("SELECT 1 FROM principal WHERE netname = \(netname)", logger: logger)) > 0
    }

    static func insert(_ db: PostgresConnection, _ p: Principal, logger: Logger) async throws {
        let uid = p.uid.map { Int64($0) }, createdAt = p.createdAt.timeIntervalSince1970
        try await db.query("""
            INSERT INTO principal (netname, kind, name, uid, created_at, password_salt)
            VALUES (\(p.netname), \(p.kind.rawValue), \(p.name), \(uid), \(createdAt), \(p.passwordSalt))
            """, logger: logger)
    }

    /// Inserts a principal unless it exists; true when it was new.
    static func insertIfNew(_ db: PostgresConnection, _ p: Principal, logger: Logger) async throws -> Bool {
        let uid = p.uid.map { Int64($0) }, createdAt = p.createdAt.timeIntervalSince1970
        return try await count(db.query("""
            INSERT INTO principal (netname, kind, name, uid, created_at, password_salt)
            VALUES (\(p.netname), \(p.kind.rawValue), \(p.name), \(uid), \(createdAt), \(p.passwordSalt))
            ON CONFLICT (netname) DO NOTHING RETURNING 1
            """, logger: logger)) == 1
    }

    static func insertKey(_ db: PostgresConnection, _ k: KeyEntry, logger: Logger) async throws {
        let (sealed, createdAt, rotatedAt, tag) = columns(k)
        try await db.query("""
            INSERT INTO key_entry (netname, mechanism, public_key, sealed_secret, state, created_at, rotated_at, password_tag)
            VALUES (\(k.netname), \(k.mechanism.rawValue), \(k.publicKey), \(sealed), \(k.state.rawValue), \(createdAt), \(rotatedAt), \(tag))
            """, logger: logger)
    }

    static func upsert(_ db: PostgresConnection, _ k: KeyEntry, logger: Logger) async throws {
        let (sealed, createdAt, rotatedAt, tag) = columns(k)
        try await db.query("""
            INSERT INTO key_entry (netname, mechanism, public_key, sealed_secret, state, created_at, rotated_at, password_tag)
            VALUES (\(k.netname), \(k.mechanism.rawValue), \(k.publicKey), \(sealed), \(k.state.rawValue), \(createdAt), \(rotatedAt), \(tag))
            ON CONFLICT (netname, mechanism) DO UPDATE SET public_key = excluded.public_key,
                sealed_secret = excluded.sealed_secret, state = excluded.state, rotated_at = excluded.rotated_at,
                password_tag = excluded.password_tag
            """, logger: logger)
    }

    private static func columns(_ k: KeyEntry) -> (Data, Double, Double?, Data?) {
        (Data(k.sealedSecret), k.createdAt.timeIntervalSince1970, k.rotatedAt?.timeIntervalSince1970, k.passwordTag.map { Data($0) })
    }

    static func log(_ db: PostgresConnection, actor: AuditActor, action: String, netname: String?, mechanism: String?,
                    detail: String?, logger: Logger) async throws {
        let at = Date().timeIntervalSince1970, loginUID = actor.loginUID.map { Int64($0) }
        try await db.query("""
            INSERT INTO audit (at, actor, action, netname, mechanism, detail, sudo_user, login_uid)
            VALUES (\(at), \(actor.name), \(action), \(netname), \(mechanism), \(detail), \(actor.sudoUser), \(loginUID))
            """, logger: logger)
    }
}
