// keyserverd against clients nobody here wrote (libtirpc's key_* functions, which find it
// through a real rpcbind), the isolation between uids (setpriv), keylogin → keyserver →
// keylogout for a user made with keyadmin, the root key across restarts, and bad input.

import Foundation
import KeyCrypto
import KeyServer
import NIOCore
import NIOPosix
import ONCRPC
import XCTest

final class KeyServerInteropTests: XCTestCase {
    // vectors.md §3-4
    let alice = "053346dd92b7562f80e5431672a175aeb567818bab69c742"
    let alicePublic = "b48fa79715f69ba0753524064a5c870c420ade8a4985f154"
    let bob = "1d3c043748cab5dac980040b71efd18e260d3f2caa4db5d4"
    let bobPublic = "8e0b2820f8a2f8723516d436dbd385d969236ab58d1ee6c6"

    private var work: URL!

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("ks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        chmod(work.path, 0o755)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: work)
    }

    private func asUser(_ uid: Int, _ command: [String]) -> [String] {
        ["setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups"] + command
    }

    func testLibtirpcKeyFunctionsAgainstKeyserverdAndUidIsolation() async throws {
        let sandbox = try RPCBindSandbox()
        defer { Task { await sandbox.stop() } }
        let keyclient = try Peers.cPeers().appendingPathComponent("keyclient").path
        let daemon = BackgroundProcessInside(sandbox, [Peers.productPath("keyserverd"), "--socket", "/run/keyservsock",
                                                       "--root-key", work.appendingPathComponent("none").path, "--log-level", "notice"])
        _ = try daemon.start(readyMarker: "ready")
        defer { daemon.stop(signal: SIGTERM) }
        func run(_ uid: Int, _ args: [String]) throws -> String {
            let out = try sandbox.run(asUser(uid, [keyclient] + args))
            return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        // Alice (uid 1001) and Bob (uid 1002) log their secrets in through key_setsecret.
        XCTAssertEqual(try run(1001, ["set", alice]), "ok")
        XCTAssertEqual(try run(1002, ["set", bob]), "ok")
        XCTAssertEqual(try run(1001, ["isset"]), "yes")
        XCTAssertEqual(try run(1003, ["isset"]), "no")

        // The conversation key wrapped by Alice for Bob is vectors.md §4's, and Bob unwraps it.
        XCTAssertEqual(try run(1001, ["encrypt", "unix.server@example.com", bobPublic, "3b5d7f1002345779"]), "371fc957f1dd4736")
        XCTAssertEqual(try run(1002, ["decrypt", "unix.1001@example.com", alicePublic, "371fc957f1dd4736"]), "3b5d7f1002345779")
        // Both derive the same DES key: vectors.md §3.
        XCTAssertEqual(try run(1001, ["conv", bobPublic]), "3461762531250823")
        XCTAssertEqual(try run(1002, ["conv", alicePublic]), "3461762531250823")
        let generated = try run(1003, ["gendes"])
        XCTAssertEqual(generated.count, 16)
        for i in stride(from: 0, to: 16, by: 2) {
            let byte = UInt8(generated.dropFirst(i).prefix(2), radix: 16)!
            XCTAssertEqual(byte.nonzeroBitCount % 2, 1, "KEY_GEN keys have Sun parity")
        }

        // Isolation: a uid without a key cannot use anyone's; claiming another uid is refused.
        XCTAssertEqual(try run(1003, ["encrypt", "unix.x@example.com", bobPublic, "3b5d7f1002345779"]), "failed")
        XCTAssertEqual(try run(1002, ["spoof", "/run/keyservsock", "1001"]), "autherror 5", "AUTH_SYS uid ≠ socket uid: AUTH_TOOWEAK")
        XCTAssertEqual(try run(1001, ["spoof", "/run/keyservsock", "1001"]), "answered status 0", "its own uid is fine")
        // Bob clearing "his" key (key_setsecret of zeros) removes only his.
        XCTAssertEqual(try run(1002, ["set", String(repeating: "0", count: 48)]), "ok")
        XCTAssertEqual(try run(1002, ["isset"]), "no")
        XCTAssertEqual(try run(1001, ["isset"]), "yes")
        XCTAssertEqual(try run(1001, ["conv", bobPublic]), "3461762531250823")
    }

    func testKeyloginKeylogoutAndRootKeyAcrossRestart() async throws {
        let bin = { Peers.productPath($0) }
        let db = work.appendingPathComponent("keys.db").path
        let socket = work.appendingPathComponent("keyservsock").path
        let rootKey = work.appendingPathComponent("rootkey").path
        let passwordFile = work.appendingPathComponent("pw").path
        try "user-pw\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Command.run([bin("keyadmin"), "init", "--db", db]).status, 0)
        for (who, extra) in [("4242", ["--user", "4242", "--mechanism", "ffdhe2048"]), ("0", ["--user", "0", "--mechanism", "ffdhe3072"])] {
            // One password for both keys, as this test's keylogin gives one (keyadmin warns).
            let made = try Command.run([bin("keyadmin"), "newkey", "--db", db, "--domain", "example.org", "--mechanism", "dh192-des",
                                        "--password-file", passwordFile, "--legacy-shares-password"] + extra)
            XCTAssertEqual(made.status, 0, "\(who): \(made.stderr)")
        }
        chmod(db, 0o644)
        var daemon = try BackgroundProcess([bin("keyserverd"), "--socket", socket, "--root-key", rootKey, "--no-rpcbind", "--log-level", "info"],
                                           readyMarker: "ready")

        // A user logs in with the password; the keyserver holds exactly the directory's key.
        let login = try Command.run(["bash", "-c", "echo user-pw | " + asUser(4242, [bin("keylogin"), "--db", db, "--netname", "unix.4242@example.org",
                                                                                     "--socket", socket, "--password-stdin"]).joined(separator: " ")])
        XCTAssertEqual(login.status, 0, login.stderr)
        XCTAssertTrue(login.stdout.contains("unix.4242@example.org logged in"), login.stdout)
        let asRootFor4242 = try KeyServerClient(socketPath: socket, uid: 4242)
        guard case let .keySuccess(keys) = try await asRootFor4242.perform({ try await $0.keyNetGet() }) else { return XCTFail("no key") }
        XCTAssertEqual(keys.stNetname, "unix.4242@example.org")
        XCTAssertTrue(login.stdout.contains("dh192-des, ffdhe2048") || login.stdout.contains("ffdhe2048, dh192-des"), login.stdout)
        guard case let .keySuccess(strongPublic) = try await asRootFor4242.performStrong({ try await $0.keyxPublic(.keyxFfdhe2048) }) else {
            return XCTFail("no strong key")
        }
        let listed = try Command.run([bin("keyadmin"), "show", "--db", db, "unix.4242@example.org"])
        XCTAssertTrue(listed.stdout.contains(strongPublic.map { String(format: "%02x", $0) }.joined()), "the keyserver holds the directory's ffdhe2048 key")
        let wrong = try Command.run(["bash", "-c", "echo nope | " + asUser(4242, [bin("keylogin"), "--db", db, "--netname", "unix.4242@example.org",
                                                                                  "--socket", socket, "--password-stdin"]).joined(separator: " ")])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertEqual(wrong.stderr, "keylogin: wrong password for unix.4242@example.org\n")
        let logout = try Command.run(asUser(4242, [bin("keylogout"), "--socket", socket]))
        XCTAssertEqual(logout.status, 0, logout.stderr)
        guard case .default(discriminant: .keyNosecret) = try await asRootFor4242.perform({ try await $0.keyNetGet() }) else { return XCTFail("still there") }
        guard case .default(discriminant: .keyNosecret) = try await asRootFor4242.performStrong({ try await $0.keyxPublic(.keyxFfdhe2048) }) else {
            return XCTFail("strong key still there")
        }
        await asRootFor4242.close()

        // keylogin -r stores the host key; it survives a keyserverd restart.
        let rootLogin = try Command.run(["bash", "-c", "echo user-pw | \(bin("keylogin")) -r --db \(db) --netname unix.0@example.org --socket \(socket) --root-key-file \(rootKey) --password-stdin"])
        XCTAssertEqual(rootLogin.status, 0, rootLogin.stderr)
        var info = stat()
        XCTAssertEqual(stat(rootKey, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600, "the root key file is root-only")
        daemon.stop(signal: SIGTERM)
        XCTAssertEqual(daemon.process.terminationStatus, 0, daemon.log)
        daemon = try BackgroundProcess([bin("keyserverd"), "--socket", socket, "--root-key", rootKey, "--no-rpcbind"], readyMarker: "ready")
        defer { daemon.stop(signal: SIGTERM) }
        XCTAssertTrue(daemon.log.contains("loaded the host's root key"), daemon.log)
        XCTAssertTrue(daemon.log.contains("groups=dh192-des, ffdhe3072"), daemon.log)
        let root = try KeyServerClient(socketPath: socket, uid: 0)
        guard case .keySuccess = try await root.perform({ try await $0.keyNetGet() }) else { return XCTFail("root key lost across restart") }
        // The host's RPCSEC_GSS key (ffdhe3072) came back too, the same as in the directory.
        guard case let .keySuccess(rootStrong) = try await root.performStrong({ try await $0.keyxPublic(.keyxFfdhe3072) }) else {
            return XCTFail("root's ffdhe3072 key lost across restart")
        }
        let rootListed = try Command.run([bin("keyadmin"), "show", "--db", db, "unix.0@example.org"])
        XCTAssertTrue(rootListed.stdout.contains(rootStrong.map { String(format: "%02x", $0) }.joined()), rootListed.stdout)
        await root.close()
    }

    func testStrongExtensionDerivesTheSameKssForBothSidesAndNoRawSecret() async throws {
        let socket = work.appendingPathComponent("keyservsock").path
        let daemon = try BackgroundProcess([Peers.productPath("keyserverd"), "--socket", socket, "--root-key", work.appendingPathComponent("none").path,
                                            "--no-rpcbind", "--log-level", "critical"], readyMarker: "ready")
        defer { daemon.stop(signal: SIGTERM) }
        for group in [DHGroupName.ffdhe2048, .ffdhe3072] {
            let mechanism = StrongKeyStore.mechanism(group)!
            let alice = DHPrivateKey.generate(group: group), bob = DHPrivateKey.generate(group: group)
            let asAlice = try KeyServerClient(socketPath: socket, uid: 5001), asBob = try KeyServerClient(socketPath: socket, uid: 5002)
            let carol = try KeyServerClient(socketPath: socket, uid: 5003)
            for (client, key) in [(asAlice, alice), (asBob, bob)] {
                let status = try await client.performStrong { try await $0.keyxSet(KeyxSetArg(mechanism: mechanism, secret: key.secret.copyBytes(), netname: "x")) }
                XCTAssertEqual(status, .keySuccess)
            }
            let info = Array("client=alice server=bob".utf8)
            let fromAlice = try await asAlice.performStrong { try await $0.keyxDerive(KeyxDeriveArg(mechanism: mechanism, peer: bob.publicKey.bytes, info: info)) }
            let fromBob = try await asBob.performStrong { try await $0.keyxDerive(KeyxDeriveArg(mechanism: mechanism, peer: alice.publicKey.bytes, info: info)) }
            guard case let .keySuccess(k1) = fromAlice, case let .keySuccess(k2) = fromBob else { return XCTFail("\(fromAlice) \(fromBob)") }
            XCTAssertEqual(k1, k2, "\(group): both keyservers derive the same K_ss")
            XCTAssertEqual(k1.count, 32)
            // It is HKDF of the DH value, not the DH value itself.
            let expected = StrongCrypto.hkdf(inputKeyMaterial: try alice.sharedSecret(with: bob.publicKey), salt: StrongKeyStore.salt, info: info, outputByteCount: 32)
            XCTAssertEqual(k1, expected.copyBytes())
            let otherUse = try await asAlice.performStrong { try await $0.keyxDerive(KeyxDeriveArg(mechanism: mechanism, peer: bob.publicKey.bytes, info: Array("other".utf8))) }
            guard case let .keySuccess(k3) = otherUse else { return XCTFail() }
            XCTAssertNotEqual(k1, k3, "info binds the key to its use")
            // Carol has no key; a malformed peer key is refused.
            let none = try await carol.performStrong { try await $0.keyxDerive(KeyxDeriveArg(mechanism: mechanism, peer: bob.publicKey.bytes, info: info)) }
            XCTAssertEqual(none, .default(discriminant: .keyNosecret))
            let bad = try await asAlice.performStrong { try await $0.keyxDerive(KeyxDeriveArg(mechanism: mechanism, peer: [1], info: info)) }
            XCTAssertEqual(bad, .default(discriminant: .keyUnknown))
            _ = try await asAlice.performStrong { try await $0.keyxClear() }
            let cleared = try await asAlice.performStrong { try await $0.keyxDerive(KeyxDeriveArg(mechanism: mechanism, peer: bob.publicKey.bytes, info: info)) }
            XCTAssertEqual(cleared, .default(discriminant: .keyNosecret), "logged out: nothing derived, not even from the cache")
            for client in [asAlice, asBob, carol] { await client.close() }
        }
    }

    /// KEYX_DERIVE_LEASED answers with keyserverd's --kss-lease (30 s unless told), the same
    /// K_ss as KEYX_DERIVE; a lease past the longest is refused at start, in words.
    func testKeyserverdGrantsTheKssLeaseItWasGiven() async throws {
        let refused = try Command.run([Peers.productPath("keyserverd"), "--kss-lease", "4000", "--no-rpcbind"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("--kss-lease 4000: at most 3600 seconds (0 turns leases off)"), refused.stderr)
        let group = DHGroupName.ffdhe2048, mechanism = StrongKeyStore.mechanism(.ffdhe2048)!
        let mine = DHPrivateKey.generate(group: group), peer = DHPrivateKey.generate(group: group)
        for (flags, expected) in [([String](), UInt32(30)), (["--kss-lease", "0"], 0), (["--kss-lease", "5"], 5)] {
            let socket = work.appendingPathComponent("keyservsock").path
            let daemon = try BackgroundProcess([Peers.productPath("keyserverd"), "--socket", socket, "--root-key", work.appendingPathComponent("none").path,
                                                "--no-rpcbind", "--log-level", "critical"] + flags, readyMarker: "ready")
            defer { daemon.stop(signal: SIGTERM) }
            let client = try KeyServerClient(socketPath: socket, uid: 5001)
            _ = try await client.performStrong { try await $0.keyxSet(KeyxSetArg(mechanism: mechanism, secret: mine.secret.copyBytes(), netname: "x")) }
            let argument = KeyxDeriveArg(mechanism: mechanism, peer: peer.publicKey.bytes, info: Array("lease".utf8))
            let leased = try await client.performStrong { try await $0.keyxDeriveLeased(argument) }
            let plain = try await client.performStrong { try await $0.keyxDerive(argument) }
            guard case let .keySuccess(lease) = leased, case let .keySuccess(key) = plain else { return XCTFail("\(leased) \(plain)") }
            XCTAssertEqual(lease.seconds, expected, "\(flags)")
            XCTAssertEqual(lease.key, key)
            await client.close()
        }
    }

    func testBadInputLeavesTheKeyserverServing() async throws {
        let socket = work.appendingPathComponent("keyservsock").path
        let daemon = try BackgroundProcess([Peers.productPath("keyserverd"), "--socket", socket, "--root-key", work.appendingPathComponent("none").path,
                                            "--no-rpcbind", "--log-level", "critical"], readyMarker: "ready")
        defer { daemon.stop(signal: SIGTERM) }
        let address = try SocketAddress(unixDomainSocketPath: socket)
        // 1,000 idle connections, garbage, and a record header far over the bound.
        var idle: [any Channel] = []
        while idle.count < 1000 {
            do {
                idle.append(try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(to: address).get())
            } catch {
                // A full listen backlog answers EAGAIN on unix sockets: let the server accept.
                try await Task.sleep(nanoseconds: 2_000_000)
            }
        }
        let garbage = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(to: address).get()
        try await garbage.writeAndFlush(ByteBuffer(bytes: [0x80, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]))
        let huge = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(to: address).get()
        try await huge.writeAndFlush(ByteBuffer(bytes: [0x7f, 0xff, 0xff, 0xff]))
        try await huge.closeFuture.get()   // the server hangs up on it

        let client = try KeyServerClient(socketPath: socket, uid: 77)
        let status = try await client.perform { try await $0.keySet(Array(alice.utf8)) }
        XCTAssertEqual(status, .keySuccess)
        guard case let .keySuccess(block) = try await client.perform({ try await $0.keyGetConv(Array(bobPublic.utf8)) }) else { return XCTFail() }
        XCTAssertEqual(block.map { String(format: "%02x", $0) }.joined(), "3461762531250823")
        await client.close()
        for channel in idle + [garbage] { try? await channel.close() }
    }
}
