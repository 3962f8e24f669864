// The site configuration file: what parses, what a mistake looks like (path and line), and
// that what `rendered()` writes reads back the same.

import SiteConfig
import XCTest

final class SiteConfigurationTests: XCTestCase {
    let fingerprint = "sha256:" + String(repeating: "ab", count: 32)

    func testParsesASite() throws {
        let text = """
            # a site\r
            domain example.org
            directory dir1.example.org:20050 unix.dir1@example.org \(fingerprint)   # primary
            directory [::1]:20051 unix.dir2@example.org \(fingerprint.uppercased().replacingOccurrences(of: "SHA256", with: "sha256"))
            directory dir3 unix.dir3@example.org \(fingerprint)

            cache-ttl 60
            change-poll 5
            """
        let site = try SiteConfiguration.parse(text, source: "test.conf")
        XCTAssertEqual(site.domain, "example.org")
        XCTAssertEqual(site.directories.map(\.address), ["dir1.example.org:20050", "[::1]:20051", "dir3"])
        XCTAssertEqual(site.directories[1].port, 20051)
        XCTAssertNil(site.directories[2].port)
        XCTAssertEqual(site.directories[1].fingerprint, fingerprint)
        XCTAssertEqual(site.cacheTTL, 60)
        XCTAssertEqual(site.changePollInterval, 5)
        XCTAssertEqual(try SiteConfiguration.parse(site.rendered(), source: "test.conf"), site)
    }

    func testMistakesNameTheLine() {
        let cases: [(String, String)] = [
            ("domain a b", "line 1: domain takes one value"),
            ("\n\ndirectroy x", "line 3: unknown setting \"directroy\""),
            ("directory host unix.d@x", "line 1: expected: directory HOST[:PORT] NETNAME"),
            ("directory host:99999 unix.d@x \(fingerprint)", "line 1: bad port"),
            ("directory host unix.d@x@y \(fingerprint)", "is not a netname"),
            ("directory host unix.d@x sha256:abcd", "line 1: the fingerprint must be sha256: and 64 hex digits"),
            ("cache-ttl soon", "cache-ttl must be a number of seconds"),
            ("change-poll 0", "change-poll must be at least 1 second"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try SiteConfiguration.parse(text, source: "/etc/securerpc/securerpc.conf")) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("/etc/securerpc/securerpc.conf line"), message)
                XCTAssertTrue(message.contains(expected), "\(message) lacks \(expected)")
            }
        }
    }

    func testLoadingFollowsTheEnvironment() throws {
        let directory = NSTemporaryDirectory() + "siteconf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/securerpc.conf"
        try "domain from.file\n".write(toFile: path, atomically: true, encoding: .utf8)
        let site = try SiteConfiguration.load(environment: ["SECURERPC_CONF": path])
        XCTAssertEqual(site.domain, "from.file")
        XCTAssertEqual(site.resolveDomain(nil, environment: [:]), "from.file")
        XCTAssertEqual(site.resolveDomain(nil, environment: ["SECURERPC_DOMAIN": "env.org"]), "env.org")
        XCTAssertEqual(site.resolveDomain("flag.org", environment: ["SECURERPC_DOMAIN": "env.org"]), "flag.org")
        // A named file that is missing is an error; the default path may be absent.
        XCTAssertThrowsError(try SiteConfiguration.load(environment: ["SECURERPC_CONF": path + ".typo"])) { error in
            XCTAssertTrue("\(error)".contains("securerpc.conf.typo: no such file"), "\(error)")
        }
    }
}
