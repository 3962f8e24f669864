// A small recording proxy between an AUTH_DH client and server: the calls it captured are
// replayed byte for byte on a fresh connection and refused, and the handler never runs
// for them. Also: handlers see the local user's uid and groups for netnames of our domain.

import Foundation
import KeyCrypto
import KeyServer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

/// One proxied connection: connects upstream when the client connects, holds the client's
/// bytes until then, records them, and pipes both ways.
private final class ProxyConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let upstream: SocketAddress
    private let record: NIOLockedValueBox<ByteBuffer>
    private var pending: [ByteBuffer] = []
    private var outbound: (any Channel)?

    init(upstream: SocketAddress, record: NIOLockedValueBox<ByteBuffer>) {
        self.upstream = upstream
        self.record = record
    }

    /// Carries the server's bytes back to the client.
    final class Back: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let client: any Channel
        init(client: any Channel) { self.client = client }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            client.writeAndFlush(Self.unwrapInboundIn(data), promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) { client.close(promise: nil) }
    }

    func channelActive(context: ChannelHandlerContext) {
        let client = context.channel
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelInitializer { $0.pipeline.addHandler(Back(client: client)) }
            .connect(to: upstream)
            .whenComplete { result in
                let handler = bound.value
                switch result {
                case let .success(channel):
                    handler.outbound = channel
                    for bytes in handler.pending { channel.writeAndFlush(bytes, promise: nil) }
                    handler.pending = []
                case .failure:
                    client.close(promise: nil)
                }
            }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = Self.unwrapInboundIn(data)
        record.withLockedValue { var copy = bytes; $0.writeBuffer(&copy) }
        if let outbound {
            outbound.writeAndFlush(bytes, promise: nil)
        } else {
            pending.append(bytes)
        }
    }

    func channelInactive(context: ChannelHandlerContext) { outbound?.close(promise: nil) }
}

private final class RecordingProxy: @unchecked Sendable {
    let captured = NIOLockedValueBox(ByteBuffer())
    var channel: (any Channel)!

    func start(upstream: SocketAddress) async throws -> SocketAddress {
        let captured = self.captured
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.pipeline.addHandler(ProxyConnection(upstream: upstream, record: captured)) }
            .bind(host: "127.0.0.1", port: 0).get()
        return channel.localAddress!
    }
}

final class ReplayProxyTests: XCTestCase {
    let alice = try! DHPrivateKey(group: .dh192des, secretHex: "053346dd92b7562f80e5431672a175aeb567818bab69c742")
    let bob = try! DHPrivateKey(group: .dh192des, secretHex: "1d3c043748cab5dac980040b71efd18e260d3f2caa4db5d4")

    func testCapturedCallsReplayedByteForByteAreRefused() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        let socket = work.appendingPathComponent("ks").path
        let core = KeyServerCore()
        var ksConfiguration = RPCServer.Configuration()
        ksConfiguration.authenticators = [AuthSysServer()]
        let keyserver = RPCServer(programs: KeyServerService(core: core, logger: logger).programs, configuration: ksConfiguration, logger: logger)
        try await keyserver.listenUnix(path: socket)
        _ = core.setSecret(uid: 0, hex: Array(alice.secretHex.utf8))
        _ = core.setSecret(uid: 6002, hex: Array(bob.secretHex.utf8))

        let clientKey = alice.publicKey
        let verifier = AuthDHServer(keyserver: try KeyServerClient(socketPath: socket, uid: 6002), localDomain: "example.org") { $0 == "unix.0@example.org" ? clientKey : nil }
        let runs = NIOLockedValueBox(0)
        let seen = NIOLockedValueBox<RPCCaller?>(nil)
        var program = RPCProgram(number: 0x2000_0300, version: 1, policy: RequireFlavors([.dh]))
        program.addImmediateProcedure(1) { (_: XDRVoid, request) -> UInt32 in
            seen.withLockedValue { $0 = request.caller }
            return UInt32(runs.withLockedValue { $0 += 1; return $0 })
        }
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [verifier]
        let server = RPCServer(programs: [program], configuration: configuration, logger: logger)
        let address = try await server.listenTCP()
        let proxy = RecordingProxy()
        let proxied = try await proxy.start(upstream: address)

        let client = RPCClient(transport: .tcp, address: proxied, program: 0x2000_0300, version: 1,
                               authenticator: AuthDHClient(clientNetname: "unix.0@example.org", serverNetname: "unix.server@example.org",
                                                           serverPublicKey: bob.publicKey, keyserver: try KeyServerClient(socketPath: socket, uid: 0)))
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        XCTAssertEqual(runs.withLockedValue { $0 }, 2)
        // The handler got the local user behind unix.0@example.org.
        let caller = try XCTUnwrap(seen.withLockedValue { $0 })
        XCTAssertEqual(caller.netname, "unix.0@example.org")
        XCTAssertTrue(caller.isVerified)
        XCTAssertEqual(caller.uid, 0)
        XCTAssertEqual(caller.gid, 0)

        // The two records the proxy saw, replayed verbatim on a new connection.
        var stream = proxy.captured.withLockedValue { $0 }
        var decoder = RecordMarkingDecoder()
        var records: [ByteBuffer] = []
        while let record = try decoder.nextRecord(from: &stream) { records.append(record) }
        XCTAssertEqual(records.count, 2)
        guard case .fullname? = try? AuthDHCredential.decode(try RPCCall.decode(records[0]).credential.body),
              case .nickname? = try? AuthDHCredential.decode(try RPCCall.decode(records[1]).credential.body) else {
            return XCTFail("on the wire: a fullname call, then a nickname call")
        }
        for (record, expected) in [(records[0], AuthStatus.rejectedCredential), (records[1], .rejectedVerifier)] {
            let reply = try await sendRaw(record, to: address)
            XCTAssertEqual(reply.status, .denied(.authError(expected)))
            XCTAssertEqual(reply.xid, try RPCCall.decode(record).xid)
        }
        XCTAssertEqual(runs.withLockedValue { $0 }, 2, "nothing replayed reached the handler")

        await client.close()
        try await proxy.channel.close()
        await server.shutdown()
        await keyserver.shutdown()
    }

    /// Sends one record's exact bytes on a new connection and reads one reply.
    private func sendRaw(_ record: ByteBuffer, to address: SocketAddress) async throws -> RPCReply {
        final class OneReply: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            var buffer = ByteBuffer()
            var decoder = RecordMarkingDecoder()
            let done: EventLoopPromise<ByteBuffer>
            init(done: EventLoopPromise<ByteBuffer>) { self.done = done }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                var chunk = Self.unwrapInboundIn(data)
                buffer.writeBuffer(&chunk)
                if let record = try? decoder.nextRecord(from: &buffer) { done.succeed(record) }
            }
            func channelInactive(context: ChannelHandlerContext) { done.fail(ChannelError.eof) }
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: ByteBuffer.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { $0.pipeline.addHandler(OneReply(done: done)) }
            .connect(to: address).get()
        var framed = ByteBuffer()
        framed.writeInteger(UInt32(record.readableBytes) | 0x8000_0000)
        var copy = record
        framed.writeBuffer(&copy)
        try await channel.writeAndFlush(framed)
        let reply = try RPCReply.decode(try await done.futureResult.get())
        try? await channel.close()
        return reply
    }
}
