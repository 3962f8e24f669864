// What the RPCSEC_GSS tests share: a real keyserver (KEY_PROG + SRPC_KEYX over a unix
// socket) with strong keys for a client (uid 6001) and a server (uid 6002) in every group,
// a test program, and a TCP proxy that records both directions record by record and can
// change records on their way (the attacker in the middle).

import Foundation
import KeyCrypto
import KeyDirectory
import KeyServer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

let gssProgramNumber: UInt32 = 0x2000_0310
let gssClientNetname = "unix.6001@gss.example"
let gssServerNetname = "unix.6002@gss.example"

/// Long-term keys per group, made once per test process (ffdhe4096 keys take a moment).
let gssLongTermKeys: [GSSGroup: (client: DHPrivateKey, server: DHPrivateKey)] = {
    var keys: [GSSGroup: (DHPrivateKey, DHPrivateKey)] = [:]
    for group in GSSGroup.allCases {
        keys[group] = (DHPrivateKey.generate(group: group.dhGroup), DHPrivateKey.generate(group: group.dhGroup))
    }
    return keys
}()

/// A keyserver with both parties logged in, and a server factory.
final class GSSFixture: @unchecked Sendable {
    let directory: URL
    let keyserver: TestKeyserver
    var store: StrongKeyStore { keyserver.strong }
    var socket: String { directory.appendingPathComponent("keyservsock").path }
    /// How often procedure 1 ran, and who called it last.
    let runs = NIOLockedValueBox(0)
    let lastCaller = NIOLockedValueBox<RPCCaller?>(nil)
    var logger: Logger

    init(kssLeaseSeconds: UInt32 = 0) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gss-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        logger = Logger(label: "gss-test")
        logger.logLevel = .critical
        keyserver = try await TestKeyserver.start(socket: directory.appendingPathComponent("keyservsock").path, kssLeaseSeconds: kssLeaseSeconds)
        logIn()
    }

    /// keylogin for both parties, every group.
    func logIn() {
        for (group, keys) in gssLongTermKeys {
            for (uid, key) in [(UInt32(6001), keys.client), (6002, keys.server)] {
                let secret = key.secret.withUnsafeBytes { Array($0) }
                XCTAssertEqual(store.set(uid: uid, mechanism: group.keyserverMechanism, secret: secret), .keySuccess)
            }
        }
    }

    func shutdown() async {
        await keyserver.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    /// A server for the test program: procedure 1 echoes its opaque argument and counts
    /// runs; procedure 2 returns the caller's netname and mechanism.
    /// - Parameter publicKey: the server's directory; default: the test client's keys only.
    func startServer(configure: (inout GSSServer.Configuration) -> Void = { _ in },
                     policy: any RPCAuthorizationPolicy = SecurityPolicy(.verified),
                     host: String = "127.0.0.1",
                     now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 },
                     publicKey: (@Sendable (String, GSSGroup) -> DHPublicKey?)? = nil,
                     keys: (any PublicKeySource)? = nil) async throws
        -> (server: RPCServer, gss: GSSServer, tcp: SocketAddress, udp: SocketAddress) {
        var gssConfiguration = GSSServer.Configuration(serverNetname: gssServerNetname)
        configure(&gssConfiguration)
        let directory = publicKey ?? { netname, group in
            netname == gssClientNetname ? gssLongTermKeys[group]?.client.publicKey : nil
        }
        let source: any PublicKeySource = keys ?? ClosurePublicKeySource { netname, mechanism in
            GSSGroup(rawValue: mechanism.rawValue).flatMap { directory(netname, $0) }
        }
        let gss = GSSServer(configuration: gssConfiguration, keyserver: try KeyServerClient(socketPath: socket, uid: 6002), logger: logger,
                            now: now, keys: source)
        let runs = self.runs, lastCaller = self.lastCaller
        var program = RPCProgram(number: gssProgramNumber, version: 1, policy: policy)
        program.addImmediateProcedure(1) { (argument: GSSBlob, request) -> GSSBlob in
            runs.withLockedValue { $0 += 1 }
            lastCaller.withLockedValue { $0 = request.caller }
            return argument
        }
        program.addImmediateProcedure(2) { (_: XDRVoid, request) -> GSSBlob in
            GSSBlob(Array("\(request.caller.netname ?? "-") \(request.caller.mechanism ?? "-")".utf8))
        }
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), AuthSysServer(), gss]
        let server = RPCServer(programs: [program], configuration: configuration, logger: logger)
        return (server, gss, try await server.listenTCP(host: host), try await server.listenUDP(host: host))
    }

    func authenticator(group: GSSGroup = .ffdhe3072, service: GSSService = .privacy, uid: UInt32 = 6001,
                       now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 }) throws -> GSSClient {
        try GSSClient(clientNetname: gssClientNetname, serverNetname: gssServerNetname,
                      serverPublicKey: gssLongTermKeys[group]!.server.publicKey, service: service,
                      keyserver: try KeyServerClient(socketPath: socket, uid: uid), now: now)
    }

    func client(_ transport: RPCTransport, _ address: SocketAddress, _ authenticator: any RPCClientAuthenticator,
                callTimeout: TimeAmount = .seconds(10)) -> RPCClient {
        var configuration = RPCClient.Configuration()
        configuration.callTimeout = callTimeout
        configuration.udpInitialRetransmitInterval = .milliseconds(200)
        return RPCClient(transport: transport, address: address, program: gssProgramNumber, version: 1,
                         authenticator: authenticator, configuration: configuration)
    }
}

/// An opaque<> argument/result.
struct GSSBlob: XDRCodable, Sendable, Equatable {
    var bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    init(xdr buffer: inout ByteBuffer) throws(XDRError) { bytes = try buffer.readXDROpaqueBytes(maxLength: 1 << 20) }
    func encode(into buffer: inout ByteBuffer) { buffer.writeXDROpaque(bytes) }
}

/// A TCP proxy that sees whole RPC records: it records every record in both directions
/// and passes each through `transform` (which may change it or return nil to swallow it).
final class RecordProxy: @unchecked Sendable {
    enum Direction: Sendable { case toServer, toClient }
    typealias Transform = @Sendable (Direction, ByteBuffer) -> ByteBuffer?

    let records = NIOLockedValueBox<[(Direction, ByteBuffer)]>([])
    let transform = NIOLockedValueBox<Transform>({ _, record in record })
    private var channel: (any Channel)?

    func start(upstream: SocketAddress) async throws -> SocketAddress {
        let records = self.records, transform = self.transform
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(ByteToMessageHandler(RecordMarkingDecoder()))
                    try child.pipeline.syncOperations.addHandler(RecordPipe(upstream: upstream, records: records, transform: transform))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.channel = channel
        return channel.localAddress!
    }

    func stop() async {
        try? await channel?.close()
    }

    /// The recorded records of one direction.
    func recorded(_ direction: Direction) -> [ByteBuffer] {
        records.withLockedValue { $0.filter { $0.0 == direction }.map(\.1) }
    }

    static func frame(_ record: ByteBuffer) -> ByteBuffer {
        var out = ByteBuffer()
        out.writeInteger(UInt32(record.readableBytes) | 0x8000_0000)
        out.writeImmutableBuffer(record)
        return out
    }

    private final class RecordPipe: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let upstream: SocketAddress
        let records: NIOLockedValueBox<[(Direction, ByteBuffer)]>
        let transform: NIOLockedValueBox<Transform>
        var pending: [ByteBuffer] = []
        var outbound: (any Channel)?

        init(upstream: SocketAddress, records: NIOLockedValueBox<[(Direction, ByteBuffer)]>, transform: NIOLockedValueBox<Transform>) {
            self.upstream = upstream
            self.records = records
            self.transform = transform
        }

        final class Back: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            let client: any Channel
            let records: NIOLockedValueBox<[(Direction, ByteBuffer)]>
            let transform: NIOLockedValueBox<Transform>
            init(client: any Channel, records: NIOLockedValueBox<[(Direction, ByteBuffer)]>, transform: NIOLockedValueBox<Transform>) {
                self.client = client
                self.records = records
                self.transform = transform
            }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                let record = Self.unwrapInboundIn(data)
                records.withLockedValue { $0.append((.toClient, record)) }
                if let changed = transform.withLockedValue({ $0 })(.toClient, record) {
                    client.writeAndFlush(RecordProxy.frame(changed), promise: nil)
                }
            }
            func channelInactive(context: ChannelHandlerContext) { client.close(promise: nil) }
        }

        func channelActive(context: ChannelHandlerContext) {
            let client = context.channel
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let records = self.records, transform = self.transform
            ClientBootstrap(group: context.eventLoop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RecordMarkingDecoder()))
                        try channel.pipeline.syncOperations.addHandler(Back(client: client, records: records, transform: transform))
                    }
                }
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
            let record = Self.unwrapInboundIn(data)
            records.withLockedValue { $0.append((.toServer, record)) }
            guard let changed = transform.withLockedValue({ $0 })(.toServer, record) else { return }
            let framed = RecordProxy.frame(changed)
            if let outbound {
                outbound.writeAndFlush(framed, promise: nil)
            } else {
                pending.append(framed)
            }
        }

        func channelInactive(context: ChannelHandlerContext) { outbound?.close(promise: nil) }
    }
}

/// Sends one framed record on a new TCP connection; returns the reply, or nil when the
/// server sent none within `timeout`.
func sendRawRecord(_ record: ByteBuffer, to address: SocketAddress, timeout: TimeAmount = .seconds(2)) async throws -> RPCReply? {
    final class OneReply: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let done: EventLoopPromise<ByteBuffer?>
        init(done: EventLoopPromise<ByteBuffer?>) { self.done = done }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { done.succeed(Self.unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) { done.succeed(nil) }
    }
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let done = loop.makePromise(of: ByteBuffer?.self)
    let channel = try await ClientBootstrap(group: loop)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RecordMarkingDecoder()))
                try channel.pipeline.syncOperations.addHandler(OneReply(done: done))
            }
        }
        .connect(to: address).get()
    try await channel.writeAndFlush(RecordProxy.frame(record))
    loop.scheduleTask(in: timeout) { done.succeed(nil) }
    let reply = try await done.futureResult.get()
    try? await channel.close()
    return try reply.map { try RPCReply.decode($0) }
}
