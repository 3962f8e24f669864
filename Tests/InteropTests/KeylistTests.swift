// keylist (issue 17), run as the real executable against a real keyserverd, each user by
// setpriv: not logged in is exit 1 and one line, keylogin makes it 0 with the netname and
// mechanisms, keylogout makes it 1 again, another uid sees nothing of the first's, root sees
// the key files keyserverd loads, no key material is printed, and an unreachable keyserver is
// exit 2 with one line in words.

import Foundation
import KeyCrypto
import XCTest

final class KeylistTests: XCTestCase {
    private let bin = { Peers.productPath($0) }

    /// unix.4242 with a dh192-des and an ffdhe2048 key, and a --service-key file for uid 4500.
    private func site() throws -> (site: SiteSandbox, serviceKey: String, serviceSecret: String) {
        let site = try SiteSandbox(prefix: "keylist")
        XCTAssertEqual(try site.run([bin("keyadmin"), "init", "--db", site.db]).status, 0)
        let made = try site.run([bin("keyadmin"), "newkey", "--db", site.db, "--user", "4242", "--domain", "example.org",
                                 "--mechanism", "dh192-des", "--mechanism", "ffdhe2048", "--legacy-shares-password",
                                 "--password-file", site.password])
        XCTAssertEqual(made.status, 0, made.stderr)
        for file in [site.db, site.db + "-wal", site.db + "-shm"] { chmod(file, 0o644) }
        let secret = DHPrivateKey.generate(group: .ffdhe2048).secretHex
        let serviceKey = site.path("svc.key")
        FileManager.default.createFile(atPath: serviceKey, contents: Data("-\nffdhe2048 \(secret)\n".utf8), attributes: [.posixPermissions: 0o600])
        return (site, serviceKey, secret)
    }

    private func keylist(_ site: SiteSandbox, as uid: Int?, _ extra: [String] = []) throws -> Command.Output {
        try site.run([bin("keylist"), "--socket", site.socket] + extra, as: uid)
    }

    func testNotLoggedInLoggedInLoggedOutAndOnlyYourOwn() throws {
        let (site, serviceKey, serviceSecret) = try site()
        defer { site.remove() }
        let daemon = try BackgroundProcess([bin("keyserverd"), "--socket", site.socket, "--root-key", site.path("no-rootkey"), "--no-rpcbind",
                                            "--service-key", "4500:\(serviceKey)"], readyMarker: "ready")
        defer { daemon.stop(signal: SIGTERM) }

        let before = try keylist(site, as: 4242)
        XCTAssertEqual(before.status, 1, before.stderr)
        XCTAssertEqual(before.stdout, "")
        XCTAssertEqual(before.stderr, "keylist: not logged in: the keyserver at \(site.socket) holds no keys for uid 4242 (run keylogin)\n")

        let login = try site.run([bin("keylogin"), "--db", site.db, "--netname", "unix.4242@example.org", "--socket", site.socket,
                                  "--password-stdin"], as: 4242, stdin: "pw")
        XCTAssertEqual(login.status, 0, login.stderr)
        let listed = try keylist(site, as: 4242)
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertEqual(listed.stderr, "")
        XCTAssertTrue(listed.stdout.contains("Netname:   unix.4242@example.org (uid 4242)"), listed.stdout)
        let mechanisms = listed.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropFirst(4).filter { !$0.isEmpty }.map { $0.split(separator: " ").last.map(String.init) }
        XCTAssertEqual(mechanisms, ["dh192-des", "ffdhe2048"], listed.stdout)
        XCTAssertFalse(listed.stdout.contains("svc.key"), "key files are root's to see")

        // The same for scripts.
        let json = try keylist(site, as: 4242, ["--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(document["logged_in"] as? Bool, true)
        let caller = try XCTUnwrap(document["caller"] as? [String: Any])
        XCTAssertEqual(caller["netname"] as? String, "unix.4242@example.org")
        XCTAssertEqual((caller["held"] as? [[String: Any]])?.compactMap { $0["mechanism"] as? String }, ["dh192-des", "ffdhe2048"])
        let since = try XCTUnwrap((caller["held"] as? [[String: Any]])?.first?["since_unix"] as? Int)
        XCTAssertLessThan(abs(Double(since) - Date().timeIntervalSince1970), 300, "since: the login time")

        // Another user sees nothing of 4242's.
        let other = try keylist(site, as: 4343, ["--json"])
        XCTAssertEqual(other.status, 1)
        XCTAssertFalse(other.stdout.contains("unix.4242"), other.stdout)
        XCTAssertTrue(other.stderr.contains("holds no keys for uid 4343"), other.stderr)

        // Root, without a host key, is not logged in, but sees the service key file and what
        // is held for its uid: names and times only, never the key.
        let root = try keylist(site, as: nil)
        XCTAssertEqual(root.status, 1, root.stderr)
        XCTAssertTrue(root.stderr.contains("holds no host key (root: keylogin -r)"), root.stderr)
        XCTAssertTrue(root.stdout.contains("\(site.path("no-rootkey")) (root key file): missing; the keyserver holds nothing for uid 0"), root.stdout)
        XCTAssertTrue(root.stdout.contains("\(serviceKey) (service key of uid 4500): present; the keyserver holds ffdhe2048 since "), root.stdout)
        XCTAssertFalse(root.stdout.contains("unix.4242") || root.stdout.contains("uid 4242"), root.stdout)
        for output in [listed.stdout, json.stdout, root.stdout] {
            XCTAssertFalse(output.contains(serviceSecret.prefix(32)), "a secret in the output")
            XCTAssertNil(output.range(of: "[0-9a-f]{40}", options: .regularExpression), "something like a key in: \(output)")
        }

        let logout = try site.run([bin("keylogout"), "--socket", site.socket], as: 4242)
        XCTAssertEqual(logout.status, 0, logout.stderr)
        let after = try keylist(site, as: 4242)
        XCTAssertEqual(after.status, 1)
        XCTAssertTrue(after.stderr.hasPrefix("keylist: not logged in"), after.stderr)
    }

    func testAnUnreachableKeyserverIsExitTwoInOneLine() throws {
        let site = try SiteSandbox(prefix: "keylist-down")
        defer { site.remove() }
        let plain = site.path("plain-file")
        FileManager.default.createFile(atPath: plain, contents: Data())
        for (socket, reason) in [(site.socket, "No such file or directory"), (plain, "Connection refused")] {
            let out = try site.run([bin("keylist"), "--keyserver-socket", socket])
            XCTAssertEqual(out.status, 2, out.stderr)
            XCTAssertEqual(out.stdout, "")
            XCTAssertEqual(out.stderr, "keylist: the keyserver is not running (cannot connect to \(socket): \(reason))\n")
        }
        // The socket from securerpc.conf when none is given.
        let conf = site.path("securerpc.conf")
        try "keyserver-socket \(site.path("conf-sock"))\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let fromConf = try site.run([bin("keylist"), "--config", conf])
        XCTAssertEqual(fromConf.status, 2)
        XCTAssertTrue(fromConf.stderr.contains("cannot connect to \(site.path("conf-sock"))"), fromConf.stderr)
        let badConf = try site.run([bin("keylist"), "--config", site.path("missing.conf")])
        XCTAssertEqual(badConf.status, 2)
        XCTAssertEqual(badConf.stderr.split(separator: "\n").count, 1, badConf.stderr)
    }
}
