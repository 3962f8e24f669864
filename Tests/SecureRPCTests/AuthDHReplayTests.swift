// Issue 12 item 2: a recorded AUTH_DH fullname call stays refused after its conversation has
// been pushed out of the nickname table (ATTACKS.md #15), and N copies of one fullname
// presented at once are accepted exactly once (ATTACKS.md #31). End to end through the
// recording proxy (GSSSupport.swift) and a real keyserver; and at the authenticator with an
// injected clock, to see the pairs expire with their window.

import Foundation
import KeyCrypto
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

final class AuthDHReplayTests: XCTestCase {
    private var fixture: AuthDHFixture!

    override func setUp() async throws { fixture = try await AuthDHFixture() }
    override func tearDown() async throws { await fixture.shutdown() }

    /// Record a fullname call (procedure 1) through the proxy, push its conversation out with
    /// 140 other conversations (procedure 2, cacheSize 128), replay the bytes on a new
    /// connection: AUTH_REJECTEDCRED, and procedure 1 ran once. Before the fix the replay was
    /// accepted and ran the procedure a second time.
    func testFullnameReplayedAfterEvictionIsRefused() async throws {
        let runs = NIOLockedValueBox(0), otherRuns = NIOLockedValueBox(0)
        let verifier = try fixture.server(cacheSize: 128)
        let (server, address) = try await fixture.rpcServer(verifier, runs: runs, otherRuns: otherRuns)
        let proxy = RecordProxy()
        let proxied = try await proxy.start(upstream: address)
        let victim = RPCClient(transport: .tcp, address: proxied, program: 0x2000_0300, version: 1, authenticator: try fixture.client())
        _ = try await victim.call(1, XDRVoid(), returning: UInt32.self)
        await victim.close()
        let records = proxy.recorded(.toServer)
        XCTAssertEqual(records.count, 1)
        guard case .fullname? = try? AuthDHCredential.decode(try RPCCall.decode(records[0]).credential.body) else {
            return XCTFail("the recorded call is a fullname call")
        }
        // Before eviction the table itself refuses it.
        let early = try await sendRawRecord(records[0], to: address)
        XCTAssertEqual(early?.status, .denied(.authError(.rejectedCredential)))

        // 140 other conversations (each its own client and conversation key) evict it.
        for _ in 0..<140 {
            let other = RPCClient(transport: .tcp, address: address, program: 0x2000_0300, version: 1, authenticator: try fixture.client())
            _ = try await other.call(2, XDRVoid(), returning: UInt32.self)
            await other.close()
        }
        XCTAssertEqual(otherRuns.withLockedValue { $0 }, 140)
        XCTAssertEqual(verifier.conversationCount, 128)

        let reply = try await sendRawRecord(records[0], to: address)
        XCTAssertEqual(reply?.status, .denied(.authError(.rejectedCredential)), "the replay after eviction")
        XCTAssertEqual(runs.withLockedValue { $0 }, 1, "procedure 1 ran once")
        await proxy.stop()
        await server.shutdown()
    }

    /// The same at the authenticator with an injected clock: refused while its stamp is in
    /// the window, whatever the nickname table holds; once the window has passed it is refused
    /// as expired and its pair has left the replay cache (memory does not grow with time).
    func testPairsLiveForTheWindowAndThenExpire() async throws {
        let t0: TimeInterval = 1_800_000_000
        let clock = AuthDHTestClock(t0)
        let server = try fixture.server(cacheSize: 4, clock: clock)
        let victim = try await fixture.conversation()
        let recorded = try victim.fullname(.at(t0), window: 60)
        await expectOutcome(server, recorded, .acceptedAny)
        for index in 0..<8 {
            let other = try await fixture.conversation()
            let got = AuthDHOutcome(await server.authenticate(try other.fullname(.at(t0, plusMicroseconds: Int64(index + 1))), context: authDHTestContext))
            XCTAssertTrue(got.isAccepted)
        }
        XCTAssertEqual(server.conversationCount, 4)
        clock.advance(by: 59)
        await expectOutcome(server, recorded, .rejected(.rejectedCredential))
        XCTAssertEqual(server.rememberedFullnames, 9)
        clock.advance(by: 1)
        await expectOutcome(server, recorded, .rejected(.badCredential), "expired")
        // Pairs leave in steps of one bucket (about 10 s with the default limits).
        clock.advance(by: 20)
        let late = try await fixture.conversation()
        await expectOutcome(server, try late.fullname(.at(t0 + 80)), .acceptedAny)
        XCTAssertEqual(server.rememberedFullnames, 1, "the old pairs expired")
    }

    /// A principal over its share of the replay cache gets AUTH_FAILED for new fullname calls
    /// (never a forgotten pair) until its pairs expire; others are not affected.
    func testFullCacheRefusesUntilItsPairsExpire() async throws {
        let t0: TimeInterval = 1_800_000_000
        let clock = AuthDHTestClock(t0)
        var limits = AuthDHServer.Limits()
        limits.maximumRememberedFullnamesPerPrincipal = 3
        let server = try fixture.server(limits: limits, clock: clock)
        for index in 0..<3 {
            let conversation = try await fixture.conversation()
            await expectOutcome(server, try conversation.fullname(.at(t0, plusMicroseconds: Int64(index))), .acceptedAny)
        }
        let fourth = try await fixture.conversation()
        await expectOutcome(server, try fourth.fullname(.at(t0, plusMicroseconds: 9)), .rejected(.failed))
        clock.advance(by: 60 + 11)
        await expectOutcome(server, try fourth.fullname(.at(t0 + 71)), .acceptedAny, "after the window and one bucket")
    }

    /// ATTACKS.md #31: 32 tasks present the same fullname at once; exactly one is accepted,
    /// the others get AUTH_REJECTEDCRED. Then again with its conversation evicted first.
    func testConcurrentCopiesOfOneFullnameAcceptedOnce() async throws {
        let server = try fixture.server(cacheSize: 2)
        for round in 0..<2 {
            let conversation = try await fixture.conversation()
            let call = try conversation.fullname(.at(Date().timeIntervalSince1970))
            if round == 1 {
                // Accepted once, then evicted by two others: only the replay cache remains.
                await expectOutcome(server, call, .acceptedAny)
                for _ in 0..<2 {
                    let other = try await fixture.conversation()
                    let got = AuthDHOutcome(await server.authenticate(try other.fullname(.at(Date().timeIntervalSince1970)), context: authDHTestContext))
                    XCTAssertTrue(got.isAccepted)
                }
            }
            let outcomes = await withTaskGroup(of: AuthDHOutcome.self) { group in
                for _ in 0..<32 {
                    group.addTask { AuthDHOutcome(await server.authenticate(call, context: authDHTestContext)) }
                }
                return await group.reduce(into: [AuthDHOutcome]()) { $0.append($1) }
            }
            XCTAssertEqual(outcomes.filter(\.isAccepted).count, round == 0 ? 1 : 0, "round \(round)")
            XCTAssertEqual(outcomes.filter { $0 == .rejected(.rejectedCredential) }.count, round == 0 ? 31 : 32, "round \(round)")
        }
    }
}
