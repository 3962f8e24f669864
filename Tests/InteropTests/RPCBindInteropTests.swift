// Registration with, and queries of, a real rpcbind (Debian's), in a private namespace per
// test: `rpcinfo -p` lists our server while it runs and not after it stops; classic C
// clients find it through rpcbind; our rpcbind client round-trips SET/GETADDR/DUMP/UNSET/
// GETTIME and portmapper v2 against the daemon.

import Foundation
import Logging
import NIOCore
import NIOPosix
import ONCRPC
import XCTest
import XDR

final class RPCBindInteropTests: XCTestCase {
    private var sandbox: RPCBindSandbox!

    override func setUp() async throws {
        sandbox = try RPCBindSandbox()
    }

    override func tearDown() async throws {
        await sandbox.stop()
    }

    private func quietLogger() -> Logger {
        var logger = Logger(label: "interop")
        logger.logLevel = .critical
        return logger
    }

    func testServerRegistersShowsInRpcinfoAndUnregistersOnShutdown() async throws {
        let server = RPCServer(programs: [TestEcho.makeProgram()], group: sandbox.group, logger: quietLogger())
        let tcp = try await server.listenTCP(host: "127.0.0.1", port: 0)
        let udp = try await server.listenUDP(host: "127.0.0.1", port: 0)
        let mappings = try await server.registerWithRPCBind(RPCBindClient(
            address: try SocketAddress(ipAddress: "127.0.0.1", port: 111), transport: .tcp, group: sandbox.group
        ))
        XCTAssertEqual(Set(mappings.map(\.netid)), ["tcp", "udp"])

        let rows = try sandbox.registrations().filter { $0.program == TestEcho.program }
        XCTAssertEqual(rows.count, 2, "rpcinfo -p lists tcp and udp: \(rows)")
        XCTAssertTrue(rows.contains { $0.proto == "tcp" && $0.port == tcp.port! && $0.version == 1 })
        XCTAssertTrue(rows.contains { $0.proto == "udp" && $0.port == udp.port! && $0.version == 1 })

        // rpcinfo pings it by port and through rpcbind, on both transports.
        for args in [["-n", "\(tcp.port!)", "-t"], ["-n", "\(udp.port!)", "-u"], ["-t"], ["-u"]] {
            let out = try sandbox.run(["rpcinfo"] + args + ["127.0.0.1", "\(TestEcho.program)", "1"])
            XCTAssertEqual(out.status, 0, "rpcinfo \(args): \(out.stderr)")
            XCTAssertTrue(out.stdout.contains("program \(TestEcho.program) version 1 ready and waiting"), out.stdout)
        }
        // A version we do not serve: rpcinfo shows the range from our PROG_MISMATCH reply.
        let wrong = try sandbox.run(["rpcinfo", "-n", "\(tcp.port!)", "-t", "127.0.0.1", "\(TestEcho.program)", "9"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue((wrong.stdout + wrong.stderr).contains("low version = 1, high version = 1"), wrong.stdout + wrong.stderr)

        // A classic C client finds it through rpcbind (clnt_create) and calls it.
        let client = try Peers.cPeers().appendingPathComponent("echo_client").path
        for transport in ["tcp", "udp"] {
            let out = try sandbox.run([client, "-h", "127.0.0.1", "-p", "0", "-t", transport, "-a", "sys", "-m", "check", "-x", "via rpcbind"])
            XCTAssertEqual(out.status, 0, out.stderr)
            XCTAssertEqual(out.stdout, "via rpcbind\n")
        }

        await server.shutdown()
        let after = try sandbox.registrations().filter { $0.program == TestEcho.program }
        XCTAssertEqual(after.count, 0, "unregistered on shutdown: \(after)")
    }

    func testDaemonExecutableRegistersAndUnregistersOnSIGTERM() throws {
        let serve = BackgroundProcessInside(sandbox, [Peers.productPath("rpcbench"), "serve", "-p", "0", "-U", "0", "--register"])
        let ready = try serve.start(readyMarker: "registered=")
        XCTAssertTrue(ready.contains("registered=2"), ready)
        XCTAssertEqual(try sandbox.registrations().filter { $0.program == TestEcho.program }.count, 2)
        serve.stop(signal: SIGTERM)
        XCTAssertEqual(serve.exitStatus, 0, "graceful exit on SIGTERM; output: \(serve.log)")
        XCTAssertEqual(try sandbox.registrations().filter { $0.program == TestEcho.program }.count, 0)
    }

    func testRPCBindClientAgainstTheRealDaemon() async throws {
        let rpcbind = RPCBindClient(address: try SocketAddress(ipAddress: "127.0.0.1", port: 111), transport: .tcp, group: sandbox.group)
        try await rpcbind.ping()
        let mapping = RPCBindMapping(program: 0x2000_0777, version: 3, netid: "tcp", address: "127.0.0.1.4.1", owner: "")
        let firstSet = try await rpcbind.set(mapping)
        XCTAssertTrue(firstSet)
        // A different address for the same program, version and netid is refused.
        var clash = mapping
        clash.address = "127.0.0.1.4.2"
        let secondSet = try await rpcbind.set(clash)
        XCTAssertFalse(secondSet, "rpcbind refuses a second address for the same mapping")
        let v4 = try await rpcbind.getAddress(program: 0x2000_0777, version: 3, netid: "tcp")
        XCTAssertEqual(v4, "127.0.0.1.4.1")
        let v3 = try await rpcbind.getAddress(program: 0x2000_0777, version: 3, netid: "tcp", rpcbindVersion: 3)
        XCTAssertEqual(v3, "127.0.0.1.4.1")
        // Over UDP, rpcbind answers for udp, where nothing is registered.
        let udpRPCBind = RPCBindClient(address: try SocketAddress(ipAddress: "127.0.0.1", port: 111), transport: .udp, group: sandbox.group)
        let none = try await udpRPCBind.getAddress(program: 0x2000_0777, version: 3, netid: "udp")
        XCTAssertNil(none)
        await udpRPCBind.close()
        let dump = try await rpcbind.dump()
        XCTAssertTrue(dump.contains { $0.program == 0x2000_0777 && $0.address == "127.0.0.1.4.1" && $0.netid == "tcp" })
        XCTAssertTrue(dump.contains { $0.program == 100_000 && $0.version == 4 })
        // rpcbind's own listing agrees.
        let rows = try sandbox.registrations()
        XCTAssertTrue(rows.contains { $0.program == 0x2000_0777 && $0.port == 1025 })
        // Port 4.1 = 1025 through the portmapper too.
        let port = try await rpcbind.getPort(program: 0x2000_0777, version: 3, protocol: .tcp)
        XCTAssertEqual(port, 1025)
        let lookedUp = try await rpcbind.lookup(program: 0x2000_0777, version: 3, transport: .tcp, host: "127.0.0.1")
        XCTAssertEqual(lookedUp.port, 1025)
        let unset = try await rpcbind.unset(program: 0x2000_0777, version: 3, netid: "tcp")
        XCTAssertTrue(unset)
        let gone = try await rpcbind.getAddress(program: 0x2000_0777, version: 3, netid: "tcp")
        XCTAssertNil(gone)

        // Version 2 (portmapper).
        let pmapSet = try await rpcbind.portmapSet(PortMapping(program: 0x2000_0778, version: 1, protocol: .udp, port: 2049))
        XCTAssertTrue(pmapSet)
        let pmapPort = try await rpcbind.getPort(program: 0x2000_0778, version: 1, protocol: .udp)
        XCTAssertEqual(pmapPort, 2049)
        let pmapDump = try await rpcbind.portmapDump()
        XCTAssertTrue(pmapDump.contains { $0.program == 0x2000_0778 && $0.port == 2049 })
        let pmapUnset = try await rpcbind.portmapUnset(program: 0x2000_0778, version: 1)
        XCTAssertTrue(pmapUnset)
        let pmapGone = try await rpcbind.getPort(program: 0x2000_0778, version: 1, protocol: .udp)
        XCTAssertNil(pmapGone)

        // GETTIME: rpcbind's clock, within a few seconds of ours.
        let time = try await rpcbind.getTime()
        XCTAssertLessThan(abs(Int64(time) - Int64(Date().timeIntervalSince1970)), 5)
        await rpcbind.close()
    }

    func testSwiftClientFindsTheCServerThroughRpcbind() async throws {
        let server = BackgroundProcessInside(sandbox, [try Peers.cPeers().appendingPathComponent("echo_server").path, "-r"])
        _ = try server.start(readyMarker: "ready")
        defer { server.stop(signal: SIGKILL) }
        let rpcbind = RPCBindClient(address: try SocketAddress(ipAddress: "127.0.0.1", port: 111), transport: .tcp, group: sandbox.group)
        for transport in RPCTransport.allCases {
            let address = try await rpcbind.lookup(program: TestEcho.program, version: 1, transport: transport, host: "127.0.0.1")
            let client = RPCClient(transport: transport, address: address, program: TestEcho.program, version: 1, group: sandbox.group)
            let reply = try await client.call(TestEcho.echo, TestEcho.Text("found \(transport)"), returning: TestEcho.Text.self)
            XCTAssertEqual(reply.value, "found \(transport)")
            await client.close()
        }
        await rpcbind.close()
    }

    func testRegistrationWithoutRpcbindIsAClearError() async throws {
        // A socket path where nothing listens and a port where nothing listens.
        let nothing = RPCBindClient(address: try SocketAddress(ipAddress: "127.0.0.1", port: 1), transport: .tcp)
        let server = RPCServer(programs: [TestEcho.makeProgram()], logger: quietLogger())
        try await server.listenTCP()
        do {
            try await server.registerWithRPCBind(nothing)
            XCTFail("expected notRunning")
        } catch let error as RPCBindError {
            guard case .notRunning = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("rpcbind is not running"))
        }
        await server.shutdown()
    }
}

/// A long-running command inside the sandbox.
final class BackgroundProcessInside: @unchecked Sendable {
    private let arguments: [String]
    private var process: BackgroundProcess?
    private(set) var exitStatus: Int32?

    init(_ sandbox: RPCBindSandbox, _ command: [String]) {
        arguments = sandbox.inside(command)
    }

    func start(readyMarker: String) throws -> String {
        let process = try BackgroundProcess(arguments, readyMarker: readyMarker)
        self.process = process
        return process.log
    }

    var log: String { process?.log ?? "" }

    func stop(signal: Int32) {
        guard let process else { return }
        process.stop(signal: signal)
        exitStatus = process.process.terminationStatus
    }
}
