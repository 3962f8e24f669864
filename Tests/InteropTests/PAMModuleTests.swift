// pam_securerpc.so (issue 17, login integration), built from pam/ and loaded by the real
// pamtester against a real keyserverd. pamtester reads services only from /etc/pam.d, so each
// run is in a private mount namespace with an overlay on /etc (the test's service file, and a
// user srpcpam, uid 4711, in passwd and group) and on /dev, where /dev/log is this test's
// datagram socket: the module's syslog lines come here. Nothing on the host is changed.
//
// What it shows: after authenticate + open_session the keyserver holds uid 4711's keys
// (keylist as 4711: exit 0), after close_session it holds nothing (exit 1); a wrong password
// fails open_session (stacked `required`) and leaves the user logged out; keylogin ran as the
// user with a clean environment and the password only on its standard input, never in argv,
// the environment, the log or pamtester's output.

import Foundation
import XCTest

final class PAMModuleTests: XCTestCase {
    private let bin = { Peers.productPath($0) }
    private let uid = 4711
    private let password = "Tr0ub4dor-pam-7s3cret"

    /// Root for unshare, mount and setuid, pamtester and the PAM headers. Skipped only on a
    /// developer machine that is not root; on CI (or as root) a missing tool is a failure.
    private func requirements() throws {
        let ci = !(ProcessInfo.processInfo.environment["CI"] ?? "").isEmpty
        if getuid() != 0 && !ci { throw XCTSkip("pamtester tests need root (unshare -m, mount overlays, setuid in the module)") }
        guard getuid() == 0 else { throw CommandError("pamtester tests need root (CI is set, so this is a failure)") }
        for tool in ["pamtester", "unshare", "setpriv", "cc"] where try Command.run(["sh", "-c", "command -v \(tool)"]).status != 0 {
            throw CommandError("\(tool) is missing (Tests/install-deps.sh installs it)")
        }
    }

    /// A datagram socket standing in for /dev/log.
    private final class SyslogCapture {
        let fd: Int32
        private(set) var lines: [String] = []

        init(path: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw CommandError("socket: errno \(errno)") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw CommandError("path too long: \(path)") }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else { throw CommandError("bind \(path): errno \(errno)") }
        }

        /// Everything logged since the last call.
        func drain() -> [String] {
            var new: [String] = []
            var buffer = [UInt8](repeating: 0, count: 8192)
            while true {
                let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if n <= 0 { break }
                new.append(String(decoding: buffer[0..<n], as: UTF8.self))
            }
            lines += new
            return new
        }

        deinit { close(fd) }
    }

    private struct Setup {
        let site: SiteSandbox
        let script: String
        let record: String
        let conf: String
        let log: SyslogCapture
    }

    /// The key directory, the overlay contents, a keylogin wrapper that records its argv,
    /// environment and ids before it becomes the real keylogin, and the script pamtester runs in.
    private func setUp(_ site: SiteSandbox) throws -> Setup {
        let passwordFile = site.path("user-pw")
        try "\(password)\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        XCTAssertEqual(try site.run([bin("keyadmin"), "init", "--db", site.db]).status, 0)
        let made = try site.run([bin("keyadmin"), "newkey", "--db", site.db, "--user", "\(uid)", "--domain", "example.org",
                                 "--mechanism", "dh192-des", "--mechanism", "ffdhe2048", "--legacy-shares-password",
                                 "--password-file", passwordFile])
        XCTAssertEqual(made.status, 0, made.stderr)
        unlink(passwordFile)
        for file in [site.db, site.db + "-wal", site.db + "-shm"] { chmod(file, 0o644) }
        // The domain comes from the configuration file, which the module passes through.
        let conf = site.path("securerpc.conf")
        try "domain example.org\n".write(toFile: conf, atomically: true, encoding: .utf8)
        chmod(conf, 0o644)

        let module = site.path("module")
        let built = try Command.run(["bash", Peers.packageRoot.appendingPathComponent("pam/build.sh").path, module])
        guard built.status == 0 else { throw CommandError("building pam_securerpc.so failed:\n\(built.stderr)\(built.stdout)") }

        let record = site.path("record")
        try FileManager.default.createDirectory(atPath: record, withIntermediateDirectories: true)
        chmod(record, 0o777)
        let wrapper = site.path("keylogin-recording")
        try """
            #!/bin/sh
            printf '%s\\n' "$@" > \(record)/argv
            env > \(record)/env
            { id -u; id -g; id -G; } > \(record)/ids
            exec \(bin("keylogin")) "$@"

            """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)

        let upper = site.path("etc-upper"), scratch = site.path("ns")
        try FileManager.default.createDirectory(atPath: upper + "/pam.d", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let passwd = try String(contentsOfFile: "/etc/passwd", encoding: .utf8)
        try (passwd + "srpcpam:x:\(uid):\(uid)::/nonexistent:/usr/sbin/nologin\n").write(toFile: upper + "/passwd", atomically: true, encoding: .utf8)
        let group = try String(contentsOfFile: "/etc/group", encoding: .utf8)
        try (group + "srpcpam:x:\(uid):\nsrpcextra:x:4712:srpcpam\n").write(toFile: upper + "/group", atomically: true, encoding: .utf8)
        chmod(upper + "/passwd", 0o644)
        chmod(upper + "/group", 0o644)
        // auth: pam_permit alone never asks for a password; our module asks (and keeps it),
        // pam_permit stands for the module that would check it.
        let so = module + "/pam_securerpc.so"
        try """
            auth     optional \(so)
            auth     required pam_permit.so
            account  required pam_permit.so
            session  required \(so) keylogin=\(wrapper) keylogout=\(bin("keylogout")) socket=\(site.socket) db=\(site.db) config=\(conf) bogus=1
            session  optional pam_permit.so

            """.write(toFile: upper + "/pam.d/securerpc-test", atomically: true, encoding: .utf8)

        let logSocket = site.path("log.sock")
        let log = try SyslogCapture(path: logSocket)
        let script = site.path("run-pamtester.sh")
        try """
            set -e
            # Upper and work directories on a tmpfs of this namespace: overlayfs refuses an
            # upper directory on overlayfs (a container's /tmp), and each run starts afresh.
            mount -t tmpfs tmpfs \(scratch)
            mkdir \(scratch)/etc \(scratch)/etc-work \(scratch)/dev \(scratch)/dev-work
            cp -a \(upper)/. \(scratch)/etc/
            mount -t overlay overlay -o lowerdir=/etc,upperdir=\(scratch)/etc,workdir=\(scratch)/etc-work /etc
            mount -t overlay overlay -o lowerdir=/dev,upperdir=\(scratch)/dev,workdir=\(scratch)/dev-work /dev
            touch /dev/log
            mount --bind \(logSocket) /dev/log
            exec pamtester -v securerpc-test "$@"

            """.write(toFile: script, atomically: true, encoding: .utf8)
        return Setup(site: site, script: script, record: record, conf: conf, log: log)
    }

    /// pamtester in a fresh private mount namespace, `input` on its standard input.
    private func pamtester(_ setup: Setup, _ operations: [String], input: String, user: String = "srpcpam") throws -> Command.Output {
        try Command.run(["bash", "-c", "printf '%s\\n' \"$1\" | unshare -m sh \"$0\" \"${@:2}\"", setup.script, input, user] + operations)
    }

    private func keylist(_ site: SiteSandbox) throws -> Command.Output {
        try site.run([bin("keylist"), "--socket", site.socket], as: uid)
    }

    func testOpenSessionLogsInCloseSessionLogsOutAWrongPasswordFailsTheSession() throws {
        try requirements()
        let site = try SiteSandbox(prefix: "pam")
        defer { site.remove() }
        let setup = try setUp(site)
        let daemon = try BackgroundProcess([bin("keyserverd"), "--socket", site.socket, "--root-key", site.path("no-rootkey"), "--no-rpcbind"],
                                           readyMarker: "ready")
        defer { daemon.stop(signal: SIGTERM) }
        XCTAssertEqual(try keylist(site).status, 1, "logged out at the start")

        // Log in: the keyserver holds 4711's keys after the session opened.
        let opened = try pamtester(setup, ["authenticate", "open_session"], input: password)
        XCTAssertEqual(opened.status, 0, opened.stdout + opened.stderr)
        XCTAssertTrue(opened.stdout.contains("successfully opened a session"), opened.stdout)
        let listed = try keylist(site)
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains("Netname:   unix.\(uid)@example.org (uid \(uid))"), listed.stdout)
        XCTAssertTrue(listed.stdout.contains("dh192-des") && listed.stdout.contains("ffdhe2048"), listed.stdout)
        let loginLog = setup.log.drain()
        XCTAssertTrue(loginLog.contains { $0.contains("logged in to the keyserver") }, "keylogin's line is logged: \(loginLog)")

        // keylogin ran as the user (its groups too), from the module's options, with a clean
        // environment; the password only on its standard input.
        let argv = try String(contentsOfFile: setup.record + "/argv", encoding: .utf8)
        XCTAssertEqual(argv.split(separator: "\n").map(String.init),
                       ["--password-stdin", "--socket", site.socket, "--db", site.db, "--config", setup.conf])
        let ids = try String(contentsOfFile: setup.record + "/ids", encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(ids.prefix(2), ["\(uid)", "\(uid)"])
        XCTAssertEqual(ids.last.map { Set($0.split(separator: " ").map(String.init)) }, Set(["\(uid)", "4712"]), "initgroups: the user's groups, no others")
        let environment = try String(contentsOfFile: setup.record + "/env", encoding: .utf8)
        let names = Set(environment.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
        XCTAssertTrue(names.isSubset(of: ["PATH", "SECURERPC_CONF", "PWD", "SHLVL", "_"]), "only what keylogin needs: \(names)")
        XCTAssertTrue(environment.contains("SECURERPC_CONF=\(setup.conf)\n"), environment)

        // Close the session (another pamtester: no password needed): logged out.
        let closed = try pamtester(setup, ["close_session"], input: "")
        XCTAssertEqual(closed.status, 0, closed.stdout + closed.stderr)
        let after = try keylist(site)
        XCTAssertEqual(after.status, 1, after.stdout)
        XCTAssertTrue(after.stderr.hasPrefix("keylist: not logged in"), after.stderr)

        // A wrong password: keylogin refuses, the session (stacked required) fails, nothing held.
        try FileManager.default.removeItem(atPath: setup.record + "/argv")
        let wrong = try pamtester(setup, ["authenticate", "open_session"], input: "not-the-password")
        XCTAssertNotEqual(wrong.status, 0, wrong.stdout)
        XCTAssertTrue(wrong.stdout.contains("successfully authenticated") && !wrong.stdout.contains("successfully opened a session"), wrong.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: setup.record + "/argv"), "keylogin was run")
        XCTAssertEqual(try keylist(site).status, 1)
        let wrongLog = setup.log.drain()
        XCTAssertTrue(wrongLog.contains { $0.contains("wrong password for unix.\(uid)@example.org") }, "\(wrongLog)")
        XCTAssertTrue(wrongLog.contains { $0.contains("keylogin failed for srpcpam") }, "\(wrongLog)")

        // The whole cycle in one handle, as login does: logged out at the end.
        let cycle = try pamtester(setup, ["authenticate", "open_session", "close_session"], input: password)
        XCTAssertEqual(cycle.status, 0, cycle.stdout + cycle.stderr)
        XCTAssertEqual(try keylist(site).status, 1)

        // Root is skipped: its key is the host key (keylogin -r, the root key file), and a
        // keylogout by root would take it from every host service.
        try FileManager.default.removeItem(atPath: setup.record + "/argv")
        XCTAssertTrue(setup.log.drain().contains { $0.contains("your keys have been removed") }, "the cycle's keylogout")
        let root = try pamtester(setup, ["authenticate", "open_session", "close_session"], input: password, user: "root")
        XCTAssertEqual(root.status, 0, root.stdout + root.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: setup.record + "/argv"), "keylogin was run for root")
        XCTAssertFalse(setup.log.drain().contains { $0.contains("keylogout") }, "keylogout was run for root")

        // The password is nowhere it should not be.
        _ = setup.log.drain()
        XCTAssertTrue(setup.log.lines.contains { $0.contains("unknown option \"bogus=1\" ignored") }, "\(setup.log.lines)")
        let outputs = [opened, closed, wrong, cycle, root].flatMap { [$0.stdout, $0.stderr] }
        for text in setup.log.lines + outputs + [argv, environment, daemon.log] {
            XCTAssertFalse(text.contains(password) || text.contains("not-the-password"), "the password in: \(text)")
        }
    }
}
