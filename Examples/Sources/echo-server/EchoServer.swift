// An authenticated echo server: the service is written against the protocol generated from
// echo.x (EchoV1Service); SecureRPC supplies the verifiers and the policy. The server's
// netname must be logged in to this host's keyserver under this process's uid (keylogin),
// and its public keys must be in the key directory, like every principal's.

import ArgumentParser
import EchoInterface
import Foundation
import Logging
import SecureRPC
import ServiceLifecycle

/// ECHOPROC_ECHO: the text back, with who sent it as the server proved it.
struct Echo: EchoV1Service {
    func echo(_ text: EchoText, request: RPCRequest) async throws -> EchoReply {
        let caller = request.caller
        return EchoReply(text: text, caller: caller.netname ?? "", uid: caller.uid ?? 0xffff_ffff,
                         mechanism: caller.mechanism ?? "")
    }
}

@main
struct EchoServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-server",
        abstract: "Serve SECURE_ECHO (0x20000301) to callers proven by RPCSEC_GSS (and, if allowed, AUTH_DH).")

    @Option(help: "This server's netname, logged in to the keyserver under this uid, e.g. unix.fs1@example.org.")
    var netname: String
    @Option(help: "The key directory (SQLite file).")
    var directory = SQLiteKeyDirectory.defaultPath
    @Option(help: "This host's keyserver socket.")
    var keyserverSocket = "/var/run/keyservsock"
    @Option(help: "The site's domain: callers unix.UID@DOMAIN get their local uid.")
    var domain: String
    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"
    @Option(help: "TCP and UDP port.")
    var port = echoDefaultPort
    @Flag(help: "Also accept the legacy AUTH_DH (Sun's Secure RPC, 192-bit DH and DES).")
    var allowDH = false

    func run() async throws {
        ProcessSignals.unblockShutdownSignals()
        var configuration = RPCServer.Configuration()
        // AUTH_NONE and AUTH_SYS callers get pings only: nothing else is served unproven.
        configuration.authenticators = try SecureRPCServer.authenticators(
            directory: directory, keyserverSocket: keyserverSocket, localDomain: domain,
            gss: GSSServer.Configuration(serverNetname: netname))
        var accepted = [SecurityRequirement.gss(minimumGroup: .ffdhe3072, minimumService: .privacy)]
        if allowDH { accepted.append(SecurityRequirement(flavors: [.dh])) }
        let policy = SecurityPolicy(anyOf: accepted)

        let server = RPCServer(programs: [Echo().rpcProgram(policy: policy)], configuration: configuration)
        let tcp = try await server.listenTCP(host: host, port: port)
        let udp = try await server.listenUDP(host: host, port: port)
        // Written straight to the descriptor: a log file or pipe gets the line now, not at exit.
        FileHandle.standardOutput.write(Data("echo-server: serving \(netname) on tcp \(tcp) and udp \(udp)\n".utf8))

        // SIGTERM or SIGINT: stop accepting, answer the calls in flight, exit.
        let logger = Logger(label: "echo-server")
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
