// What the directory store gives keydird: roles (granted, listed, taken back, gone with
// their principal, audited), service principals, and the change feed — the audit trail read
// as "what changed after serial N", paged, naming every principal a change touched.

import Foundation
@testable import KeyCrypto
@testable import KeyDirectory
import XCTest

final class SiteStoreTests: XCTestCase {
    private var directory: URL!
    private var store: SQLiteKeyDirectory!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitestore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try SQLiteKeyDirectory(path: directory.appendingPathComponent("keys.db").path)
    }

    override func tearDownWithError() throws {
        store = nil
        try? FileManager.default.removeItem(at: directory)
    }

    private func add(_ netname: String) throws {
        let (kind, name, uid) = Netname.classify(netname)
        let key = DHPrivateKey.generate(group: .ffdhe2048)
        let entry = KeyEntry(netname: netname, mechanism: .ffdhe2048, publicKey: key.publicKey.hex, sealedSecret: [1, 2, 3])
        try store.add(Principal(netname: netname, kind: kind, name: name, uid: uid), keys: [entry], actor: "test")
    }

    func testRoles() throws {
        try add("unix.1001@example.org")
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
        try add("unix.1001@example.org")
        XCTAssertEqual(try store.roles(of: "unix.1001@example.org"), [])
    }

    func testServicePrincipals() throws {
        let netname = Netname.service("nfs", host: "fs1", domain: "example.org")
        XCTAssertEqual(netname, "unix.nfs/fs1@example.org")
        XCTAssertEqual(Netname.classify(netname).kind, .service)
        try add(netname)
        XCTAssertEqual(try store.principal(netname)?.kind, .service)
    }

    func testChangeFeed() throws {
        let start = try store.changes(since: 0, limit: 100).serial
        try add("unix.1@example.org")
        try add("unix.2@example.org")
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
}
