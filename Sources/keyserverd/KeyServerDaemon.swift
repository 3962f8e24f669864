// keyserverd: the per-host keyserver. Holds logged-in users' secret keys in memory only and
// does their Diffie-Hellman work, answering each uid only for itself (kernel-checked peer
// credentials on a unix socket). Registers KEY_PROG with rpcbind for netids local and unix
// so classic libtirpc clients find it, and loads the host's root key at start.
//
// One daemon per socket (an flock beside it, see SocketLock). Signals: TERM and INT stop it
// (registrations removed, socket removed, every secret wiped); HUP re-reads the root key file
// and the log level from securerpc.conf and keeps serving.

import ArgumentParser
import Release
import Dispatch
import Foundation
import KeyCrypto
import KeyDirectory
import KeyDirectoryService
import KeyServer
import Logging
import MetricsEndpoint
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import SecureRPC
import SiteConfig

@main
struct KeyServerDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyserverd",
        abstract: "The Secure RPC keyserver: holds users' secret keys and does Diffie-Hellman for them.",
        discussion: """
        One keyserverd serves a socket: a second one started on the same socket refuses (the \
        lock is SOCKET.lock), and a socket left by a crashed daemon is replaced.
        Signals: SIGTERM or SIGINT stop it (rpcbind registrations and the socket are removed and \
        every secret is wiped); SIGHUP re-reads the root key file and the log-level of \
        securerpc.conf and keeps serving.
        The root key file must belong to root and be readable by nobody else (mode 600).
        """,
        version: SecureRPCRelease.versionLine("keyserverd")
    )

    @Option(help: "The unix socket to serve on (default: keyserver-socket of securerpc.conf, else \(KeyServerPaths.socket)).") var socket: String?
    @Option(help: "Root's secret key file, loaded at start when present (written by keylogin -r).") var rootKey = KeyServerPaths.rootKey
    @Option(help: "Key directory, for version 1 calls that name the peer by netname.") var db: String?
    @Option(help: ArgumentHelp("A service's key file (keyadmin enroll-service), loaded for UID at start and on SIGHUP; owner root or UID, mode 600. Repeat for several.", valueName: "uid:path"))
    var serviceKey: [String] = []
    @Option(help: "The site configuration (default: $SECURERPC_CONF, else \(SiteConfiguration.defaultPath) when present).") var config: String?
    @Option(help: "This host's principal at the site's directory, for keylogin through it (default unix.HOST@DOMAIN).") var netname: String?
    @Flag(help: "Do not register with rpcbind.") var noRpcbind = false
    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (off by default; use loopback or a management address).", valueName: "host:port"))
    var metrics: String?
    @Option(help: "Log level (default: log-level of securerpc.conf, else info); trace, debug, info, notice, warning, error, critical.") var logLevel: Logger.Level?
    @Option(help: ArgumentHelp("How long an RPCSEC_GSS client or server may keep a K_ss this keyserver derived and use it again without asking (0-3600; 0: ask every time). Within it, keylogout or a new key reaches that process's new contexts only when the lease ends.", valueName: "seconds"))
    var kssLease: UInt32 = 30

    func validate() throws {
        guard kssLease <= KeyServerService.longestKssLease else {
            throw ValidationError("--kss-lease \(kssLease): at most \(KeyServerService.longestKssLease) seconds (0 turns leases off)")
        }
    }

    func run() async throws {
        ProcessSignals.unblockShutdownSignals()
        let site: SiteConfiguration
        do {
            site = try SiteConfiguration.load(path: config)
        } catch {
            fail("\(error)")
        }
        let socket = self.socket ?? site.keyserverSocket ?? KeyServerPaths.socket
        let level = NIOLockedValueBox(logLevel ?? site.logLevel.flatMap(Logger.Level.init(rawValue:)) ?? .info)
        LoggingSystem.bootstrap { label in ReloadableLevelLogHandler(label: label, level: level) }
        let logger = Logger(label: "keyserverd")
        // Before the server listens, so that its first calls are counted.
        let metricsEndpoint = try await MetricsEndpoint.start(metrics, logger: logger)

        // Root's key file is checked before anything is bound: a refused file stops the start.
        var rootSecrets: [UInt8]?
        do {
            rootSecrets = try RootKeyFile.read(path: rootKey)
        } catch {
            fail("\(error)")
        }
        defer { if rootSecrets != nil { SecretBytes.wipe(&rootSecrets!) } }

        let lock: SocketLock
        do {
            lock = try SocketLock(socket: socket)
        } catch {
            fail("\(error)")
        }
        if await SocketLock.somethingAnswers(at: socket) {
            fail("something that does not hold \(lock.path) answers on \(socket) (an older keyserverd?): stop it first")
        }

        var lookup: (@Sendable (String) -> DHPublicKey?)?
        if let db {
            do {
                let keys = try PublicKeyLookup(path: db)
                lookup = { netname in try? keys.publicKey(netname: netname, mechanism: .dh192des) }
            } catch {
                fail("cannot open the key directory \(db): \(error)")
            }
        }
        let core = KeyServerCore(lookup: lookup)

        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), AuthSysServer()]
        let strong = StrongKeyStore()
        if let secrets = rootSecrets {
            Self.loadRootKey(secrets, file: rootKey, into: core, strong: strong, logger: logger)
        }
        let services: [(uid: uid_t, path: String)]
        do {
            services = try serviceKey.map(Self.parseServiceKey)
            for service in services { try Self.loadServiceKey(service, into: core, strong: strong, logger: logger) }
        } catch {
            fail("\(error)")
        }
        let fetchSealed = Self.sealedKeyFetcher(site: site, socket: socket, hostNetname: netname, logger: logger)
        // keylist shows root which of these files are there and what is held for their uids.
        let keyFiles = KeyServerKeyFiles(rootKey: rootKey, services: services.map { (uid: UInt32($0.uid), path: $0.path) })
        let server = RPCServer(programs: KeyServerService.programs(core: core, strong: strong, logger: logger, fetchSealed: fetchSealed,
                                                                   keyFiles: keyFiles, kssLeaseSeconds: kssLease),
                               configuration: configuration, logger: logger)
        do {
            try await server.listenUnix(path: socket, mode: 0o666)
        } catch {
            fail("cannot serve on \(socket): \(errorInWords(error)) (is the directory there and writable by this user?)")
        }
        if !noRpcbind { await register(server: server, socket: socket, logger: logger) }
        server.onShutdown {
            core.clearAll()
            strong.clearAll()
            // Only the lock holder removes the socket: it is ours.
            unlink(socket)
        }

        let rootKey = self.rootKey, config = self.config, levelFlag = self.logLevel
        let hangup = Self.onHangup {
            logger.notice("SIGHUP: re-reading the root key file and securerpc.conf")
            if levelFlag == nil {
                do {
                    let reread = try SiteConfiguration.load(path: config)
                    let newLevel = reread.logLevel.flatMap(Logger.Level.init(rawValue:)) ?? .info
                    level.withLockedValue { $0 = newLevel }
                    logger.notice("log level", metadata: ["level": "\(newLevel)"])
                } catch {
                    logger.error("securerpc.conf not re-read, the log level stays: \(error)")
                }
            }
            for service in services {
                do {
                    try Self.loadServiceKey(service, into: core, strong: strong, logger: logger)
                } catch {
                    logger.error("a service key file was not re-read; the key in memory stays: \(error)")
                }
            }
            do {
                guard var secrets = try RootKeyFile.read(path: rootKey) else {
                    logger.notice("no root key file; the root key in memory stays", metadata: ["file": "\(rootKey)"])
                    return
                }
                defer { SecretBytes.wipe(&secrets) }
                Self.loadRootKey(secrets, file: rootKey, into: core, strong: strong, logger: logger)
            } catch {
                logger.error("the root key file was not re-read; the root key in memory stays: \(error)")
            }
        }
        // systemd (Type=notify) learns of the graceful shutdown as it starts.
        server.onShutdown { ServiceNotification.stopping() }
        try await server.runUntilShutdownSignal(logger: logger) {
            logger.notice("keyserver ready", metadata: ["socket": "\(socket)"])
            FileHandle.standardOutput.write(Data("ready \(socket)\n".utf8))
            ServiceNotification.ready(status: "serving \(socket)")
        }
        await metricsEndpoint?.close()
        hangup.cancel()
        core.clearAll()
        strong.clearAll()
        withExtendedLifetime(lock) {}
    }

    /// keylogin on a host without keys.db: with directory servers in securerpc.conf, this
    /// keyserver fetches a user's sealed keys from keydird as the host's principal
    /// (unix.HOST@DOMAIN, whose key is root's here), under RPCSEC_GSS privacy. The directory
    /// releases them only to an enrolled host (role host) or the principal itself.
    static func sealedKeyFetcher(site: SiteConfiguration, socket: String, hostNetname: String?, logger: Logger) -> (@Sendable (String) async -> KeyxFetchRes)? {
        guard !site.directories.isEmpty, let domain = site.resolveDomain(nil) else { return nil }
        let host = hostNetname ?? Netname.local(uid: 0, domain: domain)
        let directory = DirectoryClient(site: site, caller: DirectoryCaller(netname: host, keyserverSocket: socket, uid: 0),
                                        service: .privacy, logger: logger)
        logger.notice("keylogin through the directory", metadata: ["host": "\(host)", "directories": "\(site.directories.map(\.description))"])
        // Any local user may ask, and each ask is a call to the directory as this host: a
        // bucket per netname (10/s after a burst of 100, as for handshakes) and a bound on
        // fetches at once keep one user's loop from turning this host into a flood.
        let admission = HandshakeAdmission()
        return { netname in
            guard case let .admitted(ticket) = admission.admit(source: nil, principal: netname) else {
                return .default(discriminant: .keySystemerr, value: "too many key fetches for \(netname) just now; try again in a few seconds")
            }
            defer { admission.finish(ticket, proven: false) }
            do {
                switch try await directory.call({ try await $0.kdSealedKeys(netname) }) {
                case let .kdOk(entry):
                    logger.info("sealed keys fetched", metadata: ["netname": "\(netname)"])
                    return .keySuccess(Array(entry.xdrEncoded().readableBytesView))
                case let .default(status, message):
                    logger.notice("the directory refused sealed keys", metadata: ["netname": "\(netname)", "status": "\(status)"])
                    return .default(discriminant: status == .kdNotFound ? .keyUnknown : .keySystemerr, value: "the directory: \(message)")
                }
            } catch {
                return .default(discriminant: .keySystemerr, value: "\(error)")
            }
        }
    }

    /// One line on standard error and exit status 1.
    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("keyserverd: \(message)\n".utf8))
        Foundation.exit(1)
    }

    /// SIGHUP as an event instead of the default (terminate, leaving a stale socket).
    private static func onHangup(_ handler: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "keyserverd.sighup"))
        source.setEventHandler(handler: handler)
        source.resume()
        return source
    }

    /// "UID:PATH" of --service-key.
    static func parseServiceKey(_ text: String) throws -> (uid: uid_t, path: String) {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let uid = uid_t(parts[0]), uid != 0, !parts[1].isEmpty else {
            throw RootKeyFile.Problem(description: "--service-key takes UID:PATH with a uid other than 0 (root's key is --root-key), not \"\(text)\"")
        }
        return (uid, String(parts[1]))
    }

    /// A service's key file, checked like the root key file (its uid may own it), loaded
    /// for that uid.
    static func loadServiceKey(_ service: (uid: uid_t, path: String), into core: KeyServerCore, strong: StrongKeyStore, logger: Logger) throws {
        guard var secrets = try RootKeyFile.read(path: service.path, owner: service.uid) else {
            throw RootKeyFile.Problem(description: "the service key file \(service.path) does not exist")
        }
        defer { SecretBytes.wipe(&secrets) }
        loadRootKey(secrets, file: service.path, uid: service.uid, into: core, strong: strong, logger: logger)
    }

    /// Loads root's keys from the file's bytes: the dh192-des secret as hex on the first line
    /// ("-" when there is none), then "GROUP HEX" lines for the strong groups. What the file
    /// holds replaces what was loaded (a re-read after keylogin -r).
    private static func loadRootKey(_ bytes: [UInt8], file: String, uid: uid_t = 0, into core: KeyServerCore, strong: StrongKeyStore, logger: Logger) {
        let lines = bytes.split(separator: 0x0a, omittingEmptySubsequences: false)
        var loaded: [String] = []
        var failed = false
        if let first = lines.first, first != [0x2d] {
            var hex = Array(first.prefix(48))
            defer { SecretBytes.wipe(&hex) }
            if core.setSecret(uid: uid, hex: hex) == .keySuccess { loaded.append("dh192-des") } else { failed = true }
        }
        for (index, line) in lines.dropFirst().enumerated() where !line.isEmpty {
            let parts = line.split(separator: 0x20, maxSplits: 1)
            guard parts.count == 2, let group = try? DHGroupName(parsing: String(decoding: parts[0], as: UTF8.self)),
                  let mechanism = StrongKeyStore.mechanism(group),
                  let key = try? DHPrivateKey(group: group, secretHex: String(decoding: parts[1], as: UTF8.self)) else {
                logger.error("cannot use line \(index + 2) of the root key file", metadata: ["file": "\(file)"])
                failed = true
                continue
            }
            var secret = key.secret.copyBytes()
            defer { SecretBytes.wipe(&secret) }
            if strong.set(uid: uid, mechanism: mechanism, secret: secret) == .keySuccess { loaded.append(group.rawValue) } else { failed = true }
        }
        if !loaded.isEmpty {
            logger.notice(uid == 0 ? "loaded the host's root key" : "loaded a service key", metadata: [
                "file": "\(file)", "uid": "\(uid)", "groups": "\(loaded.joined(separator: ", "))",
            ])
        }
        if failed || loaded.isEmpty {
            logger.error("cannot use the root key file", metadata: ["file": "\(file)"])
        }
    }

    /// KEY_PROG v1 and v2 on netids local and unix, the socket path as the address: how
    /// libtirpc's key_call finds the keyserver.
    private func register(server: RPCServer, socket: String, logger: Logger) async {
        let rpcbind = RPCBindClient.local()
        var done: [RPCBindMapping] = []
        do {
            for version: UInt32 in [1, 2] {
                for netid in ["local", "unix"] {
                    let mapping = RPCBindMapping(program: 100_029, version: version, netid: netid, address: socket, owner: "")
                    _ = try await rpcbind.unset(program: 100_029, version: version, netid: netid)
                    if try await rpcbind.set(mapping) { done.append(mapping) }
                }
            }
            logger.info("registered with rpcbind", metadata: ["mappings": "\(done.count)"])
        } catch {
            logger.notice("not registered with rpcbind (\(error)); libtirpc clients will not find this keyserver")
        }
        let registered = done
        server.onShutdown {
            for mapping in registered {
                _ = try? await rpcbind.unset(program: mapping.program, version: mapping.version, netid: mapping.netid)
            }
            await rpcbind.close()
        }
    }
}

/// Standard error logging whose level the daemon can change while it runs (SIGHUP).
struct ReloadableLevelLogHandler: LogHandler {
    private var stream: StreamLogHandler
    private let level: NIOLockedValueBox<Logger.Level>

    init(label: String, level: NIOLockedValueBox<Logger.Level>) {
        stream = StreamLogHandler.standardError(label: label)
        stream.logLevel = .trace
        self.level = level
    }

    var logLevel: Logger.Level {
        get { level.withLockedValue { $0 } }
        set { level.withLockedValue { $0 = newValue } }
    }

    var metadata: Logger.Metadata {
        get { stream.metadata }
        set { stream.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { stream[metadataKey: key] }
        set { stream[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        stream.log(event: event)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
