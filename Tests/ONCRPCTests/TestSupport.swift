// Shared fixtures for ONCRPC tests: a small test program and helpers to start a server.

import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
import XDR
@testable import ONCRPC

/// A bounded string argument used by the test program.
struct TestText: XDRCodable, Sendable, Equatable {
    var value: String
    init(_ value: String) { self.value = value }
    init(xdr buffer: inout ByteBuffer) throws(XDRError) { value = try buffer.readXDRString(maxLength: 1024) }
    func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(value) }
}

/// Program 0x2000_0101 versions 1 and 2 (2 must exist to test PROG_MISMATCH ranges).
enum TestProgram {
    static let number: UInt32 = 0x2000_0101
    static let echo: UInt32 = 1        // string -> string, immediate
    static let count: UInt32 = 2       // uint tag -> uint, counts invocations (non-idempotent)
    static let slowEcho: UInt32 = 3    // string -> string after a delay, async
    static let fail: UInt32 = 4        // always throws a non-RPC error -> SYSTEM_ERR
    static let whoAmI: UInt32 = 5      // void -> uid or 0xffffffff

    static func make(counter: NIOLockedValueBox<Int>, delay: TimeAmount = .milliseconds(200)) -> [RPCProgram] {
        var v1 = RPCProgram(number: number, version: 1)
        v1.addImmediateProcedure(echo) { (text: TestText, _) in text }
        v1.addProcedure(count) { (_: UInt32, _) -> UInt32 in
            UInt32(counter.withLockedValue { $0 += 1; return $0 })
        }
        v1.addProcedure(slowEcho) { (text: TestText, _) async throws -> TestText in
            try await Task.sleep(nanoseconds: UInt64(delay.nanoseconds))
            return text
        }
        v1.addProcedure(fail) { (_: XDRVoid, _) async throws -> XDRVoid in
            struct Boom: Error {}
            throw Boom()
        }
        v1.addImmediateProcedure(whoAmI) { (_: XDRVoid, request) -> UInt32 in
            request.caller.uid ?? 0xffff_ffff
        }
        let v2 = RPCProgram(number: number, version: 2)
        return [v1, v2]
    }
}

func quietLogger() -> Logger {
    var logger = Logger(label: "test")
    logger.logLevel = ProcessInfo.processInfo.environment["RPC_TEST_LOG"] != nil ? .debug : .critical
    return logger
}

/// A started server with its addresses.
struct RunningServer {
    var server: RPCServer
    var tcp: SocketAddress
    var udp: SocketAddress
    var counter: NIOLockedValueBox<Int>

    static func start(configuration: RPCServer.Configuration = .init(), tcpPort: Int = 0) async throws -> RunningServer {
        let counter = NIOLockedValueBox(0)
        let server = RPCServer(programs: TestProgram.make(counter: counter), configuration: configuration, logger: quietLogger())
        let tcp = try await server.listenTCP(host: "127.0.0.1", port: tcpPort)
        let udp = try await server.listenUDP(host: "127.0.0.1", port: 0)
        return RunningServer(server: server, tcp: tcp, udp: udp, counter: counter)
    }

    func client(_ transport: RPCTransport, version: UInt32 = 1, program: UInt32 = TestProgram.number,
                authenticator: any RPCClientAuthenticator = AuthNoneClient(),
                configuration: RPCClient.Configuration = .init()) -> RPCClient {
        RPCClient(transport: transport, address: transport == .tcp ? tcp : udp, program: program, version: version,
                  authenticator: authenticator, configuration: configuration)
    }
}

func hexString(_ buffer: ByteBuffer) -> String {
    buffer.readableBytesView.map { String(format: "%02x", $0) }.joined()
}

func bytes(fromHex hex: String) -> [UInt8] {
    let clean = Array(hex.filter { !$0.isWhitespace })
    return stride(from: 0, to: clean.count, by: 2).map { UInt8(String(clean[$0..<$0 + 2]), radix: 16)! }
}
