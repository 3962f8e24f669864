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
        case .refused: return "refused"
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

    // ATTACKS.md #30 / issue 13 item 2: every datagram of 4+ bytes that gets no reply used to
    // leave its slot in the eviction order behind for good (7.6 M garbage datagrams: +364 MB).
    func testAMillionCallsWithoutReplyLeaveTheOrderBounded() {
        let capacity = 8192
        var cache = DuplicateRequestCache(capacity: capacity, timeToLive: .seconds(120))
        var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var largest = 0
        let addresses = try! (0..<64).map { try SocketAddress(ipAddress: "127.0.0.1", port: 1000 + $0) }
        for i in 0..<1_000_000 as Range<UInt32> {
            let key = DuplicateRequestCache.Key(address: addresses[Int(i % 64)], xid: i, messageHash: Int(i))
            guard case .execute = cache.check(key, now: now) else { return XCTFail("call \(i) not executed") }
            cache.complete(key, reply: nil, now: now)
            largest = max(largest, cache.orderSlots)
            now = now + .microseconds(1)
        }
        XCTAssertEqual(cache.count, 0)
        XCTAssertLessThanOrEqual(largest, 2 * capacity + 65, "eviction order slots kept for calls that are gone")
    }

    func testRetransmissionsAndCompletionsKeepTheOrderBounded() {
        // Calls that complete move to the back of the order; repeated many times over a
        // small set of keys, the dead slots they leave must not pile up either.
        var cache = DuplicateRequestCache(capacity: 16, timeToLive: .seconds(120))
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var largest = 0
        for round in 0..<20_000 {
            let key = key(UInt32(round % 8))
            _ = cache.check(key, now: now)
            cache.complete(key, reply: ByteBuffer(bytes: [1]), now: now)
            largest = max(largest, cache.orderSlots)
        }
        XCTAssertEqual(cache.count, 8)
        XCTAssertLessThanOrEqual(largest, 2 * 16 + 65)
    }

    func testExpiredEntriesGoWithTimeNotOnlyWhenTheCacheIsFull() {
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var cache = DuplicateRequestCache(capacity: 1000, timeToLive: .seconds(10))
        for xid in 0..<50 as Range<UInt32> {
            _ = cache.check(key(xid), now: t0)
            cache.complete(key(xid), reply: ByteBuffer(bytes: [UInt8(xid)]), now: t0)
        }
        XCTAssertEqual(cache.count, 50)
        // Far from full, but time is up for all 50: the next datagram finds them gone.
        _ = cache.check(key(1000), now: t0 + .seconds(11))
        XCTAssertEqual(cache.count, 1)
        // And the timer the UDP handler runs drops the rest with no datagram at all.
        cache.dropExpired(now: t0 + .seconds(22))
        XCTAssertEqual(cache.count, 0)
        XCTAssertEqual(cache.orderSlots, 0)
    }

    func testACompletedReplyLivesItsFullTimeFromCompletion() {
        // A call that took 8 s keeps its reply for 10 s after it completed, not 2.
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var cache = DuplicateRequestCache(capacity: 10, timeToLive: .seconds(10))
        _ = cache.check(key(1), now: t0)
        _ = cache.check(key(2), now: t0 + .seconds(1))
        cache.complete(key(2), reply: ByteBuffer(bytes: [2]), now: t0 + .seconds(2))
        cache.complete(key(1), reply: ByteBuffer(bytes: [1]), now: t0 + .seconds(8))
        guard case .resend = cache.check(key(1), now: t0 + .seconds(17)) else { return XCTFail("reply 1 expired early") }
        guard case .execute = cache.check(key(2), now: t0 + .seconds(17)) else { return XCTFail("reply 2 kept too long") }
    }

    func testReplyBytesAreBounded() {
        let now = NIODeadline.uptimeNanoseconds(1)
        var cache = DuplicateRequestCache(capacity: 1000, timeToLive: .seconds(60), maximumReplyBytes: 8192)
        for xid in 0..<100 as Range<UInt32> {
            _ = cache.check(key(xid), now: now)
            var reply = ByteBufferAllocator().buffer(capacity: 1024)
            reply.writeRepeatingByte(7, count: 1024)
            cache.complete(key(xid), reply: reply, now: now)
            XCTAssertLessThanOrEqual(cache.replyBytes, 8192)
        }
        XCTAssertGreaterThan(cache.count, 0)
        XCTAssertLessThanOrEqual(cache.count, 8)
        guard case .resend = cache.check(key(99), now: now) else { return XCTFail("newest reply evicted") }
        guard case .execute = cache.check(key(0), now: now) else { return XCTFail("oldest reply kept") }
        // A reply larger than the whole budget is not kept at all.
        var huge = ByteBufferAllocator().buffer(capacity: 16_384)
        huge.writeRepeatingByte(1, count: 16_384)
        _ = cache.check(key(500), now: now)
        cache.complete(key(500), reply: huge, now: now)
        guard case .execute = cache.check(key(500), now: now) else { return XCTFail("oversized reply cached") }
    }

    func testANewCallRefusedForWantOfRoomIsNotRecorded() {
        let now = NIODeadline.uptimeNanoseconds(1)
        var cache = DuplicateRequestCache(capacity: 4, timeToLive: .seconds(60))
        XCTAssertEqual(describe(cache.check(key(1), now: now, admit: false)), "refused")
        XCTAssertEqual(cache.count, 0)
        // Its retransmission, when there is room, runs.
        XCTAssertEqual(describe(cache.check(key(1), now: now)), "execute")
        // A known call is answered from the cache even when no new one may start.
        cache.complete(key(1), reply: ByteBuffer(bytes: [9]), now: now)
        XCTAssertEqual(describe(cache.check(key(1), now: now, admit: false)), "resend 1")
        _ = cache.check(key(2), now: now)
        XCTAssertEqual(describe(cache.check(key(2), now: now, admit: false)), "drop")
    }
}
