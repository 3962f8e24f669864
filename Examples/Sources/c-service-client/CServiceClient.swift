// A Swift client for a service that already exists in C: TESTECHO, served by an rpcgen +
// libtirpc program (Tests/CPeers/echo_server.c). The example keeps its own copy of the
// service's interface file (testecho.x), from which the build plugin generates the typed
// client, and finds the server through the host's rpcbind as a C client's clnt_create would.

import ArgumentParser
import Foundation
import SecureRPC
import TestEchoInterface

@main
struct CServiceClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "c-service-client",
        abstract: "Call the C TESTECHO service (0x20000199): ECHO the text, then WHOAMI.")

    @Argument(help: "The text to send.")
    var text: String
    @Option(help: "The server's host.")
    var host = "127.0.0.1"
    @Option(help: "The server's port; without it, ask the host's rpcbind where TESTECHO version 1 is.")
    var port: Int?
    @Flag(help: "Use UDP instead of TCP.")
    var udp = false

    func run() async throws {
        let transport: RPCTransport = udp ? .udp : .tcp
        do {
            // A classic C service knows AUTH_SYS (and AUTH_NONE): the uid is stated, not proven.
            let rpc: RPCClient
            if let port {
                rpc = try RPCClient(transport: transport, host: host, port: port, program: TestechoV1Client.program,
                                    version: TestechoV1Client.version, authenticator: AuthSysClient())
            } else {
                // rpcbind's GETADDR, asked over the transport wanted, as clnt_create does.
                rpc = try await RPCClient.discover(host: host, program: TestechoV1Client.program, version: TestechoV1Client.version,
                                                   transport: transport, authenticator: AuthSysClient())
            }
            let echo = TestechoV1Client(rpc)
            let back = try await echo.echo(text)
            let uid = try await echo.whoami()
            await echo.close()
            print(back)
            print("the C server saw uid \(uid) (AUTH_SYS) over \(transport)")
        } catch {
            FileHandle.standardError.write(Data("c-service-client: \(errorInWords(error))\n".utf8))
            throw ExitCode.failure
        }
    }
}
