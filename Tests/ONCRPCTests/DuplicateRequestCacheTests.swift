// The duplicate request cache on its own: a table of situations and what each must do.

import NIOCore
import XCTest
@testable import ONCRPC

final class DuplicateRequestCacheTests: XCTestCase {
    private func key(_ xid: UInt32, port: Int = 1000, hash: Int = 0) -> DuplicateRequestCache.Key {
        DuplicateRequestCache.Key(address: try! SocketAddress(ipAddress: "127.0.0.1", port: port), xid: xid, messageHash: hash)
    }

    private func describe(_ check: DuplicateCheck) -> String {
        switch check {
        case .execute: return "execute"
        case .drop: return "drop"
        case let .resend(reply): return "resend \(reply.readableBytes)"
        }
    }

    func testTable() {
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var cache = DuplicateRequestCache(capacity: 3, timeToLive: .seconds(10))
        let reply = ByteBuffer(bytes: [1, 2, 3])
        let steps: [(String, () -> String, String)] = [
            ("new call runs", { self.describe(cache.check(self.key(1), now: t0)) }, "execute"),
            ("retransmission while running is dropped", { self.describe(cache.check(self.key(1), now: t0)) }, "drop"),
            ("complete", { cache.complete(self.key(1), reply: reply, now: t0); return "" }, ""),
            ("retransmission after completion gets the reply", { self.describe(cache.check(self.key(1), now: t0)) }, "resend 3"),
            ("other port is another call", { self.describe(cache.check(self.key(1, port: 2000), now: t0)) }, "execute"),
            ("other bytes are another call", { self.describe(cache.check(self.key(1, hash: 9), now: t0)) }, "execute"),
            ("after the time to live it runs again", { self.describe(cache.check(self.key(1), now: t0 + .seconds(11))) }, "execute"),
        ]
        for (name, action, expected) in steps {
            XCTAssertEqual(action(), expected, name)
        }
    }

    func testCapacityIsBoundedAndOldestGoFirst() {
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var cache = DuplicateRequestCache(capacity: 4, timeToLive: .seconds(60))
        for xid in 0..<100 as Range<UInt32> {
            _ = cache.check(key(xid), now: now)
            cache.complete(key(xid), reply: ByteBuffer(bytes: [UInt8(xid)]), now: now)
            XCTAssertLessThanOrEqual(cache.count, 4)
        }
        // The newest survive, the oldest were evicted.
        guard case .resend = cache.check(key(99), now: now) else { return XCTFail("newest evicted") }
        guard case .execute = cache.check(key(0), now: now) else { return XCTFail("oldest kept") }
    }

    func testCallWithoutReplyIsForgotten() {
        let now = NIODeadline.uptimeNanoseconds(1)
        var cache = DuplicateRequestCache(capacity: 4, timeToLive: .seconds(60))
        _ = cache.check(key(5), now: now)
        cache.complete(key(5), reply: nil, now: now)
        guard case .execute = cache.check(key(5), now: now) else { return XCTFail() }
    }
}
