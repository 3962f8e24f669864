// The snippets of the DocC article "Add authentication to your service"
// (Sources/SecureRPC/SecureRPC.docc/AddingAuthentication.md), word for word in functions
// that are compiled with the suite, so the article cannot drift from the API. They are not
// run: they listen on a fixed port and need a logged-in user at a real site; the same
// calls run end to end in GSSEndToEndTests and SecureByDefaultTests.

import ONCRPC
import SecureRPC
import XCTest
import XDR

final class DocSnippetTests: XCTestCase {
    func testTheArticleSnippetsCompile() {
        // Referencing them is the test: this file does not build if the article's code does not.
        _ = Self.articleServer
        _ = Self.articleClient
    }

    static func articleServer() async throws {
        var configuration = RPCServer.Configuration()
        configuration.authenticators = try SecureRPCServer.authenticators(
            directory: "/var/lib/securerpc/keys.db", localDomain: "example.org",
            gss: GSSServer.Configuration(serverNetname: "unix.fs1@example.org"))
        let policy = SecureRPCServer.require(gss: .ffdhe3072, service: .privacy)
        var program = RPCProgram(number: 0x2000_0200, version: 1, policy: policy)
        // WHOAMI: the caller's local uid, mapped from its proven netname.
        program.addImmediateProcedure(1) { (_: XDRVoid, request: RPCRequest) -> UInt32 in
            request.caller.uid ?? 0xffff_ffff
        }
        let server = RPCServer(programs: [program], configuration: configuration)
        try await server.listenTCP(host: "0.0.0.0", port: 20049)
    }

    static func articleClient() async throws {
        let client = try RPCClient.secure(host: "fs1", port: 20049, program: 0x2000_0200, version: 1,
                                          auth: .gss(server: "unix.fs1@example.org"),
                                          environment: .current(domain: "example.org"))
        let uid = try await client.call(1, XDRVoid(), returning: UInt32.self)
        _ = uid
    }
}
