// The rate limiter behind the server's refusal logs, on an injected clock: at most one line
// per interval, and every event counted in exactly one line.

import NIOCore
import XCTest
@testable import ONCRPC

final class LogRateLimiterTests: XCTestCase {
    func testOneLinePerIntervalAndEveryEventCounted() {
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var limiter = LogRateLimiter(interval: .seconds(10))
        // (time offset in ms, what record returns)
        let steps: [(Int64, Int?)] = [
            (0, 1),          // the first event is logged at once
            (1, nil), (2, nil), (9_999, nil),   // folded
            (10_000, 4),     // the interval is over: this line reports the three folded and itself
            (10_001, nil),
        ]
        for (offset, expected) in steps {
            XCTAssertEqual(limiter.record(now: t0 + .milliseconds(offset)), expected, "at \(offset) ms")
        }
        XCTAssertEqual(limiter.flush(now: t0 + .milliseconds(15_000)), nil, "too early for the next line")
        XCTAssertEqual(limiter.flush(now: t0 + .milliseconds(20_000)), 1, "the folded event is reported when its interval ends")
        XCTAssertEqual(limiter.flush(now: t0 + .milliseconds(40_000)), nil, "nothing left")
        XCTAssertEqual(limiter.record(now: t0 + .milliseconds(40_001)), 1)
        XCTAssertEqual(limiter.record(now: t0 + .milliseconds(40_002)), nil)
        XCTAssertEqual(limiter.flush(now: t0 + .milliseconds(40_003), force: true), 1, "shutdown reports what is left")
    }

    func testAMillionEventsInOneIntervalAreOneLine() {
        let t0 = NIODeadline.uptimeNanoseconds(1)
        var limiter = LogRateLimiter(interval: .seconds(10))
        var lines = 0
        var counted = 0
        for i in 0..<1_000_000 {
            if let count = limiter.record(now: t0 + .nanoseconds(Int64(i))) { lines += 1; counted += count }
        }
        if let count = limiter.flush(now: t0 + .seconds(10)) { lines += 1; counted += count }
        XCTAssertEqual(lines, 2)
        XCTAssertEqual(counted, 1_000_000)
    }
}
