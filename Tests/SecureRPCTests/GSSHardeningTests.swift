// RPCSEC_GSS server hardening (issue 12 items 4, 5, 7, 8 and the random-credential sweep),
// against a real keyserver and, where a client is involved, real clients over loopback TCP:
// one principal making contexts in a loop only ever evicts its own; a revoked or replaced
// client key ends live contexts within keyRecheckInterval and the client says what happened;
// a netname with a newline never reaches a log; K_ss from the keyserver is zeroed where it
// lies; 10^5 random DATA credentials against live contexts are all refused.

import Foundation
@_spi(Testing) import KeyCrypto
import KeyDirectory
@_spi(Testing) import KeyServer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XCTest
import XDR
@_spi(Testing) @testable import SecureRPC

final class GSSHardeningTests: XCTestCase {
    private var fixture: GSSFixture!

    override func setUp() async throws {
        fixture = try await GSSFixture()
    }

    override func tearDown() async throws {
        await fixture.shutdown()
    }

    private var runs: Int { fixture.runs.withLockedValue { $0 } }

    // MARK: item 4: per-principal context quota

    func testOnePrincipalMakingContextsInALoopDoesNotEvictAnother() async throws {
        let aName = "unix.6003@gss.example"
        let aKey = DHPrivateKey.generate(group: .ffdhe2048)
        let (server, gss, tcp, _) = try await fixture.startServer(configure: { $0.maximumContexts = 64 }, publicKey: { name, group in
            if name == gssClientNetname { return gssLongTermKeys[group]?.client.publicKey }
            return name == aName && group == .ffdhe2048 ? aKey.publicKey : nil
        })
        // B: a real client with a live context.
        let b = fixture.client(.tcp, tcp, try fixture.authenticator(group: .ffdhe2048, service: .integrity))
        _ = try await b.call(1, GSSBlob([1]), returning: GSSBlob.self)
        // A: 200 contexts, each a real INIT with a valid authenticator.
        let a = try GSSInitMaker(client: aName, group: .ffdhe2048, clientKey: aKey)
        for i in 0..<200 {
            let result = await initResult(gss, GSSInitMaker.call(try a.token(at: Date().timeIntervalSince1970), xid: UInt32(i)))
            XCTAssertEqual(result?.gssMajor, GSSMajorStatus.complete, "A's INIT \(i)")
        }
        XCTAssertEqual(gss.contextCount(of: aName), 16, "A holds its share: maximumContexts / 4")
        XCTAssertEqual(gss.contextCount(of: gssClientNetname), 1)
        XCTAssertEqual(gss.statistics.contextsEvictedOverQuota, 200 - 16)
        // B's context survived: its next call needs no new context.
        _ = try await b.call(1, GSSBlob([2]), returning: GSSBlob.self)
        XCTAssertEqual(gss.statistics.contextsCreated, 201)
        XCTAssertEqual(runs, 2)
        await b.close()
        await server.shutdown()
    }

    // MARK: item 5: revocation and rotation end contexts

    /// A directory with the test client's ffdhe3072 key, and a server that looks keys up in
    /// it the way SecureRPCServer.authenticators does (PublicKeyLookup on the file).
    private func directoryServer(clock: ClockBox) async throws -> (SQLiteKeyDirectory, RPCServer, GSSServer, SocketAddress) {
        let path = fixture.directory.appendingPathComponent("keys.db").path
        let directory = try SQLiteKeyDirectory(path: path)
        try directory.add(Principal(netname: gssClientNetname, kind: .user, name: "6001", uid: 6001),
                          keys: [KeyEntry(netname: gssClientNetname, mechanism: .ffdhe3072,
                                          publicKey: gssLongTermKeys[.ffdhe3072]!.client.publicKey.hex, sealedSecret: [0])],
                          actor: "test")
        let lookup = try PublicKeyLookup(path: path)
        let (server, gss, tcp, _) = try await fixture.startServer(now: { clock.now }, publicKey: { name, group in
            try? lookup.publicKey(netname: name, mechanism: group.dhGroup)
        })
        return (directory, server, gss, tcp)
    }

    func testRevokedKeyEndsTheContextAndTheClientSaysSo() async throws {
        let clock = ClockBox(Date().timeIntervalSince1970)
        let (directory, server, gss, tcp) = try await directoryServer(clock: clock)
        let client = fixture.client(.tcp, tcp, try fixture.authenticator(group: .ffdhe3072))
        _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
        try directory.revoke(netname: gssClientNetname, mechanism: .ffdhe3072, actor: "test")
        // Within keyRecheckInterval the context still serves (the bound is the interval).
        clock.advance(gss.configuration.keyRecheckInterval - 1)
        _ = try await client.call(1, GSSBlob([2]), returning: GSSBlob.self)
        XCTAssertEqual(runs, 2)
        clock.advance(2)
        do {
            _ = try await client.call(1, GSSBlob([3]), returning: GSSBlob.self)
            XCTFail("a revoked key must end the context")
        } catch let error as SecureRPCError {
            XCTAssertEqual(error, .keyChangedOrRevoked(gssClientNetname))
            XCTAssertEqual("\(error)", "the key of unix.6001@gss.example was changed or revoked: run keylogin")
        }
        XCTAssertEqual(runs, 2, "nothing ran after the revocation was seen")
        XCTAssertEqual(gss.statistics.contextsEndedByKeyChange, 1)
        XCTAssertEqual(gss.contextCount, 0)
        XCTAssertEqual(gss.statistics.keyRechecks, 1, "one look-up, not one per call")
        await client.close()
        await server.shutdown()
    }

    /// The directory file behind a key source that can announce changes (as the site
    /// directory's change feed does) and can be made to fail (directory unreachable).
    private final class AnnouncingKeySource: PublicKeySource, @unchecked Sendable {
        let lookup: PublicKeyLookup
        let handlers = NIOLockedValueBox<[@Sendable (String?) -> Void]>([])
        let failing = NIOLockedValueBox(false)
        init(_ lookup: PublicKeyLookup) { self.lookup = lookup }
        struct Unreachable: Error {}
        func fetchPublicKey(netname: String, mechanism: DHGroupName) async throws -> DHPublicKey? {
            if failing.withLockedValue({ $0 }) { throw Unreachable() }
            return try lookup.publicKey(netname: netname, mechanism: mechanism)
        }
        func cachedPublicKey(netname: String, mechanism: DHGroupName) -> DHPublicKey?? { .none }
        func observeChanges(_ handler: @escaping @Sendable (String?) -> Void) { handlers.withLockedValue { $0.append(handler) } }
        func announce(_ netname: String) { for handler in handlers.withLockedValue({ $0 }) { handler(netname) } }
    }

    private func announcingServer(clock: ClockBox) async throws -> (SQLiteKeyDirectory, AnnouncingKeySource, RPCServer, GSSServer, SocketAddress) {
        let path = fixture.directory.appendingPathComponent("keys.db").path
        let directory = try SQLiteKeyDirectory(path: path)
        try directory.add(Principal(netname: gssClientNetname, kind: .user, name: "6001", uid: 6001),
                          keys: [KeyEntry(netname: gssClientNetname, mechanism: .ffdhe3072,
                                          publicKey: gssLongTermKeys[.ffdhe3072]!.client.publicKey.hex, sealedSecret: [0])],
                          actor: "test")
        let source = AnnouncingKeySource(try PublicKeyLookup(path: path))
        let (server, gss, tcp, _) = try await fixture.startServer(now: { clock.now }, keys: source)
        return (directory, source, server, gss, tcp)
    }

    /// A change announced by the key source (the site directory's change feed) ends the
    /// revoked client's contexts at once, not at the next re-check interval. Before the
    /// server took a PublicKeySource it had no way to hear of a change.
    func testAnnouncedRevocationEndsContextsWithoutWaitingForTheInterval() async throws {
        let clock = ClockBox(Date().timeIntervalSince1970)
        let (directory, source, server, gss, tcp) = try await announcingServer(clock: clock)
        let client = fixture.client(.tcp, tcp, try fixture.authenticator(group: .ffdhe3072))
        _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
        XCTAssertEqual(gss.contextCount, 1)
        // An announcement for someone else, or for an unchanged key, ends nothing.
        source.announce("unix.1@gss.example")
        await gss.recheckContexts(of: gssClientNetname)
        XCTAssertEqual(gss.contextCount, 1)
        try directory.revoke(netname: gssClientNetname, mechanism: .ffdhe3072, actor: "test")
        source.announce(gssClientNetname)
        for _ in 0..<500 where gss.contextCount > 0 { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertEqual(gss.contextCount, 0, "the clock never moved: the announcement ended it")
        XCTAssertEqual(gss.statistics.contextsEndedByKeyChange, 1)
        do {
            _ = try await client.call(1, GSSBlob([2]), returning: GSSBlob.self)
            XCTFail("the revoked client's context is gone and a new INIT finds no key")
        } catch {}
        XCTAssertEqual(runs, 1)
        await client.close()
        await server.shutdown()
    }

    /// A key source that cannot answer (directory unreachable past serve-stale) can vouch
    /// for neither a change nor its absence: live contexts are kept, new ones refused.
    func testUnreachableKeySourceKeepsLiveContextsAndRefusesNewOnes() async throws {
        let clock = ClockBox(Date().timeIntervalSince1970)
        let (_, source, server, gss, tcp) = try await announcingServer(clock: clock)
        let client = fixture.client(.tcp, tcp, try fixture.authenticator(group: .ffdhe3072))
        _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
        source.failing.withLockedValue { $0 = true }
        clock.advance(gss.configuration.keyRecheckInterval + 1)
        _ = try await client.call(1, GSSBlob([2]), returning: GSSBlob.self)
        XCTAssertEqual(runs, 2)
        XCTAssertEqual(gss.statistics.contextsEndedByKeyChange, 0)
        let second = fixture.client(.tcp, tcp, try fixture.authenticator(group: .ffdhe3072))
        do {
            _ = try await second.call(1, GSSBlob([3]), returning: GSSBlob.self)
            XCTFail("no key answer, no new context")
        } catch {}
        XCTAssertEqual(runs, 2)
        await second.close()
        await client.close()
        await server.shutdown()
    }

    func testRotatedKeyEndsTheContextUntilKeyloginWithTheNewKey() async throws {
        let clock = ClockBox(Date().timeIntervalSince1970)
        let (directory, server, gss, tcp) = try await directoryServer(clock: clock)
        let client = fixture.client(.tcp, tcp, try fixture.authenticator(group: .ffdhe3072))
        _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
        // chkey: a new key in the directory; the keyserver still holds the old secret.
        let rotated = DHPrivateKey.generate(group: .ffdhe3072)
        try directory.put(KeyEntry(netname: gssClientNetname, mechanism: .ffdhe3072, publicKey: rotated.publicKey.hex, sealedSecret: [1]),
                          replacing: true, actor: "test", action: "chkey")
        clock.advance(gss.configuration.keyRecheckInterval)
        do {
            _ = try await client.call(1, GSSBlob([2]), returning: GSSBlob.self)
            XCTFail("a replaced key must end the context")
        } catch let error as SecureRPCError {
            XCTAssertEqual("\(error)", "the key of unix.6001@gss.example was changed or revoked: run keylogin")
        }
        XCTAssertEqual(runs, 1)
        XCTAssertEqual(gss.statistics.contextsEndedByKeyChange, 1)
        // keylogin with the new key: the same client makes a new context and goes on.
        let secret = rotated.secret.withUnsafeBytes { Array($0) }
        XCTAssertEqual(fixture.store.set(uid: 6001, mechanism: GSSGroup.ffdhe3072.keyserverMechanism, secret: secret), .keySuccess)
        _ = try await client.call(1, GSSBlob([3]), returning: GSSBlob.self)
        XCTAssertEqual(runs, 2)
        // And an unchanged key is simply re-checked: the context lives on.
        clock.advance(gss.configuration.keyRecheckInterval)
        _ = try await client.call(1, GSSBlob([4]), returning: GSSBlob.self)
        XCTAssertEqual(gss.statistics.contextsCreated, 2)
        XCTAssertEqual(gss.statistics.keyRechecks, 2)
        await client.close()
        await server.shutdown()
    }

    // MARK: item 8: log injection

    func testNetnameWithNewlineIsRefusedAndNeverLogged() async throws {
        let log = CapturedLog()
        fixture.logger = log.logger(label: "gss-server")
        let (server, gss, tcp, _) = try await fixture.startServer()
        let maker = try GSSInitMaker(client: gssClientNetname)
        let forged = "\nFORGED critical: root logged in"
        let names: [(client: String, server: String)] = [
            (gssClientNetname + forged, gssServerNetname),
            ("unix.6001@gss.example\r" + forged, gssServerNetname),
            ("unix.6001@gss.example\u{1b}[2J" + forged, gssServerNetname),
            ("unix.0@gss.example@other.example", gssServerNetname),     // two '@': never a local uid
            (gssClientNetname, gssServerNetname + forged),
            (String(repeating: "x", count: 255), gssServerNetname),
        ]
        for (client, serverName) in names {
            var record = ByteBuffer()
            GSSInitMaker.call(try maker.token(at: Date().timeIntervalSince1970, clientName: client, serverName: serverName)).encode(into: &record)
            let reply = try await sendRawRecord(record, to: tcp)
            guard case let .accepted(_, .success(results))? = reply?.status else { return XCTFail("\(String(describing: reply))") }
            let result = try results.decodeXDRExactly(RpcGssInitRes.self)
            XCTAssertEqual(result.gssMajor, GSSMajorStatus.badName, client.debugDescription)
            XCTAssertEqual(result.gssMinor, GSSMinorStatus.malformedName.rawValue, client.debugDescription)
        }
        XCTAssertEqual(gss.statistics.contextsCreated, 0)
        XCTAssertEqual(gss.admission.statistics.admitted, 0, "refused before admission, lookup or keyserver")
        let entries = log.all
        XCTAssertGreaterThanOrEqual(entries.filter { $0.message == "RPCSEC_GSS context refused" }.count, names.count)
        for entry in entries {
            XCTAssertFalse(entry.rendered.contains("\n") || entry.rendered.contains("\r") || entry.rendered.contains("\u{1b}"),
                           "a control character from the peer reached the log: \(entry.rendered.debugDescription)")
            XCTAssertFalse(entry.rendered.contains("FORGED"), entry.rendered.debugDescription)
        }
        // A well-formed client still works, and is logged by name.
        let client = fixture.client(.tcp, tcp, try fixture.authenticator())
        _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
        XCTAssertTrue(log.all.contains { $0.metadata["client"] == gssClientNetname })
        await client.close()
        await server.shutdown()
    }

    // MARK: item 7: wipes

    func testKssFromTheKeyserverIsZeroedWhereItLies() async throws {
        let (server, _, tcp, _) = try await fixture.startServer()
        KssWipeTracking.start()
        defer { KssWipeTracking.stop() }
        for i in 0..<3 {
            let client = fixture.client(.tcp, tcp, try fixture.authenticator(group: .ffdhe2048))
            _ = try await client.call(1, GSSBlob([UInt8(i)]), returning: GSSBlob.self)
            await client.close()
        }
        // Client and server side of each handshake: K_ss zeroed in its own storage.
        XCTAssertEqual(KssWipeTracking.inPlace, 6)
        XCTAssertEqual(KssWipeTracking.ofACopy, 0, "a wipe zeroed a copy-on-write copy and left K_ss where it was")
        await server.shutdown()
    }

    // MARK: the sweep (done-when line 2, RPCSEC_GSS part)

    /// 10^5 random RPCSEC_GSS DATA/DESTROY credentials — random handle, sequence number,
    /// service and verifier; half of them with the handle of a live context and a random
    /// verifier — straight into the server's authenticator as the dispatcher calls it:
    /// not one accepted, not one context destroyed.
    func testRandomDataCredentialsAgainstLiveContextsAreNeverAccepted() async throws {
        let (server, gss, tcp, _) = try await fixture.startServer()
        var clients: [(RPCClient, GSSClient)] = []
        for service in GSSService.allCases {
            let authenticator = try fixture.authenticator(group: .ffdhe2048, service: service)
            let client = fixture.client(.tcp, tcp, authenticator)
            _ = try await client.call(1, GSSBlob([0]), returning: GSSBlob.self)
            clients.append((client, authenticator))
        }
        let handles = clients.map { $0.1.currentContext!.handle }
        let seed = UInt64.random(in: 0...UInt64.max)
        var generator = SweepRandom(seed: seed)
        // Random words written straight into the buffers: this loop runs 10^5 times in a
        // debug build, where generic helpers cost more than the server's whole decision.
        func randomBytes(_ count: Int, into buffer: inout ByteBuffer) {
            var left = count
            while left >= 8 {
                buffer.writeInteger(generator.next())
                left -= 8
            }
            if left > 0 { buffer.writeBytes(generator.bytes(left)) }
        }
        // Arguments are never looked at before the header MIC: a pool of random ones will do.
        let argumentPool: [ByteBuffer] = (0..<256).map { _ in
            var buffer = ByteBuffer()
            randomBytes(Int(generator.next() % 97), into: &buffer)
            return buffer
        }
        let context = callContext()
        var accepted = 0, handled = 0, dropped = 0, rejected = 0
        let trials = 100_000
        for trial in 0..<trials {
            let word = generator.next()
            let destroy = word & 7 == 0
            let procedure: UInt32 = destroy ? 0 : 1
            // The credential as RFC 2203 lays it out: version, procedure, sequence number,
            // service, handle — half of them the handle of a live context.
            var credential = ByteBuffer()
            credential.reserveCapacity(20 + 68)
            credential.writeInteger(UInt32(1))
            credential.writeInteger(destroy ? UInt32(3) : 0)
            credential.writeInteger(UInt32(truncatingIfNeeded: word >> 32))
            credential.writeInteger(UInt32(1 + (word >> 3) % 3))
            if trial % 2 == 0 {
                let handle = handles[trial % handles.count]
                credential.writeInteger(UInt32(handle.count))
                credential.writeBytes(handle)
            } else {
                let length = Int((word >> 8) % 65)
                credential.writeInteger(UInt32(length))
                randomBytes(length, into: &credential)
                credential.writeRepeatingByte(0, count: (4 - length % 4) % 4)
            }
            // The verifier: flavor RPCSEC_GSS (1 in 16: AUTH_NONE), 32 random bytes (1 in 8:
            // 0 to 64).
            var verifierBody = ByteBuffer()
            randomBytes((word >> 16) & 7 == 0 ? Int((word >> 20) % 65) : 32, into: &verifierBody)
            let verifier = OpaqueAuth(flavor: (word >> 27) & 15 == 0 ? .none : .rpcsecGSS, body: verifierBody)
            let xid = UInt32(truncatingIfNeeded: generator.next())
            var header = ByteBuffer()
            header.reserveCapacity(32 + credential.readableBytes)
            for value in [xid, 0, 2, gssProgramNumber, 1, procedure, 6, UInt32(credential.readableBytes)] { header.writeInteger(value) }
            header.writeImmutableBuffer(credential)
            let call = RPCCall(xid: xid, program: gssProgramNumber, version: 1, procedure: procedure,
                               credential: OpaqueAuth(flavor: .rpcsecGSS, body: credential), verifier: verifier,
                               arguments: argumentPool[Int(word >> 56)], headerBytes: header)
            var decision = gss.authenticateImmediately(call, context: context)
            if decision == nil { decision = await gss.authenticate(call, context: context) }
            switch decision! {
            case .accepted: accepted += 1
            case .handled: handled += 1
            case .drop: dropped += 1
            case .rejected: rejected += 1
            case .disconnecting: XCTFail("a DATA credential never disconnects")
            }
        }
        XCTAssertEqual(accepted, 0, "seed \(seed)")
        XCTAssertEqual(handled, 0, "no random DESTROY or body reached the context")
        XCTAssertEqual(dropped, 0, "the window is reached only after the header MIC")
        XCTAssertEqual(rejected, trials)
        XCTAssertEqual(gss.contextCount, 3)
        XCTAssertEqual(gss.statistics.contextsDestroyed, 0)
        // The live contexts still serve their clients.
        for (client, _) in clients { _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self) }
        XCTAssertEqual(gss.statistics.contextsCreated, 3)
        for (client, _) in clients { await client.close() }
        await server.shutdown()
    }
}
