// K_ss under the keyserver's lease (KEYX_DERIVE_LEASED, issue 18: fewer round trips to the
// keyserver per RPCSEC_GSS set-up): kept no longer than the lease, not at all when the
// keyserver grants none or is older than the procedure, and never the reason a set-up fails
// after a key changed (each side asks afresh when its peer rejects a leased K_ss).

import Foundation
import KeyCrypto
@_spi(Testing) @testable import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XCTest
@testable import SecureRPC

final class KssLeaseTests: XCTestCase {
    private final class Clock: Sendable {
        private let seconds = NIOLockedValueBox(1000.0)
        var now: Double { seconds.withLockedValue { $0 } }
        func advance(_ by: Double) { seconds.withLockedValue { $0 += by } }
    }

    private func argument(_ group: GSSGroup = .ffdhe2048) -> KeyxDeriveArg {
        KeyxDeriveArg(mechanism: group.keyserverMechanism, peer: gssLongTermKeys[group]!.server.publicKey.bytes,
                      info: SRPCDH.kssInfo(group: group, client: gssClientNetname, server: gssServerNetname))
    }

    private func key(_ answer: KssAnswer, file: StaticString = #filePath, line: UInt = #line) -> (bytes: [UInt8], fromLease: Bool)? {
        guard case let .key(secret, fromLease) = answer else {
            XCTFail("expected a key, got \(answer)", file: file, line: line)
            return nil
        }
        return (secret.copyBytes(), fromLease)
    }

    /// Requests the keyserver's strong store has answered (hits and misses of its cache).
    private func asked(_ fixture: GSSFixture) -> Int {
        let statistics = fixture.store.cacheStatistics
        return statistics.hits + statistics.misses
    }

    func testALeasedKssIsUsedWithoutAskingUntilTheLeaseEnds() async throws {
        let fixture = try await GSSFixture(kssLeaseSeconds: 30)
        let clock = Clock()
        let keyserver = try KeyServerClient(socketPath: fixture.socket, uid: 6001, leaseClock: { clock.now })
        let first = try await keyserver.kss(argument())
        XCTAssertEqual(key(first)?.fromLease, false)
        XCTAssertEqual(asked(fixture), 1)
        let second = try await keyserver.kss(argument())
        XCTAssertEqual(key(second)?.fromLease, true)
        XCTAssertEqual(key(second)?.bytes, key(first)?.bytes)
        XCTAssertEqual(asked(fixture), 1, "a leased K_ss costs no round trip")
        XCTAssertEqual(keyserver.leasedKssCount, 1)

        // Another use of the same key (other info) is not covered by the lease.
        var other = argument()
        other.info = Array("another use".utf8)
        let otherUse = try await keyserver.kss(other)
        XCTAssertEqual(key(otherUse)?.fromLease, false)
        XCTAssertEqual(asked(fixture), 2)

        // keylogout: the lease still answers until it ends (the consent keyserverd's
        // --kss-lease documents), then the keyserver's refusal comes through.
        fixture.store.clear(uid: 6001)
        clock.advance(29)
        let withinLease = try await keyserver.kss(argument())
        XCTAssertEqual(key(withinLease)?.fromLease, true)
        clock.advance(1)
        guard case .refused(.keyNosecret) = try await keyserver.kss(argument()) else {
            return XCTFail("after the lease, a logged-out user's K_ss must be refused")
        }

        // forgetKss: the next answer comes from the keyserver again.
        fixture.logIn()
        _ = try await keyserver.kss(argument())
        keyserver.forgetKss(argument())
        let afterForget = try await keyserver.kss(argument())
        XCTAssertEqual(key(afterForget)?.fromLease, false)
        await keyserver.close()
        await fixture.shutdown()
    }

    func testAKeyserverThatGrantsNoLeaseIsAskedEveryTime() async throws {
        let fixture = try await GSSFixture(kssLeaseSeconds: 0)
        let keyserver = try KeyServerClient(socketPath: fixture.socket, uid: 6001)
        for expected in 1...3 {
            let afterForget = try await keyserver.kss(argument())
        XCTAssertEqual(key(afterForget)?.fromLease, false)
            XCTAssertEqual(asked(fixture), expected)
        }
        XCTAssertEqual(keyserver.leasedKssCount, 0)
        fixture.store.clear(uid: 6001)
        guard case .refused(.keyNosecret) = try await keyserver.kss(argument()) else {
            return XCTFail("without a lease, keylogout must show at once")
        }
        await keyserver.close()
        await fixture.shutdown()
    }

    /// A keyserverd from before KEYX_DERIVE_LEASED answers PROC_UNAVAIL: the client asks
    /// KEYX_DERIVE instead, the same K_ss, and keeps nothing.
    func testAKeyserverWithoutLeasesIsAskedTheOldWay() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kss-old-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = directory.appendingPathComponent("keyservsock").path
        let old = try await TestKeyserver.start(socket: socket, kssLeaseSeconds: 30) { programs in
            programs.map { program in
                guard program.number == SrpcKeyxV1Client.program else { return program }
                var older = RPCProgram(number: program.number, version: program.version, policy: program.policy)
                for (number, handler) in program.procedures where number != 7 { older.setProcedure(number, handler) }
                return older
            }
        }
        let secret = gssLongTermKeys[.ffdhe2048]!.client.secret.copyBytes()
        XCTAssertEqual(old.strong.set(uid: 6001, mechanism: .keyxFfdhe2048, secret: secret), .keySuccess)
        let keyserver = try KeyServerClient(socketPath: socket, uid: 6001)
        let expected = try await keyserver.performStrong { try await $0.keyxDerive(self.argument()) }
        KssWipeTracking.start()
        defer { KssWipeTracking.stop() }
        for _ in 0..<2 {
            let answer = key(try await keyserver.kss(argument()))
            XCTAssertEqual(answer?.fromLease, false)
            XCTAssertEqual(expected, .keySuccess(answer?.bytes ?? []))
        }
        XCTAssertEqual(keyserver.leasedKssCount, 0)
        XCTAssertEqual(KssWipeTracking.inPlace, 2, "the KEYX_DERIVE answer's array is zeroed where it lies")
        XCTAssertEqual(KssWipeTracking.ofACopy, 0)
        await keyserver.close()
        await old.shutdown()
    }

    /// Once the client has seen its user logged out (the login check of a live context), its
    /// leases go too: a lease granted before keylogout must not make the next context.
    func testALoggedOutUsersLeasesGoWithTheLoginCheck() async throws {
        let fixture = try await GSSFixture(kssLeaseSeconds: 30)
        let (server, gss, tcp, _) = try await fixture.startServer()
        let clock = Clock()
        let keyserver = try KeyServerClient(socketPath: fixture.socket, uid: 6001, leaseClock: { clock.now })
        let callerClock = NIOLockedValueBox(Date().timeIntervalSince1970)
        let authenticator = try GSSClient(clientNetname: gssClientNetname, serverNetname: gssServerNetname,
                                          serverPublicKey: gssLongTermKeys[.ffdhe3072]!.server.publicKey, service: .privacy,
                                          keyserver: keyserver, now: { callerClock.withLockedValue { $0 } })
        let client = fixture.client(.tcp, tcp, authenticator)
        _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
        XCTAssertEqual(keyserver.leasedKssCount, 1)

        fixture.store.clear(uid: 6001)
        callerClock.withLockedValue { $0 += 31 }     // the login check is due; the lease (its own clock) is not over
        for attempt in 0..<2 {
            do {
                _ = try await client.call(1, GSSBlob([2]), returning: GSSBlob.self)
                XCTFail("attempt \(attempt): a logged-out user's call must fail")
            } catch let error as SecureRPCError {
                XCTAssertEqual(error, .notLoggedIn(gssClientNetname), "attempt \(attempt)")
            }
        }
        XCTAssertEqual(gss.statistics.contextsCreated, 1, "no new context from a lease after the logout was seen")
        XCTAssertEqual(keyserver.leasedKssCount, 0)
        await client.close()
        await keyserver.close()
        await server.shutdown()
        await fixture.shutdown()
    }

    /// The cache is bounded: when full, expired leases go first, then the one ending soonest;
    /// a lease of 0 keeps nothing and a lease past an hour is cut to an hour.
    func testTheLeaseCacheIsBounded() {
        var leases = KssLeases(capacity: 2)
        func key(_ n: UInt8) -> KssLeases.Key { KssLeases.Key(mechanism: .keyxFfdhe2048, peer: [n], info: []) }
        let secret = SecretBytes(copying: [UInt8](repeating: 7, count: 32))
        leases.store(secret, for: key(1), seconds: 10, now: 0)
        leases.store(secret, for: key(2), seconds: 50, now: 0)
        leases.store(secret, for: key(3), seconds: 40, now: 20)   // full: key 1's lease ended at 10 s, it goes
        XCTAssertNil(leases.key(for: key(1), now: 20))
        XCTAssertNotNil(leases.key(for: key(2), now: 20))
        leases.store(secret, for: key(4), seconds: 100, now: 21)  // full: key 2 ends at 50, key 3 at 60: key 2 goes
        XCTAssertNil(leases.key(for: key(2), now: 21))
        XCTAssertNotNil(leases.key(for: key(3), now: 21))
        XCTAssertNotNil(leases.key(for: key(4), now: 21))
        XCTAssertEqual(leases.count, 2)
        leases.store(secret, for: key(5), seconds: 0, now: 21)
        XCTAssertNil(leases.key(for: key(5), now: 21))
        var long = KssLeases(capacity: 1)
        long.store(secret, for: key(6), seconds: .max, now: 0)
        XCTAssertNotNil(long.key(for: key(6), now: 3599))
        XCTAssertNil(long.key(for: key(6), now: 3600))
    }

    /// The server's key is rotated while its lease on K_ss with this client lasts: the
    /// client (which follows the directory) seals its INIT with the new K_ss, the server's
    /// leased one does not open it, and the server asks its keyserver afresh instead of
    /// refusing.
    func testTheServerAsksAfreshWhenItsOwnKeyChangedUnderALease() async throws {
        let fixture = try await GSSFixture(kssLeaseSeconds: 30)
        let (server, gss, tcp, _) = try await fixture.startServer()
        let first = fixture.client(.tcp, tcp, try fixture.authenticator())
        _ = try await first.call(1, GSSBlob([1]), returning: GSSBlob.self)
        await first.close()

        let rotated = DHPrivateKey.generate(group: .ffdhe3072)
        XCTAssertEqual(fixture.store.set(uid: 6002, mechanism: .keyxFfdhe3072, secret: rotated.secret.copyBytes()), .keySuccess)
        let authenticator = try GSSClient(clientNetname: gssClientNetname, serverNetname: gssServerNetname,
                                          serverPublicKey: rotated.publicKey, service: .privacy,
                                          keyserver: try KeyServerClient(socketPath: fixture.socket, uid: 6001))
        let second = fixture.client(.tcp, tcp, authenticator)
        _ = try await second.call(1, GSSBlob([2]), returning: GSSBlob.self)
        XCTAssertEqual(gss.statistics.contextsCreated, 2)
        await second.close()
        await server.shutdown()
        await fixture.shutdown()
    }

    /// The client's key changes (chkey, keylogin) while its own lease lasts: the server,
    /// which looks up the new public key, rejects the INIT sealed with the leased K_ss; the
    /// client asks its keyserver afresh and the context is made.
    func testTheClientAsksAfreshWhenItsOwnKeyChangedUnderALease() async throws {
        let fixture = try await GSSFixture(kssLeaseSeconds: 30)
        let clientKey = NIOLockedValueBox(gssLongTermKeys[.ffdhe3072]!.client.publicKey)
        let (server, gss, tcp, _) = try await fixture.startServer(publicKey: { netname, group in
            netname == gssClientNetname && group == .ffdhe3072 ? clientKey.withLockedValue { $0 } : nil
        })
        let keyserver = try KeyServerClient(socketPath: fixture.socket, uid: 6001)
        func authenticator() throws -> GSSClient {
            try GSSClient(clientNetname: gssClientNetname, serverNetname: gssServerNetname,
                          serverPublicKey: gssLongTermKeys[.ffdhe3072]!.server.publicKey, service: .privacy, keyserver: keyserver)
        }
        let first = fixture.client(.tcp, tcp, try authenticator())
        _ = try await first.call(1, GSSBlob([1]), returning: GSSBlob.self)
        await first.close()
        XCTAssertEqual(keyserver.leasedKssCount, 1)

        let rotated = DHPrivateKey.generate(group: .ffdhe3072)
        XCTAssertEqual(fixture.store.set(uid: 6001, mechanism: .keyxFfdhe3072, secret: rotated.secret.copyBytes()), .keySuccess)
        clientKey.withLockedValue { $0 = rotated.publicKey }
        let second = fixture.client(.tcp, tcp, try authenticator())
        _ = try await second.call(1, GSSBlob([2]), returning: GSSBlob.self)
        XCTAssertEqual(gss.statistics.contextsCreated, 2)
        await second.close()
        await keyserver.close()
        await server.shutdown()
        await fixture.shutdown()
    }
}
