// The whole system as processes, as a site would run it: keyadmin creates the principals,
// keyserverd holds the keys, users run keylogin (as their own uids, through setpriv), the
// file service requires AUTH_DH, and filesvc calls it over TCP and UDP. A logged-in user is
// identified by netname in the server log; a user who did not log in gets a clear message;
// a user the server's directory does not know gets AUTH_BADCRED.

import Foundation
import XCTest

final class AuthenticatedFileServiceTests: XCTestCase {
    func testKeyloginThenAuthenticatedCallsOverTCPAndUDP() throws {
        let bin = { Peers.productPath($0) }
        let site = try SiteSandbox(prefix: "authfs")
        defer { site.remove() }
        let work = site.work, db = site.db, socket = site.socket, password = site.password
        let otherDB = site.path("other.db")
        // The server (uid 0) and two users; a stranger only in another directory.
        for file in [db, otherDB] { XCTAssertEqual(try site.run([bin("keyadmin"), "init", "--db", file]).status, 0) }
        for user in ["0", "4243", "4244"] {
            let made = try site.run([bin("keyadmin"), "newkey", "--db", db, "--user", user, "--domain", "example.org", "--mechanism", "dh192-des", "--password-file", password])
            XCTAssertEqual(made.status, 0, made.stderr)
        }
        let serverLine = try site.run([bin("keyadmin"), "export", "--db", db]).stdout.split(separator: "\n").first { $0.hasPrefix("unix.0@") }!
        try (serverLine + "\n").write(toFile: work.appendingPathComponent("server.publickey").path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try site.run([bin("keyadmin"), "import", "--db", otherDB, work.appendingPathComponent("server.publickey").path]).status, 0)
        XCTAssertEqual(try site.run([bin("keyadmin"), "newkey", "--db", otherDB, "--user", "4245", "--domain", "example.org", "--mechanism", "dh192-des", "--password-file", password]).status, 0)
        for file in [db, otherDB] { chmod(file, 0o644); chmod(file + "-wal", 0o644); chmod(file + "-shm", 0o644) }

        let keyserver = try BackgroundProcess([bin("keyserverd"), "--socket", socket, "--root-key", work.appendingPathComponent("rootkey").path, "--no-rpcbind"], readyMarker: "ready")
        defer { keyserver.stop(signal: SIGTERM) }
        // The server's key (uid 0) and user 4243 log in; 4244 does not; the stranger does, elsewhere.
        XCTAssertEqual(try site.run([bin("keylogin"), "--db", db, "--netname", "unix.0@example.org", "--socket", socket, "--password-stdin"], stdin: "pw").status, 0)
        let login = try site.run([bin("keylogin"), "--db", db, "--netname", "unix.4243@example.org", "--socket", socket, "--password-stdin"], as: 4243, stdin: "pw")
        XCTAssertEqual(login.status, 0, login.stderr)
        XCTAssertEqual(try site.run([bin("keylogin"), "--db", otherDB, "--netname", "unix.4245@example.org", "--socket", socket, "--password-stdin"], as: 4245, stdin: "pw").status, 0)

        let root = work.appendingPathComponent("files").path
        let port = 21_000 + Int.random(in: 0..<8000)
        let server = try BackgroundProcess([bin("filesvc-server"), "--root", root, "--port", "\(port)", "--require-auth", "dh",
                                            "--netname", "unix.0@example.org", "--db", db, "--keyserver-socket", socket], readyMarker: "serving")
        defer { server.stop(signal: SIGTERM) }
        func filesvc(_ uid: Int, _ netname: String, _ database: String, _ transport: String, _ args: [String]) throws -> Command.Output {
            try site.run([bin("filesvc")] + args + ["--port", "\(port)", "--transport", transport, "--auth", "dh", "--server", "unix.0@example.org",
                                              "--netname", netname, "--db", database, "--keyserver-socket", socket], as: uid)
        }
        for transport in ["tcp", "udp"] {
            let put = try filesvc(4243, "unix.4243@example.org", db, transport, ["create", "/mine-\(transport)"])
            XCTAssertEqual(put.status, 0, put.stderr)
            let stat = try filesvc(4243, "unix.4243@example.org", db, transport, ["stat", "/mine-\(transport)"])
            XCTAssertTrue(stat.stdout.contains("owner unix.4243@example.org"), stat.stdout + stat.stderr)
            let absent = try filesvc(4244, "unix.4244@example.org", db, transport, ["ls", "/"])
            XCTAssertNotEqual(absent.status, 0)
            XCTAssertEqual(absent.stderr, "filesvc: unix.4244@example.org is not logged in to the keyserver (run keylogin)\n")
            let stranger = try filesvc(4245, "unix.4245@example.org", otherDB, transport, ["ls", "/"])
            XCTAssertNotEqual(stranger.status, 0)
            XCTAssertTrue(stranger.stderr.contains("AUTH_BADCRED"), stranger.stderr)
        }
        server.stop(signal: SIGTERM)
        XCTAssertTrue(server.log.contains("caller=unix.4243@example.org operation=create path=/mine-tcp transport=tcp"), server.log)
        XCTAssertTrue(server.log.contains("caller=unix.4243@example.org operation=create path=/mine-udp transport=udp"), server.log)
    }
}
