// keyserverd: the per-host keyserver. Holds logged-in users' secret keys in memory only and
// does their Diffie-Hellman work, answering each uid only for itself (kernel-checked peer
// credentials on a unix socket). Registers KEY_PROG with rpcbind for netids local and unix
// so classic libtirpc clients find it, and loads the host's root key at start.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory
import KeyServer
import Logging
import NIOCore
import ONCRPC
import ServiceLifecycle

@main
struct KeyServerDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyserverd",
        abstract: "The Secure RPC keyserver: holds users' secret keys and does Diffie-Hellman for them.",
        discussion: "Stop with SIGTERM or SIGINT: registrations are removed and every secret is wiped."
    )

    @Option(help: "The unix socket to serve on.") var socket = KeyServerPaths.socket
    @Option(help: "Root's secret key file, loaded at start when present (written by keylogin -r).") var rootKey = KeyServerPaths.rootKey
    @Option(help: "Key directory, for version 1 calls that name the peer by netname.") var db: String?
    @Flag(help: "Do not register with rpcbind.") var noRpcbind = false
    @Option(help: "Log level.") var logLevel: Logger.Level = .info

    func run() async throws {
        ProcessSignals.unblockShutdownSignals()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "keyserverd")
        var lookup: (@Sendable (String) -> DHPublicKey?)?
        if let db {
            let keys = try PublicKeyLookup(path: db)
            lookup = { netname in try? keys.publicKey(netname: netname, mechanism: .dh192des) }
        }
        let core = KeyServerCore(lookup: lookup)

        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), AuthSysServer()]
        let strong = StrongKeyStore()
        loadRootKey(into: core, strong: strong, logger: logger)
        let server = RPCServer(programs: KeyServerService.programs(core: core, strong: strong, logger: logger),
                               configuration: configuration, logger: logger)
        try await server.listenUnix(path: socket, mode: 0o666)
        if !noRpcbind { await register(server: server, logger: logger) }
        server.onShutdown {
            core.clearAll()
            strong.clearAll()
        }
        logger.notice("keyserver ready", metadata: ["socket": "\(socket)"])
        FileHandle.standardOutput.write(Data("ready \(socket)\n".utf8))
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        core.clearAll()
        strong.clearAll()
    }

    /// The root key file (keylogin -r): the dh192-des secret as hex on the first line ("-"
    /// when there is none, as classic keyserv reads only that line), then "GROUP HEX" lines
    /// for the strong groups.
    private func loadRootKey(into core: KeyServerCore, strong: StrongKeyStore, logger: Logger) {
        guard let data = FileManager.default.contents(atPath: rootKey) else { return }
        var bytes = Array(data)
        defer { SecretBytes.wipe(&bytes) }
        let lines = bytes.split(separator: 0x0a, omittingEmptySubsequences: false)
        var loaded: [String] = []
        var failed = false
        if let first = lines.first, first != [0x2d] {
            var hex = Array(first.prefix(48))
            defer { SecretBytes.wipe(&hex) }
            if core.setSecret(uid: 0, hex: hex) == .keySuccess { loaded.append("dh192-des") } else { failed = true }
        }
        for (index, line) in lines.dropFirst().enumerated() where !line.isEmpty {
            let parts = line.split(separator: 0x20, maxSplits: 1)
            guard parts.count == 2, let group = try? DHGroupName(parsing: String(decoding: parts[0], as: UTF8.self)),
                  let mechanism = StrongKeyStore.mechanism(group),
                  let key = try? DHPrivateKey(group: group, secretHex: String(decoding: parts[1], as: UTF8.self)) else {
                logger.error("cannot use line \(index + 2) of the root key file", metadata: ["file": "\(rootKey)"])
                failed = true
                continue
            }
            var secret = key.secret.copyBytes()
            defer { SecretBytes.wipe(&secret) }
            if strong.set(uid: 0, mechanism: mechanism, secret: secret) == .keySuccess { loaded.append(group.rawValue) } else { failed = true }
        }
        if !loaded.isEmpty {
            logger.notice("loaded the host's root key", metadata: ["file": "\(rootKey)", "groups": "\(loaded.joined(separator: ", "))"])
        }
        if failed || loaded.isEmpty {
            logger.error("cannot use the root key file", metadata: ["file": "\(rootKey)"])
        }
    }

    /// KEY_PROG v1 and v2 on netids local and unix, the socket path as the address: how
    /// libtirpc's key_call finds the keyserver.
    private func register(server: RPCServer, logger: Logger) async {
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

extension Logger.Level: @retroactive ExpressibleByArgument {}
