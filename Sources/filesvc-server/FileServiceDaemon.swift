// filesvc-server: serves a directory as the example FILESVC program over TCP and UDP until
// SIGINT/SIGTERM, optionally registered with the host's rpcbind.

import ArgumentParser
import FileService
import Foundation
import Logging
import NIOCore
import NIOPosix
import ONCRPC
import ServiceLifecycle
import SecureRPC
import KeyDirectory
import KeyServer

@main
struct FileServiceDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filesvc-server",
        abstract: "Serve a directory with the example FILESVC program (ONC RPC over TCP and UDP).",
        discussion: """
        Every call is logged with the caller's identity. Stop with SIGINT or SIGTERM: calls in \
        flight finish, registrations with rpcbind are removed.
        """
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

    @Option(help: "Accept only callers proven with this mechanism: dh (AUTH_DH). Default: any flavor.")
    var requireAuth: AuthChoice?

    @Option(help: "Key directory (for AUTH_DH: the callers' public keys).")
    var db = ProcessInfo.processInfo.environment["SECURERPC_DB"] ?? SQLiteKeyDirectory.defaultPath

    @Option(help: "This host's keyserver socket (for AUTH_DH: the server's own key).")
    var keyserverSocket = KeyServerPaths.socket

    enum AuthChoice: String, ExpressibleByArgument, CaseIterable {
        case dh
    }

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    enum TransportChoice: String, ExpressibleByArgument, CaseIterable {
        case tcp, udp, both
    }

    func run() async throws {
        ProcessSignals.unblockShutdownSignals()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "filesvc-server")
        let rootPath = try prepareRoot(logger: logger)
        let files = try FileServiceServer(root: rootPath, logger: logger)
        var configuration = RPCServer.Configuration()
        var policy: any RPCAuthorizationPolicy = AllowAnyFlavor()
        if requireAuth == .dh {
            configuration.authenticators = try SecureRPCServer.authenticators(directory: db, keyserverSocket: keyserverSocket)
            policy = SecureRPCServer.require([.dh])
            logger.notice("callers must be proven with AUTH_DH", metadata: ["directory": "\(db)", "keyserver": "\(keyserverSocket)"])
        }
        let server = RPCServer(programs: [files.program(policy: policy)], configuration: configuration, logger: logger)

        var addresses: [String] = []
        if transport != .udp {
            let address = try await server.listenTCP(host: host, port: port)
            addresses.append("tcp \(address)")
        }
        if transport != .tcp {
            let address = try await server.listenUDP(host: host, port: port)
            addresses.append("udp \(address)")
        }
        if register {
            do {
                let mappings = try await server.registerWithRPCBind()
                logger.info("registered with rpcbind", metadata: ["mappings": "\(mappings.count)"])
            } catch let error as RPCBindError {
                logger.warning("not registered with rpcbind: \(error); continuing without registration")
            }
        }
        logger.notice("serving \(rootPath)", metadata: ["listening": "\(addresses.joined(separator: ", "))"])
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }

    private func prepareRoot(logger: Logger) throws -> String {
        if let root {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            return URL(fileURLWithPath: root).standardizedFileURL.path
        }
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("filesvc-\(getpid())").path
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        logger.notice("no --root given; serving a new temporary directory \(temporary)")
        return temporary
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
