// Who a handler is told the AUTH_DH caller is: for a netname of the local domain, the local
// user's uid, gid and groups. Looking them up (getpwuid, getgrouplist: /etc/passwd and
// /etc/group or NSS) is work for a conversation, not for every call: it was done on each
// nickname call, on the event loop, and cut AUTH_DH calls with 32 in flight to 0.28x of
// AUTH_SYS (rpcbench auth with a local domain).

import Foundation
import KeyCrypto
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XCTest
@testable import SecureRPC

final class AuthDHCallerTests: XCTestCase {
    struct Refused: Error { let outcome: String }

    func testTheLocalUserIsLookedUpOncePerConversationAndAgainAtTheKeyRecheck() async throws {
        let fixture = try await AuthDHFixture()
        let clock = AuthDHTestClock(1_800_000_000)
        let lookups = NIOLockedValueBox(0)
        let groups = NIOLockedValueBox<[UInt32]>([100, 7])
        let clientKey = fixture.alice.publicKey, clientName = fixture.clientNetname
        let server = AuthDHServer(keyserver: try KeyServerClient(socketPath: fixture.socket, uid: 6002), localDomain: "example.org",
                                  now: clock.function,
                                  keys: ClosurePublicKeySource { netname, _ in netname == clientName ? clientKey : nil }) { netname, domain in
            lookups.withLockedValue { $0 += 1 }
            guard netname == "unix.6001@\(domain)" else { return nil }
            return Unixcred(uid: 6001, gid: 100, gids: groups.withLockedValue { $0 })
        }
        let conversation = try await fixture.conversation()

        func caller(_ call: RPCCall) async throws -> RPCCaller {
            let decision = await server.authenticate(call, context: authDHTestContext)
            guard case let .accepted(accepted) = decision else { throw Refused(outcome: "\(AuthDHOutcome(decision))") }
            return accepted.caller
        }
        let first = try await caller(try conversation.fullname(.at(clock.now)))
        XCTAssertEqual([first.uid, first.gid], [6001, 100])
        XCTAssertEqual(first.gids, [100, 7])
        let nickname = try await expectAccepted(server, try conversation.fullname(.at(clock.now, plusMicroseconds: 1), xid: 3))
        for i in 0..<50 {
            let seen = try await caller(try conversation.nickname(nickname, .at(clock.now, plusMicroseconds: Int64(10 + i)), xid: UInt32(10 + i)))
            XCTAssertEqual(seen.uid, 6001)
            XCTAssertEqual(seen.gids, [100, 7])
        }
        XCTAssertEqual(lookups.withLockedValue { $0 }, 2, "once per accepted fullname call, never per nickname call")

        // Removed from group 7: the conversation learns it at its next key re-check (every
        // keyRecheckInterval, 30 s by default), as it learns of a revoked key.
        groups.withLockedValue { $0 = [100] }
        clock.advance(by: 31)
        let later = try await caller(try conversation.nickname(nickname, .at(clock.now), xid: 99))
        XCTAssertEqual(later.gids, [100])
        XCTAssertEqual(lookups.withLockedValue { $0 }, 3)
        let after = try await caller(try conversation.nickname(nickname, .at(clock.now, plusMicroseconds: 1), xid: 100))
        XCTAssertEqual(after.gids, [100])
        XCTAssertEqual(lookups.withLockedValue { $0 }, 3)
        await fixture.shutdown()
    }
}
