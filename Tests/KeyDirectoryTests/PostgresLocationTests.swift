// Reading directory URLs: which store a URL means, where a PostgreSQL server is, and that
// no message or description repeats a password. No server is needed.

import Foundation
import KeyDirectory
@testable import KeyDirectoryPostgres
import XCTest

final class PostgresLocationTests: XCTestCase {
    func testTCPAndSocketForms() throws {
        let tcp = try PostgresLocation(url: "postgres://keydird:pw@db1.example.org:6543/keys", environment: [:])
        XCTAssertEqual(tcp.endpoint, .tcp(host: "db1.example.org", port: 6543))
        XCTAssertEqual(tcp.username, "keydird")
        XCTAssertEqual(tcp.database, "keys")
        XCTAssertEqual(tcp.tls, .prefer)
        XCTAssertEqual(tcp.password, "pw")
        XCTAssertEqual(tcp.description, "postgres://keydird@db1.example.org:6543/keys")

        let socket = try PostgresLocation(url: "postgresql://u@/keys?host=/run/pg&port=5433&sslmode=require", environment: ["PGPASSWORD": "env"])
        XCTAssertEqual(socket.endpoint, .unixSocket(path: "/run/pg/.s.PGSQL.5433"))
        XCTAssertEqual(socket.tls, .disable, "no TLS over a local socket")
        XCTAssertEqual(socket.password, "env")
        XCTAssertEqual(socket.description, "postgres://u@/keys?host=/run/pg&port=5433")

        let bare = try PostgresLocation(url: "postgres:///keys?user=dir", environment: [:])
        XCTAssertEqual(bare.endpoint, .unixSocket(path: "/var/run/postgresql/.s.PGSQL.5432"))
        XCTAssertNil(bare.password)
    }

    func testBadURLsAreOneLineWithoutThePassword() {
        for url in ["postgres://u:topsecret@h:99999/db", "postgres://u:topsecret@h/", "postgres://u:topsecret@h/db?sslmode=maybe",
                    "postgres://u:topsecret@h/db?options=x", "mysql://u:topsecret@h/db",
                    "postgres://u:topsecret@h/" + String(repeating: "d", count: 5000)] {
            XCTAssertThrowsError(try PostgresLocation(url: url, environment: [:]), url) { error in
                let text = "\(error)"
                XCTAssertFalse(text.contains("topsecret"), text)
                XCTAssertFalse(text.contains("\n"), text)
                XCTAssertTrue(text.contains("bad PostgreSQL URL"), text)
            }
        }
        XCTAssertThrowsError(try openKeyDirectory(url: "mysql://u:topsecret@h/db")) { error in
            XCTAssertFalse("\(error)".contains("topsecret"))
        }
    }

    func testPathsAndSQLiteURLsOpenSQLite() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("url-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("keys.db").path
        XCTAssertTrue(try openKeyDirectory(url: path, create: true) is SQLiteKeyDirectory)
        XCTAssertTrue(try openKeyDirectory(url: "sqlite://" + path) is SQLiteKeyDirectory)
        XCTAssertTrue(try openKeyDirectory(url: "sqlite:" + path, readOnly: true) is SQLiteKeyDirectory)
        XCTAssertThrowsError(try openKeyDirectory(url: "sqlite:" + directory.appendingPathComponent("typo.db").path)) {
            guard case .noDirectory = $0 as? DirectoryError else { return XCTFail("\($0)") }
        }
        XCTAssertTrue(PostgresLocation.isPostgresURL("POSTGRES://x/y"))
        XCTAssertFalse(PostgresLocation.isPostgresURL("/var/lib/securerpc/keys.db"))
    }
}
