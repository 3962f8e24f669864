// filesvc: the command-line client of the example file service.

import ArgumentParser
import Release
import FileService
import Foundation
import NIOCore
import ONCRPC
import SecureRPC
import KeyDirectory
import KeyServer
import KeyDirectoryService
import SiteConfig

@main
struct FileServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filesvc",
        abstract: "Use the example FILESVC file service.",
        version: SecureRPCRelease.versionLine("filesvc"),
        subcommands: [Ping.self, Stat.self, Cat.self, Get.self, Put.self, Create.self, Remove.self, List.self, MakeDirectory.self]
    )
}

struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server host.")
    var host = "127.0.0.1"

    @Option(help: "Server port.")
    var port = FileServiceProtocol.defaultPort

    @Option(help: "Transport: tcp or udp.")
    var transport: RPCTransport = .tcp

    @Option(help: "Authentication: gss (RPCSEC_GSS srpc-dh, proven through your keylogin, each call protected as --service says), dh (legacy AUTH_DH), sys (your uid and groups, not verified) or none.")
    var auth: AuthChoice = .gss

    @Option(help: "For --auth gss: the Diffie-Hellman group (ffdhe2048, ffdhe3072, ffdhe4096).")
    var group: GSSGroup = .ffdhe3072

    @Option(help: "For --auth gss: per-call protection: privacy (encrypted), integrity (checksummed) or none.")
    var service: GSSService = .privacy

    @Option(help: "For --auth gss/dh: the server's netname, e.g. unix.fileserver@example.org (default $SECURERPC_SERVER).")
    var server: String?

    @Option(help: "For --auth gss/dh: your netname (default unix.UID@DOMAIN).")
    var netname: String?

    @Option(help: "For --auth gss/dh: the Secure RPC domain (default $SECURERPC_DOMAIN).")
    var domain: String?

    @Option(help: "For --auth gss/dh: the key directory file (default: $SECURERPC_DB; else the directory servers of securerpc.conf; else its database line or \(SQLiteKeyDirectory.defaultPath)).")
    var db: String?

    @Option(help: "The site configuration (default: $SECURERPC_CONF, else \(SiteConfiguration.defaultPath) when present).")
    var config: String?

    @Option(help: "For --auth gss/dh: this host's keyserver socket.")
    var keyserverSocket = KeyServerPaths.socket

    @Option(help: "Seconds to wait for each reply.")
    var timeout: Double = 10

    enum AuthChoice: String, ExpressibleByArgument, CaseIterable { case gss, dh, sys, none }

    /// securerpc.conf (--config, $SECURERPC_CONF, or the default path when present).
    func site() throws -> SiteConfiguration {
        try SiteConfiguration.load(path: config)
    }

    /// Runs `body` with a connected client and turns every failure into one line on stderr.
    func withClient(_ body: (FileServiceClient) async throws -> Void) async throws {
        var configuration = RPCClient.Configuration()
        configuration.callTimeout = .milliseconds(Int64(timeout * 1000))
        configuration.connectTimeout = .milliseconds(Int64(min(timeout, 10) * 1000))
        let client: FileServiceClient
        do {
            let authentication: RPCAuthentication
            var me = netname ?? ""
            switch auth {
            case .none: authentication = .none
            case .sys: authentication = .sys
            case .dh, .gss:
                guard let server = server ?? ProcessInfo.processInfo.environment["SECURERPC_SERVER"] else {
                    throw fail("--auth \(auth.rawValue) needs --server NETNAME (the server's netname, or SECURERPC_SERVER); --auth sys or none call without proof")
                }
                authentication = auth == .dh ? .dh(server: server) : .gss(server: server, group: group, service: service)
                if netname == nil {
                    guard let domain = try site().resolveDomain(domain) else {
                        throw fail("--auth \(auth.rawValue) needs --netname or --domain (or SECURERPC_DOMAIN)")
                    }
                    me = Netname.local(uid: getuid(), domain: domain)
                }
            }
            let database = db ?? ProcessInfo.processInfo.environment["SECURERPC_DB"].flatMap { $0.isEmpty ? nil : $0 }
            let site = auth == .dh || auth == .gss ? try site() : SiteConfiguration()
            let keys = auth == .dh || auth == .gss
                ? try HostKeySource.make(site: site, database: database, caller: DirectoryCaller(netname: me, keyserverSocket: keyserverSocket))
                : nil
            let environment = SecureRPCEnvironment(directory: database ?? site.database ?? SQLiteKeyDirectory.defaultPath,
                                                   keyserverSocket: keyserverSocket, netname: me)
            if let keys {
                client = FileServiceClient(rpc: try await RPCClient.secure(
                    transport: transport, host: host, port: port, program: FileServiceProtocol.program, version: FileServiceProtocol.version,
                    auth: authentication, environment: environment, keys: keys, configuration: configuration))
            } else {
                client = FileServiceClient(rpc: try RPCClient.secure(
                    transport: transport, host: host, port: port, program: FileServiceProtocol.program, version: FileServiceProtocol.version,
                    auth: authentication, environment: environment, configuration: configuration))
            }
        } catch let error as ExitCode {
            throw error
        } catch {
            throw fail("\(error)")
        }
        do {
            try await body(client)
            await client.close()
        } catch let error as RPCClientError {
            await client.close()
            if case .cannotConnect = error {
                throw fail("\(error) — is filesvc-server running on \(host):\(port)?")
            }
            throw fail("\(error)")
        } catch let error as ExitCode {
            await client.close()
            throw error
        } catch let error as SecureRPCError {
            await client.close()
            throw fail("\(error)")
        } catch {
            await client.close()
            throw fail("\(error)")
        }
    }

    private func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("filesvc: \(message)\n".utf8))
        return ExitCode.failure
    }
}

extension RPCTransport: ExpressibleByArgument {}
extension GSSGroup: ExpressibleByArgument {}
extension GSSService: ExpressibleByArgument {}

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Call NULL: is the server there?")
    @OptionGroup var connection: ConnectionOptions
    func run() async throws {
        try await connection.withClient { client in
            let start = ContinuousClock.now
            try await client.ping()
            print("filesvc at \(connection.host):\(connection.port) (\(connection.transport.rawValue)) answered in \(ContinuousClock.now - start)")
        }
    }
}

struct Stat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a file's attributes.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Path on the server, e.g. /notes.txt") var path: String
    func run() async throws {
        try await connection.withClient { client in
            let a = try await client.stat(path)
            let kind = a.type == .fsDir ? "directory" : "file"
            print("\(path): \(kind), \(a.size) bytes, mode \(String(a.mode, radix: 8)), owner \(a.owner), modified \(Date(timeIntervalSince1970: TimeInterval(a.mtime)))")
        }
    }
}

struct Cat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a file to standard output.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Path on the server.") var path: String
    func run() async throws {
        try await connection.withClient { client in
            let contents = try await client.readAll(path)
            FileHandle.standardOutput.write(Data(contents.readableBytesView))
        }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Copy a file from the server to a local file.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Path on the server.") var path: String
    @Argument(help: "Local file (default: the last path component).") var local: String?
    func run() async throws {
        try await connection.withClient { client in
            let contents = try await client.readAll(path)
            let target = local ?? String(path.split(separator: "/").last ?? "download")
            try Data(contents.readableBytesView).write(to: URL(fileURLWithPath: target))
            print("\(path) -> \(target) (\(contents.readableBytes) bytes)")
        }
    }
}

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Copy a local file (or - for standard input) to the server.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Local file, or - for standard input.") var local: String
    @Argument(help: "Path on the server.") var path: String
    func run() async throws {
        let data: Data
        do {
            data = local == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: local))
        } catch {
            FileHandle.standardError.write(Data("filesvc: cannot read \(local): \(error.localizedDescription)\n".utf8))
            throw ExitCode.failure
        }
        try await connection.withClient { client in
            try await client.writeAll(path, contents: ByteBuffer(bytes: data))
            print("\(local) -> \(path) (\(data.count) bytes)")
        }
    }
}

struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create an empty file.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Fail when the file exists.") var exclusive = false
    @Argument(help: "Path on the server.") var path: String
    func run() async throws {
        try await connection.withClient { client in try await client.create(path, exclusive: exclusive) }
    }
}

struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a file or an empty directory.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Path on the server.") var path: String
    func run() async throws {
        try await connection.withClient { client in try await client.remove(path) }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List a directory.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Directory on the server.") var path = "/"
    func run() async throws {
        try await connection.withClient { client in
            for name in try await client.list(path) { print(name) }
        }
    }
}

struct MakeDirectory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mkdir", abstract: "Create a directory.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Path on the server.") var path: String
    func run() async throws {
        try await connection.withClient { client in try await client.makeDirectory(path) }
    }
}
