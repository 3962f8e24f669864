// The fullname replay cache on its own (AuthDHReplayCache.swift), on made-up times in
// microseconds: pairs live exactly as long as asked (never less), expiry always runs (a full
// cache empties once its time has passed: the INIT-cache stall of issue 12 item 3 cannot
// happen here), both bounds hold, and a clock that steps back expires nothing early.

import XCTest
@testable import SecureRPC

final class AuthDHReplayCacheTests: XCTestCase {
    private let second: Int64 = 1_000_000
    private let t0: Int64 = 1_800_000_000 * 1_000_000
    /// The server's defaults: 300 s window cap + 300 s skew.
    private var span: Int64 { 600 * second + 1 }

    private func pair(_ netname: String, _ seconds: UInt32, _ micros: UInt32 = 0) -> AuthDHReplayCache.Entry {
        .init(netname: netname, stamp: AuthDHTimestamp(seconds: seconds, microseconds: micros))
    }

    private func pair(_ seconds: UInt32, _ micros: UInt32 = 0) -> AuthDHReplayCache.Entry {
        pair("unix.1001@example.org", seconds, micros)
    }

    func testTable() {
        var cache = AuthDHReplayCache(span: span, capacity: 100, perPrincipalCapacity: 100)
        let now = t0
        let cases: [(String, AuthDHReplayCache.Entry, Int64, AuthDHReplayCache.Outcome)] = [
            ("first", pair(1_800_000_000), now + 60 * second, .fresh),
            ("the same pair", pair(1_800_000_000), now + 60 * second, .replay),
            ("the same pair, another expiry", pair(1_800_000_000), now + 300 * second, .replay),
            ("one µs later", pair(1_800_000_000, 1), now + 60 * second, .fresh),
            ("another netname", pair("unix.1002@example.org", 1_800_000_000), now + 60 * second, .fresh),
            ("expiry beyond the span", pair(1_800_000_001), now + span + 1, .full),
            ("expiry at the span", pair(1_800_000_002), now + span, .fresh),
        ]
        for (name, candidate, expiry, expected) in cases {
            XCTAssertEqual(cache.insert(candidate, expiresAt: expiry, now: now), expected, name)
        }
        XCTAssertEqual(cache.count, 4)
    }

    /// Random expiries: each pair is still known 1 µs before its expiry, and gone one bucket
    /// (span / 62) after it.
    func testNeverForgottenBeforeItsExpiry() {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var cache = AuthDHReplayCache(span: span, capacity: 10, perPrincipalCapacity: 10)
            let now = t0 + Int64.random(in: 0..<(3600 * second), using: &random)
            let expiry = now + Int64.random(in: 1...span, using: &random)
            let candidate = pair(UInt32.random(in: 0...UInt32.max, using: &random))
            XCTAssertEqual(cache.insert(candidate, expiresAt: expiry, now: now), .fresh)
            cache.expire(now: expiry - 1)
            XCTAssertEqual(cache.count, 1)
            XCTAssertEqual(cache.insert(candidate, expiresAt: expiry, now: expiry - 1), .replay)
            cache.expire(now: expiry + span / 62 + 1)
            XCTAssertEqual(cache.count, 0)
        }
    }

    /// Full, then the clock moves past the span: the next insert succeeds and the memory is
    /// back to one pair. A replay of a remembered pair says "replay", not "full".
    func testFullCacheRecoversWhenItsTimePasses() {
        var cache = AuthDHReplayCache(span: span, capacity: 1000, perPrincipalCapacity: 1000)
        for index in 0..<1000 {
            XCTAssertEqual(cache.insert(pair(UInt32(index)), expiresAt: t0 + span, now: t0), .fresh)
        }
        XCTAssertEqual(cache.insert(pair(5000), expiresAt: t0 + 60 * second, now: t0), .full)
        XCTAssertEqual(cache.insert(pair(7), expiresAt: t0 + 60 * second, now: t0 + second), .replay)
        let later = t0 + 2 * span
        XCTAssertEqual(cache.insert(pair(5000), expiresAt: later + 60 * second, now: later), .fresh)
        XCTAssertEqual(cache.count, 1)
    }

    func testOnePrincipalCannotFillItForEveryone() {
        var cache = AuthDHReplayCache(span: span, capacity: 100, perPrincipalCapacity: 10)
        for index in 0..<10 {
            XCTAssertEqual(cache.insert(pair("unix.666@example.org", UInt32(index)), expiresAt: t0 + 60 * second, now: t0), .fresh)
        }
        XCTAssertEqual(cache.insert(pair("unix.666@example.org", 99), expiresAt: t0 + 60 * second, now: t0), .full)
        XCTAssertEqual(cache.insert(pair("unix.1001@example.org", 99), expiresAt: t0 + 60 * second, now: t0), .fresh)
        // Its quota comes back with time.
        let later = t0 + 61 * second + span / 62
        XCTAssertEqual(cache.insert(pair("unix.666@example.org", 99), expiresAt: later + 60 * second, now: later), .fresh)
    }

    /// 300 fullname calls a second for 10 simulated minutes from 1,000 principals, window 300 s,
    /// with the server's default bounds: never full, and the count stays near rate × window.
    func testSustainedLoadNeverFails() {
        let limits = AuthDHServer.Limits()
        var cache = AuthDHReplayCache(span: span, capacity: limits.maximumRememberedFullnames,
                                      perPrincipalCapacity: limits.maximumRememberedFullnamesPerPrincipal)
        var largest = 0
        let netnames = (0..<1000).map { "unix.\($0)@example.org" }
        for tick in 0..<(600 * 300) {
            let now = t0 + Int64(tick) * second / 300
            let stamp = AuthDHTimestamp(seconds: UInt32(now / second), microseconds: UInt32(now % second))
            let candidate = AuthDHReplayCache.Entry(netname: netnames[tick % 1000], stamp: stamp)
            XCTAssertEqual(cache.insert(candidate, expiresAt: now + 300 * second, now: now), .fresh)
            if tick % 300 == 0 { largest = max(largest, cache.count) }
        }
        XCTAssertLessThanOrEqual(largest, 300 * (300 + 11))
        XCTAssertGreaterThanOrEqual(largest, 300 * 300)
    }

    /// The clock steps back 1000 s: what was remembered stays until its own expiry.
    func testClockSteppingBackExpiresNothingEarly() {
        var cache = AuthDHReplayCache(span: span, capacity: 100, perPrincipalCapacity: 100)
        let remembered = pair(1_800_000_000)
        XCTAssertEqual(cache.insert(remembered, expiresAt: t0 + 300 * second, now: t0), .fresh)
        let back = t0 - 1000 * second
        // Land new pairs in every bucket, the stepped-back epochs share them with the old one.
        for index in 0..<64 {
            let expiry = back + Int64(index) * (span / 62)
            XCTAssertEqual(cache.insert(pair(UInt32(index)), expiresAt: min(expiry, back + span), now: back), .fresh)
        }
        for now in stride(from: back, to: t0 + 300 * second, by: Int(7 * second)) {
            XCTAssertEqual(cache.insert(remembered, expiresAt: t0 + 300 * second, now: now), .replay, "at \(now - t0)")
        }
    }
}
