// A live UDP server against floods (issue 13 items 1-2): a million garbage datagrams that
// get no reply leave the server's memory where it was (ATTACKS.md #30), and calls that
// suspend cannot pile up without bound, because each socket caps its calls in flight and
// drops the excess (counted, logged at a bounded rate) while still answering afterwards.
// RSS is the test process's own (the server runs in it), read from /proc/self/status.

import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
import XDR
@testable import ONCRPC

/// The resident set size of this process, in bytes.
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
    return kib * 1024
}

/// Opens the gate for every call waiting at it.
final class CallGate: Sendable {
    private struct State {
        var open = false
        var waiting: [CheckedContinuation<Void, Never>] = []
        var running = 0
        var mostRunning = 0
        var started = 0
    }
    private let state = NIOLockedValueBox(State())

    /// Waits until `open()`; counts how many wait at once.
    func pass() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLockedValue { state -> Bool in
                state.started += 1
                if state.open { return true }
                state.running += 1
                state.mostRunning = max(state.mostRunning, state.running)
                state.waiting.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiting = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            state.running = 0
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    var running: Int { state.withLockedValue { $0.running } }
    var mostRunning: Int { state.withLockedValue { $0.mostRunning } }
    var started: Int { state.withLockedValue { $0.started } }
}

final class UDPResourceTests: XCTestCase {
    private static let held: UInt32 = 9

    /// Sends 8-byte garbage datagrams (xid, then msg_type 1 = a reply, which a server drops
    /// without answering), every one with another xid, until `count` of them have reached
    /// the server (the kernel drops some when the sender runs ahead; those do not count).
    /// Returns how many were sent. A plain socket, not NIO: in a debug build NIO's datagram
    /// write path costs more per datagram than the server under test does.
    private func sendGarbage(_ count: Int, firstXID: UInt32, to server: SocketAddress, received: () -> Int) async throws -> Int {
        guard case let .v4(address) = server else { throw ChannelError.operationUnsupported }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var target = address.address
        let connected = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0)
        let batch = 32
        let start = received()
        var sent = 0
        var lost = 0
        var datagram: (UInt32, UInt32) = (0, UInt32(1).bigEndian)
        while received() - start < count && sent < 4 * count {
            for i in 0..<batch {
                datagram.0 = (firstXID &+ UInt32(truncatingIfNeeded: sent + i)).bigEndian
                _ = withUnsafeBytes(of: &datagram) { send(fd, $0.baseAddress, 8, 0) }
            }
            sent += batch
            // Stay at most two batches ahead of the server (its default 208 KiB receive
            // buffer holds only about a hundred small datagrams on loopback); when it makes
            // no progress for a while, what is still outstanding was dropped.
            var seen = received()
            var idle = 0
            while sent - (seen - start) - lost > 2 * batch {
                try await Task.sleep(nanoseconds: 500_000)
                let now = received()
                idle = now == seen ? idle + 1 : 0
                seen = now
                if idle == 20 {
                    lost = sent - (now - start)
                }
            }
        }
        return sent
    }

    func testAMillionGarbageDatagramsLeaveTheServerRSSBounded() async throws {
        let server = RPCServer(programs: TestProgram.make(counter: NIOLockedValueBox(0)), logger: quietLogger())
        let address = try await server.listenUDP()
        let received = { server.statistics.udpDatagramsReceived }

        // Warm up allocators, buffers and the cache's own full size first.
        _ = try await sendGarbage(20_000, firstXID: 0x8000_0000, to: address, received: received)
        let before = residentBytes()
        let receivedBefore = received()
        let sent = try await sendGarbage(1_000_000, firstXID: 0, to: address, received: received)
        let arrived = received() - receivedBefore
        let after = residentBytes()
        print("UDP garbage flood: \(sent) sent, \(arrived) received, RSS \(before >> 20) -> \(after >> 20) MiB")

        XCTAssertGreaterThanOrEqual(arrived, 1_000_000, "the flood did not reach the server")
        // On main the order slots of the no-reply calls stayed: 91 MiB more here.
        XCTAssertLessThan(after - before, 24 << 20, "RSS grew by \((after - before) >> 20) MiB over \(arrived) garbage datagrams")
        // And the server still answers.
        let client = RPCClient(transport: .udp, address: address, program: TestProgram.number, version: 1)
        let reply = try await client.call(TestProgram.echo, TestText("after the flood"), returning: TestText.self)
        XCTAssertEqual(reply.value, "after the flood")
        await client.close()
        await server.shutdown()
    }

    func testCallsInFlightPerUDPSocketAreCappedAndTheServerAnswersAfterwards() async throws {
        let gate = CallGate()
        var program = TestProgram.make(counter: NIOLockedValueBox(0))
        program[0].addProcedure(Self.held) { (tag: UInt32, _) async throws -> UInt32 in
            await gate.pass()
            return tag
        }
        var configuration = RPCServer.Configuration()
        configuration.maximumUDPCallsInFlight = 8
        configuration.refusalLogInterval = .seconds(60)
        let logs = LogCapture()
        let server = RPCServer(programs: program, configuration: configuration, logger: logs.logger(level: .info))
        let address = try await server.listenUDP()
        let peer = try await RawUDPPeer(to: address)

        // 200 calls that suspend, all different.
        for xid in 0..<200 as Range<UInt32> {
            try await peer.send(CallBytes.call(xid: xid, procedure: Self.held, arguments: CallBytes.word(xid)))
        }
        let deadline = NIODeadline.now() + .seconds(20)
        while server.statistics.udpDatagramsReceived < 200 && NIODeadline.now() < deadline {
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        while gate.running < 8 && NIODeadline.now() < deadline {
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        let statistics = server.statistics
        XCTAssertEqual(statistics.udpDatagramsReceived, 200)
        XCTAssertEqual(gate.running, 8, "calls waiting in their procedure")
        XCTAssertLessThanOrEqual(gate.mostRunning, 8, "calls in flight beyond the cap")
        XCTAssertLessThanOrEqual(statistics.udpCallsInFlightHighWater, 8)
        XCTAssertEqual(statistics.udpCallsDroppedInFlightLimit, 192)
        let dropLines = logs.lines { $0.message.hasPrefix("UDP calls dropped") }
        XCTAssertEqual(dropLines.count, 1, "one rate-limited line, not one per dropped datagram")

        // Released, the 8 held calls are answered, and a new call is served.
        gate.open()
        let replies = try await peer.received(atLeast: 8, timeout: .seconds(10))
        XCTAssertEqual(replies.count, 8)
        let client = RPCClient(transport: .udp, address: address, program: TestProgram.number, version: 1)
        let reply = try await client.call(Self.held, UInt32(4242), returning: UInt32.self)
        XCTAssertEqual(reply, 4242)
        await client.close()
        await peer.close()
        await server.shutdown()
        let counted = logs.lines { $0.message.hasPrefix("UDP calls dropped") }.compactMap { Int($0.metadata["count"] ?? "") }
        XCTAssertEqual(counted.reduce(0, +), 192, "every drop is in the log's counts")
    }
}
