// One way for programs to open "the directory" from what an operator typed: a path or a
// `sqlite:` URL is the embedded SQLite file, a `postgres://` URL a server. Programs that link
// this module can use either; those that link only KeyDirectory stay SQLite-only.

import Foundation
import KeyDirectory

/// Opens the key directory named by `url`.
///
/// ```swift
/// let store = try openKeyDirectory(url: "/var/lib/securerpc/keys.db")              // SQLite
/// let site = try openKeyDirectory(url: "postgres://keydird@db1.example.org/keys")  // PostgreSQL
/// ```
///
/// - Parameters:
///   - url: a file path, a `sqlite:` URL or a `postgres://` URL.
///   - create: make a missing SQLite file, or the tables in an empty PostgreSQL database.
///   - readOnly: read, never write: keylogin's way of reading a SQLite file it may not
///     write; for PostgreSQL, a hot standby (the schema is checked, not migrated). Rights
///     on a primary are the role's in the URL.
public func openKeyDirectory(url: String, create: Bool = false, readOnly: Bool = false) throws -> any KeyDirectoryStore {
    if PostgresLocation.isPostgresURL(url) {
        return try PostgresKeyDirectory(location: PostgresLocation(url: url), create: create, readOnly: readOnly)
    }
    return try SQLiteKeyDirectory(path: sqlitePath(url), readOnly: readOnly, create: create)
}

/// `sqlite:/abs/path`, `sqlite:///abs/path` or `sqlite:relative`; anything else without a
/// scheme is a path as it stands.
func sqlitePath(_ url: String) throws -> String {
    guard url.lowercased().hasPrefix("sqlite:") else {
        if let colon = url.firstIndex(of: ":"), url[..<colon].allSatisfy({ $0.isLetter }), url[colon...].hasPrefix("://") {
            throw DirectoryError.storage("unknown directory URL scheme \(url[..<colon]): expected a path, sqlite: or postgres://")
        }
        return url
    }
    var rest = url.dropFirst("sqlite:".count)
    if rest.hasPrefix("//") { rest = rest.dropFirst(2) }
    guard !rest.isEmpty else { throw DirectoryError.storage("sqlite: URL without a path") }
    return String(rest)
}
