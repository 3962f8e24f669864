// filesvc-server: serves a directory as the example FILESVC program over TCP and UDP until
// SIGINT/SIGTERM, optionally registered with the host's rpcbind.

import ArgumentParser
import Release
import FileService
import Foundation
import Logging
import MetricsEndpoint
import NIOCore
import NIOPosix
import ONCRPC
import SecureRPC
import KeyDirectory
import KeyServer
import KeyDirectoryService
import SiteConfig

@main
struct FileServiceDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filesvc-server",
        abstract: "Serve a directory with the example FILESVC program (ONC RPC over TCP and UDP).",
        discussion: """
        By default every call must come over RPCSEC_GSS with the srpc-dh mechanism, at least \
        ffdhe3072 and privacy (see --min-group, --min-service), proven through this host's \
        keyserver, where the server's own netname (--netname) must be logged in. \
        --require-auth dh accepts the legacy AUTH_DH as well; --require-auth none accepts any \
        flavor, AUTH_SYS included.

        Every call is logged with the caller's identity. Stop with SIGINT or SIGTERM: calls in \
        flight finish, registrations with rpcbind are removed.

        Example: filesvc-server --root /srv/files --netname unix.fileserver@example.org
        """,
        version: SecureRPCRelease.versionLine("filesvc-server")
    )

    @Option(help: "Directory to serve (created if missing). Default: a new temporary directory.")
    var root: String?

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port for TCP and UDP (0 picks free ports).")
    var port = FileServiceProtocol.defaultPort

    @Option(help: "Transports to serve: tcp, udp or both.")
    var transport: TransportChoice = .both

    @Flag(help: "Register with the host's rpcbind; carry on without it when it is not running.")
    var register = false

    @Option(help: "Which callers to serve: gss (RPCSEC_GSS srpc-dh, at least --min-group and --min-service), dh (RPCSEC_GSS as for gss, or the legacy AUTH_DH), none (any flavor, AUTH_SYS too).")
    var requireAuth: AuthChoice = .gss

    @Option(help: "For RPCSEC_GSS callers (--require-auth gss or dh): the smallest Diffie-Hellman group a context may use (ffdhe2048, ffdhe3072, ffdhe4096).")
    var minGroup: GSSGroup = .ffdhe3072

    @Option(help: "For RPCSEC_GSS callers (--require-auth gss or dh): the weakest per-call protection (none, integrity, privacy).")
    var minService: GSSService = .privacy

    @Option(help: "The server's own netname, logged in to the keyserver as this process's uid (default: the host's unix.HOST@DOMAIN when run as root, else unix.UID@DOMAIN).")
    var netname: String?

    @Option(help: "The Secure RPC domain for the default --netname and for mapping local callers to uids (default $SECURERPC_DOMAIN).")
    var domain: String?

    @Option(help: "Key directory file with the callers' public keys (default: $SECURERPC_DB; else the directory servers of securerpc.conf; else its database line or \(SQLiteKeyDirectory.defaultPath)).")
    var db: String?

    @Option(help: "The site configuration (default: $SECURERPC_CONF, else \(SiteConfiguration.defaultPath) when present).")
    var config: String?

    @Option(help: "This host's keyserver socket: it holds the server's own secret keys.")
    var keyserverSocket = KeyServerPaths.socket

    enum AuthChoice: String, ExpressibleByArgument, CaseIterable {
        case gss, dh, none
    }

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (off by default; use loopback or a management address).", valueName: "host:port"))
    var metrics: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    enum TransportChoice: String, ExpressibleByArgument, CaseIterable {
        case tcp, udp, both
    }

    /// --domain, else $SECURERPC_DOMAIN, else securerpc.conf's domain.
    private func effectiveDomain(_ site: SiteConfiguration?) -> String? {
        domain ?? ProcessInfo.processInfo.environment["SECURERPC_DOMAIN"].flatMap { $0.isEmpty ? nil : $0 } ?? site?.domain
    }

    /// --netname, else the host's netname for root, unix.UID@DOMAIN for others.
    private func serverNetname(_ site: SiteConfiguration?) -> String? {
        netname ?? effectiveDomain(site).map { Netname.local(uid: getuid(), domain: $0) }
    }

    func validate() throws {
        // A configuration that does not load is reported by run().
        if requireAuth != .none, serverNetname(try? SiteConfiguration.load(path: config)) == nil {
            throw ValidationError("--require-auth \(requireAuth.rawValue) needs --netname (the server's netname) or --domain (or SECURERPC_DOMAIN); --require-auth none serves anyone")
        }
    }

    func run() async throws {
        ProcessSignals.unblockShutdownSignals()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "filesvc-server")
        // Before the server listens, so that its first calls are counted.
        let metricsEndpoint = try await MetricsEndpoint.start(metrics, logger: logger)
        let rootPath = try prepareRoot(logger: logger)
        let files = try FileServiceServer(root: rootPath, logger: logger)
        var configuration = RPCServer.Configuration()
        var policy: any RPCAuthorizationPolicy = AllowAnyFlavor()
        if requireAuth != .none {
            let site: SiteConfiguration
            do {
                site = try SiteConfiguration.load(path: config)
            } catch {
                FileHandle.standardError.write(Data("filesvc-server: \(error)\n".utf8))
                throw ExitCode.failure
            }
            let domain = effectiveDomain(site)
            let me = serverNetname(site)!  // validate() refused its absence
            var gss = GSSServer.Configuration(serverNetname: me)
            gss.groups = Set(GSSGroup.allCases.filter { $0 >= minGroup })
            let database = db ?? ProcessInfo.processInfo.environment["SECURERPC_DB"].flatMap { $0.isEmpty ? nil : $0 }
            let keySource = HostKeySource.choice(site: site, database: database)
            let keys = try HostKeySource.make(site: site, database: database,
                                              caller: DirectoryCaller(netname: me, keyserverSocket: keyserverSocket), logger: logger)
            configuration.authenticators = try SecureRPCServer.authenticators(keys: keys, keyserverSocket: keyserverSocket,
                                                                              localDomain: domain, gss: gss)
            policy = Self.policy(requireAuth: requireAuth, minGroup: minGroup, minService: minService)
            logger.notice("callers must be proven", metadata: [
                "accepting": "RPCSEC_GSS srpc-dh \(minGroup)+ with \(minService)\(requireAuth == .dh ? ", or AUTH_DH" : "")",
                "netname": "\(me)", "keys": "\(keySource)", "keyserver": "\(keyserverSocket)",
            ])
            await warnIfOwnKeyIsMissing(netname: me, logger: logger)
        }
        let server = RPCServer(programs: [files.program(policy: policy)], configuration: configuration, logger: logger)

        var addresses: [String] = []
        do {
            if transport != .udp {
                let address = try await server.listenTCP(host: host, port: port)
                addresses.append("tcp \(address)")
            }
            if transport != .tcp {
                let address = try await server.listenUDP(host: host, port: port)
                addresses.append("udp \(address)")
            }
        } catch {
            let hint = port < 1024 && geteuid() != 0 ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" : ""
            FileHandle.standardError.write(Data("filesvc-server: cannot listen on \(host):\(port): \(errorInWords(error))\(hint)\n".utf8))
            throw ExitCode.failure
        }
        if register {
            do {
                let mappings = try await server.registerWithRPCBind()
                logger.info("registered with rpcbind", metadata: ["mappings": "\(mappings.count)"])
            } catch let error as RPCBindError {
                logger.warning("not registered with rpcbind: \(error); continuing without registration")
            }
        }
        // systemd (Type=notify) learns of the graceful shutdown as it starts.
        server.onShutdown { ServiceNotification.stopping() }
        let listening = addresses.joined(separator: ", ")
        try await server.runUntilShutdownSignal(logger: logger) {
            logger.notice("serving \(rootPath)", metadata: ["listening": "\(listening)"])
            ServiceNotification.ready(status: "serving \(rootPath)")
        }
        await metricsEndpoint?.close()
    }

    /// Who may call, as the flags say. `dh` adds the legacy AUTH_DH *beside* RPCSEC_GSS with
    /// --min-group and --min-service: a GSS caller must still meet both (before, `dh` let
    /// RPCSEC_GSS with service none or integrity through).
    static func policy(requireAuth: AuthChoice, minGroup: GSSGroup, minService: GSSService) -> any RPCAuthorizationPolicy {
        let strong = SecurityRequirement.gss(minimumGroup: minGroup, minimumService: minService)
        switch requireAuth {
        case .none: return AllowAnyFlavor()
        case .gss: return SecurityPolicy(strong)
        case .dh: return SecurityPolicy(anyOf: [strong, SecurityRequirement(flavors: [.dh])])
        }
    }

    /// A server whose own key is not in the keyserver serves nobody securely: every
    /// RPCSEC_GSS INIT and AUTH_DH fullname fails at the keyserver. Say so at start, with
    /// the command that fixes it, instead of leaving it to the first caller's error.
    private func warnIfOwnKeyIsMissing(netname: String, logger: Logger) async {
        do {
            let client = try KeyServerClient(socketPath: keyserverSocket)
            defer { Task { await client.close() } }
            var held: [String] = []
            for group in GSSGroup.allCases where group >= minGroup {
                if case .keySuccess = try await client.performStrong({ try await $0.keyxPublic(group.keyserverMechanism) }) { held.append("\(group)") }
            }
            if requireAuth == .dh, case .keySuccess = try await client.perform({ try await $0.keyNetGet() }) { held.append("dh192-des") }
            if held.isEmpty {
                logger.warning("this server's key is not in the keyserver: callers cannot be verified until it is; run keylogin as uid \(getuid()) (keylogin -r for root)", metadata: [
                    "netname": "\(netname)", "keyserver": "\(keyserverSocket)",
                ])
            }
        } catch {
            logger.warning("cannot ask the keyserver whether this server's key is loaded: \(error)", metadata: ["keyserver": "\(keyserverSocket)"])
        }
    }

    private func prepareRoot(logger: Logger) throws -> String {
        if let root {
            // mkdir -p by hand: Foundation's error prints as an NSCocoaErrorDomain dump.
            var built = root.hasPrefix("/") ? "" : "."
            for component in root.split(separator: "/") {
                built += "/" + component
                if mkdir(built, 0o755) != 0 && errno != EEXIST {
                    FileHandle.standardError.write(Data("filesvc-server: cannot create or open the root directory \(root): \(String(cString: strerror(errno)))\n".utf8))
                    throw ExitCode.failure
                }
            }
            return URL(fileURLWithPath: root).standardizedFileURL.path
        }
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("filesvc-\(getpid())").path
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        logger.notice("no --root given; serving a new temporary directory \(temporary)")
        return temporary
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension GSSGroup: ExpressibleByArgument {}
extension GSSService: ExpressibleByArgument {}
