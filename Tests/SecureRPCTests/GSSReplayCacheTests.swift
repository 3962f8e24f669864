// The INIT replay cache (issue 12 item 3). It used to prune only when its count reached a
// mark that doubled after each prune, so once more than half the cap was live the count stuck
// at the cap and every INIT got GSS_S_FAILURE until a restart; legitimate load above ~84
// contexts/s got there. Shown here with an injected clock: through the real server (a real
// keyserver derives K_ss) the cap is reached, the clock moves past the tokens' lifetime and
// the next INIT succeeds; 300 verified INITs a second for ten simulated minutes never fail;
// one client cannot take more than its share; replays are still refused to the exact edge.

import Foundation
import KeyCrypto
import NIOCore
import ONCRPC
import XCTest
@testable import SecureRPC

final class GSSReplayCacheTests: XCTestCase {
    private var fixture: GSSFixture!

    override func setUp() async throws {
        fixture = try await GSSFixture()
    }

    override func tearDown() async throws {
        await fixture.shutdown()
    }

    func testCapReachedThenClockAdvancedNextInitSucceeds() async throws {
        let clock = ClockBox(Date().timeIntervalSince1970)
        let (server, gss, _, _) = try await fixture.startServer(configure: {
            $0.maximumRememberedTokens = 4
            $0.maximumRememberedTokensPerClient = 4
        }, now: { clock.now })
        let maker = try GSSInitMaker(client: gssClientNetname)
        for i in 0..<4 {
            let result = await initResult(gss, GSSInitMaker.call(try maker.token(at: clock.now)))
            XCTAssertEqual(result?.gssMajor, GSSMajorStatus.complete, "INIT \(i)")
        }
        let full = await initResult(gss, GSSInitMaker.call(try maker.token(at: clock.now)))
        XCTAssertEqual(full?.gssMajor, GSSMajorStatus.failure)
        XCTAssertEqual(full?.gssMinor, GSSMinorStatus.replayCacheFull.rawValue)
        // The tokens' lifetime (clockSkew) plus one bucket later they are gone by themselves.
        clock.advance(gss.configuration.clockSkew + gss.configuration.clockSkew / 32 + 1)
        let next = await initResult(gss, GSSInitMaker.call(try maker.token(at: clock.now)))
        XCTAssertEqual(next?.gssMajor, GSSMajorStatus.complete, "expired entries must make room")
        XCTAssertEqual(gss.rememberedTokenCount, 1)
        await server.shutdown()
    }

    /// 300 verified INITs/s (30 clients, 10/s each) for 600 simulated seconds, through the
    /// server's replay step — even with the old cap of 100,000 tokens (the default is now
    /// 200,000): not one refused, memory flat.
    func testThreeHundredInitsPerSecondForTenMinutesNeverFail() async throws {
        let clock = ClockBox(1_800_000_000)
        let (server, gss, _, _) = try await fixture.startServer(configure: { $0.maximumRememberedTokens = 100_000 }, now: { clock.now })
        let clients = (0..<30).map { "unix.\(20_000 + $0)@gss.example" }
        var refused = 0, largest = 0
        for tick in 0..<(600 * 300) {
            let now = clock.now + Double(tick) / 300
            let nonce = withUnsafeBytes(of: UInt64(tick)) { Array($0) } + [UInt8](repeating: 7, count: 8)
            let verdict = gss.rememberToken(client: clients[tick % 30], timestampMicroseconds: UInt64(now * 1_000_000),
                                            nonce: nonce, now: now)
            if verdict != .fresh { refused += 1 }
            if tick % 3_000 == 0 { largest = max(largest, gss.rememberedTokenCount) }
        }
        XCTAssertEqual(refused, 0)
        // Entries live clockSkew (+ one bucket): 300/s × ~309 s, not more.
        XCTAssertLessThanOrEqual(largest, 300 * 310)
        XCTAssertGreaterThan(largest, 300 * 290)
        await server.shutdown()
    }

    func testOneClientCannotFillTheCacheForEveryone() async throws {
        let clock = ClockBox(1_800_000_000)
        let (server, gss, _, _) = try await fixture.startServer(configure: {
            $0.maximumRememberedTokens = 1_000
            $0.maximumRememberedTokensPerClient = 100
        }, now: { clock.now })
        let start = clock.now
        var verdicts: [GSSReplayCache.Verdict] = []
        for i in 0..<150 {
            verdicts.append(gss.rememberToken(client: "unix.666@gss.example", timestampMicroseconds: UInt64((start + Double(i) / 1000) * 1_000_000),
                                              nonce: [UInt8](repeating: 1, count: 16), now: start))
        }
        XCTAssertEqual(verdicts.filter { $0 == .fresh }.count, 100)
        XCTAssertEqual(verdicts.last, .clientFull)
        XCTAssertEqual(gss.rememberToken(client: gssClientNetname, timestampMicroseconds: UInt64(start * 1_000_000),
                                         nonce: [UInt8](repeating: 2, count: 16), now: start), .fresh, "others are not affected")
        await server.shutdown()
    }

    func testReplayEdgesAndExpiryTable() {
        let skew: TimeInterval = 320  // bucket width 10 s
        var cache = GSSReplayCache(lifetime: skew, capacity: 100, perClientCapacity: 100)
        let t0: TimeInterval = 1_000_000
        let nonce = [UInt8](repeating: 9, count: 16)
        let stamp = UInt64(t0 * 1_000_000)
        // (now, timestamp, nonce, client, expected)
        let rows: [(TimeInterval, UInt64, [UInt8], String, GSSReplayCache.Verdict)] = [
            (t0, stamp, nonce, "unix.1@x", .fresh),
            (t0, stamp, nonce, "unix.1@x", .replay),
            (t0, stamp, nonce, "unix.2@x", .fresh),                  // another client, same stamp and nonce
            (t0, stamp + 1, nonce, "unix.1@x", .fresh),              // one microsecond later
            (t0, stamp, [UInt8](repeating: 8, count: 16), "unix.1@x", .fresh),
            (t0 + skew, stamp, nonce, "unix.1@x", .replay),          // still acceptable by time: still refused
            (t0 + skew + 9.99, stamp, nonce, "unix.1@x", .replay),   // same bucket (t0 + skew is a bucket boundary)
            (t0 + skew + 10, stamp, nonce, "unix.1@x", .replay),     // bucket gone: too old to be acceptable at all
        ]
        for (index, row) in rows.enumerated() {
            XCTAssertEqual(cache.insert(client: row.3, timestampMicroseconds: row.1, nonce: row.2, now: row.0), row.4, "row \(index)")
        }
        XCTAssertEqual(cache.count, 0, "everything from t0 expired")
        XCTAssertEqual(cache.count(of: "unix.1@x"), 0)
        // Future-dated tokens (up to skew ahead) live until their own timestamp + skew.
        XCTAssertEqual(cache.insert(client: "unix.3@x", timestampMicroseconds: UInt64((t0 + 2 * skew) * 1_000_000), nonce: nonce, now: t0 + skew + 10), .fresh)
        cache.expire(now: t0 + 3 * skew - 1)
        XCTAssertEqual(cache.count, 1)
        cache.expire(now: t0 + 3 * skew + 10)
        XCTAssertEqual(cache.count, 0)
        XCTAssertEqual(cache.bucketCount, 0)
    }
}
