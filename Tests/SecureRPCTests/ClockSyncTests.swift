// Clock synchronisation of AUTH_DH clients: rpcbind GETTIME first, RFC 868 second, and the
// offset used in timestamps (PROTOCOL.md §3.8). Both time sources are served locally here.

import KeyCrypto
import KeyServer
import Logging
import NIOCore
import NIOPosix
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

final class ClockSyncTests: XCTestCase {
    private func client() throws -> AuthDHClient {
        // The keyserver is never asked here; any socket path will do.
        AuthDHClient(clientNetname: "unix.1@x", serverNetname: "unix.2@x", serverPublicKey: DHPrivateKey.generate(group: .dh192des).publicKey,
                     keyserver: try KeyServerClient(socketPath: "/nonexistent/keyservsock"))
    }

    func testRpcbindGetTimeIsUsed() async throws {
        let serverTime = UInt32(Date().timeIntervalSince1970) + 1000
        var rpcbind = RPCProgram(number: 100_000, version: 3)
        rpcbind.addImmediateProcedure(6) { (_: XDRVoid, _) -> UInt32 in serverTime }
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        let server = RPCServer(programs: [rpcbind], logger: logger)
        let address = try await server.listenTCP()
        let authenticator = try client()
        try await authenticator.synchroniseClock(host: "127.0.0.1", rpcbindPort: address.port!, timePort: 1)
        XCTAssertTrue((999...1001).contains(authenticator.clockOffset), "\(authenticator.clockOffset)")
        await server.shutdown()
    }

    func testRFC868IsTheFallback() async throws {
        // A time service 500 s behind us; no rpcbind anywhere.
        final class TimeService: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            func channelActive(context: ChannelHandlerContext) {
                var out = context.channel.allocator.buffer(capacity: 4)
                out.writeInteger(UInt32(Int64(Date().timeIntervalSince1970) - 500 + 2_208_988_800))
                let channel = context.channel
                context.writeAndFlush(NIOAny(out)).whenComplete { _ in channel.close(promise: nil) }
            }
        }
        let time = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(TimeService()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let authenticator = try client()
        try await authenticator.synchroniseClock(host: "127.0.0.1", rpcbindPort: 1, timePort: time.localAddress!.port!)
        XCTAssertTrue((-501...(-499)).contains(authenticator.clockOffset), "\(authenticator.clockOffset)")
        try await time.close()
    }

    /// Neither rpcbind nor the time service listening: an error, not a trap. (Before, the
    /// RFC 868 reader left its promise pending when the connect was refused, and NIO traps
    /// on a leaked promise.)
    func testNoTimeSourceIsAnErrorNotATrap() async throws {
        let authenticator = try client()
        do {
            try await authenticator.synchroniseClock(host: "127.0.0.1", rpcbindPort: 1, timePort: 1, timeout: .seconds(2))
            XCTFail("a clock was set from nothing")
        } catch {
            XCTAssertEqual(authenticator.clockOffset, 0)
        }
        // A leaked promise traps when the event loop lets go of it: give it the time to.
        try await Task.sleep(for: .milliseconds(300))
    }
}
