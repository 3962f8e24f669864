// The floods `rpcbench flood` runs against its server, each bounded by a count and a
// deadline, all through SwiftNIO and all on loopback (the caller checks the target):
//   - garbage UDP datagrams (replies, truncated calls, random bytes: nothing a server answers),
//   - half-record TCP connections (a record mark announcing ~1 MiB, then 1 KiB of it, held),
//   - bad RPCSEC_GSS INITs: forged authenticators naming many principals the server knows,
//   - connection churn: connect and close (with RST, so the flooder's ports do not sit in
//     TIME_WAIT and the loop is not limited by the port range).
// Floods come from other loopback addresses than the legitimate client (127.0.0.1), as an
// attacker on another host would; per-address limits are what the server has against that.
// Each runs in a `flood-worker` process of its own (see FloodBench.swift for why).

import ArgumentParser
import Foundation
import KeyCrypto
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC
import SecureRPC
import XDR

/// One flood, run by `rpcbench flood` in a process of its own. Prints "result sent=N
/// detail=TEXT" when the flood is over, then holds what it holds until its input ends.
struct FloodWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flood-worker",
        abstract: "One flood of `rpcbench flood` (loopback only), in a process of its own.",
        shouldDisplay: false
    )

    @Option(help: "cpu-hog, udp-garbage, half-records, gss-init or churn.") var kind: FloodBench.Kind
    @Option(help: "Seconds at most.") var seconds: Double
    @Option(help: "Source address (loopback).") var source = "127.0.0.2"
    @Option(help: "The server's TCP HOST:PORT.") var tcp: String
    @Option(help: "The server's UDP HOST:PORT.") var udp: String?
    @Option(help: "Datagrams, connections or INITs, at most.") var count = 0
    @Option(help: "Half records: source addresses from --source on.") var addresses = 1
    @Option(help: "Bad INITs: principals named.") var principals = 1
    @Option(help: "Bad INITs: connections; churn: loops.") var parallel = 1
    @Option(help: "Bad INITs: calls in flight per connection.") var window = 32

    func run() async throws {
        let tcpAddress = try parseHostPort(tcp), udpAddress = try udp.map(parseHostPort)
        for address in [tcpAddress, udpAddress].compactMap({ $0 }) {
            guard let ip = address.ipAddress, FloodBench.isLoopback(ip) else { throw ValidationError("loopback targets only") }
        }
        guard FloodBench.isLoopback(source), let first = source.split(separator: ".").last.flatMap({ Int($0) }) else {
            throw ValidationError("--source must be a 127.x.y.z address")
        }
        guard first + addresses <= 256 else { throw ValidationError("--addresses runs past \(source)'s last octet") }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let deadline = NIODeadline.now() + .nanoseconds(Int64(seconds * 1e9))
        let outcome: FloodOutcome
        switch kind {
        case .cpuHog:
            outcome = Flood.cpuHog(until: deadline)
        case .udpGarbage:
            guard let udpAddress else { throw ValidationError("udp-garbage needs --udp") }
            outcome = try await Flood.udpGarbage(to: udpAddress, from: source, count: count, deadline: deadline, group: group)
        case .halfRecords:
            let prefix = source.split(separator: ".").dropLast().joined(separator: ".")
            let sources = (0..<addresses).map { "\(prefix).\(first + $0)" }
            outcome = try await Flood.halfRecords(to: tcpAddress, from: sources, count: count, deadline: deadline, group: group)
        case .gssInit:
            outcome = try await Flood.badInits(to: tcpAddress, from: source, principals: principals, count: count, connections: parallel,
                                               window: window, deadline: deadline, group: group)
        case .churn:
            outcome = try await Flood.churn(to: tcpAddress, from: source, count: count, parallel: parallel, deadline: deadline, group: group)
        }
        SecureServe.write("result sent=\(outcome.sent) detail=\(outcome.detail)")
        // Hold what the flood holds (the half records) while the parent reads the server's
        // memory and descriptors; it closes our input when done.
        while readLine() != nil {}
        await outcome.release()
        try await group.shutdownGracefully()
    }
}

/// What one flood did. `release` frees what it still holds (the half-record connections),
/// after the server has been measured with them held.
struct FloodOutcome: Sendable {
    var sent: Int
    var detail: String
    var release: @Sendable () async -> Void = {}
}

enum Flood {
    // MARK: a busy core (control)

    /// No network at all: one core kept busy, to show what that alone costs the client.
    static func cpuHog(until deadline: NIODeadline) -> FloodOutcome {
        var spins = 0
        while NIODeadline.now() < deadline { spins &+= 1 }
        return FloodOutcome(sent: 0, detail: "one core kept busy (\(spins) clock reads), no network")
    }

    // MARK: garbage UDP

    /// Datagrams no server answers, as fast as NIO writes them, until `count` or `deadline`.
    static func udpGarbage(to server: SocketAddress, from source: String, count: Int, deadline: NIODeadline,
                           group: any EventLoopGroup) async throws -> FloodOutcome {
        let channel = try await DatagramBootstrap(group: group).bind(host: source, port: 0).get()
        var random = SplitMix64()
        var sent = 0, failed = 0
        let batch = 64
        while sent < count, NIODeadline.now() < deadline {
            var last: EventLoopFuture<Void>?
            for index in 0..<batch {
                var datagram = channel.allocator.buffer(capacity: 32)
                let xid = UInt32(truncatingIfNeeded: random.next())
                switch (sent + index) % 3 {
                case 0:  // a REPLY: servers drop it without an answer
                    datagram.writeMultipleIntegers(xid, UInt32(1))
                case 1:  // a CALL cut off after its program number
                    datagram.writeMultipleIntegers(xid, UInt32(0), UInt32(2), UInt32(truncatingIfNeeded: random.next()))
                default:  // 24 random bytes
                    for _ in 0..<3 { datagram.writeInteger(random.next()) }
                }
                let envelope = AddressedEnvelope(remoteAddress: server, data: datagram)
                if index == batch - 1 {
                    last = channel.writeAndFlush(envelope)
                } else {
                    channel.write(envelope, promise: nil)
                }
            }
            // Waiting for the batch's last write keeps NIO's queue short (the kernel drops
            // what the server's receive buffer cannot hold, as it would for a real flood).
            do { try await last?.get() } catch { failed += 1 }
            sent += batch
        }
        try? await channel.close()
        return FloodOutcome(sent: sent, detail: "\(sent) datagrams sent\(failed > 0 ? ", \(failed) batches with a send error" : "")")
    }

    // MARK: half records

    /// `count` connections spread over `sources`, each with a partial record, held until
    /// `deadline` (and then until `release`).
    static func halfRecords(to server: SocketAddress, from sources: [String], count: Int, deadline: NIODeadline,
                            group: any EventLoopGroup) async throws -> FloodOutcome {
        var channels: [any Channel] = []
        var failed = 0
        // Connect in batches: the server's accept backlog is finite.
        for first in stride(from: 0, to: count, by: 64) {
            let opened = await withTaskGroup(of: (any Channel)?.self) { tasks in
                for index in first..<min(count, first + 64) {
                    tasks.addTask {
                        do {
                            let channel = try await ClientBootstrap(group: group)
                                .bind(to: try SocketAddress(ipAddress: sources[index % sources.count], port: 0))
                                .connect(to: server).get()
                            // Announce a record of 1 MiB − 1 (a last fragment), send 1 KiB of it.
                            var bytes = channel.allocator.buffer(capacity: 1028)
                            bytes.writeInteger(UInt32(0x8000_0000 | ((1 << 20) - 1)))
                            bytes.writeRepeatingByte(0x41, count: 1024)
                            try await channel.writeAndFlush(bytes)
                            return channel
                        } catch {
                            return nil
                        }
                    }
                }
                var opened: [(any Channel)?] = []
                for await channel in tasks { opened.append(channel) }
                return opened
            }
            channels += opened.compactMap { $0 }
            failed += opened.filter { $0 == nil }.count
            if NIODeadline.now() >= deadline { break }
        }
        let now = NIODeadline.now()
        if now < deadline { try await Task.sleep(nanoseconds: UInt64((deadline - now).nanoseconds)) }
        let held = channels.filter(\.isActive).count
        let all = channels
        return FloodOutcome(
            sent: channels.count + failed,
            detail: "\(channels.count) connected from \(sources.count) address(es), \(held) still held at the end, \(failed) failed to connect",
            release: { for channel in all { try? await channel.close() } })
    }

    // MARK: bad RPCSEC_GSS INITs

    /// INITs with forged authenticators naming `principals` known principals in turn, on
    /// `connections` connections, `window` in flight on each, until `count` or `deadline`.
    static func badInits(to server: SocketAddress, from source: String, principals: Int, count: Int, connections: Int,
                         window: Int, deadline: NIODeadline, group: any EventLoopGroup) async throws -> FloodOutcome {
        // A valid ephemeral key (so the token passes the cheap checks) shared by every token.
        let ephemeral = DHPrivateKey.generate(group: .ffdhe2048).publicKey.bytes
        let answers = NIOLockedValueBox<[String: Int]>([:])
        let sentTotal = NIOLockedValueBox(0)
        let opened = NIOLockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for connection in 0..<connections {
                tasks.addTask {
                    var random = SplitMix64()
                    var next = connection
                    // A determined flooder: when the server closes the connection (a source
                    // over its rate is disconnected), it opens another and goes on.
                    connecting: while NIODeadline.now() < deadline, sentTotal.withLockedValue({ $0 < count }) {
                        let counter = ReplyCounter(answers: answers)
                        let channel = try await ClientBootstrap(group: group)
                            .channelInitializer { channel in
                                channel.eventLoop.makeCompletedFuture {
                                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RecordMarkingDecoder()))
                                    try channel.pipeline.syncOperations.addHandler(counter)
                                }
                            }
                            .bind(to: try SocketAddress(ipAddress: source, port: 0))
                            .connect(to: server).get()
                        opened.withLockedValue { $0 += 1 }
                        defer { channel.close(promise: nil) }
                        while NIODeadline.now() < deadline {
                            let share = sentTotal.withLockedValue { total -> Int in
                                let share = min(window, count - total)
                                total += max(0, share)
                                return share
                            }
                            guard share > 0 else { break connecting }
                            let replies = counter.expect(share, by: deadline + .seconds(2), on: channel.eventLoop)
                            for _ in 0..<share {
                                channel.write(badInit(xid: UInt32(truncatingIfNeeded: random.next()), principal: BenchKeys.floodPrincipal(next % principals),
                                                      ephemeral: ephemeral, random: &random, allocator: channel.allocator), promise: nil)
                                next += connections
                            }
                            channel.flush()
                            do {
                                try await replies.get()
                            } catch {
                                if channel.isActive { break connecting }  // no answers in time
                                continue connecting  // closed by the server
                            }
                        }
                    }
                }
            }
            try await tasks.waitForAll()
        }
        let counts = answers.withLockedValue { $0 }
        let answered = counts.values.reduce(0, +)
        let detail = "\(sentTotal.withLockedValue { $0 }) INITs naming \(principals) principals on \(opened.withLockedValue { $0 }) connections, \(answered) answered ("
            + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
        return FloodOutcome(sent: sentTotal.withLockedValue { $0 }, detail: detail)
    }

    /// One framed INIT call: right server, valid ephemeral, fresh timestamp, random nonce and
    /// a random (forged) authenticator.
    private static func badInit(xid: UInt32, principal: String, ephemeral: [UInt8], random: inout SplitMix64,
                                allocator: ByteBufferAllocator) -> ByteBuffer {
        let body = SrpcDhInitBody(tokenVersion: SRPCDH.tokenVersion, group: .srpcDhFfdhe2048, client: principal,
                                  server: BenchKeys.serverNetname, clientEphemeral: ephemeral,
                                  timestamp: UInt64(Date().timeIntervalSince1970 * 1_000_000), nonce: random.bytes(16))
        let token = SrpcDhInitToken(body: body, authNonce: random.bytes(12), authenticator: random.bytes(40))
        let call = RPCCall(xid: xid, program: TestEcho.program, version: TestEcho.version, procedure: 0,
                           credential: GSSCredential(procedure: .rpcsecGssInit, sequence: 0, service: .none, handle: []).opaqueAuth,
                           arguments: RpcGssInitArg(gssToken: Array(token.xdrEncoded().readableBytesView)).xdrEncoded())
        var record = RPCFraming.startMessage(allocator: allocator, capacity: 1024)
        call.encode(into: &record)
        RPCFraming.finishRecord(&record)
        return record
    }

    /// Counts INIT replies by GSS major status, and tells the sender when a window is answered.
    private final class ReplyCounter: ChannelInboundHandler, @unchecked Sendable {  // state touched on its event loop only
        typealias InboundIn = ByteBuffer
        let answers: NIOLockedValueBox<[String: Int]>
        private var seen = 0
        private var waiting: (target: Int, promise: EventLoopPromise<Void>, timer: Scheduled<Void>)?

        init(answers: NIOLockedValueBox<[String: Int]>) { self.answers = answers }

        /// A future that succeeds when `more` further replies have come (fails at `deadline`
        /// or when the connection closes).
        func expect(_ more: Int, by deadline: NIODeadline, on loop: any EventLoop) -> EventLoopFuture<Void> {
            loop.flatSubmit {
                let promise = loop.makePromise(of: Void.self)
                let timer = loop.scheduleTask(deadline: deadline) { self.finish(ChannelError.ioOnClosedChannel) }
                self.waiting = (self.seen + more, promise, timer)
                return promise.futureResult
            }
        }

        private func finish(_ error: (any Error)?) {
            guard let waiting else { return }
            self.waiting = nil
            waiting.timer.cancel()
            if let error { waiting.promise.fail(error) } else { waiting.promise.succeed(()) }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let kind: String
            if let reply = try? RPCReply.decode(Self.unwrapInboundIn(data)) {
                if case let .accepted(_, .success(results)) = reply.status, let result = try? results.decodeXDRExactly(RpcGssInitRes.self) {
                    kind = Self.name(major: result.gssMajor)
                } else {
                    kind = "other reply"
                }
            } else {
                kind = "undecodable"
            }
            answers.withLockedValue { $0[kind, default: 0] += 1 }
            seen += 1
            if let waiting, seen >= waiting.target { finish(nil) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            finish(ChannelError.ioOnClosedChannel)
            context.fireChannelInactive()
        }

        static func name(major: UInt32) -> String {
            switch major {
            case GSSMajorStatus.complete: return "complete"
            case GSSMajorStatus.badSig: return "GSS_S_BAD_SIG"
            case GSSMajorStatus.failure: return "GSS_S_FAILURE"
            case GSSMajorStatus.noCred: return "GSS_S_NO_CRED"
            case GSSMajorStatus.badName: return "GSS_S_BAD_NAME"
            default: return "major 0x\(String(major, radix: 16))"
            }
        }
    }

    // MARK: connection churn

    /// `parallel` loops of connect-then-close until `count` connections or `deadline`.
    static func churn(to server: SocketAddress, from source: String, count: Int, parallel: Int, deadline: NIODeadline,
                      group: any EventLoopGroup) async throws -> FloodOutcome {
        let opened = NIOLockedValueBox(0), failed = NIOLockedValueBox(0)
        await withTaskGroup(of: Void.self) { tasks in
            for _ in 0..<parallel {
                tasks.addTask {
                    while NIODeadline.now() < deadline {
                        guard opened.withLockedValue({ total -> Bool in
                            guard total < count else { return false }
                            total += 1
                            return true
                        }) else { break }
                        do {
                            let channel = try await ClientBootstrap(group: group)
                                .bind(to: try SocketAddress(ipAddress: source, port: 0))
                                .connect(to: server).get()
                            // RST on close: no TIME_WAIT, so the port range never runs out.
                            try await (channel as? any SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
                            try await channel.close()
                        } catch {
                            failed.withLockedValue { $0 += 1 }
                        }
                    }
                }
            }
        }
        let total = opened.withLockedValue { $0 }, failures = failed.withLockedValue { $0 }
        return FloodOutcome(sent: total, detail: "\(total) connections opened and closed by \(parallel) loops\(failures > 0 ? ", \(failures) failed" : "")")
    }
}

/// A fast, non-cryptographic generator (SplitMix64): flood bytes need volume, not secrecy.
struct SplitMix64: RandomNumberGenerator {
    private var state = UInt64.random(in: 0...UInt64.max)

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}
