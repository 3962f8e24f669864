// RPCAuthDecision.disconnecting: a flavor refuses a call and asks for the connection to go
// (a source over its handshake rate, issue 13's bad-INIT flood). The peer gets that call's
// answer, nothing after it on the same connection is decoded or answered, the connection
// closes, and everyone else — other connections, UDP — is served as before.

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
@testable import ONCRPC

/// A private flavor whose every call is refused with AUTH_TOOWEAK and a disconnect; counts
/// the calls it saw.
private struct RefuseAndDisconnect: RPCServerAuthenticator {
    static let flavor = AuthFlavor(rawValue: 0x5EED)
    let seen: NIOLockedValueBox<Int>
    var flavor: AuthFlavor { Self.flavor }

    func authenticateImmediately(_ call: RPCCall, context: RPCCallContext) -> RPCAuthDecision? {
        seen.withLockedValue { $0 += 1 }
        return .disconnecting(.rejected(.tooWeak))
    }

    func authenticate(_ call: RPCCall, context: RPCCallContext) async -> RPCAuthDecision {
        authenticateImmediately(call, context: context)!
    }
}

final class DisconnectingDecisionTests: XCTestCase {
    private func framedCalls(_ count: Int, flavor: AuthFlavor) -> [UInt8] {
        var stream: [UInt8] = []
        for xid in 1...UInt32(count) {
            let call = CallBytes.call(xid: xid, procedure: TestProgram.echo, credential: CallBytes.word(flavor.rawValue) + CallBytes.word(0),
                                      arguments: CallBytes.string("x"))
            stream += CallBytes.word(UInt32(call.count) | 0x8000_0000) + call
        }
        return stream
    }

    func testTheRefusedCallIsAnsweredThenNothingMoreOnThatConnection() async throws {
        let seen = NIOLockedValueBox(0)
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), RefuseAndDisconnect(seen: seen)]
        let running = try await RunningServer.start(configuration: configuration)
        let server = running.server

        // 100 pipelined calls in one write: one is decoded and answered, then the connection goes.
        let peer = try await RawTCPPeer(to: running.tcp)
        try await peer.send(framedCalls(100, flavor: RefuseAndDisconnect.flavor))
        let closed = try await peer.waitForClose(timeout: .seconds(10))
        XCTAssertTrue(closed, "the server closed the connection")
        let bytes = peer.handler.received.withLockedValue { $0 }
        var replies = 0
        var buffer = bytes
        while let mark = buffer.readInteger(as: UInt32.self) {
            let length = Int(mark & 0x7fff_ffff)
            guard let record = buffer.readSlice(length: length) else { break }
            let reply = try RPCReply.decode(record)
            XCTAssertEqual(reply.xid, 1)
            guard case .denied(.authError(.tooWeak)) = reply.status else { return XCTFail("\(reply.status)") }
            replies += 1
        }
        XCTAssertLessThanOrEqual(replies, 1, "nothing after the refusal is answered")
        XCTAssertEqual(seen.withLockedValue { $0 }, 1, "nothing after the refusal is decoded")
        XCTAssertEqual(server.statistics.connectionsClosedRateLimited, 1)

        // Another connection, and calls of another flavor, are served.
        let client = running.client(.tcp)
        let echoed = try await client.call(TestProgram.echo, TestText("still here"), returning: TestText.self)
        XCTAssertEqual(echoed.value, "still here")
        await client.close()

        // On UDP the refusal is answered and the socket serves on.
        let udp = try await RawUDPPeer(to: running.udp)
        let call = CallBytes.call(xid: 7, procedure: TestProgram.echo, credential: CallBytes.word(RefuseAndDisconnect.flavor.rawValue) + CallBytes.word(0),
                                  arguments: CallBytes.string("x"))
        try await udp.send(call)
        let answer = try await udp.received(atLeast: 1).first
        let reply = try RPCReply.decode(ByteBuffer(bytes: try XCTUnwrap(answer)))
        guard case .denied(.authError(.tooWeak)) = reply.status else { return XCTFail("\(reply.status)") }
        let udpClient = running.client(.udp)
        let again = try await udpClient.call(TestProgram.echo, TestText("udp"), returning: TestText.self)
        XCTAssertEqual(again.value, "udp")
        await udpClient.close()
        await udp.close()
        await peer.close()
        await server.shutdown()
    }
}
