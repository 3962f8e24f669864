// The key directory's file as other programs leave it (issue 14 items 4 and 6): the sqlite3
// shell closing it (which deletes the -wal and -shm files), a read-only bind mount (the
// keyserver unit's ProtectSystem=strict), and a damaged page. Real executables, real
// sqlite3, real mounts inside `unshare -m`.

import Foundation
import KeyCrypto
import XCTest

final class KeyDirectoryFileTests: XCTestCase {
    private var site: KeyAdminSite!

    override func setUpWithError() throws {
        site = try KeyAdminSite("keyfile")
        try site.ok(["init"])
        try site.file("pw", "user-password\n")
        try site.ok(["newkey", "--user", "5101", "--user", "0", "--domain", site.domain, "--mechanism", "ffdhe2048", "--password-file", site.path("pw")])
        chmod(site.db, 0o644)
    }

    override func tearDown() {
        site.remove()
    }

    private var walFiles: [String] { [site.db + "-wal", site.db + "-shm"].filter { FileManager.default.fileExists(atPath: $0) } }

    /// The sqlite3 shell opens and closes keys.db (the last connection: it checkpoints and
    /// deletes -wal and -shm). A user's keylogin and read-only keyadmin commands still work,
    /// and they do not bring the files back (they cannot: the directory is root's).
    func testReadOnlyOpensAfterTheSQLiteShellClosedTheDatabase() throws {
        XCTAssertEqual(try site.sqlite("SELECT count(*) FROM principal"), "2")
        XCTAssertEqual(walFiles, [], "the shell removed the WAL files")
        let keyserver = try site.keyserver()
        defer { keyserver.stop() }

        let login = try site.keylogin(5101, ["user-password"])
        XCTAssertEqual(login.status, 0, "keylogin as uid 5101: \(login.stderr)")
        XCTAssertTrue(login.stdout.contains("\(site.netname(5101)) logged in"), login.stdout)
        let wrong = try site.keylogin(5101, ["nope"])
        XCTAssertEqual(wrong.stderr, "keylogin: wrong password for \(site.netname(5101))\n")
        let listed = try site.run([Peers.productPath("keyadmin"), "list", "--db", site.db], as: 5101)
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains(site.netname(5101)), listed.stdout)
        let verified = try site.run([Peers.productPath("keyadmin"), "verify", "--db", site.db], as: 5101)
        XCTAssertEqual(verified.status, 0, verified.stderr)
        XCTAssertEqual(walFiles, [], "read-only opens wrote nothing")

        // A change after that is seen by the next read-only open (the writer makes the WAL
        // files again; keyadmin keeps them).
        try site.ok(["revoke", site.netname(5101)])
        let revoked = try site.keylogin(5101, ["user-password"])
        XCTAssertEqual(revoked.status, 1)
        XCTAssertTrue(revoked.stderr.contains("no active key for \(site.netname(5101))"), revoked.stderr)
    }

    /// keyserverd (with --db, for its netname lookups) and keylogin with the directory on a
    /// read-only bind mount, with and without the WAL files.
    func testKeyserverdAndKeyloginOnAReadOnlyMount() throws {
        let mount = site.path("mnt")
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let socket = site.path("ro-keyservsock")
        let script = """
            set -e
            mount --bind -o ro \(site.work.path) \(mount)
            touch \(mount)/probe 2>/dev/null && { echo "the mount is writable"; exit 2; }
            \(Peers.productPath("keyserverd")) --socket \(socket) --root-key \(site.path("no-rootkey")) --no-rpcbind \
                --db \(mount)/keys.db --log-level notice > \(site.path("keyserverd.log")) 2>&1 &
            daemon=$!
            for _ in $(seq 100); do [ -S \(socket) ] && break; kill -0 $daemon 2>/dev/null || break; sleep 0.1; done
            status=0
            printf 'user-password\\n' | \(Peers.productPath("keylogin")) --db \(mount)/keys.db --netname \(site.netname(0)) \
                --socket \(socket) --password-stdin || status=$?
            \(Peers.productPath("keyadmin")) verify --db \(mount)/keys.db || status=$?
            kill $daemon 2>/dev/null || status=3
            wait $daemon || true
            exit $status
            """
        for withWAL in [true, false] {
            if withWAL {
                XCTAssertEqual(walFiles.count, 2, "keyadmin keeps the WAL files")
            } else {
                try site.sqlite("SELECT count(*) FROM principal")
                XCTAssertEqual(walFiles, [])
            }
            let run = try site.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script])
            let log = (try? String(contentsOfFile: site.path("keyserverd.log"), encoding: .utf8)) ?? ""
            XCTAssertEqual(run.status, 0, "WAL files \(withWAL ? "present" : "gone"): \(run.stdout) \(run.stderr)\nkeyserverd: \(log)")
            XCTAssertTrue(log.contains("keyserver ready"), log)
            XCTAssertTrue(run.stdout.contains("\(site.netname(0)) logged in"), run.stdout)
            XCTAssertTrue(run.stdout.contains("0 problems"), run.stdout)
        }
    }

    /// A damaged page (a leaf's fragmented-bytes count, which queries never look at) and a
    /// key without its principal: verify and init report both and fail.
    func testVerifyAndInitReportADamagedFile() throws {
        // Enough principals for several pages of key_entry.
        let lines = try (1...300).map { i -> String in
            let key = DHPrivateKey.generate(group: .dh192des)
            return "unix.\(20_000 + i)@\(site.domain) \(key.publicKey.hex):\(try XCrypt.encryptSecret(key, password: SecretBytes(copying: Array("x".utf8))))"
        }
        try site.ok(["import", try site.file("many.publickey", lines.joined(separator: "\n"))])
        XCTAssertTrue(try site.ok(["verify"]).stdout.hasSuffix("302 principals, 302 keys, 0 problems\n"))

        // A key whose principal is gone (foreign keys are off in the shell).
        try site.sqlite("""
            INSERT INTO key_entry (netname, mechanism, public_key, sealed_secret, state, created_at)
            SELECT 'unix.99999@example.org', mechanism, public_key, sealed_secret, state, created_at FROM key_entry
            WHERE mechanism = 'ffdhe2048' LIMIT 1
            """)
        // Everything into the main file, then one byte of a leaf page's header changed.
        try site.sqlite("PRAGMA wal_checkpoint(TRUNCATE)")
        let page = try XCTUnwrap(Int(try site.sqlite("SELECT pageno FROM dbstat WHERE name = 'key_entry' AND pagetype = 'leaf' ORDER BY pageno LIMIT 1 OFFSET 2")))
        let pageSize = try XCTUnwrap(Int(try site.sqlite("PRAGMA page_size")))
        let file = try XCTUnwrap(FileHandle(forUpdatingAtPath: site.db))
        try file.seek(toOffset: UInt64((page - 1) * pageSize + 7))
        try file.write(contentsOf: Data([60]))
        try file.close()

        let verify = try site.keyadmin(["verify"])
        XCTAssertEqual(verify.status, 1, verify.stdout)
        XCTAssertTrue(verify.stdout.contains("\(site.db): integrity_check: Fragmentation of 0 bytes reported as 60 on page \(page)\n"), verify.stdout)
        XCTAssertTrue(verify.stdout.contains("\(site.db): foreign_key_check: unix.99999@example.org ffdhe2048: a key without its principal\n"), verify.stdout)
        XCTAssertTrue(verify.stdout.hasSuffix("302 principals, 302 keys, 2 problems\n"), verify.stdout)
        let initCheck = try site.keyadmin(["init"])
        XCTAssertEqual(initCheck.status, 1, initCheck.stdout)
        XCTAssertTrue(initCheck.stderr.contains("is damaged"), initCheck.stderr)
        XCTAssertFalse(initCheck.stdout.contains("ready"), initCheck.stdout)
    }
}
