// Calls made from tasks that prefer the client's event loop (`RPCClient.taskExecutor`, an
// `EventLoopTaskExecutor`): they run on that loop, and every path of a call (direct hand-over,
// reconnect, failure) still ends.

import NIOConcurrencyHelpers
import NIOCore
import XCTest
@testable import ONCRPC

final class LoopExecutorTests: XCTestCase {
    func testSequentialCallsRunOnTheLoopTheConnectionLivesOn() async throws {
        let running = try await RunningServer.start()
        for transport in RPCTransport.allCases {
            let client = running.client(transport)
            let loop = client.eventLoop
            try await withTaskExecutorPreference(client.taskExecutor) {
                XCTAssertTrue(loop.inEventLoop, "the task starts on the loop")
                for i in 0..<50 {
                    let reply = try await client.call(TestProgram.echo, TestText("call \(i)"), returning: TestText.self)
                    XCTAssertEqual(reply.value, "call \(i)")
                    XCTAssertTrue(loop.inEventLoop, "resumed off the loop after call \(i) (\(transport))")
                }
            }
            await client.close()
        }
        await running.server.shutdown()
    }

    func testChildTasksInheritTheLoopAndShareTheConnection() async throws {
        let running = try await RunningServer.start()
        let client = running.client(.tcp)
        let loop = client.eventLoop
        let offLoop = NIOLockedValueBox(0)
        try await withTaskExecutorPreference(client.taskExecutor) {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for i in 0..<64 {
                    tasks.addTask {
                        let text = "call \(i)"
                        // Half of them wait in the server, so replies come back out of order.
                        let reply = try await client.call(i % 2 == 0 ? TestProgram.slowEcho : TestProgram.echo,
                                                          TestText(text), returning: TestText.self)
                        XCTAssertEqual(reply.value, text)
                        if !loop.inEventLoop { offLoop.withLockedValue { $0 += 1 } }
                    }
                }
                try await tasks.waitForAll()
            }
        }
        XCTAssertEqual(offLoop.withLockedValue { $0 }, 0, "child tasks resumed off the loop")
        await client.close()
        await running.server.shutdown()
    }

    func testACallOnTheLoopReconnectsAfterTheServerRestarts() async throws {
        let first = try await RunningServer.start()
        let port = first.tcp.port!
        let client = first.client(.tcp)
        try await withTaskExecutorPreference(client.taskExecutor) {
            try await client.ping()
        }
        await first.server.shutdown()
        let second = try await RunningServer.start(tcpPort: port)
        try await withTaskExecutorPreference(client.taskExecutor) {
            // The old connection is closed or closing: the call is handed to a handler that
            // is gone or to a dead channel, and must reconnect rather than fail or hang.
            for i in 0..<5 {
                let reply = try await client.call(TestProgram.echo, TestText("again \(i)"), returning: TestText.self)
                XCTAssertEqual(reply.value, "again \(i)")
                XCTAssertTrue(client.eventLoop.inEventLoop, "the new connection is on another loop")
            }
        }
        await client.close()
        await second.server.shutdown()
    }

    func testACallWhoseConnectionDiesFailsInsteadOfHanging() async throws {
        var serverConfiguration = RPCServer.Configuration()
        serverConfiguration.shutdownGracePeriod = .zero
        let running = try await RunningServer.start(configuration: serverConfiguration)
        var configuration = RPCClient.Configuration()
        configuration.retransmitAfterReconnect = false
        let client = running.client(.tcp, configuration: configuration)
        try await withTaskExecutorPreference(client.taskExecutor) {
            try await client.ping()
            async let slow = client.call(TestProgram.slowEcho, TestText("cut off"), returning: TestText.self)
            try await Task.sleep(nanoseconds: 50_000_000)
            await running.server.shutdown()
            do {
                _ = try await slow
                XCTFail("a call cut off by the server's shutdown succeeded")
            } catch let error as RPCClientError {
                guard case .connectionClosed = error else { return XCTFail("got \(error)") }
            }
        }
        await client.close()
    }

    func testACallAfterCloseFailsOnTheLoop() async throws {
        let running = try await RunningServer.start()
        let client = running.client(.tcp)
        try await withTaskExecutorPreference(client.taskExecutor) {
            try await client.ping()
            await client.close()
            do {
                try await client.ping()
                XCTFail("a call after close succeeded")
            } catch let error as RPCClientError {
                guard case .clientClosed = error else { return XCTFail("got \(error)") }
            }
        }
        await running.server.shutdown()
    }
}
