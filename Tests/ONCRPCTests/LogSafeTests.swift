// Peer-chosen text never forges a log line (ATTACKS.md #29's neighbour, issue 12 item 8's
// rule applied beyond GSS): the dispatcher's "call below policy" line prints the caller's
// description, which held an AUTH_SYS machine name exactly as received, and the file service
// logged paths as received. Both now go through logSafe.

import XCTest
@testable import ONCRPC

final class LogSafeTests: XCTestCase {
    func testControlCharactersAreEscapedAndLengthIsBounded() {
        XCTAssertEqual(logSafe("plain name.example"), "plain name.example")
        XCTAssertEqual(logSafe("a\nb\rc\u{1b}[2Jd\u{7f}"), "a\\x0ab\\x0dc\\x1b[2Jd\\x7f")
        XCTAssertEqual(logSafe("back\\slash"), "back\\\\slash")
        XCTAssertEqual(logSafe("héllo ✓"), "héllo ✓")
        XCTAssertEqual(logSafe(String(repeating: "x", count: 10_000)).count, 257)
        XCTAssertFalse(logSafe("x\n2026-12-02T00:00:00 notice forged line").contains("\n"))
    }

    func testAnAuthSysMachineNameCannotAddALogLine() {
        let caller = RPCCaller(flavor: .sys, machineName: "host\n2026-12-02T00:00:00+0000 notice keyserverd: root logged in", uid: 0)
        XCTAssertFalse(caller.description.contains("\n"))
        XCTAssertTrue(caller.description.contains("host=host\\x0a2026"), caller.description)
    }
}
