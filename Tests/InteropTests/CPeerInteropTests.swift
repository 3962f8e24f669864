// Our runtime against peers nobody here wrote, without rpcbind: an rpcgen
// C client (libtirpc, AUTH_SYS) calls it, and the Swift client calls an rpcgen C server.

import Foundation
import Logging
import NIOCore
import ONCRPC
import XCTest
import XDR

final class CPeerInteropTests: XCTestCase {
    private var server: RPCServer!
    private var tcp: SocketAddress!
    private var udp: SocketAddress!

    override func setUp() async throws {
        var logger = Logger(label: "interop")
        logger.logLevel = .critical
        server = RPCServer(programs: [TestEcho.makeProgram()], logger: logger)
        tcp = try await server.listenTCP(host: "127.0.0.1", port: 0)
        udp = try await server.listenUDP(host: "127.0.0.1", port: 0)
    }

    override func tearDown() async throws {
        await server.shutdown()
    }

    private static let texts = ["hello", "", "héllo wörld ✓", String(repeating: "abcdefgh", count: 1000)]

    func testRpcgenCClientCallsTheSwiftServer() throws {
        let client = try Peers.cPeers().appendingPathComponent("echo_client").path
        for (transport, port) in [("tcp", tcp.port!), ("udp", udp.port!)] {
            for text in Self.texts where transport == "tcp" || text.utf8.count < 1000 {
                let run = try Command.run([client, "-h", "127.0.0.1", "-p", "\(port)", "-t", transport, "-a", "sys", "-m", "check", "-x", text])
                XCTAssertEqual(run.status, 0, "\(transport): \(run.stderr)")
                XCTAssertEqual(run.stdout, text + "\n", transport)
            }
            let who = try Command.run([client, "-p", "\(port)", "-t", transport, "-a", "sys", "-m", "whoami"])
            XCTAssertEqual(who.status, 0, who.stderr)
            XCTAssertEqual(who.stdout, "\(getuid())\n", "the Swift server sees the C client's AUTH_SYS uid")
            let anonymous = try Command.run([client, "-p", "\(port)", "-t", transport, "-a", "none", "-m", "whoami"])
            XCTAssertEqual(anonymous.stdout, "4294967295\n")
        }
    }

    func testSwiftClientCallsTheRpcgenCServer() async throws {
        let peers = try Peers.cPeers()
        let tcpPort = freePort(), udpPort = freePort()
        let cServer = try BackgroundProcess(
            [peers.appendingPathComponent("echo_server").path, "-p", "\(tcpPort)", "-U", "\(udpPort)"], readyMarker: "ready"
        )
        defer { cServer.stop(signal: SIGKILL) }
        for (transport, port) in [(RPCTransport.tcp, tcpPort), (.udp, udpPort)] {
            let client = try RPCClient(
                transport: transport, host: "127.0.0.1", port: port, program: TestEcho.program, version: TestEcho.version,
                authenticator: AuthSysClient(AuthSysParameters(machineName: "swift", uid: 4242, gid: 42))
            )
            try await client.ping()
            for text in Self.texts where transport == .tcp || text.utf8.count < 1000 {
                let reply = try await client.call(TestEcho.echo, TestEcho.Text(text), returning: TestEcho.Text.self)
                XCTAssertEqual(reply.value, text)
            }
            let uid = try await client.call(TestEcho.whoAmI, XDRVoid(), returning: UInt32.self)
            XCTAssertEqual(uid, 4242, "libtirpc decodes our AUTH_SYS credential")
            // libtirpc answers PROC_UNAVAIL for a procedure it does not have.
            do {
                _ = try await client.call(procedure: 77)
                XCTFail("expected PROC_UNAVAIL")
            } catch let error as RPCClientError {
                XCTAssertEqual(error, .procedureUnavailable(procedure: 77))
            }
            await client.close()
        }
    }
}
