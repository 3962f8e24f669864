// The Swift snippets of docs/XDRGEN.md's five-minute path and the README's, word for word in
// functions compiled with the suite against Fixtures/echo.x (the same interface), so that the
// documents cannot drift from what xdrgen generates. DocumentationSnippetTests (in
// SecureRPCTests) checks that every snippet appears in compiled code like this. The calls
// themselves run in testTheFiveMinutePathRuns, on a free port instead of the article's 4000.

import NIOCore
import ONCRPC
import XCTest
import XDR

final class XDRGenDocSnippetTests: XCTestCase {
    func testTheSnippetsCompile() {
        _ = Self.articleClient
        _ = Self.articleServer
        _ = Self.readmeClient
        _ = Self.readmeServer
    }

    /// docs/XDRGEN.md, "3. Call it".
    static func articleClient() async throws {
        let client = try EchoV1Client(host: "127.0.0.1", port: 4000)   // or EchoV1Client(existingRPCClient)
        try await client.null()
        let reply = try await client.echo("hi")                          // EchoReply
        print(reply.text, reply.count)
        await client.close()
    }

    /// docs/XDRGEN.md, "4. Serve it".
    static func articleServer() async throws {
        struct EchoServer: EchoV1Service {
            func echo(_ argument: String, request: RPCRequest) async throws -> EchoReply {
                EchoReply(text: argument, count: UInt64(argument.utf8.count))
            }
        }

        let server = RPCServer(programs: [EchoServer().rpcProgram()])
        let address = try await server.listenTCP(host: "127.0.0.1", port: 4000)
        _ = address
    }

    /// README.md, "Protocols from .x files", step 3.
    static func readmeClient() async throws {
        let client = try EchoV1Client(host: "127.0.0.1", port: 4000)
        let reply = try await client.echo("hi")          // EchoReply(text:count:)
        _ = reply
    }

    /// README.md, "Protocols from .x files", step 4.
    static func readmeServer() async throws {
        struct EchoServer: EchoV1Service {
            func echo(_ text: String, request: RPCRequest) async throws -> EchoReply {
                EchoReply(text: text, count: UInt64(text.utf8.count))
            }
        }
        let server = RPCServer(programs: [EchoServer().rpcProgram()])
        try await server.listenTCP(host: "127.0.0.1", port: 4000)
    }

    /// The same service and calls, run: what the article promises happens.
    func testTheFiveMinutePathRuns() async throws {
        struct EchoServer: EchoV1Service {
            func echo(_ argument: String, request: RPCRequest) async throws -> EchoReply {
                EchoReply(text: argument, count: UInt64(argument.utf8.count))
            }
        }
        let server = RPCServer(programs: [EchoServer().rpcProgram()])
        let address = try await server.listenTCP(host: "127.0.0.1", port: 0)
        let client = try EchoV1Client(host: "127.0.0.1", port: address.port!)
        try await client.null()
        let reply = try await client.echo("hi")
        XCTAssertEqual(reply, EchoReply(text: "hi", count: 2))
        await client.close()
        await server.shutdown()
    }
}
