// keydird's program against real keyservers and a real directory database, over loopback:
// lookups through the pinned directory key, who may have sealed keys, who may administer,
// audit under the proven name, the change feed reaching a host's cache and its observers,
// and a directory outage (serve-stale, then an error naming the directory).

import Foundation
import KeyCrypto
import KeyDirectory
import KeyDirectoryService
import KeyServer
import NIOCore
import NIOConcurrencyHelpers
import ONCRPC
import SecureRPC
import SiteConfig
import XCTest
import XDR

final class DirectoryServiceTests: XCTestCase {
    var site: DirectorySite!

    override func setUp() async throws {
        site = try await DirectorySite()
        try await site.start()
    }

    override func tearDown() async throws {
        await site.shutdown()
    }

    func testLookupsThroughThePinnedDirectoryKey() async throws {
        let client = site.client(as: DirectorySite.alice, service: .integrity)
        defer { Task { await client.close() } }
        let lookup = NetworkKeyLookup(directory: client)
        let admin = try await lookup.fetchPublicKey(netname: DirectorySite.admin.netname, mechanism: .ffdhe3072)
        XCTAssertEqual(admin?.hex, try site.store.publicKeyHex(netname: DirectorySite.admin.netname, mechanism: .ffdhe3072))
        let none = try await lookup.fetchPublicKey(netname: "unix.9999@site.example", mechanism: .ffdhe3072)
        XCTAssertNil(none)
        _ = try await lookup.fetchPublicKey(netname: DirectorySite.admin.netname, mechanism: .ffdhe3072)
        XCTAssertEqual(lookup.statistics.directoryLookups, 2)
        XCTAssertEqual(lookup.statistics.cacheHits, 1)
        XCTAssertEqual(site.gss?.statistics.contextsCreated, 1)
    }

    func testAHostWithTheWrongPinnedFingerprintRefusesToTalk() async throws {
        let wrong = DHPrivateKey.generate(group: .ffdhe3072).publicKey.fingerprint
        let client = site.client(as: DirectorySite.alice, site: site.site(fingerprint: wrong))
        do {
            _ = try await client.call { try await $0.kdLookup(KdLookupArg(netname: DirectorySite.admin.netname, mechanism: "ffdhe3072")) }
            XCTFail("a directory with another key was used")
        } catch let error as DirectoryClientError {
            guard case .fingerprintMismatch = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("did not present the pinned key \(wrong)"), "\(error)")
        }
        XCTAssertEqual(site.gss?.statistics.contextsCreated, 0, "no context was even attempted")
        await client.close()
    }

    func testSealedKeysGoOnlyToThePrincipalOrAnEnrolledHost() async throws {
        func fetch(_ who: (uid: UInt32, netname: String), _ target: String) async throws -> KdSealedRes {
            let client = site.client(as: who)
            defer { Task { await client.close() } }
            return try await client.call { try await $0.kdSealedKeys(target) }
        }
        guard case let .kdOk(own) = try await fetch(DirectorySite.alice, DirectorySite.alice.netname) else { return XCTFail("own keys refused") }
        XCTAssertEqual(own.keys.first?.sealed, try site.store.keys(of: DirectorySite.alice.netname).first?.sealedSecret)
        guard case .kdOk = try await fetch(DirectorySite.enrolledHost, DirectorySite.alice.netname) else { return XCTFail("enrolled host refused") }
        for (who, target) in [(DirectorySite.bob, DirectorySite.alice.netname), (DirectorySite.strangerHost, DirectorySite.alice.netname),
                              (DirectorySite.enrolledHost, DirectorySite.strangerHost.netname)] {
            guard case .default(discriminant: .kdDenied, _) = try await fetch(who, target) else { return XCTFail("\(who.netname) got \(target)'s keys") }
        }
        // Over integrity only, the policy refuses before any code runs.
        let weak = site.client(as: DirectorySite.alice, service: .integrity)
        do {
            _ = try await weak.call { try await $0.kdSealedKeys(DirectorySite.alice.netname) }
            XCTFail("sealed keys over integrity")
        } catch RPCClientError.authError(.tooWeak) {}
        await weak.close()
    }

    func testAdministrationNeedsTheAdminRoleAndIsAuditedUnderTheProvenName() async throws {
        let alice = site.client(as: DirectorySite.alice)
        let refused = try await alice.call { try await $0.kdAdmRevoke(KdNetmechArg(netname: DirectorySite.bob.netname, mechanism: "")) }
        XCTAssertEqual(refused.status, .kdDenied)
        XCTAssertTrue(refused.message.contains("is not an administrator"), refused.message)
        XCTAssertNotNil(try site.store.publicKey(netname: DirectorySite.bob.netname, mechanism: .ffdhe3072))
        await alice.close()

        let admin = site.client(as: DirectorySite.admin)
        let done = try await admin.call { try await $0.kdAdmRevoke(KdNetmechArg(netname: DirectorySite.bob.netname, mechanism: "")) }
        XCTAssertEqual(done.status, .kdOk, done.message)
        XCTAssertNil(try site.store.publicKey(netname: DirectorySite.bob.netname, mechanism: .ffdhe3072))
        let event = try XCTUnwrap(site.store.audit(limit: 1).first)
        XCTAssertEqual(event.action, "revoke")
        XCTAssertEqual(event.actor, "\(DirectorySite.admin.netname) from 127.0.0.1")
        // Errors come back as statuses with one line.
        let missing = try await admin.call { try await $0.kdAdmRemove("unix.4242@site.example") }
        XCTAssertEqual(missing.status, .kdNotFound)
        XCTAssertEqual(missing.message, "no principal unix.4242@site.example")
        // An administrator cannot lock the site out of administration by accident.
        let own = try await admin.call { try await $0.kdAdmRevokeRole(KdRoleArg(netname: DirectorySite.admin.netname, role: "admin")) }
        XCTAssertEqual(own.status, .kdInvalid)
        await admin.close()
    }

    func testAStandbyRefusesChangesNamingThePrimary() async throws {
        await site.stop()
        try await site.start(primary: "dir1.site.example:20050")
        let admin = site.client(as: DirectorySite.admin)
        let refused = try await admin.call { try await $0.kdAdmRevoke(KdNetmechArg(netname: DirectorySite.bob.netname, mechanism: "")) }
        XCTAssertEqual(refused.status, .kdReadOnly)
        XCTAssertTrue(refused.message.contains("dir1.site.example:20050"), refused.message)
        await admin.close()
    }

    func testTheChangeFeedDropsCachedKeysAndTellsObservers() async throws {
        let client = site.client(as: DirectorySite.alice, service: .integrity)
        let lookup = NetworkKeyLookup(directory: client)
        let told = NIOLockedValueBox<[String?]>([])
        lookup.observeChanges { netname in told.withLockedValue { $0.append(netname) } }
        await lookup.pollChanges()   // learns where the feed stands
        let before = try await lookup.fetchPublicKey(netname: DirectorySite.bob.netname, mechanism: .ffdhe3072)
        XCTAssertNotNil(before)
        try site.store.revoke(netname: DirectorySite.bob.netname, mechanism: nil, actor: "test")
        // Cached: still the old answer until the feed says otherwise.
        XCTAssertNotNil(lookup.cachedPublicKey(netname: DirectorySite.bob.netname, mechanism: .ffdhe3072) ?? nil)
        await lookup.pollChanges()
        XCTAssertEqual(told.withLockedValue { $0 }, [DirectorySite.bob.netname])
        let after = try await lookup.fetchPublicKey(netname: DirectorySite.bob.netname, mechanism: .ffdhe3072)
        XCTAssertNil(after)
        await client.close()
    }

    func testOutageServesCachedKeysWithinTheWindowThenNamesTheDirectory() async throws {
        let clock = NIOLockedValueBox<TimeInterval>(1_000_000)
        let client = site.client(as: DirectorySite.alice, service: .integrity)
        let lookup = NetworkKeyLookup(directory: client, settings: .init(ttl: 60, negativeTTL: 10, serveStale: 600),
                                      now: { clock.withLockedValue { $0 } })
        let key = try await lookup.fetchPublicKey(netname: DirectorySite.bob.netname, mechanism: .ffdhe3072)
        XCTAssertNotNil(key)
        await site.stop()
        clock.withLockedValue { $0 += 120 }   // past the TTL, inside serve-stale
        let stale = try await lookup.fetchPublicKey(netname: DirectorySite.bob.netname, mechanism: .ffdhe3072)
        XCTAssertEqual(stale, key)
        XCTAssertEqual(lookup.statistics.staleAnswers, 1)
        clock.withLockedValue { $0 += 700 }   // past serve-stale
        do {
            _ = try await lookup.fetchPublicKey(netname: DirectorySite.bob.netname, mechanism: .ffdhe3072)
            XCTFail("served past the serve-stale window")
        } catch let error as DirectoryClientError {
            XCTAssertTrue("\(error)".hasPrefix("no directory server answered: 127.0.0.1:"), "\(error)")
        }
        await client.close()
    }

    /// A server host without the directory file: its RPCSEC_GSS and AUTH_DH verifiers take
    /// clients' keys from keydird (NetworkKeyLookup through SecureRPCServer.authenticators),
    /// alice's client takes the server's key the same way, a privacy call goes through, and
    /// when the directory revokes alice the change feed ends her context on the server at
    /// once: her next call fails with the keylogin advice. (Issue 15: lookups on hosts without
    /// the database, for servers and clients.)
    func testAServerWithoutTheDirectoryFileServesThroughKeydirdAndTheFeedEndsARevokedCaller() async throws {
        let fs = (uid: UInt32(0), netname: "unix.fs1@site.example")
        let fsKey = DHPrivateKey.generate(group: .ffdhe3072)
        try site.addPrincipal(fs.netname, uid: fs.uid, key: fsKey)
        let serverKeys = NetworkKeyLookup(directory: site.client(as: fs, service: .integrity))
        await serverKeys.pollChanges()
        let authenticators = try SecureRPCServer.authenticators(keys: serverKeys, keyserverSocket: site.socket,
                                                                gss: GSSServer.Configuration(serverNetname: fs.netname))
        let gss = try XCTUnwrap(authenticators.compactMap { $0 as? GSSServer }.first)
        var program = RPCProgram(number: 0x2000_0777, version: 1, policy: SecureRPCServer.require(gss: .ffdhe3072, service: .privacy))
        program.addImmediateProcedure(1) { (_: XDRVoid, request) -> GSSBlob in GSSBlob(Array((request.caller.netname ?? "-").utf8)) }
        var configuration = RPCServer.Configuration()
        configuration.authenticators = authenticators
        let server = RPCServer(programs: [program], configuration: configuration, logger: site.logger)
        let address = try await server.listenTCP(host: "127.0.0.1", port: 0)

        // Alice's host has no directory file either.
        let aliceKeys = NetworkKeyLookup(directory: site.client(as: DirectorySite.alice, service: .integrity))
        let serverKey = try await XCTUnwrapAsync(try await aliceKeys.fetchPublicKey(netname: fs.netname, mechanism: .ffdhe3072))
        XCTAssertEqual(serverKey, fsKey.publicKey)
        let authenticator = try GSSClient(clientNetname: DirectorySite.alice.netname, serverNetname: fs.netname, serverPublicKey: serverKey,
                                          service: .privacy, keyserver: try KeyServerClient(socketPath: site.socket, uid: DirectorySite.alice.uid))
        let client = RPCClient(transport: .tcp, address: address, program: 0x2000_0777, version: 1, authenticator: authenticator)
        let answer = try await client.call(1, XDRVoid(), returning: GSSBlob.self)
        XCTAssertEqual(String(decoding: answer.bytes, as: UTF8.self), DirectorySite.alice.netname)
        XCTAssertEqual(gss.contextCount, 1)

        try site.store.revoke(netname: DirectorySite.alice.netname, mechanism: nil, actor: "test")
        await serverKeys.pollChanges()   // what the change feed's timer does every change-poll seconds
        for _ in 0..<500 where gss.contextCount > 0 { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertEqual(gss.contextCount, 0, "the feed ended alice's context without waiting for the re-check interval")
        do {
            _ = try await client.call(1, XDRVoid(), returning: GSSBlob.self)
            XCTFail("a revoked caller was served")
        } catch let error as SecureRPCError {
            XCTAssertEqual("\(error)", "the key of unix.7002@site.example was changed or revoked: run keylogin")
        }

        // A server the directory does not know is a setup error naming it.
        do {
            _ = try await RPCClient.secure(host: "127.0.0.1", port: address.port!, program: 0x2000_0777, version: 1,
                                           auth: .gss(server: "unix.nobody@site.example"),
                                           environment: SecureRPCEnvironment(keyserverSocket: site.socket, netname: DirectorySite.bob.netname),
                                           keys: aliceKeys)
            XCTFail("an unknown server was accepted")
        } catch let error as SecureRPCSetupError {
            XCTAssertEqual(error, .unknownServer("unix.nobody@site.example", mechanism: "ffdhe3072"))
        }
        await client.close()
        await server.shutdown()
        await aliceKeys.directory.close()
        await serverKeys.directory.close()
    }

    /// Directory answers cannot be forged or replayed (issue 15): through the recording
    /// proxy, a reply with one bit flipped, and an earlier reply (bob's key) sent again under
    /// the current call's xid, are both refused by the client (RPCSEC_GSS reply verifier and
    /// integrity check) and counted as failures; neither yields a key, stale or forged.
    func testAFlippedOrReplayedDirectoryReplyIsRefusedAndCounted() async throws {
        let proxy = RecordProxy()
        let proxied = try await proxy.start(upstream: try XCTUnwrap(site.address))
        let client = site.client(as: DirectorySite.alice, service: .integrity, site: site.site(port: proxied.port))
        let lookup = NetworkKeyLookup(directory: client, settings: .init(ttl: 0, negativeTTL: 0, serveStale: 0))
        let bobKey = try await lookup.fetchPublicKey(netname: DirectorySite.bob.netname, mechanism: .ffdhe3072)
        XCTAssertNotNil(bobKey)
        let bobReply = try XCTUnwrap(proxy.recorded(.toClient).last)

        let armed = NIOLockedValueBox(true)
        proxy.transform.withLockedValue {
            $0 = { direction, record in
                guard direction == .toClient, armed.withLockedValue({ let was = $0; $0 = false; return was }) else { return record }
                var changed = record
                let index = changed.writerIndex - 9
                changed.setInteger(changed.getInteger(at: index, as: UInt8.self)! ^ 0x01, at: index)
                return changed
            }
        }
        do {
            let key = try await lookup.fetchPublicKey(netname: DirectorySite.admin.netname, mechanism: .ffdhe3072)
            XCTFail("a flipped reply gave \(String(describing: key))")
        } catch {}
        XCTAssertEqual(lookup.statistics.failures, 1)

        armed.withLockedValue { $0 = true }
        proxy.transform.withLockedValue {
            $0 = { direction, record in
                guard direction == .toClient, armed.withLockedValue({ let was = $0; $0 = false; return was }) else { return record }
                var replayed = bobReply
                replayed.setInteger(record.getInteger(at: record.readerIndex, as: UInt32.self)!, at: replayed.readerIndex)
                return replayed
            }
        }
        do {
            let key = try await lookup.fetchPublicKey(netname: DirectorySite.alice.netname, mechanism: .ffdhe3072)
            XCTFail("a replayed reply gave \(String(describing: key)) (bob's: \(key == bobKey))")
        } catch {}
        XCTAssertEqual(lookup.statistics.failures, 2)

        // The path is clean again: the next lookup is answered.
        let alice = try await lookup.fetchPublicKey(netname: DirectorySite.alice.netname, mechanism: .ffdhe3072)
        XCTAssertNotNil(alice)
        XCTAssertNotEqual(alice, bobKey)
        await client.close()
        await proxy.stop()
    }
}

func XCTUnwrapAsync<T>(_ value: T?, file: StaticString = #filePath, line: UInt = #line) async throws -> T {
    try XCTUnwrap(value, file: file, line: line)
}
