// End-to-end calls between our client and server over loopback TCP and UDP.

import NIOCore
import NIOConcurrencyHelpers
import XCTest
import XDR
@testable import ONCRPC

final class ClientServerTests: XCTestCase {
    func testEchoOverTCPAndUDP() async throws {
        let running = try await RunningServer.start()
        for transport in RPCTransport.allCases {
            let client = running.client(transport)
            try await client.ping()
            let reply = try await client.call(TestProgram.echo, TestText("hello \(transport)"), returning: TestText.self)
            XCTAssertEqual(reply.value, "hello \(transport)")
            await client.close()
        }
        await running.server.shutdown()
    }

    func testManyOutstandingCallsOnOneConnection() async throws {
        let running = try await RunningServer.start()
        let client = running.client(.tcp)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<64 {
                group.addTask {
                    let text = "call \(i)"
                    let reply = try await client.call(i % 2 == 0 ? TestProgram.slowEcho : TestProgram.echo, TestText(text), returning: TestText.self)
                    XCTAssertEqual(reply.value, text)
                }
            }
            try await group.waitForAll()
        }
        await client.close()
        await running.server.shutdown()
    }

    func testAuthSysIdentityReachesTheHandler() async throws {
        let running = try await RunningServer.start()
        let client = running.client(.tcp, authenticator: AuthSysClient(AuthSysParameters(machineName: "box", uid: 1234, gid: 100, gids: [1, 2])))
        let uid = try await client.call(TestProgram.whoAmI, XDRVoid(), returning: UInt32.self)
        XCTAssertEqual(uid, 1234)
        await client.close()
        await running.server.shutdown()
    }

    func testAcceptStatusesForUnknownProgramVersionProcedure() async throws {
        let running = try await RunningServer.start()
        for transport in RPCTransport.allCases {
            let unknownProgram = running.client(transport, program: 0x2000_0999)
            await XCTAssertThrowsRPCError(try await unknownProgram.ping(), .programUnavailable(program: 0x2000_0999))
            let unknownVersion = running.client(transport, version: 7)
            await XCTAssertThrowsRPCError(try await unknownVersion.ping(), .programMismatch(program: TestProgram.number, version: 7, low: 1, high: 2))
            let client = running.client(transport)
            await XCTAssertThrowsRPCError(try await client.call(procedure: 99), .procedureUnavailable(procedure: 99))
            await XCTAssertThrowsRPCError(try await client.call(procedure: TestProgram.echo, arguments: ByteBuffer(bytes: [0, 0, 0])), .garbageArguments)
            await XCTAssertThrowsRPCError(try await client.call(procedure: TestProgram.fail), .systemError)
            for c in [unknownProgram, unknownVersion, client] { await c.close() }
        }
        await running.server.shutdown()
    }

    /// Calls' timeouts share one timer armed for the earliest deadline (issue 18): a short
    /// timeout made after a long one must still fire at its own deadline, and the long one
    /// at its own, against a server that reads and never answers.
    func testAShortTimeoutAfterALongOneFiresFirst() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        XCTAssertTrue(bound)
        XCTAssertEqual(listen(listener, 8), 0)  // the kernel accepts; nobody ever answers
        let client = RPCClient(transport: .tcp, address: try SocketAddress(ipAddress: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port))),
                               program: TestProgram.number, version: 1)
        let longDone = NIOLockedValueBox(false)
        let long = Task {
            defer { longDone.withLockedValue { $0 = true } }
            try await client.ping(timeout: .milliseconds(1500))
        }
        try await Task.sleep(for: .milliseconds(50))  // the long call is written first
        await XCTAssertThrowsRPCError(try await client.ping(timeout: .milliseconds(100)), .timedOut(milliseconds: 100))
        XCTAssertFalse(longDone.withLockedValue { $0 }, "the long call outlives the short one")
        do {
            try await long.value
            XCTFail("the long call cannot succeed")
        } catch let error as RPCClientError {
            XCTAssertEqual(error, .timedOut(milliseconds: 1500))
        }
        await client.close()
    }

    func testTimeoutAndCannotConnect() async throws {
        let running = try await RunningServer.start()
        var configuration = RPCClient.Configuration()
        configuration.callTimeout = .milliseconds(50)
        let client = running.client(.tcp, configuration: configuration)
        await XCTAssertThrowsRPCError(try await client.call(TestProgram.slowEcho, TestText("x"), returning: TestText.self), .timedOut(milliseconds: 50))
        // The connection is still usable after a timeout.
        let reply = try await client.call(TestProgram.echo, TestText("after"), returning: TestText.self)
        XCTAssertEqual(reply.value, "after")
        await client.close()
        await running.server.shutdown()

        let nobody = RPCClient(transport: .tcp, address: running.tcp, program: TestProgram.number, version: 1)
        do {
            try await nobody.ping()
            XCTFail("expected cannotConnect")
        } catch let error as RPCClientError {
            guard case .cannotConnect = error else { return XCTFail("got \(error)") }
        }
    }

    func testTCPClientReconnectsAfterServerRestart() async throws {
        let first = try await RunningServer.start()
        let port = first.tcp.port!
        let client = first.client(.tcp)
        try await client.ping()
        await first.server.shutdown()
        let second = try await RunningServer.start(tcpPort: port)
        // The first call after the restart may find the old connection closed; it must
        // reconnect rather than fail.
        let reply = try await client.call(TestProgram.echo, TestText("again"), returning: TestText.self)
        XCTAssertEqual(reply.value, "again")
        await client.close()
        await second.server.shutdown()
    }

    func testGracefulShutdownFinishesCallsInFlight() async throws {
        let running = try await RunningServer.start()
        let client = running.client(.tcp)
        try await client.ping()
        async let slow = client.call(TestProgram.slowEcho, TestText("finish me"), returning: TestText.self)
        try await Task.sleep(nanoseconds: 50_000_000)
        await running.server.shutdown()
        let reply = try await slow
        XCTAssertEqual(reply.value, "finish me")
        await client.close()
    }
}

func XCTAssertThrowsRPCError<T>(
    _ expression: @autoclosure () async throws -> T, _ expected: RPCClientError,
    file: StaticString = #filePath, line: UInt = #line
) async {
    do {
        _ = try await expression()
        XCTFail("expected \(expected)", file: file, line: line)
    } catch let error as RPCClientError {
        XCTAssertEqual(error, expected, file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}
