// A live server against one peer trying to take all the connections (issue 13 item 3):
// an address holding its cap of half-records cannot keep another address out (TCP); a
// local user holding connections cannot keep another user out (unix socket, uids from
// setpriv, so SO_PEERCRED really differs); a peer trickling a byte just inside every idle
// period is closed by the record deadline; refusals and garbage (ATTACKS.md #5) are logged
// once per interval with a count, not once each.

import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
import XDR
@testable import ONCRPC

/// A process running as another uid that holds unix-socket connections or makes one NULL
/// call (perl, which every Debian system has, under setpriv).
final class OtherUIDPeer {
    static let script = #"""
    use strict; use IO::Socket::UNIX; use Socket;
    $| = 1;
    $SIG{PIPE} = "IGNORE";   # the server closes the connections over the cap
    my ($mode, $path, $n) = @ARGV;
    if ($mode eq "hold") {
        my @held;
        for (1..$n) {
            my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path) or die "connect: $!";
            # Half a record: a header promising 100 bytes, then 4 of them.
            print $s pack("N", 0x80000000 | 100) . "abcd";
            push @held, $s;
        }
        print "holding $n\n";
        <STDIN>;
    } else {
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path) or die "connect: $!";
        # NULL call to program $n version 1, AUTH_NONE.
        my $call = pack("N10", 0x1234, 0, 2, $n, 1, 0, 0, 0, 0, 0);
        print $s pack("N", 0x80000000 | length($call)) . $call;
        my $got = ""; my $buf;
        while (length($got) < 28 && sysread($s, $buf, 28 - length($got))) { $got .= $buf; }
        print length($got) == 28 ? "reply " . unpack("H*", substr($got, 4)) . "\n" : "closed after " . length($got) . " bytes\n";
    }
    """#

    let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    init(uid: Int, _ arguments: [String]) throws {
        let scriptPath = FileManager.default.temporaryDirectory.appendingPathComponent("otheruid-\(getpid()).pl").path
        if !FileManager.default.fileExists(atPath: scriptPath) {
            try Self.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
            chmod(scriptPath, 0o644)
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "perl", scriptPath] + arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    /// The first line the process prints (bounded wait).
    func firstLine(timeout: TimeInterval = 20) -> String {
        let box = NIOLockedValueBox(Data())
        let done = DispatchSemaphore(value: 0)
        let handle = output.fileHandleForReading
        DispatchQueue.global().async {
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                let hasLine = box.withLockedValue { $0.append(data); return $0.contains(0x0a) }
                if hasLine { break }
            }
            done.signal()
        }
        _ = done.wait(timeout: .now() + timeout)
        return String(decoding: box.withLockedValue { $0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

final class ConnectionLimitTests: XCTestCase {
    private let w = CallBytes.word

    private func waitUntil(_ timeout: TimeAmount = .seconds(10), _ condition: () -> Bool) async throws {
        let deadline = NIODeadline.now() + timeout
        while !condition() && NIODeadline.now() < deadline {
            try await Task.sleep(nanoseconds: 5_000_000)
        }
    }

    /// A raw echo call from `peer`; true when the right reply came back.
    private func echoAnswered(_ peer: RawTCPPeer, xid: UInt32) async throws -> Bool {
        try await peer.sendRecord(CallBytes.call(xid: xid, procedure: TestProgram.echo, arguments: CallBytes.string("hi")))
        let reply = try await peer.nextRecord()
        return reply == w(xid) + w(1) + w(0) + w(0) + w(0) + w(0) + CallBytes.string("hi")
    }

    /// Connection churn (issue 13): an address that opens and drops connections past its
    /// rate has them closed on accept, counted, and another address is served meanwhile.
    /// Before the rate, every one of them was set up (accepted, given a pipeline, closed).
    func testAnAddressOpeningConnectionsPastItsRateIsRefusedOnAccept() async throws {
        var configuration = RPCServer.Configuration()
        configuration.connectionRatePerAddress = ConnectionRate(perSecond: 0.001, burst: 5)  // no refill within the test
        let counter = NIOLockedValueBox(0)
        let server = RPCServer(programs: TestProgram.make(counter: counter), configuration: configuration, logger: quietLogger())
        let address = try await server.listenTCP(host: "127.0.0.1")
        var served = 0
        for xid in 0..<UInt32(20) {
            let peer = try await RawTCPPeer(to: address, from: try SocketAddress(ipAddress: "127.0.0.2", port: 0))
            if (try? await echoAnswered(peer, xid: xid)) == true { served += 1 }
            await peer.close()
        }
        XCTAssertEqual(served, 5, "the burst, then refusals")
        XCTAssertEqual(server.statistics.connectionsRefusedPeerRate, 15)
        let other = try await RawTCPPeer(to: address, from: try SocketAddress(ipAddress: "127.0.0.3", port: 0))
        let answered = try await echoAnswered(other, xid: 99)
        XCTAssertTrue(answered, "another address is served")
        await other.close()
        await server.shutdown()
    }

    func testOneAddressHoldingItsCapOfHalfRecordsCannotKeepAnotherAddressOut() async throws {
        var configuration = RPCServer.Configuration()
        configuration.maximumConnections = 16
        configuration.maximumConnectionsPerAddress = 4
        let logs = LogCapture()
        let counter = NIOLockedValueBox(0)
        let server = RPCServer(programs: TestProgram.make(counter: counter), configuration: configuration, logger: logs.logger(level: .info))
        let address = try await server.listenTCP(host: "127.0.0.1")

        // 127.0.0.1 opens as many connections as the whole server takes, each with half a record.
        var attackers: [RawTCPPeer] = []
        for _ in 0..<16 {
            let peer = try await RawTCPPeer(to: address, from: try SocketAddress(ipAddress: "127.0.0.1", port: 0))
            try? await peer.send(w(0x8000_0000 | 100) + [1, 2, 3, 4])
            attackers.append(peer)
        }
        try await waitUntil { attackers.filter { $0.handler.closed.withLockedValue { $0 } }.count >= 12 }
        XCTAssertEqual(attackers.filter { !$0.handler.closed.withLockedValue { $0 } }.count, 4, "127.0.0.1 holds its cap, no more")
        XCTAssertEqual(server.connectionCount, 4)

        // Another address is served.
        let other = try await RawTCPPeer(to: address, from: try SocketAddress(ipAddress: "127.0.0.2", port: 0))
        let answered = try await echoAnswered(other, xid: 77)
        XCTAssertTrue(answered, "127.0.0.2 locked out by 127.0.0.1's half records")
        await other.close()
        XCTAssertEqual(server.statistics.connectionsRefusedPeerFull, 12)
        for peer in attackers { await peer.close() }
        await server.shutdown()
        // Refusals: one line at once, the rest folded into one more at shutdown, all counted.
        let lines = logs.lines { $0.message.hasPrefix("connections refused") }
        XCTAssertLessThanOrEqual(lines.count, 2, "refusals logged one by one: \(lines.count) lines")
        XCTAssertEqual(lines.compactMap { Int($0.metadata["count"] ?? "") }.reduce(0, +), 12)
    }

    func testOneUIDHoldingConnectionsCannotKeepAnotherUIDOut() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("uidcap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        chmod(directory.path, 0o755)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("sock").path

        var configuration = RPCServer.Configuration()
        configuration.maximumConnections = 16
        configuration.maximumConnectionsPerUID = 4
        let server = RPCServer(programs: TestProgram.make(counter: NIOLockedValueBox(0)), configuration: configuration, logger: quietLogger())
        try await server.listenUnix(path: path, mode: 0o666)

        // uid 4001 opens more connections than the whole server takes, each with half a record.
        let holder = try OtherUIDPeer(uid: 4001, ["hold", path, "40"])
        defer { holder.stop() }
        XCTAssertEqual(holder.firstLine(), "holding 40")
        try await waitUntil { server.statistics.connectionsRefusedPeerFull >= 36 }
        XCTAssertEqual(server.connectionCount, 4, "uid 4001 holds its cap, no more")

        // uid 4002 is still served.
        let caller = try OtherUIDPeer(uid: 4002, ["call", path, "\(TestProgram.number)"])
        defer { caller.stop() }
        XCTAssertEqual(caller.firstLine(), "reply 000012340000000100000000000000000000000000000000",
                       "uid 4002 locked out by uid 4001's connections")
        XCTAssertEqual(server.statistics.connectionsRefusedPeerFull, 36)
        await server.shutdown()
    }

    func testATricklingPeerIsClosedByTheRecordDeadline() async throws {
        // Slowloris: a byte every 250 ms keeps a 400 ms idle timeout from ever firing.
        var configuration = RPCServer.Configuration()
        configuration.idleTimeout = .milliseconds(400)
        configuration.recordDeadline = .seconds(1)
        let running = try await RunningServer.start(configuration: configuration)
        let peer = try await RawTCPPeer(to: running.tcp)
        let call = CallBytes.call(xid: 5, procedure: TestProgram.echo, arguments: CallBytes.string(String(repeating: "x", count: 200)))
        let stream = w(UInt32(call.count) | 0x8000_0000) + call
        var sent = 0
        while sent < stream.count, !peer.handler.closed.withLockedValue({ $0 }) {
            try? await peer.send([stream[sent]])
            sent += 1
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        XCTAssertTrue(peer.handler.closed.withLockedValue { $0 }, "the trickling peer sent its whole record (\(sent) bytes) without being closed")
        XCTAssertEqual(running.server.statistics.connectionsClosedRecordDeadline, 1)
        // Others are served.
        let client = running.client(.tcp)
        let reply = try await client.call(TestProgram.echo, TestText("still here"), returning: TestText.self)
        XCTAssertEqual(reply.value, "still here")
        await client.close()
        await peer.close()
        await running.server.shutdown()
    }

    func testHTTPOnTheRPCPortIsOneRateLimitedLogLine() async throws {
        // ATTACKS.md #5: "GET / HTTP/1.1" reads as a 1,195,725,856-byte fragment.
        var configuration = RPCServer.Configuration()
        configuration.refusalLogInterval = .seconds(60)
        let logs = LogCapture()
        let server = RPCServer(programs: TestProgram.make(counter: NIOLockedValueBox(0)), configuration: configuration, logger: logs.logger(level: .trace))
        let address = try await server.listenTCP()
        for _ in 0..<20 {
            let peer = try await RawTCPPeer(to: address)
            try? await peer.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            let closed = try await peer.waitForClose()
            XCTAssertTrue(closed)
            await peer.close()
        }
        try await waitUntil { server.statistics.connectionsClosedFramingError == 20 }
        let aboutGarbage = logs.lines { $0.metadata["error"]?.contains("recordTooLarge") == true }
        XCTAssertEqual(aboutGarbage.count, 1, "one line for 20 garbage connections, not \(aboutGarbage.count)")
        XCTAssertGreaterThanOrEqual(aboutGarbage.first?.level ?? .trace, .notice, "visible at the default log level")
        XCTAssertEqual(aboutGarbage.first?.metadata["error"], "recordTooLarge(declared: 1195725856, maximum: 1048576)")
        await server.shutdown()
        let counted = logs.lines { $0.message.hasPrefix("connections closed: not ONC RPC") }.compactMap { Int($0.metadata["count"] ?? "") }
        XCTAssertEqual(counted.reduce(0, +), 20)
    }
}
