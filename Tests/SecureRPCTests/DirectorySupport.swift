// A site in one process for the directory tests: a key directory (SQLite) with a directory
// principal, an administrator, users and hosts; one real keyserver (KEY_PROG + SRPC_KEYX over
// a unix socket) where each of them is "logged in" under its own uid; keydird's program served
// over RPCSEC_GSS on loopback; and site configurations pinning the directory's key.

import Foundation
import KeyCrypto
import KeyDirectory
import KeyDirectoryService
import KeyServer
import Logging
import NIOCore
import ONCRPC
import SecureRPC
import SiteConfig
import XCTest

final class DirectorySite: @unchecked Sendable {
    static let domain = "site.example"
    static let directoryNetname = "unix.dir@site.example"
    static let admin = (uid: UInt32(7001), netname: "unix.7001@site.example")
    static let alice = (uid: UInt32(7002), netname: "unix.7002@site.example")
    static let bob = (uid: UInt32(7003), netname: "unix.7003@site.example")
    /// Hosts' principals are logged in under these uids (a test process stands in for root on each).
    static let enrolledHost = (uid: UInt32(7101), netname: "unix.client1@site.example")
    static let strangerHost = (uid: UInt32(7102), netname: "unix.client2@site.example")
    static let directoryUID: UInt32 = 7100
    static let password = "correct horse"

    let directory: URL
    let store: SQLiteKeyDirectory
    let keyserver: TestKeyserver
    private(set) var server: RPCServer?
    private(set) var gss: GSSServer?
    private(set) var address: SocketAddress?
    let directoryKey = DHPrivateKey.generate(group: .ffdhe3072)
    var logger: Logger

    var socket: String { directory.appendingPathComponent("keyservsock").path }

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("site-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        logger = Logger(label: "directory-test")
        logger.logLevel = .critical
        store = try SQLiteKeyDirectory(path: directory.appendingPathComponent("keys.db").path)
        keyserver = try await TestKeyserver.start(socket: directory.appendingPathComponent("keyservsock").path)
        try addPrincipal(Self.directoryNetname, uid: Self.directoryUID, key: directoryKey)
        for (uid, netname) in [Self.admin, Self.alice, Self.bob, Self.enrolledHost, Self.strangerHost] {
            try addPrincipal(netname, uid: uid)
        }
        try store.grant(.admin, to: Self.admin.netname, actor: "test")
        try store.grant(.host, to: Self.enrolledHost.netname, actor: "test")
    }

    /// Adds a principal with an ffdhe3072 key sealed under `password`, and logs it in.
    func addPrincipal(_ netname: String, uid: UInt32, key: DHPrivateKey = DHPrivateKey.generate(group: .ffdhe3072)) throws {
        let (kind, name, userUID) = Netname.classify(netname)
        let entry = try KeyEntry.sealing(key, netname: netname, password: SecretBytes(copying: Array(Self.password.utf8)), parameters: .testing)
        try store.add(Principal(netname: netname, kind: kind, name: name, uid: userUID), keys: [entry], actor: "test")
        logIn(uid: uid, key: key)
    }

    func logIn(uid: UInt32, key: DHPrivateKey) {
        let secret = key.secret.withUnsafeBytes { Array($0) }
        XCTAssertEqual(keyserver.strong.set(uid: uid, mechanism: .keyxFfdhe3072, secret: secret), .keySuccess)
    }

    /// Starts keydird's program as keydird does (AUTH_NONE for the open procedure, RPCSEC_GSS
    /// as the directory principal for everything else).
    @discardableResult
    func start(port: Int = 0, primary: String? = nil) async throws -> SocketAddress {
        let store = self.store
        let gss = GSSServer(configuration: GSSServer.Configuration(serverNetname: Self.directoryNetname),
                            keyserver: try KeyServerClient(socketPath: socket, uid: Self.directoryUID), logger: logger) { netname, group in
            try? store.publicKey(netname: netname, mechanism: group.dhGroup)
        }
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), gss]
        let service = KeyDirectoryServer(store: store, configuration: .init(directoryNetname: Self.directoryNetname, primary: primary), logger: logger)
        let server = RPCServer(programs: [service.program], configuration: configuration, logger: logger)
        let address = try await server.listenTCP(host: "127.0.0.1", port: port)
        self.server = server
        self.gss = gss
        self.address = address
        return address
    }

    func stop() async {
        await server?.shutdown()
        server = nil
    }

    func shutdown() async {
        await stop()
        await keyserver.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    /// A site configuration pinning the directory's key (or `fingerprint`), pointing at `port`.
    func site(port: Int? = nil, fingerprint: String? = nil) -> SiteConfiguration {
        var site = SiteConfiguration()
        site.domain = Self.domain
        site.directories = [.init(host: "127.0.0.1", port: port ?? address?.port, netname: Self.directoryNetname,
                                  fingerprint: fingerprint ?? directoryKey.publicKey.fingerprint)]
        return site
    }

    func client(as who: (uid: UInt32, netname: String), service: GSSService = .privacy, site: SiteConfiguration? = nil) -> DirectoryClient {
        DirectoryClient(site: site ?? self.site(), caller: DirectoryCaller(netname: who.netname, keyserverSocket: socket, uid: who.uid),
                        service: service, timeout: .seconds(5), logger: logger)
    }
}
