// The rules every KeyDirectoryStore keeps, written once and run against each backend (see
// StoreContractTests.swift): export/import round trips, all-or-nothing changes, the
// append-only audit, import's merge rules, roles, service principals and the change feed.
// The bodies came from KeyDirectoryTests, DirectoryRulesTests and SiteStoreTests, where they
// ran on SQLite alone.

import Foundation
@testable import KeyCrypto
@testable import KeyDirectory
import XCTest

/// A backend under test: fresh stores, and SQL sent past the store (for the audit trigger).
protocol StoreBackend {
    func makeStore() throws -> any KeyDirectoryStore
    /// Runs `sql` on `store`'s database through another way in than the store's methods.
    func execute(_ sql: String, on store: any KeyDirectoryStore) throws
}

struct StoreContract {
    let backend: any StoreBackend

    private func password(_ text: String) -> SecretBytes { SecretBytes(copying: Array(text.utf8)) }

    private func user(_ uid: UInt32, salt: Data? = nil) -> Principal {
        Principal(netname: "unix.\(uid)@example.org", kind: .user, name: "\(uid)", uid: uid, passwordSalt: salt)
    }

    private func add(_ netname: String, to store: any KeyDirectoryStore) throws {
        try Self.add(netname, to: store)
    }

    private static func add(_ netname: String, to store: any KeyDirectoryStore) throws {
        let (kind, name, uid) = Netname.classify(netname)
        let key = DHPrivateKey.generate(group: .ffdhe2048)
        let entry = KeyEntry(netname: netname, mechanism: .ffdhe2048, publicKey: key.publicKey.hex, sealedSecret: [1, 2, 3])
        try store.add(Principal(netname: netname, kind: kind, name: name, uid: uid), keys: [entry], actor: "test")
    }

    func newkeyExportImportExportRoundTrip() throws {
        let first = try backend.makeStore()
        var legacy: [String: String] = [:]
        for (index, principal) in [
            Principal(netname: "unix.1001@example.org", kind: .user, name: "alice", uid: 1001),
            Principal(netname: "unix.1002@example.org", kind: .user, name: "bob", uid: 1002),
            Principal(netname: "unix.fs1@example.org", kind: .host, name: "fs1", uid: nil),
        ].enumerated() {
            let pw = "password-\(index)"
            let keys = try [DHGroupName.dh192des, .ffdhe2048].map {
                try KeyEntry.sealing(DHPrivateKey.generate(group: $0), netname: principal.netname, password: password(pw), parameters: .testing)
            }
            try first.add(principal, keys: keys, actor: "test")
            legacy[principal.netname] = pw
        }
        let exported = PublicKeyFile.render(try first.allEntries())
        XCTAssertEqual(exported.split(separator: "\n").count, 3)

        let second = try backend.makeStore()
        XCTAssertEqual(try second.importEntries(try PublicKeyFile.parse(exported), actor: "test", source: "round trip", progress: nil).added, 3)
        let again = PublicKeyFile.render(try second.allEntries())
        XCTAssertEqual(again, exported, "export → import → export is identical")

        // The legacy secrets open under their passwords, and public = 3^secret mod p.
        let p = DHGroup.named(.dh192des).prime()
        for line in again.split(separator: "\n") {
            let entry = try PublicKeyEntry(line: String(line))
            let key = try XCrypt.decryptSecret(entry.encryptedSecret, password: password(legacy[entry.netname]!))
            let x = key.secret.withUnsafeBytes { BigNum(bytes: $0) }
            XCTAssertEqual(BigNum.powPublic(BigNum(3), x, p).bytes(width: 24), entry.publicKey.bytes)
            XCTAssertEqual(key.publicKey, entry.publicKey)
        }
        // The strong keys open too, and the hot-path lookup answers.
        let strong = try first.keys(of: "unix.1001@example.org").first { $0.mechanism == .ffdhe2048 }!
        XCTAssertEqual(try strong.open(password: password("password-0")).publicKey.hex, strong.publicKey)
        XCTAssertThrowsError(try strong.open(password: password("nope")))
        XCTAssertEqual(try first.publicKey(netname: "unix.1001@example.org", mechanism: .ffdhe2048)?.hex, strong.publicKey)
        XCTAssertNil(try first.publicKey(netname: "unix.1001@example.org", mechanism: .ffdhe4096))

        // JSON round trip keeps every mechanism, every time and every byte.
        let json = try DirectoryDocument.encoder().encode(DirectoryDocument(try first.allEntries()))
        let third = try backend.makeStore()
        _ = try third.importEntries(try DirectoryDocument.parse(json), actor: "test", source: "json", progress: nil)
        XCTAssertEqual(try DirectoryDocument.encoder().encode(DirectoryDocument(try third.allEntries())), json)
    }

    func auditIsAppendOnlyAndStateChanges() throws {
        let db = try backend.makeStore()
        let key = try KeyEntry.sealing(DHPrivateKey.generate(group: .ffdhe2048), netname: "unix.9@example.org", password: password("x"), parameters: .testing)
        try db.add(Principal(netname: "unix.9@example.org", kind: .user, name: "9", uid: 9), keys: [key], actor: "t")
        XCTAssertThrowsError(try db.add(Principal(netname: "unix.9@example.org", kind: .user, name: "9", uid: 9), keys: [], actor: "t")) {
            XCTAssertEqual($0 as? DirectoryError, .principalExists("unix.9@example.org"))
        }
        XCTAssertThrowsError(try db.put(key, replacing: false, actor: "t", action: "addkey")) {
            XCTAssertEqual($0 as? DirectoryError, .keyExists("unix.9@example.org", .ffdhe2048))
        }
        try db.revoke(netname: "unix.9@example.org", mechanism: .ffdhe2048, actor: "t")
        XCTAssertNil(try db.publicKey(netname: "unix.9@example.org", mechanism: .ffdhe2048), "revoked keys are not served")
        XCTAssertThrowsError(try db.revoke(netname: "unix.9@example.org", mechanism: .ffdhe3072, actor: "t")) {
            XCTAssertEqual($0 as? DirectoryError, .noSuchKey("unix.9@example.org", .ffdhe3072))
        }
        try db.enable(netname: "unix.9@example.org", mechanism: nil, actor: "t")
        XCTAssertEqual(try db.publicKeyHex(netname: "unix.9@example.org", mechanism: .ffdhe2048), key.publicKey)
        try db.remove(netname: "unix.9@example.org", actor: "t")
        XCTAssertEqual(try db.keys(of: "unix.9@example.org"), [], "keys go with their principal")
        XCTAssertThrowsError(try db.remove(netname: "unix.9@example.org", actor: "t")) {
            XCTAssertEqual($0 as? DirectoryError, .noSuchPrincipal("unix.9@example.org"))
        }
        XCTAssertEqual(try db.audit(limit: 10).map(\.action), ["remove", "enable", "revoke", "newkey"])
        XCTAssertEqual(try db.audit(limit: 10).first?.mechanism, "ffdhe2048", "remove names the keys that went")
        // Not even SQL past the store can edit history.
        XCTAssertThrowsError(try backend.execute("DELETE FROM audit", on: db))
        XCTAssertThrowsError(try backend.execute("UPDATE audit SET actor = 'mallory'", on: db))
        XCTAssertEqual(try db.audit(limit: 10).map(\.actor), ["t", "t", "t", "t"])
        XCTAssertThrowsError(try Netname.validate("bob@example.org"))
        XCTAssertThrowsError(try db.add(Principal(netname: "unix.a b@example.org", kind: .user, name: "a b", uid: nil), keys: [], actor: "t"))
        XCTAssertNil(try db.publicKeyHex(netname: "x'; DROP TABLE key_entry; --", mechanism: .dh192des))
    }

    /// A change that fails half-way leaves nothing behind: not the first key, not an audit row.
    func changesAreAllOrNothing() throws {
        let db = try backend.makeStore()
        let netname = "unix.4@example.org"
        let first = try KeyEntry.sealing(DHPrivateKey.generate(group: .ffdhe2048), netname: netname, password: password("x"), parameters: .testing)
        try db.add(user(4), keys: [first], actor: "t")
        let auditBefore = try db.audit(limit: 100)
        let added = KeyEntry(netname: netname, mechanism: .ffdhe3072, publicKey: DHPrivateKey.generate(group: .ffdhe3072).publicKey.hex, sealedSecret: [9])
        let clash = KeyEntry(netname: netname, mechanism: .ffdhe2048, publicKey: first.publicKey, sealedSecret: [9])
        XCTAssertThrowsError(try db.apply([KeyChange(added, .add, action: "addkey"), KeyChange(clash, .add, action: "addkey")],
                                          to: netname, passwordSalt: Data([1, 2]), actor: "t")) {
            XCTAssertEqual($0 as? DirectoryError, .keyExists(netname, .ffdhe2048))
        }
        XCTAssertEqual(try db.keys(of: netname).map(\.mechanism), [.ffdhe2048])
        XCTAssertNil(try db.principal(netname)?.passwordSalt, "the salt went back too")
        XCTAssertEqual(try db.audit(limit: 100), auditBefore)

        // An import whose last entry cannot be stored (a key for a principal that is not
        // there) adds none of the entries before it.
        let fine = (10..<20).map { uid in
            (user(UInt32(uid)), [KeyEntry(netname: "unix.\(uid)@example.org", mechanism: .ffdhe2048,
                                          publicKey: DHPrivateKey.generate(group: .ffdhe2048).publicKey.hex, sealedSecret: [1])])
        }
        let broken = (user(20), [KeyEntry(netname: "unix.21@example.org", mechanism: .ffdhe2048, publicKey: first.publicKey, sealedSecret: [1])])
        XCTAssertThrowsError(try db.importEntries(fine + [broken], actor: "t", source: "broken", progress: nil))
        XCTAssertEqual(try db.allEntries().map(\.0.netname), [netname])
        XCTAssertEqual(try db.audit(limit: 100), auditBefore)
        // And the store still works after the failed transactions.
        XCTAssertEqual(try db.importEntries(fine, actor: "t", source: "fine", progress: nil).added, 10)
    }

    /// An import larger than one batch (the PostgreSQL store sends new principals 500 to a
    /// statement), naming a principal that exists and one principal twice: the same report,
    /// keys and audit on every backend as a row-by-row import gives.
    func largeImportWithExistingAndRepeatedPrincipals() throws {
        let store = try backend.makeStore()
        func key(_ uid: UInt32, _ group: DHGroupName = .ffdhe2048, at: Date = Date()) throws -> KeyEntry {
            var bytes = (0..<(group == .ffdhe2048 ? 256 : 384)).map { _ in UInt8.random(in: 0...255) }
            bytes[0] = 0x40
            var made = KeyEntry(netname: "unix.\(uid)@example.org", mechanism: group, publicKey: try DHPublicKey(group: group, bytes: bytes).hex,
                                sealedSecret: [1])
            made.createdAt = at
            return made
        }
        let here = try key(7)
        try store.add(user(7), keys: [here], actor: "t")
        var file: [(Principal, [KeyEntry])] = []
        for uid in UInt32(1000)..<1700 { file.append((user(uid), [try key(uid)])) }
        file.insert((user(7), [try key(7, at: Date(timeIntervalSinceNow: -60))]), at: 300)      // exists, older key: kept
        file.insert((user(1200), [try key(1200, .ffdhe3072)]), at: 650)                        // again: it exists by then
        let report = try store.importEntries(file, actor: "t", source: "big", replace: false, progress: nil)
        XCTAssertEqual(report.added, 700)
        // Without --replace a principal that exists is kept as it is, also when the file made it.
        XCTAssertEqual(report.keptAsTheyWere.map(\.netname), ["unix.7@example.org", "unix.1200@example.org"])
        XCTAssertEqual(try store.keys(of: "unix.7@example.org").map(\.publicKey), [here.publicKey])
        XCTAssertEqual(try store.keys(of: "unix.1200@example.org").map(\.mechanism), [.ffdhe2048])
        XCTAssertNotNil(try store.publicKey(netname: "unix.1699@example.org", mechanism: .ffdhe2048))
        let audited = try store.audit(limit: 2000).filter { $0.action == "import" && $0.netname != nil }
        XCTAssertEqual(audited.count, 700, "one row per principal added")
    }

    func importNeverResurrectsAndAuditsEachPrincipal() throws {
        let store = try backend.makeStore()
        let old = Date(timeIntervalSinceNow: -3600)
        func entry(_ uid: UInt32, _ key: DHPrivateKey, state: KeyState = .active, at: Date = Date()) throws -> KeyEntry {
            var made = try KeyEntry.sealing(key, netname: "unix.\(uid)@example.org", password: password("p"), parameters: .testing)
            made.state = state
            made.createdAt = at
            return made
        }
        let (k1, k2, k3) = (DHPrivateKey.generate(group: .ffdhe2048), DHPrivateKey.generate(group: .ffdhe2048), DHPrivateKey.generate(group: .ffdhe2048))
        try store.add(user(1), keys: [try entry(1, k1)], actor: "t")
        try store.add(user(2), keys: [try entry(2, k2)], actor: "t")
        try store.revoke(netname: "unix.1@example.org", mechanism: nil, actor: "t")

        let newer1 = DHPrivateKey.generate(group: .ffdhe2048)
        let file: [(Principal, [KeyEntry])] = [
            (user(1), [try entry(1, newer1)]),                      // a new key for a revoked one
            (user(2), [try entry(2, DHPrivateKey.generate(group: .ffdhe2048), at: old)]),  // older than the one here
            (user(3), [try entry(3, k3)]),                          // new principal
        ]
        let plain = try store.importEntries(file, actor: "t", source: "f", progress: nil)
        XCTAssertEqual(plain.added, 1)
        XCTAssertEqual(plain.keptAsTheyWere.map(\.netname), ["unix.1@example.org", "unix.2@example.org"])
        XCTAssertEqual(try store.keys(of: "unix.1@example.org").first?.publicKey, k1.publicKey.hex)

        let replaced = try store.importEntries(file, actor: "t", source: "f", replace: true, progress: nil)
        XCTAssertEqual(replaced.unchanged, 1, "principal 3 is as imported")
        XCTAssertEqual(replaced.stillRevoked, ["unix.1@example.org ffdhe2048"])
        XCTAssertEqual(replaced.keptAsTheyWere.map(\.reason), ["has an older ffdhe2048 key than the one here"])
        let one = try XCTUnwrap(store.keys(of: "unix.1@example.org").first)
        XCTAssertEqual(one.publicKey, newer1.publicKey.hex, "replaced")
        XCTAssertEqual(one.state, .revoked, "and still revoked")
        XCTAssertEqual(try store.keys(of: "unix.2@example.org").first?.publicKey, k2.publicKey.hex)
        XCTAssertNil(try store.publicKey(netname: "unix.1@example.org", mechanism: .ffdhe2048))

        // A revocation in the file is taken (with --replace); an activation never is.
        let revoking: [(Principal, [KeyEntry])] = [(user(3), [try entry(3, k3, state: .revoked)])]
        XCTAssertEqual(try store.importEntries(revoking, actor: "t", source: "g", replace: true, progress: nil).replaced, 1)
        XCTAssertEqual(try store.keys(of: "unix.3@example.org").first?.state, .revoked)

        let rows = try store.audit(limit: 100).filter { $0.action == "import" }
        XCTAssertEqual(rows.filter { $0.netname == nil }.count, 3, "a summary per import")
        XCTAssertEqual(rows.compactMap(\.netname).sorted(), ["unix.1@example.org", "unix.3@example.org", "unix.3@example.org"])
    }

    func auditRecordsWhoInvoked() throws {
        let store = try backend.makeStore()
        try add("unix.7@example.org", to: store)
        try store.revoke(netname: "unix.7@example.org", mechanism: nil, actor: AuditActor(name: "root (uid 0)", sudoUser: "alice", loginUID: 1000))
        let event = try XCTUnwrap(store.audit(limit: 1).first)
        XCTAssertEqual(event.sudoUser, "alice")
        XCTAssertEqual(event.loginUID, 1000)
        XCTAssertEqual(event.actor, "root (uid 0)")
        XCTAssertEqual(try store.audit(limit: 10, netname: "unix.8@example.org"), [])
    }

    // MARK: the site (was SiteStoreTests)

    func roles() throws {
        let store = try backend.makeStore()
        try add("unix.1001@example.org", to: store)
        XCTAssertEqual(try store.roles(of: "unix.1001@example.org"), [])
        try store.grant(.admin, to: "unix.1001@example.org", actor: "test")
        try store.grant(.admin, to: "unix.1001@example.org", actor: "test")   // again: nothing changes, nothing audited
        XCTAssertEqual(try store.roles(of: "unix.1001@example.org"), [.admin])
        XCTAssertEqual(try store.audit(limit: 10, netname: "unix.1001@example.org").filter { $0.action == "grant" }.count, 1)
        XCTAssertThrowsError(try store.grant(.host, to: "unix.nobody@example.org", actor: "test")) { error in
            XCTAssertEqual(error as? DirectoryError, .noSuchPrincipal("unix.nobody@example.org"))
        }
        XCTAssertThrowsError(try store.revokeRole(.host, from: "unix.1001@example.org", actor: "test")) { error in
            XCTAssertEqual("\(error)", "unix.1001@example.org does not hold the host role")
        }
        try store.revokeRole(.admin, from: "unix.1001@example.org", actor: "test")
        XCTAssertEqual(try store.roles(of: "unix.1001@example.org"), [])
        // Roles go with their principal.
        try store.grant(.admin, to: "unix.1001@example.org", actor: "test")
        try store.remove(netname: "unix.1001@example.org", actor: "test")
        try add("unix.1001@example.org", to: store)
        XCTAssertEqual(try store.roles(of: "unix.1001@example.org"), [])
    }

    func servicePrincipals() throws {
        let store = try backend.makeStore()
        let netname = Netname.service("nfs", host: "fs1", domain: "example.org")
        XCTAssertEqual(netname, "unix.nfs/fs1@example.org")
        XCTAssertEqual(Netname.classify(netname).kind, .service)
        try add(netname, to: store)
        XCTAssertEqual(try store.principal(netname)?.kind, .service)
    }

    func changeFeed() throws {
        let store = try backend.makeStore()
        let start = try store.changes(since: 0, limit: 100).serial
        try add("unix.1@example.org", to: store)
        try add("unix.2@example.org", to: store)
        try store.revoke(netname: "unix.1@example.org", mechanism: .ffdhe2048, actor: "test")
        let all = try store.changes(since: start, limit: 100)
        XCTAssertEqual(all.changes.map(\.netname), ["unix.1@example.org", "unix.2@example.org", "unix.1@example.org"])
        XCTAssertEqual(all.changes.last?.mechanism, "ffdhe2048")
        XCTAssertEqual(all.serial, all.changes.last?.serial)
        // Paged: a full page ends at its last row, and the next page follows on.
        let first = try store.changes(since: start, limit: 2)
        XCTAssertEqual(first.changes.count, 2)
        let rest = try store.changes(since: first.serial, limit: 2)
        XCTAssertEqual(rest.changes.map(\.netname), ["unix.1@example.org"])
        // Nothing new: the serial stays, no rows.
        let none = try store.changes(since: all.serial, limit: 100)
        XCTAssertEqual(none, DirectoryChanges(serial: all.serial, changes: []))
        // An import names each principal it changed.
        let imported = (3...5).map { uid -> (Principal, [KeyEntry]) in
            let key = DHPrivateKey.generate(group: .ffdhe2048)
            return (Principal(netname: "unix.\(uid)@example.org", kind: .user, name: "\(uid)", uid: UInt32(uid)),
                    [KeyEntry(netname: "unix.\(uid)@example.org", mechanism: .ffdhe2048, publicKey: key.publicKey.hex, sealedSecret: [1])])
        }
        _ = try store.importEntries(imported, actor: "test", source: "test", progress: nil)
        XCTAssertEqual(Set(try store.changes(since: all.serial, limit: 100).changes.map(\.netname)),
                       ["unix.3@example.org", "unix.4@example.org", "unix.5@example.org"])
    }

    /// Writers on several threads at once (keydird's pool) lose nothing, and the change feed
    /// read afterwards names every change once, in serial order.
    func concurrentWritersLoseNothing() throws {
        let store = try backend.makeStore()
        let threads = 4, perThread = 25
        let failures = NSLock(), errors = ErrorList()
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for i in 0..<perThread {
                do {
                    try Self.add("unix.\(thread * 1000 + i)@example.org", to: store)
                } catch {
                    failures.lock(); errors.items.append("\(error)"); failures.unlock()
                }
            }
        }
        XCTAssertEqual(errors.items, [])
        XCTAssertEqual(try store.allEntries().count, threads * perThread)
        let feed = try store.changes(since: 0, limit: 1000)
        XCTAssertEqual(feed.changes.count, threads * perThread)
        XCTAssertEqual(feed.changes.map(\.serial), feed.changes.map(\.serial).sorted())
        XCTAssertEqual(Set(feed.changes.map(\.netname)).count, threads * perThread)
    }
}

private final class ErrorList: @unchecked Sendable {
    var items: [String] = []
}
