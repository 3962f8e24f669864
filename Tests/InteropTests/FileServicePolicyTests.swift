// filesvc-server's policy flags as processes (issue 12 item 9): `--require-auth dh` adds the
// legacy AUTH_DH beside RPCSEC_GSS, and must not lower what an RPCSEC_GSS caller needs —
// `--require-auth dh --min-service privacy` used to serve RPCSEC_GSS with service none.
// AUTH_DH itself under `--require-auth dh` is shown by AuthenticatedFileServiceTests.

import Foundation
import XCTest

final class FileServicePolicyTests: XCTestCase {
    func testRequireAuthDHStillHoldsGSSCallersToMinService() throws {
        let bin = { Peers.productPath($0) }
        let site = try SiteSandbox(prefix: "fspolicy")
        defer { site.remove() }
        let work = site.work, db = site.db, socket = site.socket, password = site.password
        XCTAssertEqual(try site.run([bin("keyadmin"), "init", "--db", db]).status, 0)
        for user in ["0", "4263"] {
            let made = try site.run([bin("keyadmin"), "newkey", "--db", db, "--user", user, "--domain", "example.org",
                                     "--mechanism", "ffdhe3072", "--password-file", password])
            XCTAssertEqual(made.status, 0, made.stderr)
        }
        for file in [db, db + "-wal", db + "-shm"] { chmod(file, 0o644) }
        let keyserver = try BackgroundProcess([bin("keyserverd"), "--socket", socket, "--root-key", work.appendingPathComponent("rootkey").path, "--no-rpcbind"],
                                              readyMarker: "ready")
        defer { keyserver.stop(signal: SIGTERM) }
        XCTAssertEqual(try site.run([bin("keylogin"), "--db", db, "--netname", "unix.0@example.org", "--socket", socket, "--password-stdin"], stdin: "pw").status, 0)
        let login = try site.run([bin("keylogin"), "--db", db, "--netname", "unix.4263@example.org", "--socket", socket, "--password-stdin"], as: 4263, stdin: "pw")
        XCTAssertEqual(login.status, 0, login.stderr)

        let port = 21_000 + Int.random(in: 0..<8000)
        let server = try BackgroundProcess([bin("filesvc-server"), "--root", work.appendingPathComponent("files").path, "--port", "\(port)",
                                            "--require-auth", "dh", "--min-service", "privacy",
                                            "--netname", "unix.0@example.org", "--db", db, "--keyserver-socket", socket], readyMarker: "serving")
        defer { server.stop(signal: SIGTERM) }
        func ls(service: String) throws -> Command.Output {
            try site.run([bin("filesvc"), "ls", "/", "--port", "\(port)", "--transport", "tcp", "--service", service,
                          "--server", "unix.0@example.org", "--domain", "example.org", "--db", db, "--keyserver-socket", socket], as: 4263)
        }
        for weak in ["none", "integrity"] {
            let refused = try ls(service: weak)
            XCTAssertNotEqual(refused.status, 0, "RPCSEC_GSS \(weak) under --min-service privacy: \(refused.stdout)")
            XCTAssertTrue(refused.stderr.contains("AUTH_TOOWEAK"), refused.stderr)
        }
        let served = try ls(service: "privacy")
        XCTAssertEqual(served.status, 0, served.stderr)
        server.stop(signal: SIGTERM)
        XCTAssertTrue(server.log.contains("RPCSEC_GSS srpc-dh ffdhe3072+ with privacy, or AUTH_DH"), server.log)
    }
}
