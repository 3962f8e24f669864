// Which netnames handlers see as local users: only well-formed `unix.UID@<local domain>`
// (issue 12 item 8). Before, "unix.0@evil@example.org" passed the suffix check and mapped to
// root's credentials.

import KeyServer
import XCTest

final class NetnameMappingTests: XCTestCase {
    func testOnlyWellFormedLocalNetnamesMapToUsers() {
        XCTAssertEqual(KeyServerService.unixCredentials(netname: "unix.0@example.org", domain: "example.org")?.uid, 0)
        XCTAssertNil(KeyServerService.unixCredentials(netname: "unix.0@evil@example.org", domain: "example.org"))
        XCTAssertNil(KeyServerService.unixCredentials(netname: "unix.0@other.org", domain: "example.org"))
        XCTAssertNil(KeyServerService.unixCredentials(netname: "unix.0\n@example.org", domain: "example.org"))
        // KEY_GETCRED answers for any domain, but only for well-formed names.
        XCTAssertEqual(KeyServerService.unixCredentials(netname: "unix.0@other.org")?.uid, 0)
        XCTAssertNil(KeyServerService.unixCredentials(netname: "unix.0@a@b"))
    }
}
