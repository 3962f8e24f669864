// Raw peers for hostile-input tests: send exact bytes over TCP or UDP (through NIO, no
// hand-written socket loops) and look at exactly what comes back.

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
@testable import ONCRPC

/// Collects whatever arrives on a channel.
final class CollectingHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let received = NIOLockedValueBox(ByteBuffer())
    let closed = NIOLockedValueBox(false)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = Self.unwrapInboundIn(data)
        received.withLockedValue { _ = $0.writeBuffer(&incoming) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.withLockedValue { $0 = true }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// A TCP connection that sends raw bytes.
final class RawTCPPeer: @unchecked Sendable {
    let channel: any Channel
    let handler = CollectingHandler()

    /// `from`: a local address to connect from (e.g. 127.0.0.2, to be another client host).
    init(to address: SocketAddress, from local: SocketAddress? = nil, autoRead: Bool = true) async throws {
        let handler = self.handler
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: autoRead)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
        if let local { bootstrap = bootstrap.bind(to: local) }
        channel = try await bootstrap.connect(to: address).get()
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Sends one call as a single-fragment record.
    func sendRecord(_ message: [UInt8]) async throws {
        var framed: [UInt8] = withUnsafeBytes(of: (UInt32(message.count) | 0x8000_0000).bigEndian, Array.init)
        framed += message
        try await send(framed)
    }

    /// Waits until `predicate` holds for the bytes received so far (or the peer closed), up
    /// to `timeout`; returns the bytes.
    func waitForBytes(timeout: TimeAmount = .seconds(5), until predicate: (ByteBuffer) -> Bool) async throws -> ByteBuffer {
        let deadline = NIODeadline.now() + timeout
        while NIODeadline.now() < deadline {
            let bytes = handler.received.withLockedValue { $0 }
            if predicate(bytes) || handler.closed.withLockedValue({ $0 }) { return bytes }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        return handler.received.withLockedValue { $0 }
    }

    /// Reads the first complete reply record (without its mark).
    func nextRecord(timeout: TimeAmount = .seconds(5)) async throws -> [UInt8]? {
        let bytes = try await waitForBytes(timeout: timeout) { buffer in
            guard let mark = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return false }
            return buffer.readableBytes >= 4 + Int(mark & 0x7fff_ffff)
        }
        guard let mark = bytes.getInteger(at: bytes.readerIndex, as: UInt32.self),
              bytes.readableBytes >= 4 + Int(mark & 0x7fff_ffff) else { return nil }
        return bytes.getBytes(at: bytes.readerIndex + 4, length: Int(mark & 0x7fff_ffff))
    }

    /// Waits until the server closes the connection.
    func waitForClose(timeout: TimeAmount = .seconds(5)) async throws -> Bool {
        let deadline = NIODeadline.now() + timeout
        while NIODeadline.now() < deadline {
            if handler.closed.withLockedValue({ $0 }) { return true }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        return false
    }

    func close() async {
        try? await channel.close()
    }
}

/// A UDP socket that sends raw datagrams to one server.
final class RawUDPPeer: @unchecked Sendable {
    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let datagrams = NIOLockedValueBox<[[UInt8]]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            datagrams.withLockedValue { $0.append(Array(envelope.data.readableBytesView)) }
        }
    }

    let channel: any Channel
    let collector = Collector()
    let server: SocketAddress

    init(to server: SocketAddress) async throws {
        self.server = server
        let collector = self.collector
        channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: server, data: ByteBuffer(bytes: bytes)))
    }

    /// Waits until `count` datagrams arrived or the timeout passed.
    func received(atLeast count: Int, timeout: TimeAmount = .seconds(3)) async throws -> [[UInt8]] {
        let deadline = NIODeadline.now() + timeout
        while NIODeadline.now() < deadline {
            let got = collector.datagrams.withLockedValue { $0 }
            if got.count >= count { return got }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        return collector.datagrams.withLockedValue { $0 }
    }

    func close() async {
        try? await channel.close()
    }
}

/// Builds call messages byte by byte, so tests can break any field.
enum CallBytes {
    static func word(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }

    static func call(xid: UInt32, rpcvers: UInt32 = 2, program: UInt32 = TestProgram.number, version: UInt32 = 1,
                     procedure: UInt32, credential: [UInt8] = word(0) + word(0), verifier: [UInt8] = word(0) + word(0),
                     arguments: [UInt8] = []) -> [UInt8] {
        word(xid) + word(0) + word(rpcvers) + word(program) + word(version) + word(procedure) + credential + verifier + arguments
    }

    static func string(_ s: String) -> [UInt8] {
        let utf8 = Array(s.utf8)
        return word(UInt32(utf8.count)) + utf8 + [UInt8](repeating: 0, count: (4 - utf8.count % 4) % 4)
    }
}

/// The whole records at the front of `buffer` (what a raw peer received), in order.
func wholeRecords(in buffer: ByteBuffer) -> [ByteBuffer] {
    var copy = buffer
    var decoder = RecordMarkingDecoder()
    var records: [ByteBuffer] = []
    while let record = try? decoder.nextRecord(from: &copy) { records.append(record) }
    return records
}
