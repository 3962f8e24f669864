// Read-only connections to the directory for users' tools (keylogin, clients' key lookups)
// and for daemons on a read-only mount (keyserverd under ProtectSystem=strict).
//
// The trap: keys.db is a WAL database, and SQLite reads a WAL database only through its
// -wal and -shm files. The last writer to close (the sqlite3 shell, any tool without
// keyadmin's persist-WAL setting) checkpoints and deletes both; a reader that cannot create
// them (a user in a root-owned directory, anyone on a read-only mount) then gets "attempt to
// write a readonly database". With no -wal file every committed change is in the main file,
// so such a reader may read the main file alone (SQLite's `immutable` open) — as long as
// nobody writes meanwhile. Every writer creates the -wal file before writing, and a
// checkpoint changes the main file's size or mtime, so each read in that mode is checked
// before and after (no -wal, same file state) and redone on a fresh connection otherwise:
// an optimistic read that never returns a torn or stale page.
//
// Trusts: the file system's stat data; SQLite for everything else.

import Foundation
import GRDB
import GRDBSQLite

final class ReadOnlyDatabase: @unchecked Sendable {
    let path: String
    private let busyTimeout: TimeInterval
    // Guards every field below and serialises every use of the connection.
    private let lock = NSLock()
    private var queue: DatabaseQueue
    /// Set when the connection reads the main file alone: the state it must keep.
    private var snapshot: FileState?
    /// Called on the old connection before it is replaced (to finalise statements on it).
    var willReopen: ((Database) -> Void)?

    /// `mainFileFirst` (tests) reads the main file alone whenever there is no -wal file,
    /// without first trying the ordinary open that root in a writable directory would get.
    init(path: String, busyTimeout: TimeInterval, mainFileFirst: Bool = false) throws {
        self.path = path
        self.busyTimeout = busyTimeout
        (queue, snapshot) = try Self.open(path: path, busyTimeout: busyTimeout, mainFileFirst: mainFileFirst)
    }

    /// The connection of the moment (tests).
    var currentQueue: DatabaseQueue { lock.withLock { queue } }

    /// Whether the connection reads the main file alone (no -wal/-shm; see above).
    var readsMainFileOnly: Bool { lock.withLock { snapshot != nil } }

    /// Runs `body` on the connection and returns its result, redoing it on a fresh
    /// connection when the file changed under a main-file-only read.
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try lock.withLock {
            for _ in 0..<8 {
                if let snapshot, !snapshot.isCurrent(path) { try reopen() }
                let result = try Self.mapErrors(path) { try queue.inDatabase(body) }
                guard let snapshot else { return result }
                if snapshot.isCurrent(path) { return result }
                try reopen()
            }
            throw DirectoryError.storage("\(path): the file kept changing while being read; try again")
        }
    }

    private func reopen() throws {
        if let willReopen { queue.inDatabase(willReopen) }
        (queue, snapshot) = try Self.open(path: path, busyTimeout: busyTimeout)
    }

    private static func open(path: String, busyTimeout: TimeInterval, mainFileFirst: Bool = false) throws -> (DatabaseQueue, FileState?) {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(busyTimeout)
        var shared = DatabaseError(resultCode: .SQLITE_CANTOPEN, message: "unable to open database file")
        if !mainFileFirst || FileState.walExists(path) {
            do {
                // GRDB reads sqlite_master on open, so a connection that cannot read fails here.
                return (try DatabaseQueue(path: path, configuration: configuration), nil)
            } catch let error as DatabaseError {
                shared = error
            }
        }
        // Only a database whose WAL is gone is complete in its main file; without URI
        // filenames compiled in, `immutable` cannot be asked for.
        guard sqlite3_compileoption_used("USE_URI") == 1 else { throw storage(path, shared) }
        for _ in 0..<8 {
            guard let before = FileState(path) else { throw storage(path, shared) }
            let queue: DatabaseQueue
            do {
                queue = try DatabaseQueue(path: uri(path) + "?immutable=1", configuration: configuration)
            } catch {
                throw storage(path, shared)
            }
            if before.isCurrent(path) { return (queue, before) }
        }
        throw storage(path, shared)
    }

    /// A `file:` URI for a path: `%`, `?` and `#` are the characters URI parsing would take.
    static func uri(_ path: String) -> String {
        var out = "file:"
        for scalar in path.unicodeScalars {
            switch scalar {
            case "%": out += "%25"
            case "?": out += "%3f"
            case "#": out += "%23"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func storage(_ path: String, _ error: DatabaseError) -> DirectoryError {
        .storage("\(path): \(error.message ?? "SQLite error \(error.resultCode.rawValue)")")
    }

    private static func mapErrors<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            throw DirectoryError.storage(error.message ?? "SQLite error \(error.resultCode.rawValue)")
        }
    }
}

/// What a reader of the main file alone must find unchanged: no -wal file (no writer has
/// started) and the same file (device, inode, size, mtime and ctime to the nanosecond).
struct FileState: Equatable {
    let device: UInt64, inode: UInt64, size: Int64
    let mtime: timespec, ctime: timespec

    init?(_ path: String) {
        guard !FileState.walExists(path) else { return nil }
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        #if canImport(Darwin)
        mtime = info.st_mtimespec
        ctime = info.st_ctimespec
        #else
        mtime = info.st_mtim
        ctime = info.st_ctim
        #endif
    }

    func isCurrent(_ path: String) -> Bool { FileState(path) == self }

    static func walExists(_ path: String) -> Bool {
        var info = stat()
        return stat(path + "-wal", &info) == 0 || errno != ENOENT
    }

    static func == (a: FileState, b: FileState) -> Bool {
        a.device == b.device && a.inode == b.inode && a.size == b.size
            && a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec
            && a.ctime.tv_sec == b.ctime.tv_sec && a.ctime.tv_nsec == b.ctime.tv_nsec
    }
}
