// Interop between xdrgen-generated Swift and rpcgen-generated C over real TCP on
// loopback: the C client against the Swift server, the Swift client against the C server,
// and both servers rejecting a value over its declared bound with GARBAGE_ARGS. Answers
// are compared as XDR bytes. The Swift types, client and server protocol come from
// Fixtures/typezoo.x through XDRGenPlugin at build time.

import Logging
import NIOCore
import NIOPosix
import ONCRPC
import XCTest
import XDR

final class InteropTests: XCTestCase {
    override class func tearDown() {
        CPeers.remove()
        super.tearDown()
    }

    private func startSwiftServer() async throws -> (RPCServer, Int) {
        var logger = Logger(label: "xdrgen-test")
        logger.logLevel = .critical
        let server = RPCServer(programs: [ZooService().rpcProgram()], logger: logger)
        let address = try await server.listenTCP(host: "127.0.0.1", port: 0)
        return (server, address.port!)
    }

    private func parseClientOutput(_ output: String) -> [(String, String)] {
        output.split(separator: "\n").map { line in
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
    }

    private func assertClientOutput(_ output: String, file: StaticString = #filePath, line: UInt = #line) {
        let actual = parseClientOutput(output)
        let expected = TypeZooModel.expectedClientOutput
        XCTAssertEqual(actual.map(\.0), expected.map(\.0), "answer labels", file: file, line: line)
        for ((label, got), (_, want)) in zip(actual, expected) {
            XCTAssertEqual(got, want, "answer '\(label)' differs", file: file, line: line)
        }
    }

    /// The rpcgen C client calls the generated Swift server; every answer must equal, byte
    /// for byte, what the model computes and what the C server answers the same client.
    func testCClientCallsGeneratedSwiftServer() async throws {
        let peers = try CPeers.directory()
        let (server, port) = try await startSwiftServer()
        let client = peers.appendingPathComponent("zoo_client").path
        let againstSwift = try runProcess(client, ["-h", "127.0.0.1", "-p", "\(port)"])
        await server.shutdown()
        XCTAssertEqual(againstSwift.status, 0, againstSwift.errors)
        assertClientOutput(againstSwift.output)

        let cServer = try CServer.start()
        defer { cServer.stop() }
        let againstC = try runProcess(client, ["-h", "127.0.0.1", "-p", "\(cServer.port)"])
        XCTAssertEqual(againstC.status, 0, againstC.errors)
        XCTAssertEqual(againstSwift.output, againstC.output, "the Swift and C servers answer the C client differently")
    }

    /// The generated Swift client calls the rpcgen C server with every XDR type class.
    func testGeneratedSwiftClientCallsCServer() async throws {
        let cServer = try CServer.start()
        defer { cServer.stop() }
        let client = try TypezooV1Client(host: "127.0.0.1", port: cServer.port)
        try await client.null()
        let fixture = TypeZooModel.fixture

        let echoed = try await client.echo(fixture)
        XCTAssertEqual(hex(echoed), hex(fixture))
        XCTAssertEqual(echoed, fixture)

        let transformed = try await client.transform(fixture)
        XCTAssertEqual(hex(transformed), hex(TypeZooModel.transform(fixture)))

        // No note and an empty list take the other optional-data branch.
        var sparse = fixture
        sparse.note = nil
        sparse.animals = []
        sparse.blob = []
        let sparseAnswer = try await client.transform(sparse)
        XCTAssertEqual(hex(sparseAnswer), hex(TypeZooModel.transform(sparse)))

        for shape in TypeZooModel.clientShapes {
            let answer = try await client.shape(shape)
            XCTAssertEqual(hex(answer), hex(TypeZooModel.transform(shape)), "shape \(shape)")
        }
        for name in TypeZooModel.clientNames + ["lion", ""] {
            let answer = try await client.find(name)
            XCTAssertEqual(hex(answer), hex(TypeZooModel.find(name)), "find \(name)")
        }
        await client.close()
    }

    /// A string one byte over `string name<ZOO_NAME_MAX>` (16) is GARBAGE_ARGS at both
    /// servers; at exactly the bound it is accepted. The generated encoder does not check
    /// bounds, which is what lets this test send the bad value.
    func testValueOverDeclaredBoundIsGarbageArgsAtBothServers() async throws {
        let (swiftServer, swiftPort) = try await startSwiftServer()
        let cServer = try CServer.start()
        defer { cServer.stop() }
        for port in [swiftPort, cServer.port] {
            let client = try TypezooV1Client(host: "127.0.0.1", port: port)
            var zoo = TypeZooModel.fixture
            zoo.animals[2].name = String(repeating: "x", count: 16)
            let atBound = try await client.echo(zoo)
            XCTAssertEqual(atBound, zoo)

            zoo.animals[2].name = String(repeating: "x", count: 17)
            do {
                _ = try await client.echo(zoo)
                XCTFail("a 17-byte name was accepted by the server on port \(port)")
            } catch let error as RPCClientError {
                XCTAssertEqual(error, .garbageArguments)
            }

            do {
                _ = try await client.shape(.default(discriminant: .shapeOther, value: String(repeating: "y", count: 17)))
                XCTFail("a 17-byte label was accepted by the server on port \(port)")
            } catch let error as RPCClientError {
                XCTAssertEqual(error, .garbageArguments)
            }
            // The server keeps serving after rejecting bad arguments.
            let answer = try await client.find("snake")
            XCTAssertEqual(answer, TypeZooModel.find("snake"))
            await client.close()
        }
        await swiftServer.shutdown()
    }
}
