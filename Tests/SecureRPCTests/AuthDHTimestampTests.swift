// Issue 12 item 1: AUTH_DH timestamps bounded from above, the client's window capped, and
// nicknames that are random handles. The server runs on an injected clock at a whole second,
// so every edge is exact to the microsecond; credentials are made by hand under a conversation
// key the real keyserver generated and wrapped (AuthDHSupport.swift), and the statuses are
// those of PROTOCOL.md §3.6 (time failures: fullname AUTH_BADCRED, nickname AUTH_REJECTEDVERF).

import Foundation
import KeyCrypto
import NIOCore
import ONCRPC
import XCTest
@testable import SecureRPC

final class AuthDHTimestampTests: XCTestCase {
    private var fixture: AuthDHFixture!
    /// A whole second, so that now ± n s ± 1 µs are exact.
    private let t0: TimeInterval = 1_800_000_000
    private let skew: TimeInterval = 300

    override func setUp() async throws { fixture = try await AuthDHFixture() }
    override func tearDown() async throws { await fixture.shutdown() }

    private func outcome(_ server: AuthDHServer, _ call: RPCCall) async -> AuthDHOutcome {
        AuthDHOutcome(await server.authenticate(call, context: authDHTestContext))
    }

    func testDefaultsAreExplicit() {
        let limits = AuthDHServer.Limits()
        XCTAssertEqual(limits.maximumClockSkew, 300)
        XCTAssertEqual(limits.maximumWindow, 300)
        XCTAssertEqual(limits.keyRecheckInterval, 30)
    }

    /// Fullname stamps: accepted in (now − window, now + skew], refused with AUTH_BADCRED
    /// outside; before the fix every stamp later than now − window was accepted.
    func testFullnameStampEdges() async throws {
        let clock = AuthDHTestClock(t0)
        let server = try fixture.server(clock: clock)
        let accepted = AuthDHOutcome.acceptedAny
        let cases: [(String, AuthDHTimestamp, UInt32, AuthDHOutcome)] = [
            ("now + skew", .at(t0 + skew), 60, accepted),
            ("now + skew + 1 µs", .at(t0 + skew, plusMicroseconds: 1), 60, .rejected(.badCredential)),
            ("now + window + 5 s, window 300", .at(t0 + 305), 300, .rejected(.badCredential)),
            ("now + 10^6 s", .at(t0 + 1_000_000), 60, .rejected(.badCredential)),
            ("now + 2^31 s", AuthDHTimestamp(seconds: .max, microseconds: 0), 60, .rejected(.badCredential)),
            ("now − window", .at(t0 - 60), 60, .rejected(.badCredential)),
            ("now − window + 1 µs", .at(t0 - 60, plusMicroseconds: 1), 60, accepted),
            ("now", .at(t0), 60, accepted),
            ("usec = 10^6", AuthDHTimestamp(seconds: UInt32(t0), microseconds: 1_000_000), 60, .rejected(.badVerifier)),
            // The client's window is cut to 300 s: a stamp 301 s old is refused even with
            // window 3600, one 299 s old is not.
            ("now − 301 s, window 3600", .at(t0 - 301), 3600, .rejected(.badCredential)),
            ("now − 299 s, window 3600", .at(t0 - 299), 3600, accepted),
        ]
        for (name, stamp, window, expected) in cases {
            let conversation = try await fixture.conversation()
            let got = await outcome(server, try conversation.fullname(stamp, window: window))
            XCTAssertEqual(got.isAccepted, expected.isAccepted, name)
            if !expected.isAccepted { XCTAssertEqual(got, expected, name) }
        }
    }

    /// Nickname stamps: the same bounds with the stored window, AUTH_REJECTEDVERF outside.
    /// A far-future stamp is refused and does not lock the conversation out.
    func testNicknameStampEdges() async throws {
        let clock = AuthDHTestClock(t0)
        let server = try fixture.server(clock: clock)
        let conversation = try await fixture.conversation()
        let nickname = try await expectAccepted(server, try conversation.fullname(.at(t0), window: 60))
        clock.set(t0 + 100)  // now − window = t0 + 40, after the fullname's stamp
        let cases: [(String, AuthDHTimestamp, Bool)] = [
            ("now − window", .at(t0 + 40), false),
            ("now − window + 1 µs", .at(t0 + 40, plusMicroseconds: 1), true),
            ("now + 10^6 s", .at(t0 + 100 + 1_000_000), false),
            // The bound is the skew, not the window: window 60, +65 s is inside 300 s.
            ("now + window + 5 s, window 60", .at(t0 + 165), true),
            ("now + skew + 1 µs", .at(t0 + 100 + skew, plusMicroseconds: 1), false),
            ("now + skew", .at(t0 + 100 + skew), true),
            ("the same stamp again", .at(t0 + 100 + skew), false),
            ("usec = 10^6", AuthDHTimestamp(seconds: UInt32(t0 + 100 + skew), microseconds: 1_000_000), false),
        ]
        for (name, stamp, accepted) in cases {
            let got = await outcome(server, try conversation.nickname(nickname, stamp))
            if accepted {
                XCTAssertTrue(got.isAccepted, "\(name): \(got)")
            } else {
                XCTAssertEqual(got, .rejected(.rejectedVerifier), name)
            }
        }
        // Window 300 (the cap), stamp at now + window + 5 s: beyond the skew.
        clock.set(t0)
        let wide = try await fixture.conversation()
        let wideNickname = try await expectAccepted(server, try wide.fullname(.at(t0 - 1), window: 300))
        await expectOutcome(server, try wide.nickname(wideNickname, .at(t0 + 305)), .rejected(.rejectedVerifier))
        await expectOutcome(server, try wide.nickname(wideNickname, .at(t0)), .acceptedAny, "not locked out")
    }

    /// A window above the cap is stored cut: a nickname stamp 301 s old is refused although the
    /// client asked for 3600 s.
    func testNicknameWindowIsCapped() async throws {
        let clock = AuthDHTestClock(t0)
        let server = try fixture.server(clock: clock)
        let conversation = try await fixture.conversation()
        let nickname = try await expectAccepted(server, try conversation.fullname(.at(t0), window: 3600))
        clock.set(t0 + 400)
        await expectOutcome(server, try conversation.nickname(nickname, .at(t0 + 99)), .rejected(.rejectedVerifier))
        await expectOutcome(server, try conversation.nickname(nickname, .at(t0 + 101)), .acceptedAny)
    }

    /// A smaller configured skew is honoured exactly.
    func testConfiguredSkew() async throws {
        let clock = AuthDHTestClock(t0)
        var limits = AuthDHServer.Limits()
        limits.maximumClockSkew = 5
        let server = try fixture.server(limits: limits, clock: clock)
        let first = try await fixture.conversation()
        await expectOutcome(server, try first.fullname(.at(t0 + 5, plusMicroseconds: 1)), .rejected(.badCredential))
        let nickname = try await expectAccepted(server, try first.fullname(.at(t0 + 5)))
        await expectOutcome(server, try first.nickname(nickname, .at(t0 + 65)), .rejected(.rejectedVerifier), "+window+5 s")
        clock.advance(by: 1)
        await expectOutcome(server, try first.nickname(nickname, .at(t0 + 6)), .acceptedAny)
    }

    /// Nicknames are random handles: not the slot indices 0, 1, 2 Sun hands out, all
    /// different, and a handle that was never handed out names nothing (AUTH_BADCRED).
    func testNicknamesAreRandomHandles() async throws {
        let clock = AuthDHTestClock(t0)
        let server = try fixture.server(clock: clock)
        var nicknames: [[UInt8]] = []
        var conversations: [HandMadeConversation] = []
        for index in 0..<3 {
            let conversation = try await fixture.conversation()
            nicknames.append(try await expectAccepted(server, try conversation.fullname(.at(t0, plusMicroseconds: Int64(index)))))
            conversations.append(conversation)
        }
        XCTAssertEqual(Set(nicknames).count, 3)
        for index in 0..<3 {
            XCTAssertNotEqual(nicknames[index], [0, 0, 0, UInt8(index)], "a slot index")
        }
        // Slot indices mean nothing now (unless a handle happens to be one: 3 in 2^32).
        for index in UInt8(0)..<3 where !nicknames.contains([0, 0, 0, index]) {
            let got = await outcome(server, try conversations[Int(index)].nickname([0, 0, 0, index], .at(t0 + 1)))
            XCTAssertEqual(got, .rejected(.badCredential))
        }
        // Each conversation goes on with its own handle.
        for index in 0..<3 {
            await expectOutcome(server, try conversations[index].nickname(nicknames[index], .at(t0 + 2)), .acceptedAny)
        }
    }
}
