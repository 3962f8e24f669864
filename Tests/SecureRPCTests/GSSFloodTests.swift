// Handshake admission under attack (issue 13 item 1, RPCSEC_GSS part). A flood of bad INITs
// from 127.0.0.2 naming 5,000 principals that all exist in the server's directory — each
// with its own key, so without admission every packet costs a directory lookup and a
// keyserver derive with a modexp — while a legitimate client on 127.0.0.1 sets up a
// context. The server's clock is frozen for the flood, so buckets do not refill and the
// bound on keyserver work is exact: the address's burst, then nothing. Also: the excess over
// the concurrency bound gets GSS_S_FAILURE / busy without any keyserver call.

import Foundation
import KeyCrypto
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

final class GSSFloodTests: XCTestCase {
    /// Keyserver derives so far (cache hits and misses: each one a KEYX_DERIVE call).
    private func derives(_ fixture: GSSFixture) -> Int {
        let statistics = fixture.store.cacheStatistics
        return statistics.hits + statistics.misses
    }

    func testBadInitFloodFromOneAddressCostsNoKeyserverWorkAndTheLegitimateClientGetsIn() async throws {
        let fixture = try await GSSFixture()
        let clock = ClockBox(Date().timeIntervalSince1970)
        // 5,000 principals with keys of their own (random group elements: valid public keys).
        let names = (0..<5_000).map { "unix.\(100_000 + $0)@gss.example" }
        var keys: [String: DHPublicKey] = [:]
        for name in names {
            var bytes = (0..<256).map { _ in UInt8.random(in: 0...255) }
            bytes[0] = .random(in: 1...0x7f)
            keys[name] = try DHPublicKey(group: .ffdhe2048, bytes: bytes)
        }
        let directory = keys
        let (server, gss, tcp, _) = try await fixture.startServer(now: { clock.now }, publicKey: { name, group in
            if name == gssClientNetname { return gssLongTermKeys[group]?.client.publicKey }
            return group == .ffdhe2048 ? directory[name] : nil
        })
        let limits = gss.configuration.admission
        // Bad INITs: right server, valid ephemeral key, fresh timestamp, random authenticator.
        let maker = try GSSInitMaker(client: gssClientNetname)
        let now = Date().timeIntervalSince1970
        let records = try names.enumerated().map { index, name in
            GSSInitMaker.record(try maker.token(at: now, clientName: name, forge: true), xid: UInt32(index + 1))
        }

        let derivesBefore = derives(fixture)
        let residentBefore = residentBytes()
        let flooder = Flooder()
        let flood = Task { try await flooder.send(records, from: "127.0.0.2", to: tcp, connections: 4) }
        // Once the flood is well under way, the legitimate client makes its context.
        var waits = 0
        while flooder.sent < 1_000, waits < 6_000 {
            try await Task.sleep(for: .milliseconds(5))
            waits += 1
        }
        XCTAssertGreaterThanOrEqual(flooder.sent, 1_000, "the flood did not get going")
        let legitimate = fixture.client(.tcp, tcp, try fixture.authenticator(group: .ffdhe2048, service: .privacy))
        let started = ContinuousClock.now
        let echoed = try await legitimate.call(1, GSSBlob([42]), returning: GSSBlob.self)
        let took = ContinuousClock.now - started
        XCTAssertEqual(echoed, GSSBlob([42]))
        let repliedWhenLegitimateDone = flooder.replies
        try await flood.value
        let derived = derives(fixture) - derivesBefore
        let residentDelta = residentBytes() - residentBefore

        XCTAssertEqual(flooder.sent, names.count)
        let majors = flooder.majors
        // The client's own derive and the server's for the legitimate context: 2. The flood:
        // at most the address's burst, then not one.
        XCTAssertLessThanOrEqual(derived, Int(limits.perAddress.burst) + 2)
        XCTAssertLessThanOrEqual(majors[GSSMajorStatus.badSig, default: 0], Int(limits.perAddress.burst))
        XCTAssertGreaterThanOrEqual(majors[GSSMajorStatus.failure, default: 0], 1, "the source over its rate is told so")
        // Past its burst, the source is refused and disconnected: the INITs it pipelined
        // behind a refusal are never decoded, so it must pay a connection per try. (Before,
        // all 5,000 were answered on the flooder's 4 connections.)
        XCTAssertGreaterThan(flooder.cutShort, 0, "the server closes a connection whose source is over its rate")
        XCTAssertLessThan(flooder.replies, names.count - Int(limits.perAddress.burst), "INITs behind a refusal are not answered")
        XCTAssertGreaterThanOrEqual(server.statistics.connectionsClosedRateLimited, flooder.cutShort)
        XCTAssertEqual(gss.statistics.contextsCreated, 1)
        let admission = gss.admission.statistics
        XCTAssertLessThanOrEqual(admission.trackedAddresses, 2)
        XCTAssertLessThanOrEqual(admission.trackedPrincipals, Int(limits.perAddress.burst) + 1, "refused packets leave no principal entry")
        XCTAssertLessThan(residentDelta, 64 << 20, "server RSS bounded")
        print("""
            GSS INIT flood: \(names.count) bad INITs from 127.0.0.2 (\(Set(names).count) principals), keyserver derives \(derived) \
            (\(String(format: "%.4f", Double(max(0, derived - 2)) / Double(names.count))) per bad packet, \
            \(max(0, derived - 2 - Int(limits.perAddress.burst))) after the address's burst of \(Int(limits.perAddress.burst))); \
            answers \(majors.map { "0x\(String($0.key, radix: 16)): \($0.value)" }.sorted().joined(separator: ", ")) \
            on \(flooder.connections) connections (\(flooder.cutShort) closed by the server); \
            RSS delta \(residentDelta / 1024) KiB; legitimate client from 127.0.0.1: context + call in \(took) \
            (flood INITs answered by then: \(repliedWhenLegitimateDone))
            """)
        await legitimate.close()
        await server.shutdown()
        await fixture.shutdown()
    }

    func testHandshakesOverTheConcurrencyBoundGetACheapBusyRefusal() async throws {
        let fixture = try await GSSFixture()
        let (server, gss, _, _) = try await fixture.startServer(configure: { $0.admission.maximumConcurrent = 1 })
        let maker = try GSSInitMaker(client: gssClientNetname)
        // One handshake in progress holds the only slot.
        guard case let .admitted(inProgress) = gss.admission.admit(source: "another", principal: "unix.1@gss.example") else {
            return XCTFail("the first handshake must be admitted")
        }
        let before = derives(fixture)
        let busy = await initResult(gss, GSSInitMaker.call(try maker.token(at: Date().timeIntervalSince1970)))
        XCTAssertEqual(busy?.gssMajor, GSSMajorStatus.failure)
        XCTAssertEqual(busy?.gssMinor, GSSMinorStatus.busy.rawValue)
        XCTAssertEqual(derives(fixture), before, "a busy refusal costs no keyserver call")
        XCTAssertEqual(gss.admission.statistics.refusedBusy, 1)
        gss.admission.finish(inProgress, proven: false)
        let admitted = await initResult(gss, GSSInitMaker.call(try maker.token(at: Date().timeIntervalSince1970)))
        XCTAssertEqual(admitted?.gssMajor, GSSMajorStatus.complete)
        // The client reads the refusal in words.
        let error = GSSClientError.contextRefused(major: GSSMajorStatus.failure, minor: GSSMinorStatus.busy.rawValue)
        XCTAssertTrue("\(error)".contains("too many context set-ups in progress"), "\(error)")
        await server.shutdown()
        await fixture.shutdown()
    }
}

/// Sends INIT records from one source address on several TCP connections at once, a window
/// of them pipelined at a time, as a determined flooder would: when the server closes a
/// connection, it opens another and goes on with the records that follow. Counts the answers
/// by GSS major status, the connections and those the server cut short.
final class Flooder: @unchecked Sendable {
    private struct Counts {
        var sent = 0
        var replies = 0
        var majors: [UInt32: Int] = [:]
        var connections = 0
        var cutShort = 0
    }
    private let counts = NIOLockedValueBox(Counts())
    var sent: Int { counts.withLockedValue { $0.sent } }
    var replies: Int { counts.withLockedValue { $0.replies } }
    var majors: [UInt32: Int] { counts.withLockedValue { $0.majors } }
    var connections: Int { counts.withLockedValue { $0.connections } }
    /// Connections the server closed before answering everything sent on them.
    var cutShort: Int { counts.withLockedValue { $0.cutShort } }

    func send(_ records: [ByteBuffer], from source: String, to server: SocketAddress, connections: Int, window: Int = 64) async throws {
        let loop = MultiThreadedEventLoopGroup.singleton
        try await withThrowingTaskGroup(of: Void.self) { group in
            for part in 0..<connections {
                var mine = stride(from: part, to: records.count, by: connections).map { records[$0] }[...]
                group.addTask {
                    while !mine.isEmpty {
                        let batch = mine.prefix(window)
                        mine = mine.dropFirst(batch.count)
                        let done = loop.next().makePromise(of: Bool.self)
                        let counter = Counter(expected: batch.count, done: done, counts: self.counts)
                        let channel = try await ClientBootstrap(group: loop)
                            .channelInitializer { channel in
                                channel.eventLoop.makeCompletedFuture {
                                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RecordMarkingDecoder()))
                                    try channel.pipeline.syncOperations.addHandler(counter)
                                }
                            }
                            .bind(to: try SocketAddress(ipAddress: source, port: 0))
                            .connect(to: server).get()
                        self.counts.withLockedValue { $0.connections += 1 }
                        for record in batch { channel.write(RecordProxy.frame(record), promise: nil) }
                        channel.flush()
                        self.counts.withLockedValue { $0.sent += batch.count }
                        let answeredAll = try await done.futureResult.get()
                        if !answeredAll { self.counts.withLockedValue { $0.cutShort += 1 } }
                        try? await channel.close()
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    private final class Counter: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let expected: Int
        /// True when every call was answered, false when the connection closed first.
        let done: EventLoopPromise<Bool>
        let counts: NIOLockedValueBox<Counts>
        var seen = 0

        init(expected: Int, done: EventLoopPromise<Bool>, counts: NIOLockedValueBox<Counts>) {
            self.expected = expected
            self.done = done
            self.counts = counts
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var major: UInt32 = .max
            if let reply = try? RPCReply.decode(Self.unwrapInboundIn(data)), case let .accepted(_, .success(results)) = reply.status,
               let result = try? results.decodeXDRExactly(RpcGssInitRes.self) {
                major = result.gssMajor
            }
            counts.withLockedValue { state in
                state.replies += 1
                state.majors[major, default: 0] += 1
            }
            seen += 1
            if seen == expected { done.succeed(true) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            if seen < expected { done.succeed(false) }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)  // a reset: channelInactive follows
        }
    }
}
