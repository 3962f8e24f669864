// The directory's rules below keyadmin: read-only connections that read the main file alone
// and still follow every writer, password tags and what they show, which password opens
// which key at login, the v1 → v2 schema migration, and no database made where none was
// asked for. Import's merge rules, shared by every store, are in StoreContract.

import Foundation
import GRDB
@testable import KeyCrypto
import XCTest
@testable import KeyDirectory

final class DirectoryRulesTests: XCTestCase {
    private var directory: URL!
    private var path: String { directory.appendingPathComponent("keys.db").path }

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func password(_ text: String) -> SecretBytes { SecretBytes(copying: Array(text.utf8)) }

    private func user(_ uid: UInt32, salt: Data? = nil) -> Principal {
        Principal(netname: "unix.\(uid)@example.org", kind: .user, name: "\(uid)", uid: uid, passwordSalt: salt)
    }

    /// Checkpoints, closes every connection and deletes -wal/-shm, as the sqlite3 shell does.
    private func closeAsTheShellDoes(_ store: inout SQLiteKeyDirectory?) throws {
        try store!.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        store = nil
        for suffix in ["-wal", "-shm"] { try FileManager.default.removeItem(atPath: path + suffix) }
    }

    func testMainFileOnlyLookupsFollowEveryWriter() throws {
        var store: SQLiteKeyDirectory? = try SQLiteKeyDirectory(path: path)
        let keys = (1...3).map { _ in DHPrivateKey.generate(group: .dh192des) }
        for (index, key) in keys.enumerated() {
            try store!.add(user(UInt32(index + 1)), keys: [try KeyEntry.sealing(key, netname: "unix.\(index + 1)@example.org", password: password("p"))], actor: "t")
        }
        try closeAsTheShellDoes(&store)

        do {
            let lookup = try PublicKeyLookup(path: path, mainFileFirst: true)
            XCTAssertTrue(lookup.readsMainFileOnly)
            XCTAssertEqual(try lookup.publicKeyHex(netname: "unix.1@example.org", mechanism: .dh192des), keys[0].publicKey.hex)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path + "-wal"), "reading the main file wrote nothing")

            // A WAL writer: its -wal file appears, and the lookup moves to an ordinary connection.
            try SQLiteKeyDirectory(path: path).revoke(netname: "unix.1@example.org", mechanism: nil, actor: "t")
            XCTAssertNil(try lookup.publicKeyHex(netname: "unix.1@example.org", mechanism: .dh192des), "the revocation is seen")
            XCTAssertFalse(lookup.readsMainFileOnly)
        }

        // A writer that never makes a -wal file (rollback journal): the main file changes
        // under a main-file-only reader, which notices and reads again.
        var again: SQLiteKeyDirectory? = try SQLiteKeyDirectory(path: path)
        try closeAsTheShellDoes(&again)
        let second = try PublicKeyLookup(path: path, mainFileFirst: true)
        XCTAssertEqual(try second.publicKeyHex(netname: "unix.2@example.org", mechanism: .dh192des), keys[1].publicKey.hex)
        let rollback = try DatabaseQueue(path: path)
        try rollback.writeWithoutTransaction { db in
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = DELETE")
            try db.execute(sql: "UPDATE key_entry SET state = 'revoked' WHERE netname = 'unix.2@example.org'")
        }
        try rollback.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "-wal"))
        XCTAssertNil(try second.publicKeyHex(netname: "unix.2@example.org", mechanism: .dh192des), "the change in the main file is seen")
        XCTAssertEqual(try second.publicKeyHex(netname: "unix.3@example.org", mechanism: .dh192des), keys[2].publicKey.hex)
        // A read-only SQLiteKeyDirectory (keylogin's) reads the same.
        XCTAssertEqual(try SQLiteKeyDirectory(path: path, readOnly: true).keys(of: "unix.2@example.org").first?.state, .revoked)
    }

    func testNoDatabaseIsMadeUnlessAskedFor() throws {
        let missing = directory.appendingPathComponent("sub/typo.db").path
        XCTAssertThrowsError(try SQLiteKeyDirectory(path: missing, create: false)) {
            XCTAssertEqual($0 as? DirectoryError, .noDirectory(missing))
        }
        XCTAssertThrowsError(try SQLiteKeyDirectory(path: missing, readOnly: true)) {
            XCTAssertEqual($0 as? DirectoryError, .noDirectory(missing))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("sub").path))
        XCTAssertEqual(DirectoryError.noDirectory(missing).description, "no key directory at \(missing) (keyadmin init creates one)")
    }

    func testPasswordTagsShowKeysUnderDifferentPasswords() throws {
        let salt = PasswordTag.newSalt()
        let a = try PasswordSealer(password: password("a"), salt: salt, parameters: .testing)
        let b = try PasswordSealer(password: password("b"), salt: salt, parameters: .testing)
        XCTAssertTrue(try a.tag.matches(password: password("a"), salt: salt))
        XCTAssertFalse(try a.tag.matches(password: password("b"), salt: salt))
        XCTAssertFalse(try a.tag.matches(password: password("a"), salt: PasswordTag.newSalt()), "the salt is the principal's")
        let netname = "unix.9@example.org"
        let strongA = try a.seal(DHPrivateKey.generate(group: .ffdhe2048), netname: netname)
        let otherA = try a.seal(DHPrivateKey.generate(group: .ffdhe3072), netname: netname)
        let strongB = try b.seal(DHPrivateKey.generate(group: .ffdhe3072), netname: netname)
        let legacyA = try a.seal(DHPrivateKey.generate(group: .dh192des), netname: netname)
        let legacyB = try b.seal(DHPrivateKey.generate(group: .dh192des), netname: netname)
        var untagged = strongB
        untagged.passwordTag = nil

        XCTAssertEqual(PasswordFinding.check([strongA, otherA]), [])
        XCTAssertEqual(PasswordFinding.check([strongA, strongB]), [.strongKeysDiffer([[.ffdhe2048], [.ffdhe3072]])])
        XCTAssertEqual(PasswordFinding.check([strongA, legacyB]), [], "the legacy key's own password is the point")
        XCTAssertEqual(PasswordFinding.check([legacyA, strongA]), [.legacySharesPassword])
        XCTAssertEqual(PasswordFinding.check([strongA, untagged]), [.untagged([.ffdhe3072])])
        XCTAssertEqual(PasswordFinding.check([strongA]), [])
        XCTAssertTrue(PasswordFinding.strongKeysDiffer([[.ffdhe2048], [.ffdhe3072]]).isProblem)
        XCTAssertFalse(PasswordFinding.legacySharesPassword.isProblem)
        // Every key still opens with its own password; the tag never equals a blob's check.
        XCTAssertNoThrow(try strongB.open(password: password("b")))
        XCTAssertFalse(try SealedSecretKey.passwordVerifier(password: password("a"), salt: Array(salt), parameters: .testing).isEmpty)
    }

    func testLoginOpensTheLegacyKeyWithItsOwnPassword() throws {
        let netname = "unix.9@example.org"
        let strong = try KeyEntry.sealing(DHPrivateKey.generate(group: .ffdhe2048), netname: netname, password: password("strong"), parameters: .testing)
        let legacy = try KeyEntry.sealing(DHPrivateKey.generate(group: .dh192des), netname: netname, password: password("legacy"))
        var asked = 0
        let both = try LoginKeys.open([legacy, strong], password: password("strong")) { asked += 1; return self.password("legacy") }
        XCTAssertEqual(both.keys.map(\.group), [.ffdhe2048, .dh192des])
        XCTAssertEqual(asked, 1)
        XCTAssertEqual(both.notes, [])
        let skipped = try LoginKeys.open([legacy, strong], password: password("strong")) { nil }
        XCTAssertEqual(skipped.keys.map(\.group), [.ffdhe2048])
        XCTAssertEqual(skipped.notes.count, 1)
        let wrongLegacy = try LoginKeys.open([legacy, strong], password: password("strong")) { self.password("nope") }
        XCTAssertEqual(wrongLegacy.keys.map(\.group), [.ffdhe2048])
        XCTAssertTrue(wrongLegacy.notes[0].hasPrefix("wrong password for the dh192-des key"))
        XCTAssertThrowsError(try LoginKeys.open([legacy, strong], password: password("legacy")) { nil }) {
            XCTAssertEqual($0 as? KeyCryptoError, .wrongPassword, "the strong keys decide")
        }
        // A principal with the legacy key alone: its password is the one given.
        XCTAssertEqual(try LoginKeys.open([legacy], password: password("legacy")) { XCTFail("not asked"); return nil }.keys.count, 1)
        XCTAssertThrowsError(try LoginKeys.open([legacy], password: password("strong")) { nil })
    }

    func testVersionOneDatabasesAreReadAndMigrated() throws {
        let pool = try DatabasePool(path: path)
        try SQLiteKeyDirectory.migrator.migrate(pool, upTo: "v1")
        let key = DHPrivateKey.generate(group: .dh192des)
        let sealed = try XCrypt.encryptSecret(key, password: password("p"))
        try pool.write { db in
            try db.execute(sql: "INSERT INTO principal (netname, kind, name, uid, created_at) VALUES ('unix.7@example.org', 'user', '7', 7, 0)")
            try db.execute(sql: """
                INSERT INTO key_entry (netname, mechanism, public_key, sealed_secret, state, created_at)
                VALUES ('unix.7@example.org', 'dh192-des', ?, ?, 'active', 0)
                """, arguments: [key.publicKey.hex, Data(sealed.utf8)])
            try db.execute(sql: "INSERT INTO audit (at, actor, action) VALUES (0, 'old', 'newkey')")
        }
        try pool.close()
        // keylogin's read-only open of an old file: no new columns, no tags.
        let old = try SQLiteKeyDirectory(path: path, readOnly: true)
        XCTAssertNil(try old.keys(of: "unix.7@example.org").first?.passwordTag)
        XCTAssertNil(try old.principal("unix.7@example.org")?.passwordSalt)
        XCTAssertEqual(try old.audit(limit: 10).first?.actor, "old")
        // keyadmin migrates it.
        let migrated = try SQLiteKeyDirectory(path: path)
        try migrated.revoke(netname: "unix.7@example.org", mechanism: nil, actor: AuditActor(name: "root (uid 0)", sudoUser: "alice", loginUID: 1000))
        let event = try XCTUnwrap(migrated.audit(limit: 1).first)
        XCTAssertEqual(event.sudoUser, "alice")
        XCTAssertEqual(event.loginUID, 1000)
        XCTAssertEqual(try migrated.keys(of: "unix.7@example.org").first?.publicKey, key.publicKey.hex)
    }
}
