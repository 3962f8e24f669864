// Runs StoreContract on both stores: the SQLite file and a real PostgreSQL server (one
// server per class, started in class setUp, one new database per store). Each test method
// is one line so that both classes list the same names; XCTest on Linux does not run
// inherited test methods reliably, so the lists are written out.

import Foundation
@testable import KeyCrypto
@testable import KeyDirectory
@testable import KeyDirectoryPostgres
import PostgresSupport
import XCTest

struct SQLiteBackend: StoreBackend {
    let directory: URL

    func makeStore() throws -> any KeyDirectoryStore {
        try SQLiteKeyDirectory(path: directory.appendingPathComponent("keys-\(UUID().uuidString.prefix(8)).db").path)
    }

    func execute(_ sql: String, on store: any KeyDirectoryStore) throws {
        try (store as! SQLiteKeyDirectory).pool.write { try $0.execute(sql: sql) }
    }
}

final class SQLiteStoreContractTests: XCTestCase {
    private var directory: URL!
    private var contract: StoreContract { StoreContract(backend: SQLiteBackend(directory: directory)) }

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("contract-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func testNewkeyExportImportExportRoundTrip() throws { try contract.newkeyExportImportExportRoundTrip() }
    func testAuditIsAppendOnlyAndStateChanges() throws { try contract.auditIsAppendOnlyAndStateChanges() }
    func testChangesAreAllOrNothing() throws { try contract.changesAreAllOrNothing() }
    func testImportNeverResurrectsAndAuditsEachPrincipal() throws { try contract.importNeverResurrectsAndAuditsEachPrincipal() }
    func testLargeImportWithExistingAndRepeatedPrincipals() throws { try contract.largeImportWithExistingAndRepeatedPrincipals() }
    func testAuditRecordsWhoInvoked() throws { try contract.auditRecordsWhoInvoked() }
    func testRoles() throws { try contract.roles() }
    func testServicePrincipals() throws { try contract.servicePrincipals() }
    func testChangeFeed() throws { try contract.changeFeed() }
    func testConcurrentWritersLoseNothing() throws { try contract.concurrentWritersLoseNothing() }
}

/// Stores on the class's server; each is closed when the test ends.
final class PostgresBackend: StoreBackend, @unchecked Sendable {
    let server: TemporaryPostgres
    private(set) var opened: [(store: PostgresKeyDirectory, database: String)] = []

    init(server: TemporaryPostgres) { self.server = server }

    func makeStore() throws -> any KeyDirectoryStore {
        let database = try server.createDatabase()
        let store = try PostgresKeyDirectory(location: PostgresLocation(url: server.url(database: database)), create: true)
        opened.append((store, database))
        return store
    }

    /// Through psql, a client of its own: what the trigger refuses, it refuses to anyone.
    func execute(_ sql: String, on store: any KeyDirectoryStore) throws {
        guard let database = opened.first(where: { $0.store === (store as AnyObject) })?.database else {
            throw TemporaryPostgres.Failure("not a store of this backend")
        }
        let (status, stderr) = try server.psql(database, sql)
        guard status == 0 else { throw TemporaryPostgres.Failure(stderr) }
    }

    func closeAll() {
        for (store, _) in opened { store.close() }
        opened = []
    }
}

final class PostgresStoreContractTests: XCTestCase {
    nonisolated(unsafe) private static var server: TemporaryPostgres?
    nonisolated(unsafe) private static var startError: (any Error)?
    private var backend: PostgresBackend!
    private var contract: StoreContract { StoreContract(backend: backend) }

    override class func setUp() {
        super.setUp()
        do { server = try TemporaryPostgres() } catch { startError = error }
    }

    override class func tearDown() {
        server?.stop()
        server = nil
        super.tearDown()
    }

    override func setUpWithError() throws {
        if let startError = Self.startError { throw startError }
        backend = PostgresBackend(server: try XCTUnwrap(Self.server))
    }

    override func tearDown() {
        backend?.closeAll()
        super.tearDown()
    }

    func testNewkeyExportImportExportRoundTrip() throws { try contract.newkeyExportImportExportRoundTrip() }
    func testAuditIsAppendOnlyAndStateChanges() throws { try contract.auditIsAppendOnlyAndStateChanges() }
    func testChangesAreAllOrNothing() throws { try contract.changesAreAllOrNothing() }
    func testImportNeverResurrectsAndAuditsEachPrincipal() throws { try contract.importNeverResurrectsAndAuditsEachPrincipal() }
    func testLargeImportWithExistingAndRepeatedPrincipals() throws { try contract.largeImportWithExistingAndRepeatedPrincipals() }
    func testAuditRecordsWhoInvoked() throws { try contract.auditRecordsWhoInvoked() }
    func testRoles() throws { try contract.roles() }
    func testServicePrincipals() throws { try contract.servicePrincipals() }
    func testChangeFeed() throws { try contract.changeFeed() }
    func testConcurrentWritersLoseNothing() throws { try contract.concurrentWritersLoseNothing() }

    // MARK: PostgreSQL only

    func testAppendOnlyTriggerNamesItself() throws {
        let store = try backend.makeStore()
        try store.add(Principal(netname: "unix.1@example.org", kind: .user, name: "1", uid: 1), keys: [], actor: "t")
        let database = backend.opened[0].database
        let update = try backend.server.psql(database, "UPDATE audit SET actor = 'mallory'")
        XCTAssertNotEqual(update.status, 0)
        XCTAssertTrue(update.stderr.contains("the audit trail is append-only"), update.stderr)
        XCTAssertNotEqual(try backend.server.psql(database, "TRUNCATE audit").status, 0)
        XCTAssertEqual(try backend.server.psql(database, "SELECT max(version) FROM schema_version").status, 0)
    }

    func testReopeningMigratesNothingTwiceAndKeepsRows() throws {
        let store = try backend.makeStore()
        try store.add(Principal(netname: "unix.1@example.org", kind: .user, name: "1", uid: 1), keys: [], actor: "t")
        let url = backend.server.url(database: backend.opened[0].database)
        let again = try PostgresKeyDirectory(location: PostgresLocation(url: url), create: false)
        defer { again.close() }
        XCTAssertEqual(try again.count(), 1)
        // An empty database is not a directory unless asked to make one.
        let empty = try backend.server.createDatabase()
        XCTAssertThrowsError(try PostgresKeyDirectory(location: PostgresLocation(url: backend.server.url(database: empty)), create: false)) {
            guard case .notADirectory = $0 as? DirectoryError else { return XCTFail("\($0)") }
        }
    }

    func testServesPublicKeysToAsyncCallers() async throws {
        let store = try backend.makeStore() as! PostgresKeyDirectory
        let key = DHPrivateKey.generate(group: .ffdhe2048)
        let entry = KeyEntry(netname: "unix.1@example.org", mechanism: .ffdhe2048, publicKey: key.publicKey.hex, sealedSecret: [1])
        try store.add(Principal(netname: "unix.1@example.org", kind: .user, name: "1", uid: 1), keys: [entry], actor: "t")
        let source: any PublicKeySource = store
        // More lookups at once than the concurrency pool has threads: none may wait on another.
        try await withThrowingTaskGroup(of: DHPublicKey?.self) { group in
            for _ in 0..<16 { group.addTask { try await source.fetchPublicKey(netname: "unix.1@example.org", mechanism: .ffdhe2048) } }
            for try await found in group { XCTAssertEqual(found, key.publicKey) }
        }
        let other = try await source.fetchPublicKey(netname: "unix.1@example.org", mechanism: .ffdhe3072)
        XCTAssertNil(other)
        XCTAssertNil(source.cachedPublicKey(netname: "unix.1@example.org", mechanism: .ffdhe2048) as DHPublicKey??)
    }

    /// keyadmin --db with a URL: init makes the tables, changes land, and a refusal is one
    /// line that names the server without the password.
    func testKeyadminTakesAPostgresURL() throws {
        let database = try backend.server.createDatabase()
        let url = backend.server.url(database: database).replacingOccurrences(of: "dirtest@", with: "dirtest:sekrit-pw@")
        let passwordFile = backend.server.directory.appendingPathComponent("pw-\(database)")
        try "pw\n".write(to: passwordFile, atomically: true, encoding: .utf8)
        XCTAssertEqual(try keyadmin(["list", "--db", url]).status, 1, "not a directory before init")
        let initialized = try keyadmin(["init", "--db", url])
        XCTAssertEqual(initialized.status, 0, initialized.stderr)
        XCTAssertTrue(initialized.stdout.hasSuffix("ready, 0 principals\n"), initialized.stdout)
        XCTAssertFalse(initialized.stdout.contains("sekrit-pw"), initialized.stdout)
        let made = try keyadmin(["newkey", "--db", url, "--user", "1001", "--domain", "example.org",
                                 "--mechanism", "ffdhe2048", "--password-file", passwordFile.path])
        XCTAssertEqual(made.status, 0, made.stderr)
        XCTAssertTrue(try keyadmin(["list", "--db", url]).stdout.contains("unix.1001@example.org"))
        let verified = try keyadmin(["verify", "--db", url])
        XCTAssertEqual(verified.status, 0, verified.stdout)
        XCTAssertTrue(verified.stdout.contains("1 principals, 1 keys, 0 problems"), verified.stdout)

        let refused = try keyadmin(["list", "--db", url.replacingOccurrences(of: "port=\(backend.server.port)", with: "port=1")])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("cannot connect"), refused.stderr)
        XCTAssertFalse(refused.stderr.contains("sekrit-pw"), refused.stderr)
    }

    private func keyadmin(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        let products = Bundle.main.bundleURL.path.hasSuffix(".xctest")
            ? Bundle.main.bundleURL.deletingLastPathComponent() : URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        process.executableURL = products.appendingPathComponent("keyadmin")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "SECURERPC_DB" && $0.key != "PGPASSWORD" }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    func testErrorsAreOneLineWithoutThePassword() throws {
        let missing = "postgres://dirtest:sekrit-pw@/nosuchdb?host=\(backend.server.socketDirectory)&port=\(backend.server.port)"
        XCTAssertThrowsError(try openKeyDirectory(url: missing)) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("sekrit-pw"), text)
            XCTAssertFalse(text.contains("\n"), text)
            XCTAssertTrue(text.contains("nosuchdb"), text)
        }
        // Nothing listens on this socket: refused at once, one line, no password.
        let nowhere = "postgres://dirtest:sekrit-pw@/x?host=\(backend.server.socketDirectory)&port=1"
        XCTAssertThrowsError(try openKeyDirectory(url: nowhere)) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("sekrit-pw"), text)
            XCTAssertFalse(text.contains("\n"), text)
            XCTAssertTrue(text.hasSuffix("cannot connect: No such file or directory"), text)
        }
    }

    /// The store's timeout bounds one statement's wait (a lost server must not hang keydird),
    /// not an import, which is as long as its file: with 1 s, an import of 20,000 principals
    /// (several seconds in a debug build) failed with "no answer within 1 s" and rolled back;
    /// 10^6 principals failed so with the default 30 s.
    func testAnImportLongerThanTheStatementTimeoutCompletes() throws {
        let server = try XCTUnwrap(Self.server)
        let database = try server.createDatabase()
        let store = try PostgresKeyDirectory(location: PostgresLocation(url: server.url(database: database)), create: true,
                                             timeout: .seconds(1))
        defer { store.close() }
        var bytes = [UInt8](repeating: 0x5a, count: 256)
        bytes[0] = 0x40
        let key = try DHPublicKey(group: .ffdhe2048, bytes: bytes).hex
        let file: [(Principal, [KeyEntry])] = (0..<20_000).map { index in
            let netname = "unix.\(100_000 + index)@example.org"
            return (Principal(netname: netname, kind: .user, name: "\(100_000 + index)", uid: UInt32(100_000 + index)),
                    [KeyEntry(netname: netname, mechanism: .ffdhe2048, publicKey: key, sealedSecret: [1])])
        }
        let started = ContinuousClock.now
        let report = try store.importEntries(file, actor: "t", source: "big", replace: false, progress: nil)
        XCTAssertEqual(report.added, 20_000)
        XCTAssertNotNil(try store.publicKey(netname: "unix.119999@example.org", mechanism: .ffdhe2048))
        print("20,000 principals imported into PostgreSQL in \(ContinuousClock.now - started)")
    }
}
