// `keybench site`: the network directory against the local store, in one process and one run,
// on SQLite and (with --postgres URL) on PostgreSQL side by side. For each backend: N
// principals, keydird's program over RPCSEC_GSS on loopback (one keyserver on a unix socket
// serves both), and a host's NetworkKeyLookup; then
//   - lookups/s: the store read directly (what keydird does per call), keydird uncached
//     (every lookup a call, integrity), keydird cached (NetworkKeyLookup's cache),
//     sequential and 16 at once;
//   - admin writes/s: revoke+enable pairs on the store and through keydird (privacy, admin role);
//   - keylogin's key fetch: the sealed keys from the store and from keydird (privacy), and the
//     password opening them (scrypt, the same on every path).
// Runs as root (the keyserver answers for the bench's several uids only to root).

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory
import KeyDirectoryPostgres
import KeyDirectoryService
import KeyServer
import Logging
import NIOCore
import NIOPosix
import ONCRPC
import SecureRPC
import SiteConfig

struct SiteBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site",
        abstract: "keydird and the network key lookup against the local store, SQLite and PostgreSQL side by side (lookups/s, admin writes/s, keylogin's fetch).",
        discussion: """
            With --postgres URL the same principals go into that (empty) PostgreSQL database too and \
            every row is measured on both; deploy/bench-site.sh starts a throwaway PostgreSQL and \
            runs this with 1,000,000 principals.
            """
    )

    @Option(help: "Principals in the directory.") var principals = 10_000
    @Option(help: "Lookups per measurement.") var lookups = 5_000
    @Option(help: "Admin write pairs (revoke + enable) per measurement.") var writes = 300
    @Option(help: "An empty PostgreSQL database (postgres://…) to measure beside SQLite.") var postgres: String?

    /// One store under test, and how its rows are read directly.
    private struct Backend {
        var name: String
        var store: any KeyDirectoryStore
        var keys: any PublicKeySource
        var lookUp: @Sendable (String) async throws -> Void
    }

    private struct Results {
        var rows: [(String, [String: Double])] = []   // label -> backend -> seconds per operation
        mutating func add(_ label: String, _ backend: String, count: Int, seconds: Double) {
            if let index = rows.firstIndex(where: { $0.0 == label }) {
                rows[index].1[backend] = seconds / Double(count)
            } else {
                rows.append((label, [backend: seconds / Double(count)]))
            }
        }
    }

    func run() async throws {
        guard geteuid() == 0 else { throw ValidationError("keybench site runs as root (the keyserver acts for several uids)") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("keybench-site-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var logger = Logger(label: "keybench")
        logger.logLevel = .critical
        let domain = "bench.example"
        let path = work.appendingPathComponent("keys.db").path

        // Principals with valid random ffdhe2048 public keys (the sealed blob is not opened
        // by lookups), in one import per backend.
        print("building \(principals) principals…")
        var entries: [(Principal, [KeyEntry])] = []
        entries.reserveCapacity(principals)
        for index in 0..<principals {
            let netname = "unix.\(100_000 + index)@\(domain)"
            var bytes = (0..<256).map { _ in UInt8.random(in: 0...255) }
            bytes[0] = .random(in: 1...0x7f)
            let key = try DHPublicKey(group: .ffdhe2048, bytes: bytes)
            entries.append((Principal(netname: netname, kind: .user, name: "\(100_000 + index)", uid: UInt32(100_000 + index)),
                            [KeyEntry(netname: netname, mechanism: .ffdhe2048, publicKey: key.hex, sealedSecret: [0])]))
        }

        var backends: [Backend] = []
        let sqlite = try SQLiteKeyDirectory(path: path, create: true)
        let file = try PublicKeyLookup(path: path)
        backends.append(Backend(name: "SQLite", store: sqlite, keys: file) { name in _ = try file.publicKey(netname: name, mechanism: .ffdhe2048) })
        if let postgres {
            let store = try await NIOThreadPool.singleton.runIfActive { try PostgresKeyDirectory(location: PostgresLocation(url: postgres), create: true) }
            guard try await NIOThreadPool.singleton.runIfActive({ try store.allEntries().isEmpty }) else {
                throw ValidationError("--postgres names a database that already holds principals: give an empty one")
            }
            backends.append(Backend(name: "PostgreSQL", store: store, keys: store) { name in _ = try await store.fetchPublicKey(netname: name, mechanism: .ffdhe2048) })
        }

        // The directory principal (uid 7100 at the keyserver) and the host/admin (uid 7101),
        // whose key is sealed for real so that the keylogin fetch can be opened.
        let password = SecretBytes(copying: Array("bench password".utf8))
        let directoryKey = DHPrivateKey.generate(group: .ffdhe3072), adminKey = DHPrivateKey.generate(group: .ffdhe3072)
        let directoryNetname = "unix.dir@\(domain)", adminNetname = "unix.7101@\(domain)"
        let adminEntry = try KeyEntry.sealing(adminKey, netname: adminNetname, password: password)
        for backend in backends {
            let store = backend.store, all = entries
            let imported = try await NIOThreadPool.singleton.runIfActive {
                let start = ContinuousClock.now
                _ = try store.importEntries(all, actor: "keybench", source: "keybench", replace: false, progress: nil)
                try store.add(Principal(netname: directoryNetname, kind: .host, name: "dir", uid: nil),
                              keys: [KeyEntry(netname: directoryNetname, mechanism: .ffdhe3072, publicKey: directoryKey.publicKey.hex, sealedSecret: [0])],
                              actor: "keybench")
                try store.add(Principal(netname: adminNetname, kind: .user, name: "7101", uid: 7101), keys: [adminEntry], actor: "keybench")
                try store.grant(.admin, to: adminNetname, actor: "keybench")
                return ContinuousClock.now - start
            }
            print("  \(backend.name): imported in \(imported.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1))))")
        }

        let socket = work.appendingPathComponent("keyservsock").path
        var keyserverConfiguration = RPCServer.Configuration()
        keyserverConfiguration.authenticators = [AuthNoneServer(), AuthSysServer()]
        let core = KeyServerCore(), strong = StrongKeyStore()
        let keyserver = RPCServer(programs: KeyServerService.programs(core: core, strong: strong, logger: logger),
                                  configuration: keyserverConfiguration, logger: logger)
        try await keyserver.listenUnix(path: socket)
        for (uid, key) in [(UInt32(7100), directoryKey), (7101, adminKey)] {
            _ = strong.set(uid: uid, mechanism: .keyxFfdhe3072, secret: key.secret.copyBytes())
        }

        let names = (0..<lookups).map { _ in "unix.\(100_000 + Int.random(in: 0..<principals))@\(domain)" }
        let targets = (0..<writes).map { "unix.\(100_000 + $0 % principals)@\(domain)" }
        func seconds(_ body: () async throws -> Void) async rethrows -> Double {
            let start = ContinuousClock.now
            try await body()
            let elapsed = ContinuousClock.now - start
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }
        var results = Results()
        var scrypt = 0.0

        for backend in backends {
            print("measuring \(backend.name)…")
            let gss = GSSServer(configuration: GSSServer.Configuration(serverNetname: directoryNetname),
                                keyserver: try KeyServerClient(socketPath: socket, uid: 7100), logger: logger, keys: backend.keys)
            var configuration = RPCServer.Configuration()
            configuration.authenticators = [AuthNoneServer(), gss]
            let directory = KeyDirectoryServer(store: backend.store, configuration: .init(directoryNetname: directoryNetname), logger: logger)
            let server = RPCServer(programs: [directory.program], configuration: configuration, logger: logger)
            let address = try await server.listenTCP(host: "127.0.0.1", port: 0)
            var site = SiteConfiguration()
            site.domain = domain
            site.directories = [.init(host: "127.0.0.1", port: address.port, netname: directoryNetname, fingerprint: directoryKey.publicKey.fingerprint)]
            func client(_ service: GSSService) -> DirectoryClient {
                DirectoryClient(site: site, caller: DirectoryCaller(netname: adminNetname, keyserverSocket: socket, uid: 7101),
                                service: service, logger: logger)
            }
            let lookUp = backend.lookUp
            let local = try await seconds { for name in names { try await lookUp(name) } }
            results.add("public-key lookup, the store read directly", backend.name, count: names.count, seconds: local)

            let uncachedClient = client(.integrity)
            let uncached = NetworkKeyLookup(directory: uncachedClient, settings: .init(ttl: 0, negativeTTL: 0, serveStale: 0), logger: logger)
            _ = try await uncached.fetchPublicKey(netname: names[0], mechanism: .ffdhe2048)   // the context
            let cold = try await seconds { for name in names { _ = try await uncached.fetchPublicKey(netname: name, mechanism: .ffdhe2048) } }
            results.add("keydird lookup, uncached, one at a time", backend.name, count: names.count, seconds: cold)
            let coldParallel = try await seconds {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for slice in 0..<16 {
                        group.addTask {
                            for name in names[(slice * names.count / 16)..<((slice + 1) * names.count / 16)] {
                                _ = try await uncached.fetchPublicKey(netname: name, mechanism: .ffdhe2048)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            results.add("keydird lookup, uncached, 16 at once", backend.name, count: names.count, seconds: coldParallel)
            let cachedClient = client(.integrity)
            let cached = NetworkKeyLookup(directory: cachedClient, logger: logger)
            for name in names { _ = try await cached.fetchPublicKey(netname: name, mechanism: .ffdhe2048) }
            let warm = try await seconds { for name in names { _ = try await cached.fetchPublicKey(netname: name, mechanism: .ffdhe2048) } }
            results.add("keydird lookup, cached in NetworkKeyLookup", backend.name, count: names.count, seconds: warm)

            let store = backend.store
            let localWrites = try await seconds {
                try await NIOThreadPool.singleton.runIfActive {
                    for target in targets {
                        try store.revoke(netname: target, mechanism: nil, actor: "keybench")
                        try store.enable(netname: target, mechanism: nil, actor: "keybench")
                    }
                }
            }
            results.add("admin write (revoke or enable), the store", backend.name, count: 2 * targets.count, seconds: localWrites)
            let adminClient = client(.privacy)
            let remoteWrites = try await seconds {
                for target in targets {
                    let revoked = try await adminClient.call { try await $0.kdAdmRevoke(KdNetmechArg(netname: target, mechanism: "")) }
                    let enabled = try await adminClient.call { try await $0.kdAdmEnable(KdNetmechArg(netname: target, mechanism: "")) }
                    guard revoked.status == .kdOk, enabled.status == .kdOk else { throw ValidationError("keydird refused: \(revoked.message) \(enabled.message)") }
                }
            }
            results.add("admin write through keydird (privacy)", backend.name, count: 2 * targets.count, seconds: remoteWrites)

            var fetched: [KeyEntry] = []
            let localFetch = try await seconds {
                fetched = try await NIOThreadPool.singleton.runIfActive {
                    var last: [KeyEntry] = []
                    for _ in 0..<50 { last = try store.keys(of: adminNetname) }
                    return last
                }
            }
            results.add("keylogin's key fetch, the store", backend.name, count: 50, seconds: localFetch)
            let remoteFetch = try await seconds {
                for _ in 0..<50 {
                    guard case let .kdOk(entry) = try await adminClient.call({ try await $0.kdSealedKeys(adminNetname) }) else {
                        throw ValidationError("keydird refused the sealed keys")
                    }
                    fetched = try KeyDirectoryServer.keyEntries(of: entry, netname: adminNetname)
                }
            }
            results.add("keylogin's key fetch through keydird (privacy)", backend.name, count: 50, seconds: remoteFetch)
            let opened = fetched
            scrypt = try await seconds { _ = try LoginKeys.open(opened, password: password) { SecretBytes(copying: []) } }

            for each in [uncachedClient, cachedClient, adminClient] { await each.close() }
            await server.shutdown()
        }
        await keyserver.shutdown()

        print("\nkeybench site: \(principals) principals, \(lookups) lookups of random principals, \(writes) revoke+enable pairs")
        let names_ = backends.map(\.name)
        var header = "| what |"
        for name in names_ { header += " \(name) |" }
        if names_.count == 2 { header += " PostgreSQL / SQLite |" }
        print(header)
        print("|---|" + String(repeating: "---|", count: names_.count + (names_.count == 2 ? 1 : 0)))
        for (label, byBackend) in results.rows {
            var line = "| \(label) |"
            for name in names_ {
                let each = byBackend[name] ?? .nan
                line += String(format: " %.0f/s (%.1f µs) |", 1 / each, each * 1e6)
            }
            if names_.count == 2, let a = byBackend[names_[0]], let b = byBackend[names_[1]] {
                line += String(format: " %.2f× |", a / b)
            }
            print(line)
        }
        print(String(format: "| keylogin's password check (scrypt, every path) | %.0f ms |", scrypt * 1e3))
    }
}
