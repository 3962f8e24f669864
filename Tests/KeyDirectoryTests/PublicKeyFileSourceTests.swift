// /etc/publickey as a key source: lines newkey writes, comments, NIS '+' lines, CRLF, lines it
// cannot use (counted by number), and a change to the file seen without a restart.

import KeyCrypto
import KeyDirectory
import XCTest

final class PublicKeyFileSourceTests: XCTestCase {
    func testReadsClassicLinesAndFollowsChanges() async throws {
        let directory = NSTemporaryDirectory() + "publickey-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/publickey"
        let alice = DHPrivateKey.generate(group: .dh192des)
        let server = DHPrivateKey.generate(group: .dh192des)
        let entry = PublicKeyEntry(netname: "unix.1001@example.org", publicKey: alice.publicKey,
                                   encryptedSecret: String(repeating: "0", count: 64))
        let text = "# publickey\n+\n\(entry.line)\r\nunix.fs1@example.org \(server.publicKey.hex):\nnot a line\nunix.x@a@b \(server.publicKey.hex):\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let file = try PublicKeyFileSource(path: path)
        var found = try await file.fetchPublicKey(netname: "unix.1001@example.org", mechanism: .dh192des)
        XCTAssertEqual(found, alice.publicKey)
        found = try await file.fetchPublicKey(netname: "unix.fs1@example.org", mechanism: .dh192des)
        XCTAssertEqual(found, server.publicKey)
        found = try await file.fetchPublicKey(netname: "unix.1001@example.org", mechanism: .ffdhe3072)
        XCTAssertNil(found)
        XCTAssertEqual(file.skippedLines, [5, 6])

        let bob = DHPrivateKey.generate(group: .dh192des)
        try (text + "unix.1002@example.org \(bob.publicKey.hex):\(String(repeating: "a", count: 64))\n").write(toFile: path, atomically: true, encoding: .utf8)
        try await Task.sleep(nanoseconds: 1_100_000_000)
        found = try await file.fetchPublicKey(netname: "unix.1002@example.org", mechanism: .dh192des)
        XCTAssertEqual(found, bob.publicKey)

        XCTAssertThrowsError(try PublicKeyFileSource(path: path + ".typo")) { error in
            XCTAssertTrue("\(error)".contains("publickey.typo: No such file"), "\(error)")
        }
    }
}
