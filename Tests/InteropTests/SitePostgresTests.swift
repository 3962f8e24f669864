// keydird on PostgreSQL, as processes: a directory made in a SQLite file is exported and
// imported into a real PostgreSQL server (the move a growing site makes), keydird serves it
// from there, and an administrator works through keydird; the change lands in PostgreSQL's
// audit with the caller's proven netname. keylogin still reads a SQLite file, so the
// principals log in from the file they were made in.

import Foundation
import PostgresSupport
import XCTest

final class SitePostgresTests: XCTestCase {
    private let bin = { Peers.productPath($0) }

    func testKeydirdServesAndAuditsFromPostgreSQL() throws {
        let postgres = try TemporaryPostgres()
        defer { postgres.stop() }
        let site = try SiteSandbox(prefix: "sitepg")
        defer { site.remove() }
        let domain = "site.example"
        // trust authentication ignores it; it is there to be kept out of every message.
        let url = postgres.url(database: try postgres.createDatabase()).replacingOccurrences(of: "dirtest@", with: "dirtest:pg-secret@")

        XCTAssertEqual(try site.run([bin("keyadmin"), "init", "--db", site.db]).status, 0)
        for who in [["--host", "dir"], ["--user", "4100"]] {
            let made = try site.run([bin("keyadmin"), "newkey", "--db", site.db, "--domain", domain, "--mechanism", "ffdhe3072",
                                     "--password-file", site.password] + who)
            XCTAssertEqual(made.status, 0, made.stderr)
        }
        let export = site.path("site.json")
        XCTAssertEqual(try site.run([bin("keyadmin"), "export", "--db", site.db, "--format", "json", "-o", export]).status, 0)
        for step in [["init", "--db", url], ["import", "--db", url, export], ["grant", "admin", "unix.4100@\(domain)", "--db", url]] {
            let done = try site.run([bin("keyadmin")] + step)
            XCTAssertEqual(done.status, 0, "\(step[0]): \(done.stderr)")
            XCTAssertFalse(done.stdout.contains("pg-secret") || done.stderr.contains("pg-secret"))
        }

        for file in [site.db, site.db + "-wal", site.db + "-shm"] { chmod(file, 0o644) }
        let keyserver = try BackgroundProcess([bin("keyserverd"), "--socket", site.socket, "--root-key", site.path("no-rootkey"), "--no-rpcbind"],
                                              readyMarker: "ready")
        defer { keyserver.stop(signal: SIGTERM) }
        for (uid, netname) in [(0, "unix.dir@\(domain)"), (4100, "unix.4100@\(domain)")] {
            let login = try site.run([bin("keylogin"), "--db", site.db, "--netname", netname, "--socket", site.socket, "--password-stdin"],
                                     as: uid == 0 ? nil : uid, stdin: "pw")
            XCTAssertEqual(login.status, 0, login.stderr)
        }

        FileManager.default.createFile(atPath: site.path("none.conf"), contents: Data())
        let directoryPort = freePort()
        let keydird = try BackgroundProcess([bin("keydird"), "--db", url, "--netname", "unix.dir@\(domain)", "--domain", domain,
                                             "--host", "127.0.0.1", "--port", "\(directoryPort)", "--keyserver-socket", site.socket,
                                             "--config", site.path("none.conf")],
                                            readyMarker: "ready")
        defer { keydird.stop(signal: SIGTERM) }
        XCTAssertTrue(keydird.log.contains("database=postgres://dirtest@/"), keydird.log)
        XCTAssertFalse(keydird.log.contains("pg-secret"), keydird.log)
        guard let range = keydird.log.range(of: #"fingerprint=sha256:[0-9a-f]{64}"#, options: .regularExpression) else {
            return XCTFail("keydird printed no fingerprint: \(keydird.log)")
        }
        let conf = site.path("securerpc.conf")
        try "domain \(domain)\ndirectory 127.0.0.1:\(directoryPort) unix.dir@\(domain) \(keydird.log[range].dropFirst("fingerprint=".count))\n"
            .write(toFile: conf, atomically: true, encoding: .utf8)
        chmod(conf, 0o644)

        func admin(_ arguments: [String]) throws -> Command.Output {
            try site.run([bin("keyadmin")] + arguments + ["--server", "127.0.0.1:\(directoryPort)", "--config", conf,
                                                            "--keyserver-socket", site.socket], as: 4100)
        }
        let listed = try admin(["list"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains("unix.dir@\(domain)"), listed.stdout)
        let added = try admin(["newkey", "--user", "4245", "--domain", domain, "--mechanism", "ffdhe3072", "--password-file", site.password])
        XCTAssertEqual(added.status, 0, added.stderr)
        let revoked = try admin(["revoke", "unix.4245@\(domain)"])
        XCTAssertEqual(revoked.status, 0, revoked.stderr)

        // Straight from PostgreSQL: the changes are there, audited as the proven caller.
        let shown = try site.run([bin("keyadmin"), "show", "unix.4245@\(domain)", "--db", url])
        XCTAssertTrue(shown.stdout.contains("revoked"), shown.stdout)
        let audit = try site.run([bin("keyadmin"), "audit", "--db", url])
        XCTAssertTrue(audit.stdout.contains("unix.4100@\(domain) from 127.0.0.1"), audit.stdout)
    }
}
