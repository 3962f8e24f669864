// Where a PostgreSQL key directory lives, read from a `postgres://` URL (libpq's form, the
// one operators already write). Trusts nothing in the URL: every part is checked and bounded,
// and the password never leaves this type except into the connection: `description` and
// every error name the server without it.

import Foundation
import KeyDirectory

/// A parsed `postgres://` (or `postgresql://`) URL.
///
/// ```swift
/// let tcp = try PostgresLocation(url: "postgres://keydird@db1.example.org:5432/keys")
/// let local = try PostgresLocation(url: "postgres:///keys?host=/run/postgresql")   // unix socket
/// ```
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The socket file itself: `DIR/.s.PGSQL.PORT`, as libpq names it.
        case unixSocket(path: String)
    }

    /// TLS over TCP, as libpq's `sslmode` (the modes that need no certificate files).
    public enum TLSMode: String, Sendable, Equatable {
        case disable, prefer, require
    }

    public var endpoint: Endpoint
    public var username: String
    public var database: String
    public var tls: TLSMode
    /// From the URL or `PGPASSWORD`; nil for trust, peer or certificate authentication.
    var password: String?

    /// Longer URLs are refused before parsing: no real one comes near it.
    static let maximumURLLength = 4096

    public init(url: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard url.utf8.count <= Self.maximumURLLength else { throw Self.bad("longer than \(Self.maximumURLLength) bytes") }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "postgres" || scheme == "postgresql" else {
            throw Self.bad("expected postgres://USER@HOST:PORT/DATABASE or postgres:///DATABASE?host=/SOCKET/DIR")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard let value = item.value, !value.isEmpty else { throw Self.bad("query parameter \(item.name) has no value") }
            guard ["host", "port", "user", "sslmode", "dbname"].contains(item.name) else {
                throw Self.bad("unknown query parameter \(item.name)")
            }
            query[item.name] = value
        }
        let database = query["dbname"] ?? String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else { throw Self.bad("no database name in the path") }

        let portText = query["port"] ?? components.port.map(String.init)
        let port = try portText.map { text -> Int in
            guard let port = Int(text), (1...65535).contains(port) else { throw Self.bad("port \(text) is not 1-65535") }
            return port
        } ?? 5432

        let host = query["host"] ?? components.host.flatMap { $0.isEmpty ? nil : $0 }
        switch host {
        case let dir? where dir.hasPrefix("/"):
            endpoint = .unixSocket(path: (dir as NSString).appendingPathComponent(".s.PGSQL.\(port)"))
        case let name?:
            endpoint = .tcp(host: name, port: port)
        case nil:
            // libpq's default: the local socket directory Debian's server uses.
            endpoint = .unixSocket(path: "/var/run/postgresql/.s.PGSQL.\(port)")
        }

        guard let user = query["user"] ?? components.user.flatMap({ $0.isEmpty ? nil : $0 }) ?? Self.currentUserName() else {
            throw Self.bad("no user name in the URL and none for this uid")
        }
        username = user
        self.database = database
        password = components.password ?? environment["PGPASSWORD"].flatMap { $0.isEmpty ? nil : $0 }

        let mode = query["sslmode"] ?? "prefer"
        guard let tls = TLSMode(rawValue: mode) else { throw Self.bad("sslmode \(mode) is not disable, prefer or require") }
        // A socket is local: TLS over it buys nothing, and libpq skips it too.
        if case .unixSocket = endpoint { self.tls = .disable } else { self.tls = tls }
    }

    /// The URL without its password: what logs and errors say.
    public var description: String {
        switch endpoint {
        case let .tcp(host, port): return "postgres://\(username)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
        case let .unixSocket(path):
            // The socket file is DIR/.s.PGSQL.PORT: show both as the URL gave them.
            let port = (path as NSString).lastPathComponent.split(separator: ".").last.map(String.init) ?? "5432"
            return "postgres://\(username)@/\(database)?host=\((path as NSString).deletingLastPathComponent)&port=\(port)"
        }
    }

    /// Whether `text` names a PostgreSQL directory rather than a SQLite file.
    public static func isPostgresURL(_ text: String) -> Bool {
        let lower = text.prefix(16).lowercased()
        return lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://")
    }

    private static func currentUserName() -> String? {
        guard let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name else { return nil }
        return String(cString: name)
    }

    /// The message never repeats the URL: it may hold a password.
    private static func bad(_ why: String) -> DirectoryError {
        .storage("bad PostgreSQL URL: \(why)")
    }
}
