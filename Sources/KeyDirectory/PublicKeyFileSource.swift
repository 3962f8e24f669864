// /etc/publickey as a key source: how a Swift program joins an existing Secure RPC site that
// keeps its keys in the classic file (libtirpc's getpublickey reads only that file). Only
// dh192-des keys live there. The file is re-read when it changes (checked at most once a
// second), so keys added by the site's newkey are seen without a restart. It trusts the file
// as far as root's file is trusted; lines it cannot use are skipped and counted, never fatal.

import Foundation
import KeyCrypto

/// Public keys from a classic `/etc/publickey` file.
///
/// ```swift
/// let keys = try PublicKeyFileSource()                       // /etc/publickey
/// let server = try await keys.fetchPublicKey(netname: "unix.fs1@example.org", mechanism: .dh192des)
/// ```
public final class PublicKeyFileSource: PublicKeySource, @unchecked Sendable {  // `snapshot` only under `lock`
    public static let defaultPath = "/etc/publickey"

    private struct Snapshot {
        var keys: [String: DHPublicKey] = [:]
        var skippedLines: [Int] = []
        var modified: timespec = timespec()
        var size: Int = -1
        var checkedAt: TimeInterval = 0
    }

    public let path: String
    private let lock = NSLock()
    private var snapshot = Snapshot()

    /// Reads `path` now, so a missing or unreadable file is an error at start, not at the
    /// first call.
    public init(path: String = PublicKeyFileSource.defaultPath) throws {
        self.path = path
        try Self.reload(&snapshot, path: path, force: true)
    }

    /// Line numbers (1-based) that were not a usable `netname public:secret` entry.
    public var skippedLines: [Int] { lock.withLock { snapshot.skippedLines } }

    public func fetchPublicKey(netname: String, mechanism: DHGroupName) async throws -> DHPublicKey? {
        try key(netname: netname, mechanism: mechanism)
    }

    public func cachedPublicKey(netname: String, mechanism: DHGroupName) -> DHPublicKey?? {
        (try? key(netname: netname, mechanism: mechanism)).map { .some($0) } ?? .none
    }

    /// The key, re-reading the file first if it changed.
    public func key(netname: String, mechanism: DHGroupName) throws -> DHPublicKey? {
        guard mechanism == .dh192des else { return nil }
        return try lock.withLock {
            try Self.reload(&snapshot, path: path, force: false)
            return snapshot.keys[netname]
        }
    }

    private static func reload(_ snapshot: inout Snapshot, path: String, force: Bool) throws {
        let now = Date().timeIntervalSince1970
        if !force, now - snapshot.checkedAt < 1 { return }
        snapshot.checkedAt = now
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw DirectoryError.storage("\(path): \(String(cString: strerror(errno)))")
        }
        if !force, info.st_mtim.tv_sec == snapshot.modified.tv_sec, info.st_mtim.tv_nsec == snapshot.modified.tv_nsec,
           Int(info.st_size) == snapshot.size {
            return
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DirectoryError.storage("\(path): cannot read it")
        }
        var keys: [String: DHPublicKey] = [:]
        var skipped: [Int] = []
        for (index, raw) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            var line = String(decoding: raw, as: UTF8.self)
            if line.hasSuffix("\r") { line.removeLast() }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix("+") { continue }
            // Only the public half matters here; entries whose secret part is empty or odd
            // (some sites strip secrets from the copy they distribute) still give a key.
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, NetnameSyntax.isWellFormed(String(fields[0])),
                  let publicHex = fields[1].split(separator: ":", omittingEmptySubsequences: false).first,
                  let key = try? DHPublicKey(group: .dh192des, hex: String(publicHex)) else {
                skipped.append(index + 1)
                continue
            }
            keys[String(fields[0])] = key
        }
        snapshot.keys = keys
        snapshot.skippedLines = skipped
        snapshot.modified = info.st_mtim
        snapshot.size = Int(info.st_size)
    }
}
