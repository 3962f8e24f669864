// The Swift snippets of README.md ("Using the runtime", "Authenticated calls") and of
// docs/GSS.md, word for word in functions compiled with the suite; DocumentationSnippetTests
// checks that every snippet in the documents appears in compiled code. This file imports only
// what the README's snippets import: SecureRPC alone must bring RPCClient, RPCServer, XDR and
// SQLiteKeyDirectory (it re-exports ONCRPC, XDR and KeyDirectory). The functions are not run
// (fixed ports, a site's paths); the same calls run end to end in GSSEndToEndTests,
// FileServicePolicyTests and the examples (Examples/run.sh).

import FileService
import NIOCore
import SecureRPC
import XCTest

final class ReadmeSnippetTests: XCTestCase {
    func testTheSnippetsCompile() {
        _ = Self.runtime
        _ = Self.authenticatedCalls
        _ = Self.gssArticle
    }

    /// README.md, "Using the runtime": serve a program, call it.
    static func runtime() async throws {
        struct Text: XDRCodable, Sendable {
            var value: String
            init(_ value: String) { self.value = value }
            init(xdr buffer: inout ByteBuffer) throws(XDRError) { value = try buffer.readXDRString(maxLength: 1024) }
            func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(value) }
        }

        var echo = RPCProgram(number: 0x2000_0199, version: 1)      // NULL (0) is predefined
        echo.addImmediateProcedure(1) { (text: Text, request: RPCRequest) in text }
        let server = RPCServer(programs: [echo])
        try await server.listenTCP(host: "127.0.0.1", port: 20000)
        try await server.listenUDP(host: "127.0.0.1", port: 20000)

        let client = try RPCClient(transport: .tcp, host: "127.0.0.1", port: 20000,
                                   program: 0x2000_0199, version: 1, authenticator: AuthSysClient())
        let reply = try await client.call(1, Text("hi"), returning: Text.self)
        _ = reply

        try await withTaskExecutorPreference(client.taskExecutor) {
            for i in 0..<1_000 { _ = try await client.call(1, Text("call \(i)"), returning: Text.self) }
        }
    }

    /// README.md, "Authenticated calls".
    static func authenticatedCalls() async throws {
        // Client: RPCSEC_GSS, srpc-dh ffdhe3072, privacy (the defaults of .gss).
        let client = try RPCClient.secure(host: "fs1", port: 20049, program: 0x2000_0200, version: 1,
                                          auth: .gss(server: "unix.fileserver@example.org"),
                                          environment: .current(domain: "example.org"))

        // Server: the verifiers, and a policy per program (and per procedure if needed).
        let files = try FileServiceServer(root: "/srv/files")
        var configuration = RPCServer.Configuration()
        configuration.authenticators = try SecureRPCServer.authenticators(
            directory: SQLiteKeyDirectory.defaultPath, localDomain: "example.org",
            gss: GSSServer.Configuration(serverNetname: "unix.fileserver@example.org"))
        let policy = SecurityPolicy(.gss(minimumGroup: .ffdhe3072, minimumService: .privacy))
        let server = RPCServer(programs: [files.program(policy: policy)], configuration: configuration)
        _ = (client, server)
    }

    /// docs/GSS.md, "Using it".
    static func gssArticle() async throws {
        var configuration = RPCServer.Configuration()
        let db = SQLiteKeyDirectory.defaultPath
        let files = try FileServiceServer(root: "/srv/files")

        // Client: the server's ffdhe3072 key comes from the key directory; the user must have run keylogin.
        let client = try RPCClient.secure(host: "fs1", port: 20049, program: 0x2000_0200, version: 1,
                                          auth: .gss(server: "unix.fileserver@example.org", group: .ffdhe3072, service: .privacy),
                                          environment: .current(domain: "example.org"))

        // Server: its own netname must be logged in to this host's keyserver under the server's uid.
        var gss = GSSServer.Configuration(serverNetname: "unix.fileserver@example.org")
        gss.groups = [.ffdhe3072, .ffdhe4096]
        configuration.authenticators = try SecureRPCServer.authenticators(directory: db, gss: gss)
        // Everything needs ffdhe3072+ with privacy, except procedure 1, open to any proven caller.
        let program = files.program(policy: SecurityPolicy(.gss(minimumGroup: .ffdhe3072, minimumService: .privacy),
                                                           procedures: [1: .verified]))
        _ = (client, program)
    }
}
