// The SQLite directory through keyadmin: all-or-nothing imports (a bad line among 10,000;
// SIGKILL in the middle of 100,000), concurrent keyadmin processes, lookups that see commits.
// The rules every store keeps (round trips, the append-only audit, …) are in StoreContract.

import Foundation
import GRDB
@testable import KeyCrypto
import XCTest
@testable import KeyDirectory

final class KeyDirectoryTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("keydir-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func database(_ name: String = "keys.db") throws -> SQLiteKeyDirectory {
        try SQLiteKeyDirectory(path: directory.appendingPathComponent(name).path)
    }

    private func password(_ text: String) -> SecretBytes { SecretBytes(copying: Array(text.utf8)) }

    /// `count` publickey lines built from a few real key pairs (so every line is valid).
    private func publicKeyLines(_ count: Int, prefix: String = "unix.") throws -> [String] {
        let keys = (0..<8).map { _ in DHPrivateKey.generate(group: .dh192des) }
        let sealed = try keys.map { try XCrypt.encryptSecret($0, password: password("pw")) }
        return (0..<count).map { i in "\(prefix)\(10_000 + i)@example.org \(keys[i % 8].publicKey.hex):\(sealed[i % 8])" }
    }

    func testMalformedLineAmongTenThousandChangesNothing() throws {
        let db = try database()
        _ = try db.importEntries(try PublicKeyFile.parse(try publicKeyLines(5, prefix: "unix.host").joined(separator: "\n")),
                                 actor: "test", source: "seed", progress: nil)
        let before = (try db.count(), try db.audit(limit: 100).count, PublicKeyFile.render(try db.allEntries()))
        var lines = try publicKeyLines(10_000)
        lines[6_789] = "unix.bad@example.org 1234:abcd"
        XCTAssertThrowsError(try PublicKeyFile.parse(lines.joined(separator: "\n"))) { error in
            XCTAssertEqual(error as? DirectoryError, .badImportLine(line: 6_790, "malformed publickey line: public key: invalid hex (expected 48 digits): got 4 digits"))
        }
        // Through the CLI too: the message names the file and the line, and the database is as it was.
        let file = directory.appendingPathComponent("bad.publickey")
        try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        let run = try runKeyadmin(["import", "--db", directory.appendingPathComponent("keys.db").path, file.path])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("bad.publickey: line 6790: malformed publickey line"), run.stderr)
        XCTAssertTrue(run.stderr.contains("nothing was imported"), run.stderr)
        let after = (try db.count(), try db.audit(limit: 100).count, PublicKeyFile.render(try db.allEntries()))
        XCTAssertEqual(after.0, before.0)
        XCTAssertEqual(after.1, before.1)
        XCTAssertEqual(after.2, before.2)
    }

    func testSIGKILLDuringAHundredThousandEntryImportLeavesNoneOrAll() throws {
        let dbPath = directory.appendingPathComponent("keys.db").path
        _ = try SQLiteKeyDirectory(path: dbPath)
        let file = directory.appendingPathComponent("big.publickey")
        try (try publicKeyLines(100_000)).joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: keyadminPath)
        process.arguments = ["import", "--db", dbPath, file.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Kill once the transaction is writing: the WAL file grows while rows go in.
        let wal = dbPath + "-wal"
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && process.isRunning {
            let size = (try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0
            if size > 512 * 1024 { break }
            usleep(2_000)
        }
        let killedMidway = process.isRunning
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertTrue(killedMidway, "the import was still running when killed")

        let db = try SQLiteKeyDirectory(path: dbPath)
        let integrity = try db.pool.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") }
        XCTAssertEqual(integrity, "ok")
        let count = try db.count()
        XCTAssertTrue(count == 0 || count == 100_000, "none or all, got \(count)")
        XCTAssertEqual(count, 0, "killed mid-transaction: nothing committed")
    }

    func testTwoKeyadminProcessesWritingAtOnceLoseNothing() throws {
        let dbPath = directory.appendingPathComponent("keys.db").path
        _ = try SQLiteKeyDirectory(path: dbPath)
        let passwordFile = directory.appendingPathComponent("pw")
        try "pw\n".write(to: passwordFile, atomically: true, encoding: .utf8)
        let fileA = directory.appendingPathComponent("a.publickey"), fileB = directory.appendingPathComponent("b.publickey")
        try (try publicKeyLines(3_000, prefix: "unix.a")).joined(separator: "\n").write(to: fileA, atomically: true, encoding: .utf8)
        try (try publicKeyLines(3_000, prefix: "unix.b")).joined(separator: "\n").write(to: fileB, atomically: true, encoding: .utf8)
        let commands = [
            ["import", "--db", dbPath, fileA.path],
            ["import", "--db", dbPath, fileB.path],
            ["newkey", "--db", dbPath, "--user", "7001", "--user", "7002", "--domain", "example.org", "--mechanism", "dh192-des", "--password-file", passwordFile.path],
            ["newkey", "--db", dbPath, "--host", "h1", "--host", "h2", "--domain", "example.org", "--mechanism", "dh192-des", "--password-file", passwordFile.path],
        ]
        let results = try runConcurrently(commands)
        for (command, result) in zip(commands, results) {
            XCTAssertEqual(result.status, 0, "\(command[0]): \(result.stderr)")
        }
        let db = try SQLiteKeyDirectory(path: dbPath)
        XCTAssertEqual(try db.count(), 6_004)
        // One row per imported principal and per import, one per principal made.
        XCTAssertEqual(try db.audit(limit: 10_000).count, 3_000 + 3_000 + 2 + 4)
        let integrity = try db.pool.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") }
        XCTAssertEqual(integrity, "ok")
    }

    func testPublicKeyLookupSeesCommittedChanges() throws {
        let db = try database()
        let key = DHPrivateKey.generate(group: .dh192des)
        try db.add(Principal(netname: "unix.5@example.org", kind: .user, name: "5", uid: 5),
                   keys: [try KeyEntry.sealing(key, netname: "unix.5@example.org", password: password("p"))], actor: "t")
        let lookup = try PublicKeyLookup(path: directory.appendingPathComponent("keys.db").path)
        XCTAssertEqual(try lookup.publicKey(netname: "unix.5@example.org", mechanism: .dh192des), key.publicKey)
        XCTAssertNil(try lookup.publicKeyHex(netname: "unix.6@example.org", mechanism: .dh192des))
        XCTAssertNil(try lookup.publicKeyHex(netname: "unix.5@example.org", mechanism: .ffdhe3072))
        try db.revoke(netname: "unix.5@example.org", mechanism: nil, actor: "t")
        XCTAssertNil(try lookup.publicKeyHex(netname: "unix.5@example.org", mechanism: .dh192des), "a revocation is seen at once")
        XCTAssertNil(try lookup.publicKeyHex(netname: "x'; DROP TABLE key_entry; --", mechanism: .dh192des))
        XCTAssertEqual(try db.keys(of: "unix.5@example.org").count, 1)
    }

    // MARK: processes

    private var keyadminPath: String {
        Bundle.main.bundleURL.path.hasSuffix(".xctest")
            ? Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("keyadmin").path
            : URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("keyadmin").path
    }

    private struct Output { var status: Int32; var stdout: String; var stderr: String }

    private func runKeyadmin(_ arguments: [String]) throws -> Output {
        try runConcurrently([arguments])[0]
    }

    private func runConcurrently(_ commands: [[String]]) throws -> [Output] {
        var processes: [(Process, Pipe, Pipe)] = []
        for arguments in commands {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: keyadminPath)
            process.arguments = arguments
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            try process.run()
            processes.append((process, out, err))
        }
        return processes.map { process, out, err in
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return Output(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                          stderr: String(decoding: stderr, as: UTF8.self))
        }
    }
}

/// Issue 12 item 12: root speaks as its host (unix.HOST@DOMAIN) in every default (keylogin,
/// filesvc-server, filesvc, SecureRPCEnvironment), so hosts never share one unix.0@DOMAIN key.
final class LocalNetnameTests: XCTestCase {
    func testRootIsTheHostAndOthersAreTheirUID() {
        var buffer = [UInt8](repeating: 0, count: 256)
        _ = buffer.withUnsafeMutableBufferPointer { gethostname($0.baseAddress!, 255) }
        let host = String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self).split(separator: ".").first.map(String.init) ?? ""
        XCTAssertFalse(host.isEmpty)
        XCTAssertEqual(Netname.local(uid: 0, domain: "example.org"), "unix.\(host)@example.org")
        XCTAssertEqual(Netname.local(uid: 1001, domain: "example.org"), "unix.1001@example.org")
        XCTAssertFalse(Netname.local(uid: 0, domain: "example.org").contains("unix.0@"))
    }
}
