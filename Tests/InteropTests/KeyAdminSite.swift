// A temporary site for the keyadmin CLI tests: a world-readable directory with the key
// directory, password files, and runners for the built executables. Every command runs in a
// new session (setsid), so it has no controlling terminal even when the tests are started
// from one: a prompt fails at once instead of waiting for a person. Daemons it starts are
// stopped by the test that started them.

import Foundation
import XCTest

struct KeyAdminSite {
    let work: URL
    let domain = "example.org"
    var db: String { path("keys.db") }

    init(_ prefix: String) throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        chmod(work.path, 0o755)
    }

    func remove() { try? FileManager.default.removeItem(at: work) }

    func path(_ name: String) -> String { work.appendingPathComponent(name).path }

    /// A world-readable file holding `text` (a password file: its first line counts).
    @discardableResult
    func file(_ name: String, _ text: String) throws -> String {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
        chmod(path(name), 0o644)
        return path(name)
    }

    func netname(_ uid: Int) -> String { "unix.\(uid)@\(domain)" }

    /// keyadmin with `--db` = this site's database (unless the arguments give one).
    func keyadmin(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> Command.Output {
        let withDB = arguments.contains("--db") ? arguments : arguments + ["--db", db]
        return try run([Peers.productPath("keyadmin")] + withDB, stdin: stdin, environment: environment)
    }

    /// keyadmin that must succeed.
    @discardableResult
    func ok(_ arguments: [String], stdin: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> Command.Output {
        let out = try keyadmin(arguments, stdin: stdin)
        XCTAssertEqual(out.status, 0, "keyadmin \(arguments.joined(separator: " ")): \(out.stderr)", file: file, line: line)
        return out
    }

    /// Runs a command in its own session, as `uid` when given, with `stdin` (or nothing) on
    /// its standard input.
    func run(_ arguments: [String], as uid: Int? = nil, stdin: String? = nil, environment: [String: String] = [:]) throws -> Command.Output {
        var command = arguments
        if let uid { command = ["setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups"] + command }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        process.arguments = ["-w"] + command
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let input = Pipe(), out = Pipe(), err = Pipe()
        process.standardInput = input
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // A child that exits before reading its input must not kill the test with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        if let stdin { try? input.fileHandleForWriting.write(contentsOf: Data(stdin.utf8)) }
        try? input.fileHandleForWriting.close()
        let group = DispatchGroup()
        let errors = UnsafeSendableBox(Data())
        group.enter()
        DispatchQueue.global().async {
            errors.value = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Command.Output(status: process.terminationStatus, stdout: String(decoding: output, as: UTF8.self),
                              stderr: String(decoding: errors.value, as: UTF8.self))
    }

    /// A keyserverd on a socket in this site (no rpcbind), stopped by the caller.
    func keyserver() throws -> BackgroundProcess {
        try BackgroundProcess([Peers.productPath("keyserverd"), "--socket", path("keyservsock"), "--root-key", path("no-rootkey"),
                               "--no-rpcbind", "--log-level", "notice"], readyMarker: "ready")
    }

    /// keylogin for `uid` (as that uid, unless 0) with `passwords` as lines on stdin.
    func keylogin(_ uid: Int, _ passwords: [String], db: String? = nil) throws -> Command.Output {
        try run([Peers.productPath("keylogin"), "--db", db ?? self.db, "--netname", netname(uid), "--socket", path("keyservsock"),
                 "--password-stdin"], as: uid == 0 ? nil : uid, stdin: passwords.map { $0 + "\n" }.joined())
    }

    /// `sqlite3 DB SQL` (the shell as another program opening and closing the file).
    @discardableResult
    func sqlite(_ sql: String, db: String? = nil) throws -> String {
        let out = try Command.run(["sqlite3", db ?? self.db, sql])
        XCTAssertEqual(out.status, 0, "sqlite3 \(sql): \(out.stderr)")
        return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// mechanism → (state, public key) of a principal, from `keyadmin show`'s text (which
    /// every version of keyadmin prints: "MECHANISM (STATE)" then "  public:  HEX").
    func keys(_ uid: Int) throws -> [String: (state: String, publicKey: String)] {
        var result: [String: (String, String)] = [:]
        let lines = try ok(["show", netname(uid)]).stdout.split(separator: "\n").map(String.init)
        for (line, next) in zip(lines, lines.dropFirst()) where next.hasPrefix("  public:  ") {
            let parts = line.split(separator: " ")
            guard parts.count == 2 else { continue }
            result[String(parts[0])] = (String(parts[1].dropFirst().dropLast()), String(next.dropFirst("  public:  ".count)))
        }
        return result
    }
}

/// A box for a value written by one thread and read after `DispatchGroup.wait()`.
final class UnsafeSendableBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
