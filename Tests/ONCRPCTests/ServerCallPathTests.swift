// The server's call path after issue 18's second trim: a call decided without suspending is
// answered in `handle`'s return value without its completion ever being made; the
// one-look-up procedure table answers PROC_UNAVAIL / PROG_MISMATCH / PROG_UNAVAIL as the
// two-level one did; a call context (now one shared storage) stays a value.

import NIOCore
import NIOEmbedded
import NIOPosix
import MetricsTestKit
import XCTest
import XDR
@testable import ONCRPC

final class ServerCallPathTests: XCTestCase {
    // MARK: the dispatcher

    private func dispatcher(_ programs: [RPCProgram]) -> RPCDispatcher {
        RPCDispatcher(programs: programs, authenticators: [AuthNoneServer(), AuthSysServer()], logger: quietLogger())
    }

    private func call(program: UInt32 = 0x2000_0101, version: UInt32 = 1, procedure: UInt32, argument: UInt32? = nil) -> ByteBuffer {
        var buffer = ByteBuffer()
        RPCCall.encodeHeader(xid: 5, program: program, version: version, procedure: procedure,
                             credential: .none, verifier: .none, into: &buffer)
        if let argument { buffer.writeXDR(argument) }
        return buffer
    }

    private func replyStatus(_ outcome: RPCDispatchOutcome) throws -> AcceptedReplyStatus? {
        guard case let .answered(reply?, disconnect: false) = outcome else { XCTFail("not answered at once: \(outcome)"); return nil }
        var framed = reply
        framed.moveReaderIndex(forwardBy: 4)  // the 4 bytes reserved for the record mark
        guard case let .accepted(_, status) = try RPCReply.decode(framed).status else { XCTFail("denied"); return nil }
        return status
    }

    func testAnImmediateCallIsAnsweredWithoutMakingItsCompletion() throws {
        var program = RPCProgram(number: 0x2000_0101, version: 1)
        program.addImmediateProcedure(1) { (value: UInt32, _) in value + 1 }
        let dispatcher = dispatcher([program])
        let loop = EmbeddedEventLoop()
        let context = RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil)
        var made = 0
        let outcome = dispatcher.handle(message: call(procedure: 1, argument: 41), context: context, allocator: ByteBufferAllocator(), eventLoop: loop) {
            made += 1
            return { _, _ in XCTFail("an immediate call's completion ran") }
        }
        guard case let .success(results)? = try replyStatus(outcome) else { return XCTFail("\(outcome)") }
        XCTAssertEqual(results.getInteger(at: results.readerIndex, as: UInt32.self), 42)
        XCTAssertEqual(made, 0, "the completion was made for a call answered at once")
    }

    func testAnAsyncCallMakesItsCompletionOnceAndItRunsOnTheLoop() async throws {
        var program = RPCProgram(number: 0x2000_0101, version: 1)
        program.addProcedure(1) { (value: UInt32, _) async in value * 2 }
        let dispatcher = dispatcher([program])
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let context = RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil)
        let answered = loop.makePromise(of: ByteBuffer?.self)
        var made = 0
        let outcome = dispatcher.handle(message: call(procedure: 1, argument: 21), context: context, allocator: ByteBufferAllocator(), eventLoop: loop) {
            made += 1
            return { reply, disconnect in
                XCTAssertTrue(loop.inEventLoop)
                XCTAssertFalse(disconnect)
                answered.succeed(reply)
            }
        }
        guard case .pending = outcome else { return XCTFail("an async procedure was answered at once: \(outcome)") }
        XCTAssertEqual(made, 1)
        let reply = try await answered.futureResult.get()
        guard case let .success(results)? = try replyStatus(.answered(reply, disconnect: false)) else { return XCTFail("no success") }
        XCTAssertEqual(results.getInteger(at: results.readerIndex, as: UInt32.self), 42)
        try await group.shutdownGracefully()
    }

    func testTheProcedureTableAnswersEachMissingNumberAsBefore() throws {
        var v1 = RPCProgram(number: 0x2000_0101, version: 1)
        v1.addImmediateProcedure(1) { (value: UInt32, _) in value }
        var v3 = RPCProgram(number: 0x2000_0101, version: 3)
        v3.addImmediateProcedure(2) { (value: UInt32, _) in value }
        let dispatcher = dispatcher([v1, v3])
        let loop = EmbeddedEventLoop()
        let context = RPCCallContext(transport: .udp, remoteAddress: nil, localAddress: nil)
        func status(_ message: ByteBuffer) throws -> AcceptedReplyStatus? {
            try replyStatus(dispatcher.handle(message: message, context: context, allocator: ByteBufferAllocator(), eventLoop: loop) {
                { _, _ in XCTFail("completion ran") }
            })
        }
        guard case .success? = try status(call(procedure: 1, argument: 1)) else { return XCTFail("v1 proc 1") }
        guard case .success? = try status(call(version: 1, procedure: 0)) else { return XCTFail("NULL of v1") }
        guard case .procedureUnavailable? = try status(call(version: 1, procedure: 2, argument: 1)) else { return XCTFail("v1 proc 2") }
        guard case .procedureUnavailable? = try status(call(version: 3, procedure: 1, argument: 1)) else { return XCTFail("v3 proc 1") }
        guard case .programMismatch(low: 1, high: 3)? = try status(call(version: 2, procedure: 1)) else { return XCTFail("v2") }
        guard case .programUnavailable? = try status(call(program: 0x2000_0102, procedure: 1)) else { return XCTFail("other program") }
    }

    func testEveryCallIsCountedOnceUnderTheLabelsTheServerServes() throws {
        var v1 = RPCProgram(number: 0x2000_0101, version: 1)
        v1.addImmediateProcedure(1) { (value: UInt32, _) in value }
        v1.addImmediateProcedure(2) { (_: UInt32, _) -> UInt32 in throw RPCServerError.systemError }
        var v3 = RPCProgram(number: 0x2000_0101, version: 3)
        v3.addImmediateProcedure(2) { (value: UInt32, _) in value }
        let metrics = TestMetrics()
        let dispatcher = RPCDispatcher(programs: [v1, v3], authenticators: [AuthNoneServer(), AuthSysServer()],
                                       logger: quietLogger(), metricsFactory: metrics)
        let loop = EmbeddedEventLoop()
        let context = RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil)
        func send(_ message: ByteBuffer) {
            _ = dispatcher.handle(message: message, context: context, allocator: ByteBufferAllocator(), eventLoop: loop) {
                { _, _ in XCTFail("completion ran") }
            }
        }
        send(call(procedure: 1, argument: 1))
        send(call(procedure: 1, argument: 2))
        send(call(procedure: 1))  // no argument: garbage
        send(call(procedure: 2, argument: 1))  // the handler fails
        send(call(version: 3, procedure: 0))  // NULL, served by every version without registering it
        send(call(version: 3, procedure: 1, argument: 1))  // a procedure v3 does not have
        send(call(version: 2, procedure: 1))  // a version not served
        send(call(program: 0x2000_0102, procedure: 1))  // a program not served

        func count(_ program: String, _ version: String, _ procedure: String, _ status: String) throws -> Int64 {
            try metrics.expectCounter("securerpc_calls_total", [
                ("program", program), ("version", version), ("procedure", procedure), ("flavor", "none"), ("status", status),
            ]).totalValue
        }
        let program = "\(0x2000_0101)"
        XCTAssertEqual(try count(program, "1", "1", "success"), 2)
        XCTAssertEqual(try count(program, "1", "1", "garbage_args"), 1)
        XCTAssertEqual(try count(program, "1", "2", "system_err"), 1)
        XCTAssertEqual(try count(program, "3", "0", "success"), 1)
        XCTAssertEqual(try count(program, "3", "other", "proc_unavail"), 1)
        XCTAssertEqual(try count(program, "other", "other", "prog_mismatch"), 1)
        XCTAssertEqual(try count("other", "other", "other", "prog_unavail"), 1)
        XCTAssertEqual(metrics.counters(label: "securerpc_calls_total").map(\.totalValue).reduce(0, +), 8,
                       "a call counted twice or not at all")
    }

    func testALaterRegistrationOfTheSameVersionReplacesItWhole() throws {
        var first = RPCProgram(number: 0x2000_0101, version: 1)
        first.addImmediateProcedure(1) { (value: UInt32, _) in value }
        var second = RPCProgram(number: 0x2000_0101, version: 1)
        second.addImmediateProcedure(2) { (value: UInt32, _) in value }
        let dispatcher = dispatcher([first, second])
        let loop = EmbeddedEventLoop()
        let context = RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil)
        let one = try replyStatus(dispatcher.handle(message: call(procedure: 1, argument: 1), context: context,
                                                    allocator: ByteBufferAllocator(), eventLoop: loop) { { _, _ in } })
        let two = try replyStatus(dispatcher.handle(message: call(procedure: 2, argument: 1), context: context,
                                                    allocator: ByteBufferAllocator(), eventLoop: loop) { { _, _ in } })
        guard case .procedureUnavailable? = one else { return XCTFail("procedure 1 of the replaced registration: \(String(describing: one))") }
        guard case .success? = two else { return XCTFail("procedure 2: \(String(describing: two))") }
    }

    func testACallContextIsAValue() throws {
        let remote = try SocketAddress(ipAddress: "127.0.0.1", port: 1000)
        let original = RPCCallContext(transport: .tcp, remoteAddress: remote, localAddress: nil,
                                      peer: PeerCredentials(pid: 1, uid: 2, gid: 3))
        var copy = original
        copy.remoteAddress = try SocketAddress(ipAddress: "127.0.0.2", port: 2000)
        copy.transport = .udp
        copy.peer = nil
        copy.localAddress = remote
        XCTAssertEqual(original.remoteAddress, remote)
        XCTAssertEqual(original.transport, .tcp)
        XCTAssertEqual(original.peer, PeerCredentials(pid: 1, uid: 2, gid: 3))
        XCTAssertNil(original.localAddress)
        XCTAssertEqual(copy.remoteAddress?.port, 2000)
        XCTAssertEqual(copy.transport, .udp)
        XCTAssertNil(copy.peer)
        XCTAssertEqual(copy.localAddress, remote)
    }
}
