// keydird: the site's key directory service. Serves KEYDIR_PROG over TCP from the local
// directory database, only to callers proven with RPCSEC_GSS srpc-dh under this host's own
// principal (whose secret keys this host's keyserver holds: keylogin -r), plus the one open
// procedure that hands out the directory's public keys for hosts to check against their
// pinned fingerprint. Access decisions live in KeyDirectoryServer; this file wires it up.

import ArgumentParser
import Release
import Foundation
import KeyCrypto
import KeyDirectory
import KeyDirectoryPostgres
import KeyDirectoryService
import KeyServer
import Logging
import MetricsEndpoint
import NIOCore
import NIOPosix
import ONCRPC
import SecureRPC
import SiteConfig

@main
struct KeyDirectoryDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keydird",
        abstract: "The Secure RPC key directory service: public keys, sealed keys and administration for a whole site.",
        discussion: """
        Serves the directory database (--db) over TCP to callers proven with RPCSEC_GSS srpc-dh, \
        as the directory host's principal (--netname, default unix.HOST@DOMAIN), whose secret \
        keys this host's keyserver must hold (keylogin -r). Hosts pin that principal's key by \
        the fingerprint printed at start (keyadmin enroll-host prints the line for securerpc.conf).

        Lookups need integrity at least; sealed keys and administration need privacy. \
        Administration needs the admin role (keyadmin grant admin NETNAME, run locally). \
        With --standby-of PRIMARY the database is a read-only replica: reads are served, \
        every change is refused with a message naming the primary.

        Stop with SIGTERM or SIGINT.
        """,
        version: SecureRPCRelease.versionLine("keydird")
    )

    @Option(help: "The directory database: a SQLite file or a postgres:// URL (default: securerpc.conf's database, else \(SQLiteKeyDirectory.defaultPath)).")
    var db: String?

    @Option(help: "This directory host's principal (default unix.HOSTNAME@DOMAIN).")
    var netname: String?

    @Option(help: "The Secure RPC domain (default $SECURERPC_DOMAIN, else securerpc.conf's).")
    var domain: String?

    @Option(help: "Address to listen on.")
    var host = "0.0.0.0"

    @Option(help: "TCP port (0 picks one).")
    var port = DirectoryDefaults.port

    @Option(help: "This host's keyserver socket (it holds the directory principal's secret keys).")
    var keyserverSocket: String?

    @Option(name: .customLong("standby-of"), help: "Serve a read-only replica; changes go to this primary (HOST[:PORT]).")
    var primary: String?

    @Flag(help: "Register with the host's rpcbind; carry on without it when it is not running.")
    var register = false

    @Option(help: "The site configuration file (default $SECURERPC_CONF, else \(SiteConfiguration.defaultPath)).")
    var config: String?

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (off by default; use loopback or a management address).", valueName: "host:port"))
    var metrics: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        ProcessSignals.unblockShutdownSignals()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "keydird")
        // Before the server listens, so that its first calls are counted.
        let metricsEndpoint = try await MetricsEndpoint.start(metrics, logger: logger)
        let site: SiteConfiguration
        do {
            site = try SiteConfiguration.load(path: config)
        } catch {
            throw Failure("\(error)")
        }
        guard let domain = site.resolveDomain(domain) else {
            throw Failure("no Secure RPC domain: pass --domain, set SECURERPC_DOMAIN or put 'domain NAME' in \(site.source ?? SiteConfiguration.defaultPath)")
        }
        let me = netname ?? Netname.host(ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost", domain: domain)
        let path = db ?? site.database ?? SQLiteKeyDirectory.defaultPath
        // What messages call it: a PostgreSQL URL without its password.
        let shownPath = PostgresLocation.isPostgresURL(path)
            ? ((try? PostgresLocation(url: path, environment: [:]).description) ?? "the PostgreSQL directory") : path
        // Stores are synchronous and a PostgreSQL one waits on a task of its own: call it from
        // the thread pool (as the server does), never from this task, which would hold a
        // concurrency thread that the store's task may need.
        let readOnly = primary != nil
        let (store, ownKeys): (any KeyDirectoryStore, [KeyEntry])
        do {
            (store, ownKeys) = try await NIOThreadPool.singleton.runIfActive {
                let store = try openKeyDirectory(url: path, create: false, readOnly: readOnly)
                return (store, try store.keys(of: me).filter { $0.mechanism != .dh192des && $0.state == .active })
            }
        } catch {
            throw Failure("\(error)")
        }
        guard !ownKeys.isEmpty else {
            throw Failure("\(me) has no active ffdhe key in \(shownPath): create the directory host's principal first (keyadmin newkey \(me) --mechanism ffdhe3072) and keylogin -r on this host")
        }
        let socket = keyserverSocket ?? site.keyserverSocket ?? KeyServerPaths.socket
        let keyserver: KeyServerClient
        do {
            keyserver = try KeyServerClient(socketPath: socket)
        } catch {
            throw Failure("cannot use the keyserver at \(socket): \(error)")
        }

        var gss = GSSServer.Configuration(serverNetname: me)
        gss.localDomain = domain
        // A PostgreSQL store answers GSS's async lookups itself; the SQLite file is read in place.
        let keys: any PublicKeySource = (store as? PostgresKeyDirectory)
            ?? ClosurePublicKeySource { netname, mechanism in try? store.publicKey(netname: netname, mechanism: mechanism) }
        let gssServer = GSSServer(configuration: gss, keyserver: keyserver, logger: logger, keys: keys)
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), gssServer]
        // Whole imports arrive in one call (all or nothing).
        configuration.maximumRecordSize = 32 << 20
        let directory = KeyDirectoryServer(store: store, configuration: .init(directoryNetname: me, primary: primary), logger: logger)
        let server = RPCServer(programs: [directory.program], configuration: configuration, logger: logger)
        let address = try await server.listenTCP(host: host, port: port)
        if register {
            do {
                _ = try await server.registerWithRPCBind()
            } catch {
                logger.warning("not registered with rpcbind: \(error); hosts must name the port in securerpc.conf")
            }
        }
        for key in ownKeys {
            if let publicKey = try? DHPublicKey(group: key.mechanism, hex: key.publicKey) {
                logger.notice("directory key", metadata: ["netname": "\(me)", "mechanism": "\(key.mechanism.rawValue)", "fingerprint": "\(publicKey.fingerprint)"])
            }
        }
        // systemd (Type=notify) learns of the graceful shutdown as it starts.
        server.onShutdown { ServiceNotification.stopping() }
        let mode = primary.map { "standby of \($0)" } ?? "primary"
        try await server.runUntilShutdownSignal(logger: logger) {
            logger.notice("keydird ready", metadata: ["address": "\(address)", "database": "\(shownPath)", "netname": "\(me)", "mode": "\(mode)"])
            FileHandle.standardOutput.write(Data("ready \(address.port ?? 0)\n".utf8))
            ServiceNotification.ready(status: "serving \(address)")
        }
        await metricsEndpoint?.close()
        await keyserver.close()
    }
}

/// One line for the user, no Swift type names.
struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
