// RFC 2203 §5.3.3.1 over UDP: a retransmission carries a new sequence number (the server
// would drop the old one as a replay), and the client accepts the reply to whichever
// transmission gets through. A UDP proxy drops the first transmission of a call.

import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

/// Forwards datagrams between one client and a server; `drop` decides per call datagram.
private final class LossyUDPProxy: @unchecked Sendable {
    let seen = NIOLockedValueBox<[ByteBuffer]>([])
    private var front: (any Channel)!
    private var back: (any Channel)!

    final class Front: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let proxy: LossyUDPProxy
        let drop: @Sendable (ByteBuffer) -> Bool
        init(proxy: LossyUDPProxy, drop: @escaping @Sendable (ByteBuffer) -> Bool) {
            self.proxy = proxy
            self.drop = drop
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            proxy.client.withLockedValue { $0 = envelope.remoteAddress }
            proxy.seen.withLockedValue { $0.append(envelope.data) }
            if drop(envelope.data) { return }
            proxy.back.writeAndFlush(AddressedEnvelope(remoteAddress: proxy.server, data: envelope.data), promise: nil)
        }
    }

    final class Back: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let proxy: LossyUDPProxy
        init(proxy: LossyUDPProxy) { self.proxy = proxy }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            guard let client = proxy.client.withLockedValue({ $0 }) else { return }
            proxy.front.writeAndFlush(AddressedEnvelope(remoteAddress: client, data: envelope.data), promise: nil)
        }
    }

    let client = NIOLockedValueBox<SocketAddress?>(nil)
    let server: SocketAddress

    init(server: SocketAddress) { self.server = server }

    func start(drop: @escaping @Sendable (ByteBuffer) -> Bool) async throws -> SocketAddress {
        back = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { $0.pipeline.addHandler(Back(proxy: self)) }
            .bind(host: "127.0.0.1", port: 0).get()
        front = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { $0.pipeline.addHandler(Front(proxy: self, drop: drop)) }
            .bind(host: "127.0.0.1", port: 0).get()
        return front.localAddress!
    }

    func stop() async {
        try? await front.close()
        try? await back.close()
    }
}

final class GSSRetransmissionTests: XCTestCase {
    func testRetransmissionTakesANewSequenceNumberAndItsReplyIsAccepted() async throws {
        let fixture = try await GSSFixture()
        let (server, gss, _, udp) = try await fixture.startServer()
        let proxy = LossyUDPProxy(server: udp)
        let dropped = NIOLockedValueBox(false)
        let address = try await proxy.start { datagram in
            // Drop the first transmission of the first call to procedure 1.
            guard let call = try? RPCCall.decode(datagram), call.procedure == 1 else { return false }
            return dropped.withLockedValue { done in
                defer { done = true }
                return !done
            }
        }
        for service in [GSSService.privacy, .integrity, .none] {
            dropped.withLockedValue { $0 = false }
            proxy.seen.withLockedValue { $0 = [] }
            let client = fixture.client(.udp, address, try fixture.authenticator(group: .ffdhe2048, service: service))
            let echoed = try await client.call(1, GSSBlob([1, 2, 3]), returning: GSSBlob.self)
            XCTAssertEqual(echoed, GSSBlob([1, 2, 3]))
            let transmissions = try proxy.seen.withLockedValue { $0 }.map { try RPCCall.decode($0) }.filter { $0.procedure == 1 }
            XCTAssertEqual(transmissions.count, 2, "\(service): the first was dropped, the retransmission answered")
            XCTAssertEqual(transmissions[0].xid, transmissions[1].xid, "same xid")
            let sequences = try transmissions.map { try GSSCredential.decode($0.credential).sequence }
            XCTAssertNotEqual(sequences[0], sequences[1], "\(service): a new sequence number for the retransmission")
            await client.close()
        }
        XCTAssertEqual(fixture.runs.withLockedValue { $0 }, 3, "each call ran once")
        XCTAssertEqual(gss.statistics.replaysDropped, 0)
        await proxy.stop()
        await server.shutdown()
        await fixture.shutdown()
    }
}
