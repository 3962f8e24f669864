// `keybench site`: the network directory against the local file, in one process and one run.
// A key directory of N principals (SQLite), a keyserver on a unix socket, keydird's program
// over RPCSEC_GSS on loopback, and a host's NetworkKeyLookup; then
//   - lookups/s: the local file (PublicKeyLookup), keydird uncached (every lookup a call,
//     integrity), keydird cached (NetworkKeyLookup's cache), sequential and 16 at once;
//   - admin writes/s: revoke+enable pairs on the file and through keydird (privacy, admin role);
//   - keylogin's key fetch: the sealed keys from the file and from keydird (privacy), and the
//     password opening them (scrypt, the same on both paths).
// Runs as root (the keyserver answers for the bench's several uids only to root).

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory
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
        abstract: "keydird and the network key lookup against the local key directory file (lookups/s, admin writes/s, keylogin's fetch)."
    )

    @Option(help: "Principals in the directory.") var principals = 10_000
    @Option(help: "Lookups per measurement.") var lookups = 5_000
    @Option(help: "Admin write pairs (revoke + enable) per measurement.") var writes = 300

    func run() async throws {
        guard geteuid() == 0 else { throw ValidationError("keybench site runs as root (the keyserver acts for several uids)") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("keybench-site-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var logger = Logger(label: "keybench")
        logger.logLevel = .critical
        let domain = "bench.example"
        let path = work.appendingPathComponent("keys.db").path
        let store = try SQLiteKeyDirectory(path: path, create: true)

        // Principals with valid random ffdhe2048 public keys (the sealed blob is not opened
        // by lookups), in one import.
        print("building \(principals) principals…")
        var entries: [(Principal, [KeyEntry])] = []
        for index in 0..<principals {
            let netname = "unix.\(100_000 + index)@\(domain)"
            var bytes = (0..<256).map { _ in UInt8.random(in: 0...255) }
            bytes[0] = .random(in: 1...0x7f)
            let key = try DHPublicKey(group: .ffdhe2048, bytes: bytes)
            entries.append((Principal(netname: netname, kind: .user, name: "\(100_000 + index)", uid: UInt32(100_000 + index)),
                            [KeyEntry(netname: netname, mechanism: .ffdhe2048, publicKey: key.hex, sealedSecret: [0])]))
        }
        _ = try store.importEntries(entries, actor: "keybench", source: "keybench", replace: false, progress: nil)

        // The directory principal (uid 7100 at the keyserver) and the host/admin (uid 7101),
        // whose key is sealed for real so that the keylogin fetch can be opened.
        let password = SecretBytes(copying: Array("bench password".utf8))
        let directoryKey = DHPrivateKey.generate(group: .ffdhe3072), adminKey = DHPrivateKey.generate(group: .ffdhe3072)
        let directoryNetname = "unix.dir@\(domain)", adminNetname = "unix.7101@\(domain)"
        try store.add(Principal(netname: directoryNetname, kind: .host, name: "dir", uid: nil),
                      keys: [KeyEntry(netname: directoryNetname, mechanism: .ffdhe3072, publicKey: directoryKey.publicKey.hex, sealedSecret: [0])],
                      actor: "keybench")
        try store.add(Principal(netname: adminNetname, kind: .user, name: "7101", uid: 7101),
                      keys: [try KeyEntry.sealing(adminKey, netname: adminNetname, password: password)], actor: "keybench")
        try store.grant(.admin, to: adminNetname, actor: "keybench")

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

        let gss = GSSServer(configuration: GSSServer.Configuration(serverNetname: directoryNetname),
                            keyserver: try KeyServerClient(socketPath: socket, uid: 7100), logger: logger,
                            keys: try PublicKeyLookup(path: path))
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), gss]
        let directory = KeyDirectoryServer(store: store, configuration: .init(directoryNetname: directoryNetname), logger: logger)
        let server = RPCServer(programs: [directory.program], configuration: configuration, logger: logger)
        let address = try await server.listenTCP(host: "127.0.0.1", port: 0)
        var site = SiteConfiguration()
        site.domain = domain
        site.directories = [.init(host: "127.0.0.1", port: address.port, netname: directoryNetname, fingerprint: directoryKey.publicKey.fingerprint)]
        func client(_ service: GSSService) -> DirectoryClient {
            DirectoryClient(site: site, caller: DirectoryCaller(netname: adminNetname, keyserverSocket: socket, uid: 7101),
                            service: service, logger: logger)
        }

        let names = (0..<lookups).map { _ in "unix.\(100_000 + Int.random(in: 0..<principals))@\(domain)" }
        func rate(_ count: Int, _ seconds: Double) -> String { String(format: "%9.0f/s  %8.1f µs", Double(count) / seconds, seconds / Double(count) * 1e6) }
        func seconds(_ body: () async throws -> Void) async rethrows -> Double {
            let start = ContinuousClock.now
            try await body()
            let elapsed = ContinuousClock.now - start
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }

        print("\nkeybench site: \(principals) principals, \(lookups) lookups of random principals, release build recommended")
        print("lookups                                   rate       per lookup")
        let file = try PublicKeyLookup(path: path)
        let local = try await seconds { for name in names { _ = try file.publicKey(netname: name, mechanism: .ffdhe2048) } }
        print("  local file (PublicKeyLookup)         \(rate(names.count, local))")

        let uncachedClient = client(.integrity)
        let uncached = NetworkKeyLookup(directory: uncachedClient, settings: .init(ttl: 0, negativeTTL: 0, serveStale: 0), logger: logger)
        _ = try await uncached.fetchPublicKey(netname: names[0], mechanism: .ffdhe2048)   // the context
        let cold = try await seconds { for name in names { _ = try await uncached.fetchPublicKey(netname: name, mechanism: .ffdhe2048) } }
        print("  keydird, uncached, sequential        \(rate(names.count, cold))")
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
        print("  keydird, uncached, 16 at once        \(rate(names.count, coldParallel))")
        let cachedClient = client(.integrity)
        let cached = NetworkKeyLookup(directory: cachedClient, logger: logger)
        for name in names { _ = try await cached.fetchPublicKey(netname: name, mechanism: .ffdhe2048) }
        let warm = try await seconds { for name in names { _ = try await cached.fetchPublicKey(netname: name, mechanism: .ffdhe2048) } }
        print("  keydird, cached (NetworkKeyLookup)   \(rate(names.count, warm))")

        print("admin writes (revoke + enable = 2 writes)")
        let targets = (0..<writes).map { "unix.\(100_000 + $0 % principals)@\(domain)" }
        let localWrites = try await seconds {
            for target in targets {
                try store.revoke(netname: target, mechanism: nil, actor: "keybench")
                try store.enable(netname: target, mechanism: nil, actor: "keybench")
            }
        }
        print("  local file                           \(rate(2 * targets.count, localWrites))")
        let adminClient = client(.privacy)
        let remoteWrites = try await seconds {
            for target in targets {
                let revoked = try await adminClient.call { try await $0.kdAdmRevoke(KdNetmechArg(netname: target, mechanism: "")) }
                let enabled = try await adminClient.call { try await $0.kdAdmEnable(KdNetmechArg(netname: target, mechanism: "")) }
                guard revoked.status == .kdOk, enabled.status == .kdOk else { throw ValidationError("keydird refused: \(revoked.message) \(enabled.message)") }
            }
        }
        print("  keydird (privacy, admin)             \(rate(2 * targets.count, remoteWrites))")

        print("keylogin's key fetch (and the password check both paths share)")
        var fetched: [KeyEntry] = []
        let localFetch = try await seconds { for _ in 0..<50 { fetched = try store.keys(of: adminNetname) } }
        print("  local file                           \(rate(50, localFetch))")
        let remoteFetch = try await seconds {
            for _ in 0..<50 {
                guard case let .kdOk(entry) = try await adminClient.call({ try await $0.kdSealedKeys(adminNetname) }) else {
                    throw ValidationError("keydird refused the sealed keys")
                }
                fetched = try KeyDirectoryServer.keyEntries(of: entry, netname: adminNetname)
            }
        }
        print("  keydird (privacy)                    \(rate(50, remoteFetch))")
        let open = try await seconds { _ = try LoginKeys.open(fetched, password: password) { SecretBytes(copying: []) } }
        print(String(format: "  opening with the password (scrypt)   %9.1f ms", open * 1e3))

        for each in [uncachedClient, cachedClient, adminClient] { await each.close() }
        await server.shutdown()
        await keyserver.shutdown()
    }
}
