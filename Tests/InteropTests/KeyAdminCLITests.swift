// keyadmin as an administrator runs it, against the traps of issue 14 (items 1, 5, 7-10)
// and issue 12 (items 10, 11): the real executables (keyadmin, keylogin, keyserverd) in a
// temporary directory, scripted through password files and stdin, never a terminal unless
// `script` gives them one.

import Foundation
import KeyCrypto
import XCTest

final class KeyAdminCLITests: XCTestCase {
    private var site: KeyAdminSite!

    override func setUpWithError() throws {
        site = try KeyAdminSite("keyadmin")
        try site.ok(["init"])
        try site.file("A", "password-A\n")
        try site.file("B", "password-B\n")
        try site.file("L", "legacy-password\n")
    }

    override func tearDown() {
        site.remove()
    }

    // MARK: 14.1 adding a mechanism

    /// Adding a mechanism seals the new key under the password that opens the others, or
    /// re-seals everything under a new one; never the new key alone under whatever was typed.
    func testAddingAMechanismNeverLocksTheUserOut() throws {
        let user = site.netname(5001)
        try site.ok(["newkey", "--user", "5001", "--domain", site.domain, "--mechanism", "ffdhe2048", "--password-file", site.path("A")])
        let before = try site.keys(5001)

        // A new password alone is not enough: the current one must be proven first.
        let unproven = try site.keyadmin(["chkey", user, "--mechanism", "ffdhe3072", "--password-file", site.path("B")])
        XCTAssertNotEqual(unproven.status, 0, "chkey sealed a new key without proving the current password")
        XCTAssertTrue(unproven.stderr.contains("--old-password-file"), unproven.stderr)
        XCTAssertEqual(try site.keys(5001).keys.sorted(), ["ffdhe2048"], "nothing was changed")

        // A wrong current password changes nothing.
        let wrong = try site.keyadmin(["chkey", user, "--mechanism", "ffdhe3072", "--old-password-file", site.path("B")])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertEqual(wrong.stderr, "keyadmin: wrong password for \(user); nothing was changed\n")

        // The current password proven: the new key is sealed under it.
        try site.ok(["chkey", user, "--mechanism", "ffdhe3072", "--old-password-file", site.path("A")])
        // The current password proven, and a new one given: everything is re-sealed under it.
        try site.ok(["chkey", user, "--mechanism", "ffdhe4096", "--old-password-file", site.path("A"), "--password-file", site.path("B")])
        let after = try site.keys(5001)
        XCTAssertEqual(after.keys.sorted(), ["ffdhe2048", "ffdhe3072", "ffdhe4096"])
        XCTAssertEqual(after["ffdhe2048"]?.publicKey, before["ffdhe2048"]?.publicKey, "same key pair, new password")

        let keyserver = try site.keyserver()
        defer { keyserver.stop() }
        let login = try site.keylogin(5001, ["password-B"])
        XCTAssertEqual(login.status, 0, "keylogin with the user's password opens every key: \(login.stderr)")
        XCTAssertTrue(login.stdout.contains("ffdhe2048, ffdhe3072, ffdhe4096"), login.stdout)
        XCTAssertEqual(try site.keylogin(5001, ["password-A"]).status, 1, "the old password opens nothing")
        let verify = try site.ok(["verify"])
        XCTAssertTrue(verify.stdout.hasSuffix("1 principals, 3 keys, 0 problems\n"), verify.stdout)
    }

    /// verify sees, from the password tags, keys of one principal sealed under different
    /// passwords (as an older keyadmin left them), and chkey --rotate repairs the odd one.
    func testVerifySeesKeysSealedUnderDifferentPasswords() throws {
        let (victim, donor) = (site.netname(5002), site.netname(5003))
        try site.ok(["newkey", "--user", "5002", "--domain", site.domain, "--mechanism", "ffdhe2048", "--password-file", site.path("A")])
        try site.ok(["newkey", "--user", "5003", "--domain", site.domain, "--mechanism", "ffdhe3072", "--password-file", site.path("B")])
        XCTAssertTrue(try site.ok(["verify"]).stdout.hasSuffix("0 problems\n"))
        // What the old chkey made: a key of the victim sealed under another password.
        try site.sqlite("""
            INSERT INTO key_entry (netname, mechanism, public_key, sealed_secret, state, created_at, rotated_at, password_tag)
            SELECT '\(victim)', mechanism, public_key, sealed_secret, state, created_at, rotated_at, password_tag
            FROM key_entry WHERE netname = '\(donor)'
            """)
        let verify = try site.keyadmin(["verify"])
        XCTAssertEqual(verify.status, 1)
        XCTAssertTrue(verify.stdout.contains("\(victim): keys sealed under different passwords (ffdhe2048 vs ffdhe3072)"), verify.stdout)
        XCTAssertTrue(verify.stdout.hasSuffix("2 principals, 3 keys, 1 problems\n"), verify.stdout)

        // chkey with the victim's password names the odd key; --rotate of it repairs.
        let refused = try site.keyadmin(["chkey", victim, "--old-password-file", site.path("A"), "--password-file", site.path("B")])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("opens ffdhe2048 but not ffdhe3072"), refused.stderr)
        try site.ok(["chkey", victim, "--rotate", "--mechanism", "ffdhe3072", "--old-password-file", site.path("A")])
        XCTAssertTrue(try site.ok(["verify"]).stdout.hasSuffix("0 problems\n"))
    }

    // MARK: 14.5 a mistyped --db

    func testOnlyInitCreatesADatabase() throws {
        let typo = site.path("typo/keys.db")
        let domain = ["--domain", site.domain]
        for command in [["list"], ["show", "5001"] + domain, ["verify"], ["audit"], ["export"], ["revoke", "5001"] + domain,
                        ["enable", "5001"] + domain, ["remove", "5001", "--yes"] + domain, ["chkey", "5001"] + domain,
                        ["import", site.path("A")], ["newkey", "--user", "5001", "--password-file", site.path("A")] + domain] {
            let run = try site.keyadmin(command + ["--db", typo])
            XCTAssertEqual(run.status, 1, "\(command[0]) exit status")
            XCTAssertEqual(run.stderr, "keyadmin: no key directory at \(typo) (keyadmin init creates one)\n", command[0])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: site.path("typo")), "nothing was created")
        // A file that is not a key directory is not made one either.
        let empty = try site.file("empty.db", "")
        let list = try site.keyadmin(["list", "--db", empty])
        XCTAssertEqual(list.stderr, "keyadmin: \(empty) is not a key directory (keyadmin init creates one)\n")
        let newkey = try site.keyadmin(["newkey", "--user", "1", "--domain", site.domain, "--db", empty, "--password-file", site.path("A")])
        XCTAssertEqual(newkey.stderr, "keyadmin: \(empty) is not a key directory (keyadmin init creates one)\n")
        // init creates, with its directories.
        let made = try site.keyadmin(["init", "--db", typo])
        XCTAssertEqual(made.status, 0, made.stderr)
        XCTAssertEqual(made.stdout, "\(typo): ready, 0 principals\n")
    }

    // MARK: 14.7 errors in words

    /// Every error path an administrator meets: one line, naming the thing and the way out,
    /// with no Swift type name, coding key dump or errno tuple.
    func testErrorsAreOneLineInWords() throws {
        try site.ok(["newkey", "--user", "5004", "--domain", site.domain, "--mechanism", "ffdhe2048", "--password-file", site.path("A")])
        let exported = try JSONSerialization.jsonObject(with: Data(try site.ok(["export", "--format", "json"]).stdout.utf8)) as! [String: Any]
        func edited(_ name: String, _ change: (inout [String: Any]) -> Void) throws -> String {
            var document = exported
            change(&document)
            return try site.file(name, String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self))
        }
        let missingKey = try edited("missing.json") { $0["principals"] = nil }
        let badMechanism = try edited("mechanism.json") { document in
            var principals = document["principals"] as! [[String: Any]]
            var keys = principals[0]["keys"] as! [[String: Any]]
            keys[0]["mechanism"] = "ffdhe9999"
            principals[0]["keys"] = keys
            document["principals"] = principals
        }
        let wrongType = try edited("type.json") { $0["version"] = "one" }
        let notJSON = try site.file("garbage.json", "this is not json")
        let emptyPassword = try site.file("empty-pw", "\n")
        let cases: [(arguments: [String], expected: String)] = [
            (["import", missingKey], "missing.json: not a directory JSON export: \"principals\" is missing at the top level; nothing was imported"),
            (["import", badMechanism], "principals[0].keys[0].mechanism should be one of dh192-des, ffdhe2048, ffdhe3072, ffdhe4096"),
            (["import", wrongType], "version should be a number"),
            (["import", notJSON], "garbage.json: not a directory JSON export: not valid JSON; nothing was imported"),
            (["import", site.path("nothing-here")], "cannot read \(site.path("nothing-here")) (No such file or directory); nothing was imported"),
            (["chkey", site.netname(5004), "--password-file", site.path("B")], "no terminal to ask for the current password of \(site.netname(5004)): use --old-password-file FILE"),
            (["chkey", site.netname(5004)], "use --old-password-file FILE"),
            (["show", site.netname(7777)], "no principal \(site.netname(7777))"),
            (["show", "no-such-user-here", "--domain", site.domain], "no user \"no-such-user-here\" on this host: give a netname"),
            (["revoke", "unix.a@b@c"], "invalid netname \"unix.a@b@c\""),
            (["revoke", site.netname(5004), "--mechanism", "ffdhe1"], "ffdhe1"),
            (["export", "-o", site.path("no/such/dir/out.json")], "cannot write \(site.path("no/such/dir/out.json"))"),
            (["newkey", "--user", "5005", "--domain", site.domain, "--password-file", emptyPassword], "is empty; nothing was changed (--allow-empty-password"),
            (["newkey", "--user", "5005", "--domain", site.domain, "--password-file", site.path("nothing-here")], "cannot read the password file"),
            (["frobnicate"], "(keyadmin help for usage)"),
            (["list", "--no-such-option"], "(keyadmin help for usage)"),
        ]
        let forbidden = ["DecodingError", "CodingKeys", "Debug description", "debugDescription", "errno:", "Swift.", "KeyDirectory.",
                         "KeyCrypto.", "DirectoryError", "Failure(", "NSError", "CocoaError", "Optional(", "Error Domain", "underlyingError"]
        for (arguments, expected) in cases {
            let run = try site.keyadmin(arguments)
            let name = arguments.joined(separator: " ")
            XCTAssertNotEqual(run.status, 0, name)
            XCTAssertTrue(run.stderr.hasPrefix("keyadmin: "), "\(name): \(run.stderr)")
            XCTAssertEqual(run.stderr.filter { $0 == "\n" }.count, 1, "one line: \(name): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(expected), "\(name): \(run.stderr)")
            for word in forbidden { XCTAssertFalse(run.stderr.contains(word), "\(name) shows \(word): \(run.stderr)") }
        }
        XCTAssertNil(try site.keys(5004)["ffdhe3072"], "nothing was changed by the failed commands")
    }

    /// A publickey file with CRLF line endings imports as its LF twin does.
    func testPublicKeyFilesWithCRLFLineEndings() throws {
        let lines = try (1...3).map { i -> String in
            let key = DHPrivateKey.generate(group: .dh192des)
            return "unix.\(6000 + i)@\(site.domain) \(key.publicKey.hex):\(try XCrypt.encryptSecret(key, password: SecretBytes(copying: Array("pw".utf8))))"
        }
        let file = try site.file("crlf.publickey", "# from a Windows share\r\n" + lines.joined(separator: "\r\n") + "\r\n")
        let run = try site.ok(["import", file])
        XCTAssertTrue(run.stdout.contains("3 added"), run.stdout)
        XCTAssertEqual(try site.ok(["export"]).stdout, lines.sorted().joined(separator: "\n") + "\n")
    }

    // MARK: 14.8 remove and enable

    func testRemoveAsksOnATerminalAndWantsYesFromAScript() throws {
        let user = site.netname(5006)
        try site.ok(["newkey", "--user", "5006", "--domain", site.domain, "--mechanism", "ffdhe2048", "--password-file", site.path("A")])
        let scripted = try site.keyadmin(["remove", user])
        XCTAssertEqual(scripted.status, 1)
        XCTAssertEqual(scripted.stderr, """
            keyadmin: remove deletes \(user) and its ffdhe2048 keys for good: add --yes to confirm (there is no terminal to ask on); \
            nothing was removed

            """)
        XCTAssertNotNil(try site.keys(5006)["ffdhe2048"])

        // On a terminal (script(1) gives it one): "n" keeps it, "y" removes it.
        let command = "\(Peers.productPath("keyadmin")) remove \(user) --db \(site.db)"
        let no = try site.run(["script", "-qec", command, "/dev/null"], stdin: "n\n")
        XCTAssertTrue(no.stdout.contains("Remove \(user) and its ffdhe2048 keys for good?"), no.stdout)
        XCTAssertTrue(no.stdout.contains("was not removed"), no.stdout)
        XCTAssertNotNil(try site.keys(5006)["ffdhe2048"])
        let yes = try site.run(["script", "-qec", command, "/dev/null"], stdin: "y\n")
        XCTAssertTrue(yes.stdout.contains("\(user): removed"), yes.stdout)
        XCTAssertEqual(try site.keyadmin(["show", user]).stderr, "keyadmin: no principal \(user)\n")

        try site.ok(["newkey", "--user", "5007", "--domain", site.domain, "--mechanism", "ffdhe2048", "--password-file", site.path("A")])
        try site.ok(["remove", site.netname(5007), "--yes"])
        XCTAssertEqual(try site.ok(["audit", "--json"]).stdout.components(separatedBy: "\"remove\"").count - 1, 2)
    }

    /// A revoked key comes back only through `enable`: a rotation or a new password keeps
    /// it revoked.
    func testOnlyEnableUndoesARevocation() throws {
        let user = site.netname(5008)
        try site.ok(["newkey", "--user", "5008", "--domain", site.domain, "--mechanism", "ffdhe2048", "--password-file", site.path("A")])
        try site.ok(["revoke", user])
        let before = try site.keys(5008)["ffdhe2048"]!
        try site.ok(["chkey", user, "--rotate", "--password-file", site.path("B")])
        let rotated = try site.keys(5008)["ffdhe2048"]!
        XCTAssertNotEqual(rotated.publicKey, before.publicKey, "a new key pair")
        XCTAssertEqual(rotated.state, "revoked", "rotation does not re-enable")
        try site.ok(["chkey", user, "--old-password-file", site.path("B"), "--password-file", site.path("A")])
        XCTAssertEqual(try site.keys(5008)["ffdhe2048"]?.state, "revoked", "a new password does not re-enable")
        let enabled = try site.ok(["enable", user])
        XCTAssertEqual(enabled.stdout, "\(user): all keys enabled\n")
        XCTAssertEqual(try site.keys(5008)["ffdhe2048"]?.state, "active")
        let audit = try site.ok(["audit"]).stdout
        XCTAssertTrue(audit.contains("  revoke  \(user)"), audit)
        XCTAssertTrue(audit.contains("  enable  \(user)"), audit)
    }

    // MARK: 14.9 who did it

    func testAuditNamesTheInvokingUserAndEachImportedPrincipal() throws {
        let made = try site.keyadmin(["newkey", "--user", "5009", "--domain", site.domain, "--mechanism", "ffdhe2048", "--password-file", site.path("A")],
                                     environment: ["SUDO_USER": "alice", "SUDO_UID": "1000"])
        XCTAssertEqual(made.status, 0, made.stderr)
        // The kernel's login uid, when this machine lets root set it (CAP_AUDIT_CONTROL).
        let loginSet = try site.run(["bash", "-c", "echo 4321 > /proc/self/loginuid && exec \(Peers.productPath("keyadmin")) revoke \(site.netname(5009)) --db \(site.db)"])
        let lines = (1...3).map { i -> String in
            let key = DHPrivateKey.generate(group: .dh192des)
            return "unix.\(6100 + i)@\(site.domain) \(key.publicKey.hex):\(try! XCrypt.encryptSecret(key, password: SecretBytes(copying: Array("x".utf8))))"
        }
        try site.ok(["import", try site.file("three.publickey", lines.joined(separator: "\n"))])

        XCTAssertTrue(try site.ok(["audit"]).stdout.contains("root (uid 0) via sudo by alice  newkey  \(site.netname(5009))"))
        let events = try JSONSerialization.jsonObject(with: Data(try site.ok(["audit", "--json"]).stdout.utf8)) as! [[String: Any]]
        let newkey = try XCTUnwrap(events.first { $0["action"] as? String == "newkey" })
        XCTAssertEqual(newkey["actor"] as? String, "root (uid 0)")
        XCTAssertEqual(newkey["sudoUser"] as? String, "alice")
        if loginSet.status == 0 {
            let revoke = try XCTUnwrap(events.first { $0["action"] as? String == "revoke" })
            XCTAssertEqual(revoke["loginUID"] as? Int, 4321)
            XCTAssertNil(revoke["sudoUser"])
            XCTAssertTrue(try site.ok(["audit"]).stdout.contains("root (uid 0), login uid 4321  revoke"))
        }
        let imports = events.filter { $0["action"] as? String == "import" }
        XCTAssertEqual(imports.compactMap { $0["netname"] as? String }.sorted(), (1...3).map { site.netname(6100 + $0) })
        XCTAssertEqual(imports.count, 4, "one row per principal and the summary")
    }

    // MARK: 14.10 little things

    func testBareUIDsNamesPatternsJSONAndEmptyPasswords() throws {
        try site.ok(["newkey", "--user", "5010", "--user", "0", "--user", "5110", "--domain", site.domain, "--mechanism", "ffdhe2048",
                     "--password-file", site.path("A")])
        // A uid or a user name of this host means the local domain's user netname.
        XCTAssertEqual(try site.ok(["show", "5010", "--domain", site.domain, "--json"]).stdout.contains("\"netname\" : \"\(site.netname(5010))\""), true)
        XCTAssertTrue(try site.ok(["show", "root", "--domain", site.domain]).stdout.hasPrefix("netname:  \(site.netname(0))\n"))
        try site.ok(["revoke", "5110", "--domain", site.domain, "--mechanism", "ffdhe2048"])
        try site.ok(["chkey", "5110", "--domain", site.domain, "--old-password-file", site.path("A"), "--password-file", site.path("B")])
        // list takes a shell pattern (netname or name).
        let listed = try site.ok(["list", "unix.5*"]).stdout.split(separator: "\n").dropFirst().map { String($0.prefix { $0 != " " }) }
        XCTAssertEqual(listed, [site.netname(5010), site.netname(5110)])
        XCTAssertEqual(try site.ok(["list", "0"]).stdout.split(separator: "\n").count, 2, "a name matches too")
        // An empty password needs saying so.
        let empty = try site.file("empty", "\n")
        XCTAssertEqual(try site.keyadmin(["newkey", "--user", "5011", "--domain", site.domain, "--password-file", empty]).status, 1)
        XCTAssertEqual(try site.keyadmin(["chkey", "5010", "--domain", site.domain, "--old-password-file", site.path("A"), "--password-file", empty]).status, 1)
        try site.ok(["newkey", "--user", "5011", "--domain", site.domain, "--mechanism", "ffdhe2048", "--password-file", empty, "--allow-empty-password"])
    }

    // MARK: 12.10 the legacy key's password

    /// The dh192-des key is made only when asked for, and never silently under the strong
    /// keys' password; keylogin opens it with its own password (a second line) and still
    /// loads the strong keys without it.
    func testTheLegacyKeyHasItsOwnPassword() throws {
        let user = site.netname(5012)
        let both = ["newkey", "--user", "5012", "--domain", site.domain, "--mechanism", "ffdhe2048", "--mechanism", "dh192-des", "--password-file", site.path("A")]
        let silent = try site.keyadmin(both)
        XCTAssertEqual(silent.status, 1, "a dh192-des key under the strong keys' password without a word")
        XCTAssertTrue(silent.stderr.contains("needs a password of its own: --legacy-password-file FILE, or --legacy-shares-password"), silent.stderr)
        let same = try site.keyadmin(both + ["--legacy-password-file", site.path("A")])
        XCTAssertEqual(same.status, 1)
        XCTAssertTrue(same.stderr.contains("is the strong keys' password"), same.stderr)
        XCTAssertEqual(try site.keyadmin(["show", user]).status, 1, "nothing was created")
        try site.ok(both + ["--legacy-password-file", site.path("L")])
        // Not asked for, not made.
        try site.ok(["newkey", "--user", "5013", "--domain", site.domain, "--password-file", site.path("A")])
        XCTAssertEqual(try site.keys(5013).keys.sorted(), ["ffdhe3072"])

        let keyserver = try site.keyserver()
        defer { keyserver.stop() }
        let full = try site.keylogin(5012, ["password-A", "legacy-password"])
        XCTAssertEqual(full.status, 0, full.stderr)
        XCTAssertTrue(full.stdout.contains("ffdhe2048, dh192-des"), full.stdout)
        let strongOnly = try site.keylogin(5012, ["password-A"])
        XCTAssertEqual(strongOnly.status, 0, strongOnly.stderr)
        XCTAssertTrue(strongOnly.stdout.contains("(ffdhe2048)"), strongOnly.stdout)
        XCTAssertTrue(strongOnly.stderr.contains("the dh192-des key of \(user) has a password of its own and was not loaded"), strongOnly.stderr)
        XCTAssertEqual(try site.keylogin(5012, ["legacy-password"]).status, 1, "the legacy password does not open the strong keys")

        // A new strong password leaves the legacy key's alone; it may not become the legacy one.
        try site.ok(["chkey", user, "--old-password-file", site.path("A"), "--password-file", site.path("B")])
        XCTAssertEqual(try site.keylogin(5012, ["password-B", "legacy-password"]).status, 0)
        let clash = try site.keyadmin(["chkey", user, "--old-password-file", site.path("B"), "--password-file", site.path("L")])
        XCTAssertEqual(clash.status, 1)
        XCTAssertTrue(clash.stderr.contains("is its dh192-des key's password"), clash.stderr)
        let legacyClash = try site.keyadmin(["chkey", user, "--mechanism", "dh192-des", "--old-password-file", site.path("L"), "--password-file", site.path("B")])
        XCTAssertEqual(legacyClash.status, 1)
        XCTAssertTrue(legacyClash.stderr.contains("that is the password of the strong keys"), legacyClash.stderr)

        // Sharing is possible, said out loud, and verify keeps saying it.
        let shared = try site.keyadmin(["newkey", "--user", "5014", "--domain", site.domain, "--mechanism", "ffdhe2048", "--mechanism", "dh192-des",
                                        "--password-file", site.path("A"), "--legacy-shares-password"])
        XCTAssertEqual(shared.status, 0, shared.stderr)
        XCTAssertTrue(shared.stderr.contains("warning: the dh192-des key shares the strong keys' password"), shared.stderr)
        XCTAssertTrue(try site.ok(["verify"]).stdout.contains("\(site.netname(5014)): warning: the dh192-des key shares"))
        let sharedLogin = try site.keylogin(5014, ["password-A"])
        XCTAssertEqual(sharedLogin.status, 0, sharedLogin.stderr)
        XCTAssertTrue(sharedLogin.stdout.contains("ffdhe2048, dh192-des"), sharedLogin.stdout)
    }

    // MARK: 12.11 import never resurrects

    /// An old export imported again brings back neither a revoked key nor a rotated one;
    /// without --replace an existing principal is left as it is, and each one is reported.
    func testReimportingAnOldExportResurrectsNothing() throws {
        for uid in [5020, 5021] {
            try site.ok(["newkey", "--user", "\(uid)", "--domain", site.domain, "--mechanism", "ffdhe2048", "--password-file", site.path("A")])
        }
        let old = site.path("old.json")
        try site.ok(["export", "--format", "json", "-o", old])
        try site.ok(["revoke", site.netname(5020)])
        try site.ok(["chkey", site.netname(5021), "--rotate", "--password-file", site.path("B")])
        let revoked = try site.keys(5020)["ffdhe2048"]!, rotated = try site.keys(5021)["ffdhe2048"]!
        XCTAssertEqual(revoked.state, "revoked")

        let plain = try site.ok(["import", old])
        XCTAssertTrue(plain.stdout.contains("0 added, 0 replaced, 0 unchanged, 2 left as they were"), plain.stdout)
        XCTAssertTrue(plain.stderr.contains("\(site.netname(5020)): left as it is: the file has another ffdhe2048 key (--replace takes the file's keys)"), plain.stderr)
        XCTAssertEqual(try site.keys(5020)["ffdhe2048"]?.state, "revoked", "never resurrected")
        XCTAssertEqual(try site.keys(5021)["ffdhe2048"]?.publicKey, rotated.publicKey, "the rotated key stays")

        let replacing = try site.ok(["import", old, "--replace"])
        XCTAssertTrue(replacing.stderr.contains("\(site.netname(5020)) ffdhe2048: revoked here, stays revoked"), replacing.stderr)
        XCTAssertTrue(replacing.stderr.contains("\(site.netname(5021)): left as it is: the file has an older ffdhe2048 key than the one here"), replacing.stderr)
        XCTAssertEqual(try site.keys(5020)["ffdhe2048"]?.state, "revoked", "never resurrected, even with --replace")
        XCTAssertEqual(try site.keys(5021)["ffdhe2048"]?.publicKey, rotated.publicKey, "an older key never replaces a newer one")

        // A newer export replaces with --replace, and each changed principal is audited.
        try site.ok(["enable", site.netname(5020)])
        let other = KeyAdminSite(work: site.work.appendingPathComponent("other"), existing: true)
        try FileManager.default.createDirectory(at: other.work, withIntermediateDirectories: true)
        try other.ok(["init"])
        try other.ok(["import", old])
        try other.ok(["chkey", site.netname(5020), "--rotate", "--password-file", site.path("B")])
        try other.ok(["export", "--format", "json", "-o", site.path("new.json")])
        XCTAssertTrue(try site.ok(["import", site.path("new.json")]).stdout.contains("2 left as they were"))
        let taken = try site.ok(["import", site.path("new.json"), "--replace"])
        XCTAssertTrue(taken.stdout.contains("0 added, 1 replaced, 0 unchanged, 1 left as they were"), taken.stdout)
        XCTAssertEqual(try site.keys(5020)["ffdhe2048"]?.publicKey, try other.keys(5020)["ffdhe2048"]?.publicKey)
        let audit = try site.ok(["audit"]).stdout
        XCTAssertTrue(audit.contains("import  \(site.netname(5020))  ffdhe2048  replaced ffdhe2048 from"), audit)
    }
}

extension KeyAdminSite {
    /// Another site in an existing directory (for a second database).
    init(work: URL, existing: Bool) {
        self.work = work
    }
}
