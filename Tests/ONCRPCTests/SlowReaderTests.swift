// A TCP peer that sends calls but does not read the replies (ATTACKS.md #7): the server
// must stop taking its calls once replies back up, instead of running them all and holding
// every reply in memory, and must still deliver everything to a peer that reads late.
// (Ported from the hostile-input work on the fuzz branch, with its server fix.)

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
import XDR
@testable import ONCRPC

private struct Zeros: XDREncodable, Sendable {
    var count: Int
    func encode(into buffer: inout ByteBuffer) {
        buffer.writeXDR(UInt32(count))
        buffer.writeRepeatingByte(0, count: count)
    }
}

final class SlowReaderTests: XCTestCase {
    private let bigReply: UInt32 = 1

    private func start(idleTimeout: TimeAmount = .seconds(120)) async throws -> (RPCServer, SocketAddress, NIOLockedValueBox<Int>) {
        let runs = NIOLockedValueBox(0)
        var program = RPCProgram(number: 0x2000_0102, version: 1)
        program.addImmediateProcedure(bigReply) { (size: UInt32, _) -> Zeros in
            runs.withLockedValue { $0 += 1 }
            return Zeros(count: Int(min(size, 1 << 20)))
        }
        var configuration = RPCServer.Configuration()
        configuration.idleTimeout = idleTimeout
        let server = RPCServer(programs: [program] + TestProgram.make(counter: NIOLockedValueBox(0)), configuration: configuration, logger: quietLogger())
        let address = try await server.listenTCP()
        return (server, address, runs)
    }

    private func calls(_ count: Int) -> [UInt8] {
        var stream: [UInt8] = []
        for xid in 0..<UInt32(count) {
            let call = CallBytes.call(xid: xid, program: 0x2000_0102, procedure: bigReply, arguments: CallBytes.word(64 * 1024))
            stream += CallBytes.word(UInt32(call.count) | 0x8000_0000) + call
        }
        return stream
    }

    private func assertServes(_ address: SocketAddress, file: StaticString = #filePath, line: UInt = #line) async throws {
        let client = RPCClient(transport: .tcp, address: address, program: TestProgram.number, version: 1)
        let reply = try await client.call(TestProgram.echo, TestText("still here"), returning: TestText.self)
        XCTAssertEqual(reply.value, "still here", file: file, line: line)
        await client.close()
    }

    func testPeerThatNeverReadsDoesNotMakeTheServerBufferEveryReply() async throws {
        let (server, address, runs) = try await start(idleTimeout: .milliseconds(500))
        let peer = try await RawTCPPeer(to: address, autoRead: false)
        try await peer.send(calls(1000))    // 64 MiB of replies asked for
        try await assertServes(address)
        let deadline = NIODeadline.now() + .seconds(10)
        while server.connectionCount > 0 && NIODeadline.now() < deadline {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTAssertEqual(server.connectionCount, 0, "the silent peer is closed at the idle timeout")
        let ran = runs.withLockedValue { $0 }
        XCTAssertGreaterThan(ran, 0)
        XCTAssertLessThan(ran, 500, "ran \(ran) of 1000 calls for a peer that reads nothing")
        await peer.close()
        try await assertServes(address)
        await server.shutdown()
    }

    func testPeerThatReadsLateStillGetsEveryReply() async throws {
        let (server, address, runs) = try await start()
        let peer = try await RawTCPPeer(to: address, autoRead: false)
        try await peer.send(calls(256))
        try await assertServes(address)
        try await peer.channel.setOption(.autoRead, value: true).get()
        peer.channel.read()
        let all = try await peer.waitForBytes(timeout: .seconds(30)) { $0.readableBytes >= 256 * (4 + 28 + 64 * 1024) }
        var copy = all
        var decoder = RecordMarkingDecoder(maximumRecordSize: 1 << 20)
        var xids: Set<UInt32> = []
        while let record = try decoder.nextRecord(from: &copy) {
            xids.insert(try RPCReply.decode(record).xid)
        }
        XCTAssertEqual(xids, Set(0..<256))
        XCTAssertEqual(runs.withLockedValue { $0 }, 256)
        await peer.close()
        await server.shutdown()
    }
}
