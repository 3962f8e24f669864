// keyserverd as a daemon (issue 14 items 2 and 3, issue 12 item 12), run as the real
// executable: one daemon per socket (a second refuses and the first keeps every user's key),
// a crashed daemon's socket is replaced, SIGHUP re-reads instead of killing, and a root key
// file others could read or that root does not own is refused. Before these fixes the second
// daemon unlinked the first's socket, HUP killed the daemon, and any root key file loaded.

import Foundation
import XCTest

final class KeyserverDaemonTests: XCTestCase {
    private let bin = { Peers.productPath($0) }

    /// A directory with unix.4242's key; returns a function that logs 4242 in on a socket.
    private func siteWithUser() throws -> (SiteSandbox, (String) throws -> Command.Output) {
        let site = try SiteSandbox(prefix: "ksdaemon")
        XCTAssertEqual(try site.run([bin("keyadmin"), "init", "--db", site.db]).status, 0)
        for user in ["4242", "0"] {
            let made = try site.run([bin("keyadmin"), "newkey", "--db", site.db, "--user", user, "--domain", "example.org",
                                     "--mechanism", "ffdhe2048", "--password-file", site.password])
            XCTAssertEqual(made.status, 0, made.stderr)
        }
        for file in [site.db, site.db + "-wal", site.db + "-shm"] { chmod(file, 0o644) }
        let bin = self.bin
        return (site, { socket in
            try site.run([bin("keylogin"), "--db", site.db, "--netname", "unix.4242@example.org", "--socket", socket, "--password-stdin"],
                         as: 4242, stdin: "pw")
        })
    }

    private func keyserverd(_ site: SiteSandbox, rootKey: String? = nil, extra: [String] = []) throws -> BackgroundProcess {
        try BackgroundProcess([bin("keyserverd"), "--socket", site.socket, "--root-key", rootKey ?? site.path("no-rootkey"),
                               "--no-rpcbind", "--log-level", "info"] + extra, readyMarker: "ready")
    }

    func testASecondKeyserverdRefusesAndTheFirstKeepsItsUsersAndSocket() throws {
        let (site, login) = try siteWithUser()
        defer { site.remove() }
        let first = try keyserverd(site)
        defer { first.stop(signal: SIGTERM) }
        XCTAssertEqual(try login(site.socket).status, 0)

        let second = try site.run([bin("keyserverd"), "--socket", site.socket, "--root-key", site.path("no-rootkey"), "--no-rpcbind"])
        XCTAssertEqual(second.status, 1)
        XCTAssertEqual(second.stderr.split(separator: "\n").count, 1, "one clear line: \(second.stderr)")
        XCTAssertTrue(second.stderr.contains("another keyserverd is serving \(site.socket) (pid \(first.process.processIdentifier))"), second.stderr)

        // The first still holds 4242's key on the same socket: keylogout finds it there.
        let logout = try site.run([bin("keylogout"), "--socket", site.socket], as: 4242)
        XCTAssertEqual(logout.status, 0, logout.stderr)
        XCTAssertTrue(logout.stdout.contains("removed"), logout.stdout)

        first.stop(signal: SIGTERM)
        XCTAssertEqual(first.process.terminationStatus, 0, first.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: site.socket), "TERM removes the socket")
    }

    func testTheSocketOfAKilledKeyserverdIsReplaced() throws {
        let (site, login) = try siteWithUser()
        defer { site.remove() }
        let crashed = try keyserverd(site)
        crashed.stop(signal: SIGKILL)
        XCTAssertTrue(FileManager.default.fileExists(atPath: site.socket), "kill -9 leaves the socket behind")
        let next = try keyserverd(site)
        defer { next.stop(signal: SIGTERM) }
        XCTAssertEqual(try login(site.socket).status, 0, "the new daemon serves the old path")
    }

    func testSIGHUPRereadsTheRootKeyAndKeepsServing() throws {
        let (site, login) = try siteWithUser()
        defer { site.remove() }
        let rootKey = site.path("rootkey")
        let daemon = try keyserverd(site, rootKey: rootKey)
        defer { daemon.stop(signal: SIGTERM) }
        XCTAssertEqual(try login(site.socket).status, 0)

        // keylogin -r, against another keyserverd, writes the root key file this one reads on HUP.
        let otherSite = try SiteSandbox(prefix: "ksdaemon-other")
        defer { otherSite.remove() }
        let other = try keyserverd(otherSite, rootKey: otherSite.path("unused"))
        defer { other.stop(signal: SIGTERM) }
        let rootLogin = try site.run([bin("keylogin"), "-r", "--db", site.db, "--netname", "unix.0@example.org", "--socket", otherSite.socket,
                                      "--root-key-file", rootKey, "--password-stdin"], stdin: "pw")
        XCTAssertEqual(rootLogin.status, 0, rootLogin.stderr)

        kill(daemon.process.processIdentifier, SIGHUP)
        let deadline = Date().addingTimeInterval(10)
        while !daemon.log.contains("loaded the host's root key"), Date() < deadline { usleep(20_000) }
        XCTAssertTrue(daemon.process.isRunning, "HUP does not stop the daemon")
        XCTAssertTrue(daemon.log.contains("loaded the host's root key"), daemon.log)
        // Still serving, and 4242 is still logged in (keylogout finds the key).
        let logout = try site.run([bin("keylogout"), "--socket", site.socket], as: 4242)
        XCTAssertEqual(logout.status, 0, logout.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: site.socket))

        // A root key file made readable by others is not re-read: the key in memory stays.
        chmod(rootKey, 0o644)
        kill(daemon.process.processIdentifier, SIGHUP)
        while !daemon.log.contains("was not re-read"), Date() < deadline.addingTimeInterval(10) { usleep(20_000) }
        XCTAssertTrue(daemon.log.contains("mode 644"), daemon.log)
        XCTAssertTrue(daemon.process.isRunning)
    }

    func testARootKeyFileOthersCanReadOrRootDoesNotOwnIsRefused() throws {
        let site = try SiteSandbox(prefix: "ksroot")
        defer { site.remove() }
        let rootKey = site.path("rootkey")
        FileManager.default.createFile(atPath: rootKey, contents: Data("-\n".utf8), attributes: [.posixPermissions: 0o644])
        func start() throws -> Command.Output {
            try site.run([bin("keyserverd"), "--socket", site.socket, "--root-key", rootKey, "--no-rpcbind"])
        }
        let readable = try start()
        XCTAssertEqual(readable.status, 1)
        XCTAssertEqual(readable.stderr, "keyserverd: the root key file \(rootKey) has mode 644, so others may read it: chmod 600 \(rootKey) (and treat the key as exposed: run keylogin -r again)\n")
        chmod(rootKey, 0o600)
        chown(rootKey, 4001, 4001)
        let foreign = try start()
        XCTAssertEqual(foreign.status, 1)
        XCTAssertTrue(foreign.stderr.contains("belongs to uid 4001, not root: chown root \(rootKey)"), foreign.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: site.socket), "refused before anything was bound")

        let link = site.path("rootkey-link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: rootKey)
        let linked = try site.run([bin("keyserverd"), "--socket", site.socket, "--root-key", link, "--no-rpcbind"])
        XCTAssertEqual(linked.status, 1)
        XCTAssertTrue(linked.stderr.contains("is a symbolic link"), linked.stderr)
    }

    func testEveryExecutableAnswersVersion() throws {
        for name in ["keyserverd", "keylogin", "keylogout", "keylist", "chkey", "keyadmin", "keydird", "filesvc", "filesvc-server", "rpcbench", "keybench", "xdrgen"] {
            let out = try Command.run([bin(name), "--version"])
            XCTAssertEqual(out.status, 0, "\(name): \(out.stderr)")
            XCTAssertTrue(out.stdout.hasPrefix("\(name) "), "\(name): \(out.stdout)")
            XCTAssertTrue(out.stdout.contains("(Secure RPC for Swift)"), "\(name): \(out.stdout)")
        }
    }

    /// keyserverd, keylogin and keylogout errors are one line in words: no `errno:` tuple, no
    /// NIO or Swift type name (they used to print `connect(descriptor:addr:size:) … (errno: 2)`
    /// and `UnixDomainSocketPathWrongType()`).
    func testDaemonAndLoginErrorsAreOneLineInWords() throws {
        let (site, _) = try siteWithUser()
        defer { site.remove() }
        let plain = site.path("plain-file")
        FileManager.default.createFile(atPath: plain, contents: Data())
        let cases: [(arguments: [String], expected: String)] = [
            ([bin("keylogout"), "-f", "--socket", site.path("nosock")], "cannot connect to \(site.path("nosock")): No such file or directory"),
            ([bin("keylogout"), "-f", "--socket", plain], "cannot connect to \(plain): Connection refused"),
            ([bin("keyserverd"), "--socket", plain, "--root-key", site.path("none"), "--no-rpcbind"], "\(plain): the path is not a socket"),
            ([bin("keyserverd"), "--socket", site.path("no-such-dir/sock"), "--no-rpcbind"], "no-such-dir/sock.lock: No such file or directory"),
            ([bin("keylogin"), "--db", site.db, "--netname", "unix.0@example.org", "--socket", site.path("nosock"), "--password-stdin"],
             "cannot connect to \(site.path("nosock")): No such file or directory"),
        ]
        for (arguments, expected) in cases {
            let out = try site.run(arguments, stdin: "pw")
            XCTAssertNotEqual(out.status, 0, arguments.joined(separator: " "))
            XCTAssertEqual(out.stderr.split(separator: "\n").count, 1, out.stderr)
            XCTAssertTrue(out.stderr.contains(expected), "\(arguments.joined(separator: " ")): \(out.stderr)")
            for forbidden in ["errno:", "descriptor:", "Error(", "WrongType", "IOError", "NIOCore"] {
                XCTAssertFalse(out.stderr.contains(forbidden), out.stderr)
            }
        }

        // keylogout says when there was nothing to remove.
        let daemon = try keyserverd(site)
        defer { daemon.stop(signal: SIGTERM) }
        let nothing = try site.run([bin("keylogout"), "--socket", site.socket], as: 4242)
        XCTAssertEqual(nothing.status, 0, nothing.stderr)
        XCTAssertEqual(nothing.stdout, "keylogout: the keyserver held no keys for you; nothing to remove\n")
    }

    /// Issue 14 items 7 and 10 for filesvc-server: it warns at start when its own key is not
    /// in the keyserver (every secure caller would fail), and a port it may not bind is one
    /// line with the address, not `bind(descriptor:ptr:bytes:) … (errno: 13)`.
    func testFileServerWarnsWithoutItsKeyAndSaysWhyItCannotListen() throws {
        let (site, _) = try siteWithUser()
        defer { site.remove() }
        let daemon = try keyserverd(site)
        defer { daemon.stop(signal: SIGTERM) }
        func serve(_ extra: [String]) throws -> BackgroundProcess {
            try BackgroundProcess([bin("filesvc-server"), "--root", site.path("files"), "--port", "\(freePort())", "--host", "127.0.0.1",
                                   "--netname", "unix.4242@example.org", "--db", site.db, "--keyserver-socket", site.socket] + extra,
                                  readyMarker: "serving")
        }
        let missing = try serve([])
        missing.stop(signal: SIGTERM)
        XCTAssertTrue(missing.log.contains("this server's key is not in the keyserver"), missing.log)

        // Root runs it here; with root's key loaded (keylogin as uid 0 for this netname) no warning.
        let login = try site.run([bin("keylogin"), "--db", site.db, "--netname", "unix.4242@example.org", "--socket", site.socket,
                                  "--password-stdin"], stdin: "pw")
        XCTAssertEqual(login.status, 0, login.stderr)
        let loaded = try serve(["--min-group", "ffdhe2048"])
        loaded.stop(signal: SIGTERM)
        XCTAssertFalse(loaded.log.contains("not in the keyserver"), loaded.log)

        let noRoot = try site.run(["setpriv", "--reuid=4001", "--regid=4001", "--clear-groups", bin("filesvc-server"), "--root", site.path("files2/sub"),
                                   "--port", "\(freePort())", "--require-auth", "none"])
        XCTAssertEqual(noRoot.status, 1)
        XCTAssertEqual(noRoot.stderr, "filesvc-server: cannot create or open the root directory \(site.path("files2/sub")): Permission denied\n")
        try FileManager.default.createDirectory(atPath: site.path("open"), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        let denied = try site.run(["setpriv", "--reuid=4001", "--regid=4001", "--clear-groups", bin("filesvc-server"), "--root", site.path("open"),
                                   "--port", "80", "--host", "127.0.0.1", "--require-auth", "none"])
        XCTAssertEqual(denied.status, 1)
        XCTAssertTrue(denied.stderr.contains("filesvc-server: cannot listen on 127.0.0.1:80: Permission denied (ports below 1024 need root"), denied.stderr)
        XCTAssertFalse(denied.stderr.contains("errno"), denied.stderr)
    }
}
