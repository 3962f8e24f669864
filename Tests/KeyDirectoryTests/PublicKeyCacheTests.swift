// The network lookup cache's rules as a table on an injected clock: fresh, stale within the
// serve-stale window, gone after it; negative answers on their own TTL; invalidation; bounds.

import KeyCrypto
import KeyDirectory
import XCTest

final class PublicKeyCacheTests: XCTestCase {
    let alice = "unix.1001@example.org"
    let key = DHPrivateKey.generate(group: .ffdhe2048).publicKey

    func testFreshStaleAndGone() {
        var cache = PublicKeyCache(settings: .init(ttl: 300, negativeTTL: 30, serveStale: 3600))
        XCTAssertEqual(cache.answer(netname: alice, mechanism: .ffdhe2048, now: 0), .miss)
        cache.store(netname: alice, mechanism: .ffdhe2048, key: key, now: 1000)
        cache.store(netname: "unix.1002@example.org", mechanism: .ffdhe2048, key: nil, now: 1000)
        let table: [(Double, String, PublicKeyCache.Answer)] = [
            (1000, alice, .fresh(key)),
            (1299.9, alice, .fresh(key)),
            (1300, alice, .stale(key)),
            (4899.9, alice, .stale(key)),
            (1029.9, "unix.1002@example.org", .fresh(nil)),
            (1030, "unix.1002@example.org", .stale(nil)),
            (4900, alice, .miss),
            (4900, alice, .miss),   // and it is gone for good
        ]
        for (now, netname, expected) in table {
            XCTAssertEqual(cache.answer(netname: netname, mechanism: .ffdhe2048, now: now), expected, "\(netname) at \(now)")
        }
        XCTAssertEqual(cache.answer(netname: alice, mechanism: .ffdhe3072, now: 1000), .miss, "per mechanism")
    }

    func testInvalidation() {
        var cache = PublicKeyCache()
        for mechanism in [DHGroupName.ffdhe2048, .ffdhe3072] {
            cache.store(netname: alice, mechanism: mechanism, key: mechanism == .ffdhe2048 ? key : nil, now: 0)
        }
        cache.store(netname: "unix.1002@example.org", mechanism: .ffdhe2048, key: nil, now: 0)
        cache.invalidate(netname: alice)
        XCTAssertEqual(cache.answer(netname: alice, mechanism: .ffdhe2048, now: 1), .miss)
        XCTAssertEqual(cache.answer(netname: alice, mechanism: .ffdhe3072, now: 1), .miss)
        XCTAssertEqual(cache.netnames, ["unix.1002@example.org"])
        cache.invalidateAll()
        XCTAssertEqual(cache.count, 0)
    }

    func testBoundedUnderAFloodOfNames() {
        var cache = PublicKeyCache(settings: .init(capacity: 1000))
        for index in 0..<20_000 {
            cache.store(netname: "unix.\(index)@example.org", mechanism: .ffdhe2048, key: nil, now: Double(index) / 1000)
            if cache.count > 1000 { XCTFail("\(cache.count) entries after \(index + 1) names"); break }
        }
        // The newest survive.
        XCTAssertEqual(cache.answer(netname: "unix.19999@example.org", mechanism: .ffdhe2048, now: 20), .fresh(nil))
        XCTAssertEqual(cache.answer(netname: "unix.0@example.org", mechanism: .ffdhe2048, now: 20), .miss)
    }
}
