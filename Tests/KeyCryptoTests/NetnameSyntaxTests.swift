// Netnames from the network: what is well formed, and which ones may name a local user
// (issue 12 item 8: a netname with two '@' or control characters must never map to a uid).

import XCTest
import KeyCrypto

final class NetnameSyntaxTests: XCTestCase {
    func testWellFormed() {
        for good in ["unix.1001@example.org", "unix.fs1@example.org", "unix.0@a"] {
            XCTAssertNil(NetnameSyntax.problem(good), good)
        }
        let bad = [
            "", "unix.@example.org", "unix.1001@", "unix.1001", "nfs.1001@example.org",
            "unix.1001@evil@example.org", "unix.10\n01@example.org", "unix.1001@example.org\n",
            "unix.1 001@example.org", "unix.1001@exämple.org", "unix.1001@" + String(repeating: "a", count: 250),
        ]
        for netname in bad {
            XCTAssertNotNil(NetnameSyntax.problem(netname), netname.debugDescription)
        }
    }

    func testLocalUID() {
        XCTAssertEqual(NetnameSyntax.localUID("unix.1001@example.org", domain: "example.org"), 1001)
        XCTAssertNil(NetnameSyntax.localUID("unix.1001@other.org", domain: "example.org"))
        XCTAssertNil(NetnameSyntax.localUID("unix.fs1@example.org", domain: "example.org"))
        XCTAssertNil(NetnameSyntax.localUID("unix.+1001@example.org", domain: "example.org"))
        // The second '@' made the old suffix check match and the uid parse stop at the first '@'.
        XCTAssertNil(NetnameSyntax.localUID("unix.1001@evil@example.org", domain: "example.org"))
        XCTAssertNil(NetnameSyntax.localUID("unix.0@x\n@example.org", domain: "example.org"))
    }
}
