// Issue 12 item 5, the AUTH_DH side: a revoked, removed or rotated key ends the conversations
// made with it within `keyRecheckInterval` (the server's clock is injected), or at once with
// `endConversations(of:)`, and the client's caller is told what happened and what to do. The
// directory is a real SQLite key directory changed with keyadmin's library
// (SQLiteKeyDirectory); the server reads it through PublicKeyLookup as
// SecureRPCServer.authenticators does; the keyservers are real.

import Foundation
import KeyCrypto
import KeyDirectory
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

final class AuthDHKeyRevocationTests: XCTestCase {
    private var fixture: AuthDHFixture!
    private var directory: SQLiteKeyDirectory!
    private var database: String { fixture.directory.appendingPathComponent("keys.db").path }
    private let expectedText = "the key of unix.6001@example.org was changed or revoked: run keylogin"

    override func setUp() async throws {
        fixture = try await AuthDHFixture()
        directory = try SQLiteKeyDirectory(path: database)
        for (netname, key) in [(fixture.clientNetname, fixture.alice), (fixture.serverNetname, fixture.bob)] {
            let (kind, name, uid) = Netname.classify(netname)
            try directory.add(Principal(netname: netname, kind: kind, name: name, uid: uid),
                              keys: [try KeyEntry.sealing(key, netname: netname, password: SecretBytes(copying: Array("pw".utf8)))], actor: "test")
        }
    }

    override func tearDown() async throws {
        directory = nil
        await fixture.shutdown()
    }

    /// The server as SecureRPCServer.authenticators makes it, on an injected clock.
    private func start(clock: AuthDHTestClock, runs: NIOLockedValueBox<Int>,
                       keys: (any PublicKeySource)? = nil) async throws -> (AuthDHServer, RPCServer, RPCClient, SocketAddress) {
        let verifier = AuthDHServer(keyserver: try KeyServerClient(socketPath: fixture.socket, uid: 6002), now: clock.function,
                                    keys: try keys ?? PublicKeyLookup(path: database))
        let (server, address) = try await fixture.rpcServer(verifier, runs: runs)
        let client = RPCClient(transport: .tcp, address: address, program: 0x2000_0300, version: 1, authenticator: try fixture.client())
        // A conversation: a fullname call, then a nickname call.
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        XCTAssertEqual(verifier.conversationCount, 1)
        return (verifier, server, client, address)
    }

    private func expectKeyError(_ client: RPCClient, file: StaticString = #filePath, line: UInt = #line) async {
        do {
            _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
            XCTFail("the call went through", file: file, line: line)
        } catch let error as SecureRPCError {
            XCTAssertEqual(error, .keyChangedOrRevoked("unix.6001@example.org"), file: file, line: line)
            XCTAssertEqual("\(error)", expectedText, file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    func testRevokedKeyEndsTheConversationWithinTheInterval() async throws {
        let clock = AuthDHTestClock(Date().timeIntervalSince1970)
        let runs = NIOLockedValueBox(0)
        let (verifier, server, client, _) = try await start(clock: clock, runs: runs)
        try directory.revoke(netname: fixture.clientNetname, mechanism: .dh192des, actor: "test")
        // Not yet due: the conversation goes on (the bound is the interval, not zero).
        clock.advance(by: 29)
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        XCTAssertEqual(runs.withLockedValue { $0 }, 3)
        clock.advance(by: 1)
        await expectKeyError(client)
        XCTAssertEqual(runs.withLockedValue { $0 }, 3, "nothing ran after the re-check")
        XCTAssertEqual(verifier.conversationCount, 0)
        // And it stays refused, with the same words.
        await expectKeyError(client)
        await client.close()
        await server.shutdown()
    }

    func testRotatedKeyEndsTheConversationAndKeyloginRecovers() async throws {
        let clock = AuthDHTestClock(Date().timeIntervalSince1970)
        let runs = NIOLockedValueBox(0)
        let (_, server, client, _) = try await start(clock: clock, runs: runs)
        // chkey: a new key in the directory; the keyserver still holds the old one.
        let rotated = DHPrivateKey.generate(group: .dh192des)
        try directory.put(try KeyEntry.sealing(rotated, netname: fixture.clientNetname, password: SecretBytes(copying: Array("pw2".utf8))),
                          replacing: true, actor: "test", action: "chkey")
        clock.advance(by: 31)
        await expectKeyError(client)
        XCTAssertEqual(runs.withLockedValue { $0 }, 2)
        // keylogin with the new key: the next call goes through, on a new conversation.
        XCTAssertEqual(fixture.keyserver.core.setSecret(uid: 6001, hex: Array(rotated.secretHex.utf8)), .keySuccess)
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        XCTAssertEqual(runs.withLockedValue { $0 }, 3)
        await client.close()
        await server.shutdown()
    }

    /// The directory file behind a source that announces changes, as the site directory's
    /// change feed does, and can be made unable to answer without waiting.
    private final class AnnouncingSource: PublicKeySource, @unchecked Sendable {
        let lookup: PublicKeyLookup
        let handlers = NIOLockedValueBox<[@Sendable (String?) -> Void]>([])
        let cacheCold = NIOLockedValueBox(false)
        let fetches = NIOLockedValueBox(0)
        init(_ lookup: PublicKeyLookup) { self.lookup = lookup }
        func fetchPublicKey(netname: String, mechanism: DHGroupName) async throws -> DHPublicKey? {
            fetches.withLockedValue { $0 += 1 }
            return try lookup.publicKey(netname: netname, mechanism: mechanism)
        }
        func cachedPublicKey(netname: String, mechanism: DHGroupName) -> DHPublicKey?? {
            cacheCold.withLockedValue { $0 } ? .none : .some(try? lookup.publicKey(netname: netname, mechanism: mechanism))
        }
        func observeChanges(_ handler: @escaping @Sendable (String?) -> Void) { handlers.withLockedValue { $0.append(handler) } }
        func announce(_ netname: String) { for handler in handlers.withLockedValue({ $0 }) { handler(netname) } }
    }

    /// With a key source that announces changes (the network directory), a revocation ends
    /// the conversation at once, with the clock standing still. Before the server took a
    /// PublicKeySource it could only learn of it at the next re-check.
    func testAnnouncedRevocationEndsTheConversationAtOnce() async throws {
        let clock = AuthDHTestClock(Date().timeIntervalSince1970)
        let runs = NIOLockedValueBox(0)
        let source = AnnouncingSource(try PublicKeyLookup(path: database))
        let (verifier, server, client, _) = try await start(clock: clock, runs: runs, keys: source)
        source.announce("unix.someone-else@example.org")
        let unchanged = await verifier.recheckConversations(of: fixture.clientNetname)
        XCTAssertEqual(unchanged, 0, "an unchanged key ends nothing")
        try directory.revoke(netname: fixture.clientNetname, mechanism: .dh192des, actor: "test")
        source.announce(fixture.clientNetname)
        for _ in 0..<500 where verifier.conversationCount > 0 { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertEqual(verifier.conversationCount, 0)
        await expectKeyError(client)
        XCTAssertEqual(runs.withLockedValue { $0 }, 2)
        await client.close()
        await server.shutdown()
    }

    /// A re-check on the event loop that the source cannot answer without waiting keeps the
    /// conversation (and refreshes in the background) instead of ending it.
    func testRecheckThatCannotBeAnsweredAtOnceKeepsTheConversation() async throws {
        let clock = AuthDHTestClock(Date().timeIntervalSince1970)
        let runs = NIOLockedValueBox(0)
        let source = AnnouncingSource(try PublicKeyLookup(path: database))
        let (verifier, server, client, _) = try await start(clock: clock, runs: runs, keys: source)
        let fetchesBefore = source.fetches.withLockedValue { $0 }
        source.cacheCold.withLockedValue { $0 = true }
        clock.advance(by: 31)
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        XCTAssertEqual(runs.withLockedValue { $0 }, 3)
        XCTAssertEqual(verifier.conversationCount, 1)
        for _ in 0..<500 where source.fetches.withLockedValue({ $0 }) == fetchesBefore { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertGreaterThan(source.fetches.withLockedValue { $0 }, fetchesBefore, "a background fetch warmed the source")
        await client.close()
        await server.shutdown()
    }

    func testEndConversationsActsAtOnce() async throws {
        let clock = AuthDHTestClock(Date().timeIntervalSince1970)
        let runs = NIOLockedValueBox(0)
        let (verifier, server, client, _) = try await start(clock: clock, runs: runs)
        // Without a key change: the client just makes a new conversation.
        XCTAssertEqual(verifier.endConversations(of: fixture.clientNetname), 1)
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        XCTAssertEqual(verifier.conversationCount, 1)
        // After a removal: no clock advance needed.
        try directory.remove(netname: fixture.clientNetname, actor: "test")
        XCTAssertEqual(verifier.endConversations(of: fixture.clientNetname), 1)
        await expectKeyError(client)
        XCTAssertEqual(runs.withLockedValue { $0 }, 3)
        XCTAssertEqual(verifier.endConversations(of: "unix.nobody@example.org"), 0)
        await client.close()
        await server.shutdown()
    }

    /// Concurrent callers on one client when the server ends the conversation without a key
    /// change: nickname calls refused while the new fullname is on its way must not be taken
    /// for a key problem (that fullname's reply clears the suspicion first). Every call succeeds.
    func testConcurrentCallersAreNotToldOfAKeyProblemThatIsNotThere() async throws {
        let clock = AuthDHTestClock(Date().timeIntervalSince1970)
        let runs = NIOLockedValueBox(0)
        let (verifier, server, client, _) = try await start(clock: clock, runs: runs)
        for _ in 0..<3 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<16 {
                    group.addTask {
                        for call in 0..<10 {
                            if task == 0 && call == 3 { verifier.endConversations(of: "unix.6001@example.org") }
                            _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        XCTAssertEqual(runs.withLockedValue { $0 }, 2 + 3 * 160)
        await client.close()
        await server.shutdown()
    }

    /// A client that was never accepted keeps today's answer (AUTH_BADCRED: unknown, or the
    /// wrong key); only a client the server knew is told its key changed.
    func testNeverAcceptedClientStillSeesBadCredential() async throws {
        let clock = AuthDHTestClock(Date().timeIntervalSince1970)
        let runs = NIOLockedValueBox(0)
        let (_, server, first, address) = try await start(clock: clock, runs: runs)
        await first.close()
        try directory.revoke(netname: fixture.clientNetname, mechanism: nil, actor: "test")
        let fresh = RPCClient(transport: .tcp, address: address, program: 0x2000_0300, version: 1, authenticator: try fixture.client())
        do {
            _ = try await fresh.call(1, XDRVoid(), returning: UInt32.self)
            XCTFail("accepted")
        } catch let error as RPCClientError {
            XCTAssertEqual(error, .authError(.badCredential))
        }
        await fresh.close()
        await server.shutdown()
    }
}
