// The key directory on a PostgreSQL server, behind the same synchronous `KeyDirectoryStore`
// as the SQLite file, with the same rules (see SQLiteKeyDirectory and the shared contract
// tests). What differs is only how: a connection pool of postgres-nio, async calls bridged to
// the synchronous protocol, and one advisory lock that serializes writers as SQLite's single
// writer does, so that read-then-write rules (never an older key, never resurrect) and the
// change feed's serial order hold under concurrent keyadmin runs and keydird threads.
//
// Trust: the server and its credentials come from the operator; every value goes to the
// server as a bound parameter, never spliced into SQL. Errors carry the server's message and
// SQLSTATE, never the password.

import Foundation
import KeyCrypto
import KeyDirectory
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import PostgresNIO

/// The PostgreSQL-backed key directory.
///
/// Synchronous like every store: each call blocks its thread until the server answers.
/// Never call it from an event loop or a Swift concurrency task; keydird calls stores on
/// NIOThreadPool threads, keyadmin on its main thread.
///
/// ```swift
/// let directory = try PostgresKeyDirectory(location: PostgresLocation(url: "postgres:///keys?host=/run/postgresql"))
/// defer { directory.close() }
/// let key = try directory.publicKey(netname: "unix.1001@example.org", mechanism: .ffdhe3072)
/// ```
public final class PostgresKeyDirectory: KeyDirectoryStore {
    /// Held by every write transaction (pg_advisory_xact_lock): one writer at a time.
    static let writerLock: Int64 = 0x5352_5043_4B44_0001   // "SRPCKD" 1
    /// Held while migrating, so that two first openers do not both create the tables.
    static let migrationLock: Int64 = 0x5352_5043_4B44_0002

    public let location: PostgresLocation
    let client: PostgresClient
    let logger: Logger
    /// How long one call may wait for the server before it fails (a lost server must not
    /// hang keydird's threads for ever).
    let timeout: Duration
    private let runner: NIOLockedValueBox<Task<Void, Never>?>

    /// Connects, checks that the database answers, and brings its schema up to date.
    ///
    /// - Parameters:
    ///   - location: the server, database and role (from a `postgres://` URL).
    ///   - create: make the tables in an empty database (`keyadmin init`); otherwise a
    ///     database without them is `DirectoryError.notADirectory`, as a mistyped SQLite path is.
    ///   - readOnly: a hot standby (PostgreSQL streaming replication): the schema is checked,
    ///     never migrated, since nothing can be written there until it is promoted.
    ///   - maximumConnections: the pool's size; keydird's thread pool size is a good value.
    ///   - timeout: how long one statement (with its wait for a connection) may take.
    ///   - logger: where the connection pool's events go.
    public init(location: PostgresLocation, create: Bool = true, readOnly: Bool = false, maximumConnections: Int = 8,
                timeout: Duration = .seconds(30), logger: Logger = Logger(label: "securerpc.keydirectory.postgres")) throws {
        self.location = location
        self.logger = logger
        self.timeout = timeout
        let configuration = try Self.clientConfiguration(location, maximumConnections: maximumConnections)
        // A first connection of its own: the pool retries a refused connection quietly, while
        // an operator who typed the wrong URL wants one clear error now.
        try Self.bridge(location, timeout: timeout) {
            let connection = try await PostgresConnection.connect(
                configuration: Self.connectionConfiguration(location), id: 0, logger: logger)
            do {
                if !create || readOnly, try await !Self.hasSchema(connection, logger: logger) {
                    throw DirectoryError.notADirectory(location.description)
                }
                // A hot standby is read-only whatever the caller asked (keyadmin show on it).
                let standby = try await Self.isInRecovery(connection, logger: logger)
                if readOnly || standby {
                    try await PostgresSchema.check(connection, logger: logger)
                } else {
                    try await PostgresSchema.migrate(connection, logger: logger)
                }
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        }
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let client = self.client
        runner = NIOLockedValueBox(Task { await client.run() })
    }

    deinit { close() }

    /// Closes the pool's connections; later calls fail. Safe to call more than once.
    public func close() {
        runner.withLockedValue { task in
            task?.cancel()
            task = nil
        }
    }

    // MARK: configuration

    private static func tls(_ location: PostgresLocation) -> PostgresClient.Configuration.TLS {
        switch location.tls {
        case .disable: return .disable
        case .prefer: return .prefer(.makeClientConfiguration())
        case .require: return .require(.makeClientConfiguration())
        }
    }

    private static func clientConfiguration(_ location: PostgresLocation, maximumConnections: Int) throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch location.endpoint {
        case let .tcp(host, port):
            configuration = .init(host: host, port: port, username: location.username, password: location.password,
                                  database: location.database, tls: tls(location))
        case let .unixSocket(path):
            configuration = .init(unixSocketPath: path, username: location.username, password: location.password, database: location.database)
        }
        configuration.options.maximumConnections = max(1, maximumConnections)
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    private static func connectionConfiguration(_ location: PostgresLocation) throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch location.endpoint {
        case let .tcp(host, port):
            let tls: PostgresConnection.Configuration.TLS
            switch location.tls {
            case .disable: tls = .disable
            case .prefer: tls = try .prefer(.init(configuration: .makeClientConfiguration()))
            case .require: tls = try .require(.init(configuration: .makeClientConfiguration()))
            }
            configuration = .init(host: host, port: port, username: location.username, password: location.password,
                                  database: location.database, tls: tls)
        case let .unixSocket(path):
            configuration = .init(unixSocketPath: path, username: location.username, password: location.password, database: location.database)
        }
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    private static func isInRecovery(_ connection: PostgresConnection, logger: Logger) async throws -> Bool {
        for try await standby in try await connection.query("SELECT pg_is_in_recovery()", logger: logger).decode(Bool.self) {
            return standby
        }
        return false
    }

    private static func hasSchema(_ connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query("SELECT to_regclass('principal') IS NOT NULL", logger: logger).decode(Bool.self)
        for try await present in rows { return present }
        return false
    }

    // MARK: the synchronous bridge

    /// Runs `body` on the concurrency pool and blocks this thread until it ends or `timeout`
    /// passes; every failure comes back as a one-line `DirectoryError`.
    func wait<T: Sendable>(timeout: Duration? = nil, _ body: @escaping @Sendable () async throws -> T) throws -> T {
        try Self.bridge(location, timeout: timeout ?? self.timeout, body)
    }

    @discardableResult
    static func bridge<T: Sendable>(_ location: PostgresLocation, timeout: Duration,
                                    _ body: @escaping @Sendable () async throws -> T) throws -> T {
        let result = NIOLockedValueBox<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let outcome: Result<T, any Error>
            do {
                outcome = .success(try await withThrowingTaskGroup(of: T.self) { group in
                    group.addTask { try await body() }
                    group.addTask {
                        try await Task.sleep(for: timeout)
                        throw DirectoryError.storage("\(location): no answer within \(timeout.components.seconds) s")
                    }
                    defer { group.cancelAll() }
                    return try await group.next()!
                })
            } catch {
                outcome = .failure(PostgresErrors.directoryError(error, location: location))
            }
            result.withLockedValue { $0 = outcome }
            done.signal()
        }
        done.wait()
        return try result.withLockedValue { $0! }.get()
    }

    /// One write transaction: the writers' lock, `body`, COMMIT; any error rolls it all back.
    /// `timeout` replaces the store's for a transaction known to be long (an import).
    func write<T: Sendable>(timeout: Duration? = nil, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) throws -> T {
        let logger = self.logger, client = self.client
        return try wait(timeout: timeout) {
            try await client.withConnection { connection in
                try await Self.transaction(connection, "BEGIN", logger: logger) {
                    _ = try await Self.count($0.query("SELECT pg_advisory_xact_lock(\(Self.writerLock))", logger: logger))
                    return try await body($0)
                }
            }
        }
    }

    /// Several statements that must see one snapshot (a listing, a feed page).
    func readSnapshot<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) throws -> T {
        let logger = self.logger, client = self.client
        return try wait {
            try await client.withConnection { connection in
                try await Self.transaction(connection, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger, body)
            }
        }
    }

    /// One statement: it sees one snapshot by itself.
    func read<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) throws -> T {
        let client = self.client
        return try wait { try await client.withConnection { try await body($0) } }
    }

    /// BEGIN … COMMIT by hand rather than postgres-nio's withTransaction, which wraps the
    /// body's error: the directory's own errors (keyExists, noSuchPrincipal) must reach the
    /// caller as they are.
    private static func transaction<T>(_ connection: PostgresConnection, _ begin: PostgresQuery, logger: Logger,
                                       _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await connection.query(begin, logger: logger)
        do {
            let value = try await body(connection)
            try await connection.query("COMMIT", logger: logger)
            return value
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
