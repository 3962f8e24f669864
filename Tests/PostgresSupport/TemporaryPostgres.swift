// A real PostgreSQL server for the tests (KeyDirectoryTests, InteropTests): Debian's binaries, initdb in a temporary directory,
// listening only on a unix socket there (no TCP port is opened), stopped when done. Runs the
// server as the `postgres` user when the tests run as root, since postgres refuses root.
// Without the binaries the tests skip, except under CI, where that is a failure: CI installs
// postgresql (Tests/install-deps.sh) and must not pass by skipping.

import Foundation
import XCTest

public final class TemporaryPostgres: @unchecked Sendable {
    public let directory: URL
    public let port: Int
    public let bin: URL
    /// The bootstrap superuser initdb makes; trust authentication on the socket.
    public let user = "dirtest"
    private let runAs: String?
    private var databases = 0

    /// The socket directory, as a `postgres:///DB?host=DIR&port=PORT` URL names it.
    public var socketDirectory: String { directory.path }

    public func url(database: String) -> String { "postgres://\(user)@/\(database)?host=\(directory.path)&port=\(port)" }

    /// Finds Debian's binaries (the newest major version), or skips — or fails under CI.
    public static func binaries() throws -> URL {
        let root = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [])
            .compactMap(Int.init).sorted()
        for version in versions.reversed() {
            let bin = root.appendingPathComponent("\(version)/bin")
            if FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent("postgres").path) { return bin }
        }
        let ci = ProcessInfo.processInfo.environment["CI"].map { !$0.isEmpty && $0 != "false" && $0 != "0" } ?? false
        let message = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): apt-get install postgresql"
        if ci { throw Failure(message + " — required under CI") }
        throw XCTSkip(message)
    }

    public init() throws {
        bin = try Self.binaries()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
        port = try Self.freePort()
        runAs = geteuid() == 0 ? "postgres" : nil
        if let runAs { try Self.run("/bin/chown", ["-R", runAs, directory.path]) }
        let data = directory.appendingPathComponent("data").path
        try runServerTool("initdb", ["-D", data, "-U", user, "--auth=trust", "--no-sync", "--no-locale", "-E", "UTF8"])
        // Durability costs time and buys nothing for a throwaway cluster.
        let options = "-k \(directory.path) -p \(port) -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try runServerTool("pg_ctl", ["-D", data, "-l", directory.appendingPathComponent("log").path, "-w", "-t", "60", "-o", options, "start"])
    }

    /// A new empty database; each test gets its own, so tests never see each other's rows.
    public func createDatabase() throws -> String {
        databases += 1
        let name = "dir\(databases)"
        try Self.run(bin.appendingPathComponent("createdb").path, ["-h", directory.path, "-p", "\(port)", "-U", user, name])
        return name
    }

    /// Runs SQL through psql, another client than the store's: the exit status and stderr.
    public func psql(_ database: String, _ sql: String) throws -> (status: Int32, stderr: String) {
        try Self.capture(bin.appendingPathComponent("psql").path,
                         ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", directory.path, "-p", "\(port)", "-U", user, "-d", database, "-c", sql])
    }

    public func stop() {
        let data = directory.appendingPathComponent("data").path
        try? runServerTool("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"])
        if standbyPort != nil {
            try? runServerTool("pg_ctl", ["-D", directory.appendingPathComponent("standby").path, "-m", "fast", "-w", "stop"])
        }
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: a hot standby (streaming replication)

    /// The standby's port once ``startStandby()`` ran (same socket directory).
    public private(set) var standbyPort: Int?

    public func standbyURL(database: String) -> String? {
        standbyPort.map { "postgres://\(user)@/\(database)?host=\(directory.path)&port=\($0)" }
    }

    /// Starts a hot standby of this server, as an operator makes one: a base backup with
    /// pg_basebackup -R (which writes standby.signal and the primary's address), started on
    /// a port of its own. It replays the primary's WAL as it streams in and answers reads.
    @discardableResult
    public func startStandby() throws -> Int {
        let data = directory.appendingPathComponent("standby").path
        try runServerTool("pg_basebackup", ["-D", data, "-R", "-X", "stream", "--checkpoint=fast", "-h", directory.path,
                                            "-p", "\(port)", "-U", user])
        let standby = try Self.freePort()
        let options = "-k \(directory.path) -p \(standby) -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try runServerTool("pg_ctl", ["-D", data, "-l", directory.appendingPathComponent("standby.log").path, "-w", "-t", "60", "-o", options, "start"])
        standbyPort = standby
        return standby
    }

    /// The primary's loss, as a crash (immediate shutdown: no checkpoint, clients cut off).
    public func crashPrimary() throws {
        try runServerTool("pg_ctl", ["-D", directory.appendingPathComponent("data").path, "-m", "immediate", "-w", "stop"])
    }

    /// Promotes the standby to a primary that accepts writes (pg_ctl promote waits until it does).
    public func promoteStandby() throws {
        try runServerTool("pg_ctl", ["-D", directory.appendingPathComponent("standby").path, "-w", "-t", "60", "promote"])
    }

    // MARK: processes

    /// Foundation's Process learns that a child exited when a socket it passed down closes;
    /// the server pg_ctl leaves running would inherit that socket and hold it, and
    /// waitUntilExit would never return. So a shell closes every descriptor above 2 first.
    private static let closingDescriptors =
        #"for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done; exec "$@""#

    private func runServerTool(_ tool: String, _ arguments: [String]) throws {
        let path = bin.appendingPathComponent(tool).path
        let command = (runAs.map { ["/usr/sbin/runuser", "-u", $0, "--"] } ?? []) + [path] + arguments
        try Self.run("/bin/bash", ["-c", Self.closingDescriptors, "temporary-postgres"] + command)
    }

    private static func run(_ path: String, _ arguments: [String]) throws {
        let (status, stderr) = try capture(path, arguments)
        guard status == 0 else {
            throw Failure("\((path as NSString).lastPathComponent) \(arguments.first ?? "") exited \(status): \(stderr.suffix(600))")
        }
    }

    private static func capture(_ path: String, _ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        // The postgres user may not enter the caller's directory (a root-owned work tree).
        process.currentDirectoryURL = URL(fileURLWithPath: "/tmp")
        // pg_ctl's server inherits our descriptors unless told otherwise: -l sends its output
        // to the log, and the pipe closes when pg_ctl exits.
        try process.run()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stderr, as: UTF8.self))
    }

    /// A port no one listens on now: it names the socket file (.s.PGSQL.PORT).
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                Glibc.bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw Failure("bind: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }
}
