// Hostile and broken input against a live server: each case gets the right wire status (or
// is dropped, or closes only its own connection), and afterwards a well-behaved client is
// still served. Golden replies are spelled out word by word.

import NIOCore
import NIOPosix
import XCTest
import XDR
@testable import ONCRPC

final class HostileInputTests: XCTestCase {
    private var running: RunningServer!

    override func setUp() async throws {
        var configuration = RPCServer.Configuration()
        configuration.idleTimeout = .milliseconds(300)
        configuration.maximumRecordSize = 64 * 1024
        configuration.maximumConnections = 64
        configuration.duplicateRequestCacheCapacity = 16
        running = try await RunningServer.start(configuration: configuration)
    }

    override func tearDown() async throws {
        await running.server.shutdown()
    }

    private let w = CallBytes.word

    /// A fresh, well-behaved client is answered on both transports.
    private func assertStillServing(file: StaticString = #filePath, line: UInt = #line) async throws {
        for transport in RPCTransport.allCases {
            let client = running.client(transport)
            let reply = try await client.call(TestProgram.echo, TestText("still here"), returning: TestText.self)
            XCTAssertEqual(reply.value, "still here", file: file, line: line)
            await client.close()
        }
    }

    /// Sends `call` over TCP and UDP and checks both replies equal `expected`.
    private func assertReply(to call: [UInt8], is expected: [UInt8], file: StaticString = #filePath, line: UInt = #line) async throws {
        let tcp = try await RawTCPPeer(to: running.tcp)
        try await tcp.sendRecord(call)
        let tcpReply = try await tcp.nextRecord()
        XCTAssertEqual(tcpReply.map { hexString(ByteBuffer(bytes: $0)) }, hexString(ByteBuffer(bytes: expected)), "TCP", file: file, line: line)
        await tcp.close()
        let udp = try await RawUDPPeer(to: running.udp)
        try await udp.send(call)
        let udpReplies = try await udp.received(atLeast: 1)
        XCTAssertEqual(udpReplies.first.map { hexString(ByteBuffer(bytes: $0)) }, hexString(ByteBuffer(bytes: expected)), "UDP", file: file, line: line)
        await udp.close()
    }

    func testRPCVersion3GetsRPCMismatch2To2() async throws {
        try await assertReply(
            to: CallBytes.call(xid: 0x0a0b_0c0d, rpcvers: 3, procedure: 0),
            is: w(0x0a0b_0c0d) + w(1) + w(1) + w(0) + w(2) + w(2)
        )
        try await assertStillServing()
    }

    func testUnknownProgramVersionProcedure() async throws {
        try await assertReply(to: CallBytes.call(xid: 1, program: 0x2000_0999, procedure: 0),
                              is: w(1) + w(1) + w(0) + w(0) + w(0) + w(1))
        try await assertReply(to: CallBytes.call(xid: 2, version: 9, procedure: 0),
                              is: w(2) + w(1) + w(0) + w(0) + w(0) + w(2) + w(1) + w(2))
        try await assertReply(to: CallBytes.call(xid: 3, procedure: 42),
                              is: w(3) + w(1) + w(0) + w(0) + w(0) + w(3))
        try await assertStillServing()
    }

    func testStringLengthLargerThanTheRecordIsGarbageArgs() async throws {
        let args = w(0xffff_fff0) + Array("abc".utf8) + [0]
        try await assertReply(to: CallBytes.call(xid: 4, procedure: TestProgram.echo, arguments: args),
                              is: w(4) + w(1) + w(0) + w(0) + w(0) + w(4))
        // NULL takes void: bytes after it are garbage.
        try await assertReply(to: CallBytes.call(xid: 16, procedure: 0, arguments: w(1)),
                              is: w(16) + w(1) + w(0) + w(0) + w(0) + w(4))
        // Arguments with bytes left over are garbage too: a decoder consumes exactly.
        try await assertReply(to: CallBytes.call(xid: 5, procedure: TestProgram.echo, arguments: CallBytes.string("ok") + w(7)),
                              is: w(5) + w(1) + w(0) + w(0) + w(0) + w(4))
        try await assertStillServing()
    }

    func testOversizedAndUnknownCredentialsAreBadCred() async throws {
        let longCredential = w(1) + w(404) + [UInt8](repeating: 0, count: 404)
        try await assertReply(to: CallBytes.call(xid: 6, procedure: 0, credential: longCredential),
                              is: w(6) + w(1) + w(1) + w(1) + w(1))
        try await assertReply(to: CallBytes.call(xid: 7, procedure: 0, credential: w(99) + w(0)),
                              is: w(7) + w(1) + w(1) + w(1) + w(1))
        // AUTH_SYS body that does not decode exactly.
        try await assertReply(to: CallBytes.call(xid: 8, procedure: 0, credential: w(1) + w(4) + w(0)),
                              is: w(8) + w(1) + w(1) + w(1) + w(1))
        try await assertStillServing()
    }

    func testTruncatedCallsAreDroppedAndTheConnectionKeepsServing() async throws {
        let tcp = try await RawTCPPeer(to: running.tcp)
        try await tcp.sendRecord([0, 0, 0, 9, 0, 0])           // not even an xid and type
        try await tcp.sendRecord(CallBytes.call(xid: 9, procedure: 0).prefix(30).map { $0 })  // cut inside the credential
        // The same connection still answers a good call.
        try await tcp.sendRecord(CallBytes.call(xid: 10, procedure: 0))
        var received = try await tcp.waitForBytes { $0.readableBytes >= 2 * 4 + 20 + 24 }
        var decoder = RecordMarkingDecoder()
        let replies = [try decoder.nextRecord(from: &received), try decoder.nextRecord(from: &received)]
        // The first was unreadable: dropped. The second had an xid but its credential was
        // cut: AUTH_BADCRED. The third is answered normally.
        XCTAssertEqual(replies.map { $0.map(hexString) }, [
            hexString(ByteBuffer(bytes: w(9) + w(1) + w(1) + w(1) + w(1))),
            hexString(ByteBuffer(bytes: w(10) + w(1) + w(0) + w(0) + w(0) + w(0))),
        ])
        await tcp.close()

        let udp = try await RawUDPPeer(to: running.udp)
        try await udp.send([1, 2, 3])
        try await udp.send(Array(CallBytes.call(xid: 15, procedure: 0).prefix(20)))   // no procedure: dropped
        try await udp.send(Array(CallBytes.call(xid: 11, procedure: 0).prefix(30)))   // cut credential: AUTH_BADCRED
        try await udp.send(CallBytes.call(xid: 12, procedure: 0))
        let datagrams = try await udp.received(atLeast: 2)
        XCTAssertEqual(datagrams.map { Array($0.prefix(4)) }.sorted { $0.lexicographicallyPrecedes($1) }, [w(11), w(12)])
        await udp.close()
        try await assertStillServing()
    }

    func testHugeFragmentHeaderClosesOnlyThatConnection() async throws {
        let tcp = try await RawTCPPeer(to: running.tcp)
        try await tcp.send(w(0x7fff_ffff))
        let closed = try await tcp.waitForClose()
        XCTAssertTrue(closed, "a fragment over the record limit closes the connection at once")
        try await assertStillServing()
    }

    func testRecordOverTheLimitInSmallFragmentsCloses() async throws {
        let tcp = try await RawTCPPeer(to: running.tcp)
        // 64 KiB limit: send 2 KiB non-final fragments until past it.
        for _ in 0..<40 {
            try? await tcp.send(w(2048) + [UInt8](repeating: 0, count: 2048))
            if tcp.handler.closed.withLockedValue({ $0 }) { break }
        }
        let closed = try await tcp.waitForClose()
        XCTAssertTrue(closed)
        try await assertStillServing()
    }

    func testManyFragmentsAreReassembled() async throws {
        let tcp = try await RawTCPPeer(to: running.tcp)
        let call = CallBytes.call(xid: 13, procedure: TestProgram.echo, arguments: CallBytes.string("in pieces"))
        var stream: [UInt8] = []
        for (i, byte) in call.enumerated() {
            let last: UInt32 = i == call.count - 1 ? 0x8000_0000 : 0
            stream += w(last | 1) + [byte]
        }
        try await tcp.send(stream)
        let reply = try await tcp.nextRecord()
        XCTAssertEqual(reply.map { hexString(ByteBuffer(bytes: $0)) },
                       hexString(ByteBuffer(bytes: w(13) + w(1) + w(0) + w(0) + w(0) + w(0) + CallBytes.string("in pieces"))))
        await tcp.close()
    }

    func testPipelinedCallsAreAllAnswered() async throws {
        let tcp = try await RawTCPPeer(to: running.tcp)
        var stream: [UInt8] = []
        for xid in 100..<150 as Range<UInt32> {
            let call = CallBytes.call(xid: xid, procedure: xid % 2 == 0 ? TestProgram.echo : TestProgram.slowEcho,
                                      arguments: CallBytes.string("n\(xid)"))
            stream += w(UInt32(call.count) | 0x8000_0000) + call
        }
        try await tcp.send(stream)
        let all = try await tcp.waitForBytes(timeout: .seconds(10)) { wholeRecords(in: $0).count == 50 }
        var xids: Set<UInt32> = []
        for record in wholeRecords(in: all) {
            let reply = try RPCReply.decode(record)
            guard case let .accepted(_, .success(results)) = reply.status else { return XCTFail("\(reply)") }
            XCTAssertEqual(try results.decodeXDRExactly(TestText.self).value, "n\(reply.xid)")
            xids.insert(reply.xid)
        }
        XCTAssertEqual(xids, Set(100..<150))
        await tcp.close()
    }

    func testCallsSplitAtEveryByteBoundaryOnOneConnectionAreAllAnswered() async throws {
        // The server frames records itself (no ByteToMessageHandler since issue 18's second
        // trim): records cut anywhere, several in one read, one in many, and a record of two
        // fragments must come out whole and in order.
        let tcp = try await RawTCPPeer(to: running.tcp)
        var stream: [UInt8] = []
        for xid in 200..<203 as Range<UInt32> {
            let call = CallBytes.call(xid: xid, procedure: TestProgram.echo, arguments: CallBytes.string("s\(xid)"))
            stream += w(UInt32(call.count) | 0x8000_0000) + call
        }
        let split = CallBytes.call(xid: 203, procedure: TestProgram.echo, arguments: CallBytes.string("s203"))
        stream += w(UInt32(10)) + split.prefix(10) + w(UInt32(split.count - 10) | 0x8000_0000) + split.dropFirst(10)
        var offset = 0, chunk = 1
        while offset < stream.count {
            let end = min(stream.count, offset + chunk)
            try await tcp.send(Array(stream[offset..<end]))
            try await Task.sleep(nanoseconds: 1_000_000)  // most chunks arrive as reads of their own
            offset = end
            chunk = chunk % 7 + 1
        }
        let all = try await tcp.waitForBytes(timeout: .seconds(10)) { wholeRecords(in: $0).count == 4 }
        var xids: [UInt32] = []
        for record in wholeRecords(in: all) {
            let reply = try RPCReply.decode(record)
            guard case let .accepted(_, .success(results)) = reply.status else { return XCTFail("\(reply)") }
            XCTAssertEqual(try results.decodeXDRExactly(TestText.self).value, "s\(reply.xid)")
            xids.append(reply.xid)
        }
        XCTAssertEqual(xids, [200, 201, 202, 203], "answered in order")
        await tcp.close()
    }

    func testAConnectionThatKeepsCallingOutlivesTheIdleTimeout() async throws {
        // 300 ms idle timeout (setUp); a call every 100 ms for over a second keeps it open.
        let tcp = try await RawTCPPeer(to: running.tcp)
        for (index, xid) in (300..<312 as Range<UInt32>).enumerated() {
            try await tcp.sendRecord(CallBytes.call(xid: xid, procedure: 0))
            let received = try await tcp.waitForBytes { wholeRecords(in: $0).count == index + 1 }
            XCTAssertEqual(wholeRecords(in: received).count, index + 1, "call \(xid) unanswered")
            XCTAssertFalse(tcp.handler.closed.withLockedValue { $0 }, "closed while in use, before call \(xid)")
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let closed = try await tcp.waitForClose(timeout: .seconds(5))
        XCTAssertTrue(closed, "and once it stops, the idle timeout closes it")
        await tcp.close()
    }

    func testThousandConnectionsOpenedAndDropped() async throws {
        let address = running.tcp
        for _ in 0..<20 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let peer = try await RawTCPPeer(to: address)
                        await peer.close()
                    }
                }
                try await group.waitForAll()
            }
        }
        // The server notices every close; none is left open.
        let deadline = NIODeadline.now() + .seconds(5)
        while running.server.connectionCount > 0 && NIODeadline.now() < deadline {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertEqual(running.server.connectionCount, 0)
        try await assertStillServing()
    }

    func testStalledHalfRecordIsClosedByTheIdleTimeout() async throws {
        let tcp = try await RawTCPPeer(to: running.tcp)
        let call = CallBytes.call(xid: 14, procedure: 0)
        try await tcp.send(w(UInt32(call.count) | 0x8000_0000) + call.prefix(10))
        let closed = try await tcp.waitForClose(timeout: .seconds(5))
        XCTAssertTrue(closed, "a peer that stalls mid-record is disconnected after the idle timeout")
        try await assertStillServing()
    }

    func testConnectionsBeyondTheLimitAreRefusedAndOthersStillServed() async throws {
        var peers: [RawTCPPeer] = []
        for _ in 0..<64 { peers.append(try await RawTCPPeer(to: running.tcp)) }
        let extra = try await RawTCPPeer(to: running.tcp)
        let refused = try await extra.waitForClose(timeout: .seconds(3))
        XCTAssertTrue(refused, "connection 65 is closed on accept")
        for peer in peers { await peer.close() }
        let deadline = NIODeadline.now() + .seconds(5)
        while running.server.connectionCount > 0 && NIODeadline.now() < deadline {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        try await assertStillServing()
    }

    func testUDPRetransmissionIsAnsweredFromTheDuplicateRequestCache() async throws {
        let udp = try await RawUDPPeer(to: running.udp)
        let call = CallBytes.call(xid: 77, procedure: TestProgram.count, arguments: w(1))
        try await udp.send(call)
        let first = try await udp.received(atLeast: 1)
        try await udp.send(call)   // retransmission: same xid, bytes, address
        let both = try await udp.received(atLeast: 2)
        XCTAssertEqual(both.count, 2)
        XCTAssertEqual(both[0], both[1], "the cached reply is resent")
        XCTAssertEqual(first[0].suffix(4), w(1))
        XCTAssertEqual(running.counter.withLockedValue { $0 }, 1, "the handler ran once")

        // Same xid, other arguments: a new call, which runs.
        try await udp.send(CallBytes.call(xid: 77, procedure: TestProgram.count, arguments: w(2)))
        let third = try await udp.received(atLeast: 3)
        XCTAssertEqual(third.last?.suffix(4).map { $0 }, w(2))
        XCTAssertEqual(running.counter.withLockedValue { $0 }, 2)

        // Another client address with the same xid and bytes is another call.
        let other = try await RawUDPPeer(to: running.udp)
        try await other.send(call)
        _ = try await other.received(atLeast: 1)
        XCTAssertEqual(running.counter.withLockedValue { $0 }, 3)
        await udp.close()
        await other.close()
    }

    func testOurUDPClientRetransmitsAndTheHandlerRunsOnce() async throws {
        // The slow procedure outlasts two retransmission intervals: the server sees the
        // retransmissions while the call is in progress and drops them.
        var configuration = RPCClient.Configuration()
        configuration.udpInitialRetransmitInterval = .milliseconds(40)
        configuration.udpMaximumRetransmitInterval = .milliseconds(80)
        let client = running.client(.udp, configuration: configuration)
        let reply = try await client.call(TestProgram.slowEcho, TestText("once"), returning: TestText.self)
        XCTAssertEqual(reply.value, "once")
        await client.close()
    }
}
