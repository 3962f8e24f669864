// An authenticated echo client: the typed client generated from echo.x (EchoV1Client) on an
// RPCClient that SecureRPC set up. The user has run keylogin; the server's public key comes
// from the key directory, or from a classic /etc/publickey file as libtirpc would read it.

import ArgumentParser
import EchoInterface
import Foundation
import SecureRPC

@main
struct EchoClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-client",
        abstract: "Send TEXT to an echo-server, proving who you are; print what the server saw.")

    enum Mechanism: String, ExpressibleByArgument, CaseIterable {
        case gss, dh, sys
    }

    @Argument(help: "The text to send.")
    var text: String
    @Option(help: "The server's netname, e.g. unix.fs1@example.org.")
    var server: String
    @Option(help: "The server's address.")
    var host = "127.0.0.1"
    @Option(help: "The server's port.")
    var port = echoDefaultPort
    @Option(help: "gss: RPCSEC_GSS, ffdhe3072, privacy. dh: the legacy AUTH_DH. sys: AUTH_SYS (unproven: the server refuses it).")
    var auth: Mechanism = .gss
    @Option(help: "The site's domain: you are unix.UID@DOMAIN.")
    var domain: String
    @Option(help: "The key directory (SQLite file).")
    var directory = SQLiteKeyDirectory.defaultPath
    @Option(help: "Read public keys from this /etc/publickey-format file instead of the key directory.")
    var publickeyFile: String?
    @Option(help: "AUTH_DH: set the stamps' clock from this host's rpcbind (or RFC 868 time service).")
    var timeHost: String?
    @Option(help: "This host's keyserver socket.")
    var keyserverSocket = "/var/run/keyservsock"
    @Flag(help: "Use UDP instead of TCP.")
    var udp = false

    func run() async throws {
        do {
            let reply = try await call()
            print(reply.text)
            let uid = reply.uid == 0xffff_ffff ? "no local uid" : "uid \(reply.uid)"
            print("the server saw: \(reply.caller) (\(uid)), via \(reply.mechanism)")
        } catch {
            // Every error says what went wrong in words (no key for the server, refused, timed out, ...).
            FileHandle.standardError.write(Data("echo-client: \(errorInWords(error))\n".utf8))
            throw ExitCode.failure
        }
    }

    private func call() async throws -> EchoReply {
        let environment = SecureRPCEnvironment.current(domain: domain, directory: directory, keyserverSocket: keyserverSocket)
        let authentication: RPCAuthentication
        switch auth {
        case .gss: authentication = .gss(server: server)
        case .dh: authentication = .dh(server: server)
        case .sys: authentication = .sys
        }
        let transport: RPCTransport = udp ? .udp : .tcp
        let time = timeHost.map { AuthDHTimeHost(host: $0) }
        let rpc: RPCClient
        if let publickeyFile {
            rpc = try await RPCClient.secure(transport: transport, host: host, port: port,
                                             program: EchoV1Client.program, version: EchoV1Client.version,
                                             auth: authentication, environment: environment,
                                             keys: try PublicKeyFileSource(path: publickeyFile), timeHost: time)
        } else {
            rpc = try RPCClient.secure(transport: transport, host: host, port: port,
                                       program: EchoV1Client.program, version: EchoV1Client.version,
                                       auth: authentication, environment: environment, timeHost: time)
        }
        let echo = EchoV1Client(rpc)
        do {
            let reply = try await echo.echo(text)
            await echo.close()
            return reply
        } catch {
            await echo.close()
            throw error
        }
    }
}
