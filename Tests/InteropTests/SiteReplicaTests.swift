// The directory with a hot standby, as processes: PostgreSQL streaming replication (a
// primary and a standby made with pg_basebackup), keydird in front of each, the standby's
// started with --standby-of. Writes through the standby are refused naming the primary;
// a change made on the primary reaches the standby (the lag is printed); when the primary
// host is lost (keydird killed, PostgreSQL stopped as in a crash) a host's keylogin goes on
// through the standby, the second directory line of its securerpc.conf; once the standby
// is promoted and its keydird restarted as a primary, administration works through it.

import Foundation
import PostgresSupport
import XCTest

final class SiteReplicaTests: XCTestCase {
    private let bin = { Peers.productPath($0) }

    func testStandbyServesLookupsRefusesWritesAndTakesOverAfterPromotion() throws {
        let postgres = try TemporaryPostgres()
        defer { postgres.stop() }
        let site = try SiteSandbox(prefix: "replica")
        defer { site.remove() }
        let domain = "site.example"
        let hostName = try Command.run(["hostname", "-s"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let host = "unix.\(hostName)@\(domain)"
        let database = try postgres.createDatabase()
        let primaryURL = postgres.url(database: database)

        // The principals, made in a file and moved into PostgreSQL (as SitePostgresTests).
        XCTAssertEqual(try site.run([bin("keyadmin"), "init", "--db", site.db]).status, 0)
        for who in [["--host", "dir"], ["--host", hostName], ["--user", "4100"], ["--user", "4101"]] {
            let made = try site.run([bin("keyadmin"), "newkey", "--db", site.db, "--domain", domain, "--mechanism", "ffdhe3072",
                                     "--password-file", site.password] + who)
            XCTAssertEqual(made.status, 0, made.stderr)
        }
        let export = site.path("site.json")
        XCTAssertEqual(try site.run([bin("keyadmin"), "export", "--db", site.db, "--format", "json", "-o", export]).status, 0)
        for step in [["init", "--db", primaryURL], ["import", "--db", primaryURL, export],
                     ["grant", "admin", "unix.4100@\(domain)", "--db", primaryURL], ["grant", "host", host, "--db", primaryURL]] {
            let done = try site.run([bin("keyadmin")] + step)
            XCTAssertEqual(done.status, 0, "\(step[0]): \(done.stderr)")
        }
        // The standby: a base backup of the primary, streaming from then on.
        try postgres.startStandby()
        let standbyURL = try XCTUnwrap(postgres.standbyURL(database: database))
        for file in [site.db, site.db + "-wal", site.db + "-shm"] { chmod(file, 0o644) }
        FileManager.default.createFile(atPath: site.path("none.conf"), contents: Data())

        // The directory hosts' keyserver holds unix.dir's key (both keydirds are unix.dir).
        let directorySocket = site.path("dir-keyservsock")
        let directoryKeyserver = try BackgroundProcess([bin("keyserverd"), "--socket", directorySocket, "--root-key", site.path("none"),
                                                        "--no-rpcbind", "--config", site.path("none.conf")], readyMarker: "ready")
        defer { directoryKeyserver.stop(signal: SIGTERM) }
        XCTAssertEqual(try site.run([bin("keylogin"), "--db", site.db, "--netname", "unix.dir@\(domain)", "--socket", directorySocket,
                                     "--password-stdin"], stdin: "pw").status, 0)
        let primaryPort = freePort(), standbyPort = freePort()
        func keydird(_ url: String, port: Int, standbyOf primary: Int?) throws -> BackgroundProcess {
            try BackgroundProcess([bin("keydird"), "--db", url, "--netname", "unix.dir@\(domain)", "--domain", domain,
                                   "--host", "127.0.0.1", "--port", "\(port)", "--keyserver-socket", directorySocket,
                                   "--config", site.path("none.conf")] + (primary.map { ["--standby-of", "127.0.0.1:\($0)"] } ?? []),
                                  readyMarker: "ready")
        }
        let primary = try keydird(primaryURL, port: primaryPort, standbyOf: nil)
        defer { primary.stop(signal: SIGTERM) }
        var standby = try keydird(standbyURL, port: standbyPort, standbyOf: primaryPort)
        defer { standby.stop(signal: SIGTERM) }
        XCTAssertTrue(standby.log.contains("mode=standby of 127.0.0.1:\(primaryPort)"), standby.log)
        guard let range = primary.log.range(of: #"sha256:[0-9a-f]{64}"#, options: .regularExpression) else {
            return XCTFail("keydird printed no fingerprint: \(primary.log)")
        }
        let fingerprint = primary.log[range]
        let conf = site.path("securerpc.conf")
        try """
            domain \(domain)
            directory 127.0.0.1:\(primaryPort) unix.dir@\(domain) \(fingerprint)
            directory 127.0.0.1:\(standbyPort) unix.dir@\(domain) \(fingerprint)

            """.write(toFile: conf, atomically: true, encoding: .utf8)
        chmod(conf, 0o644)

        // A client host: its keyserver knows the site; the host key and the administrator log in.
        let keyserver = try BackgroundProcess([bin("keyserverd"), "--socket", site.socket, "--root-key", site.path("none"),
                                               "--no-rpcbind", "--config", conf], readyMarker: "ready")
        defer { keyserver.stop(signal: SIGTERM) }
        XCTAssertEqual(try site.run([bin("keylogin"), "--db", site.db, "--netname", host, "--socket", site.socket, "--password-stdin"],
                                    stdin: "pw").status, 0)
        let adminLogin = try site.run([bin("keylogin"), "--db", site.db, "--netname", "unix.4100@\(domain)", "--socket", site.socket,
                                       "--password-stdin"], as: 4100, stdin: "pw")
        XCTAssertEqual(adminLogin.status, 0, adminLogin.stderr)
        func admin(_ port: Int, _ arguments: [String]) throws -> Command.Output {
            try site.run([bin("keyadmin")] + arguments + ["--server", "127.0.0.1:\(port)", "--config", conf,
                                                            "--keyserver-socket", site.socket], as: 4100)
        }
        func keylogin(_ uid: Int) throws -> Command.Output {
            try site.run([bin("keylogin"), "--config", conf, "--netname", "unix.\(uid)@\(domain)", "--socket", site.socket,
                          "--password-stdin"], as: uid, stdin: "pw")
        }

        // 1. The standby answers reads and refuses changes, naming the primary.
        let listed = try admin(standbyPort, ["list"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains("unix.4101@\(domain)"), listed.stdout)
        let refused = try admin(standbyPort, ["newkey", "--user", "4245", "--domain", domain, "--mechanism", "ffdhe3072",
                                              "--password-file", site.password])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("read-only standby") && refused.stderr.contains("127.0.0.1:\(primaryPort)"), refused.stderr)

        // 2. A change on the primary reaches the standby's database.
        let added = try admin(primaryPort, ["newkey", "--user", "4245", "--domain", domain, "--mechanism", "ffdhe3072",
                                            "--password-file", site.password])
        XCTAssertEqual(added.status, 0, added.stderr)
        let revoked = try admin(primaryPort, ["revoke", "unix.4101@\(domain)"])
        XCTAssertEqual(revoked.status, 0, revoked.stderr)
        let written = Date()
        var replicated = false
        for _ in 0..<200 where !replicated {
            let shown = try site.run([bin("keyadmin"), "show", "unix.4101@\(domain)", "--db", standbyURL])
            replicated = shown.status == 0 && shown.stdout.contains("revoked")
            if !replicated { usleep(20_000) }
        }
        XCTAssertTrue(replicated, "the revocation never reached the standby")
        print("replication: the revocation was readable on the standby \(Int(Date().timeIntervalSince(written) * 1000)) ms after keyadmin revoke returned (each check is a keyadmin process)")

        // 3. The primary host is lost. keylogin goes on through the standby (second line).
        primary.stop(signal: SIGKILL)
        try postgres.crashPrimary()
        let lost = Date()
        let login = try keylogin(4245)
        XCTAssertEqual(login.status, 0, login.stderr)
        print("failover: keylogin through the standby answered \(Int(Date().timeIntervalSince(lost) * 1000)) ms after the primary's loss")
        let stillRefused = try admin(standbyPort, ["revoke", "unix.4245@\(domain)"])
        XCTAssertNotEqual(stillRefused.status, 0, "an unpromoted standby took a write")

        // 4. Promotion: PostgreSQL first, then keydird restarted without --standby-of.
        try postgres.promoteStandby()
        standby.stop(signal: SIGTERM)
        standby = try keydird(standbyURL, port: standbyPort, standbyOf: nil)
        XCTAssertTrue(standby.log.contains("mode=primary"), standby.log)
        let afterPromotion = try admin(standbyPort, ["newkey", "--user", "4246", "--domain", domain, "--mechanism", "ffdhe3072",
                                                     "--password-file", site.password])
        XCTAssertEqual(afterPromotion.status, 0, afterPromotion.stderr)
        let audit = try site.run([bin("keyadmin"), "audit", "--db", standbyURL])
        XCTAssertTrue(audit.stdout.contains("unix.4246@\(domain)") && audit.stdout.contains("unix.4100@\(domain) from 127.0.0.1"), audit.stdout)
        XCTAssertEqual(try keylogin(4246).status, 0)
    }
}
