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

final class KeyFingerprintTests: XCTestCase {
    func testFingerprintBindsGroupAndKey() throws {
        let key = DHPrivateKey.generate(group: .ffdhe2048).publicKey
        let other = DHPrivateKey.generate(group: .ffdhe2048).publicKey
        XCTAssertTrue(key.fingerprint.hasPrefix("sha256:"))
        XCTAssertEqual(key.fingerprint.count, 7 + 64)
        XCTAssertEqual(key.fingerprint, try DHPublicKey(group: .ffdhe2048, hex: key.hex).fingerprint)
        XCTAssertNotEqual(key.fingerprint, other.fingerprint)
        // Known answer: the generator 2 as an ffdhe2048 "key".
        let two = try DHPublicKey(group: .ffdhe2048, bytes: [UInt8](repeating: 0, count: 255) + [2])
        XCTAssertEqual(two.fingerprint, "sha256:" + KnownAnswer.fingerprintOfTwo)
    }
}

private enum KnownAnswer {
    // python3 -c 'import hashlib; print(hashlib.sha256(b"securerpc-key-v1\0ffdhe2048\0" + bytes(255) + b"\2").hexdigest())'
    static let fingerprintOfTwo = "39217bbb895c6e9553545e351506e870a17ab95a33215e3d5ab5d999f6f85951"
}
