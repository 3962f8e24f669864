// The example file service end to end over TCP and UDP, its wire format, every error status,
// confinement to the root, and the CLI binaries.

import FileService
import Foundation
import Logging
import NIOCore
import XCTest
import XDR
import ONCRPC

private func quietLogger() -> Logger {
    var logger = Logger(label: "filesvc-test")
    logger.logLevel = .critical
    return logger
}

private func hexString(_ buffer: ByteBuffer) -> String {
    buffer.readableBytesView.map { String(format: "%02x", $0) }.joined()
}

final class FileServiceTests: XCTestCase {
    private var root: URL!
    private var server: RPCServer!
    private var tcp: SocketAddress!
    private var udp: SocketAddress!

    override func setUp() async throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("filesvc-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let files = try FileServiceServer(root: root.path, logger: quietLogger())
        server = RPCServer(programs: [files.program], logger: quietLogger())
        tcp = try await server.listenTCP()
        udp = try await server.listenUDP()
    }

    override func tearDown() async throws {
        await server.shutdown()
        try? FileManager.default.removeItem(at: root)
    }

    private func client(_ transport: RPCTransport, uid: UInt32 = 1001) -> FileServiceClient {
        FileServiceClient(rpc: RPCClient(
            transport: transport, address: transport == .tcp ? tcp : udp,
            program: FileServiceProtocol.program, version: FileServiceProtocol.version,
            authenticator: AuthSysClient(AuthSysParameters(machineName: "test", uid: uid, gid: 100))
        ))
    }

    private func assertStatus(_ expected: FileStatus, file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> Void) async {
        do {
            try await body()
            XCTFail("expected \(expected)", file: file, line: line)
        } catch let error as FileServiceError {
            XCTAssertEqual(error.status, expected, "\(error)", file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    /// The types XDRGenPlugin generates from filesvc.x put the bytes on the wire that the
    /// hand-written ones did (and that an rpcgen peer expects), and enforce the .x bounds.
    func testWireFormatGoldenBytes() throws {
        let args = FsReadArgs(path: "/a", offset: 1 << 32, count: 512).xdrEncoded()
        XCTAssertEqual(hexString(args), "00000002" + "2f610000" + "0000000100000000" + "00000200")
        let failed = FsStatRes.default(discriminant: .fsNoent).xdrEncoded()
        XCTAssertEqual(hexString(failed), "00000002")
        let ok = FsWriteRes.fsOk(7).xdrEncoded()
        XCTAssertEqual(hexString(ok), "00000000" + "00000007")
        // Bounds from filesvc.x are enforced on decode.
        var tooLong = ByteBuffer()
        tooLong.writeXDR(String(repeating: "x", count: 1025))
        tooLong.writeXDR(UInt64(0))
        tooLong.writeXDR(UInt32(1))
        XCTAssertThrowsError(try tooLong.decodeXDRExactly(FsReadArgs.self))
        var bigData = ByteBuffer()
        bigData.writeXDR("/a")
        bigData.writeXDR(UInt64(0))
        bigData.writeXDROpaque([UInt8](repeating: 1, count: 65537))
        bigData.writeXDR(false)
        XCTAssertThrowsError(try bigData.decodeXDRExactly(FsWriteArgs.self))
    }

    func testFileLifecycleOverTCPAndUDP() async throws {
        for transport in RPCTransport.allCases {
            let files = client(transport)
            let path = "/notes-\(transport).txt"
            try await files.create(path, exclusive: true)
            await assertStatus(.fsExist) { try await files.create(path, exclusive: true) }
            try await files.writeAll(path, contents: ByteBuffer(string: "hello \(transport)"))
            let text = String(buffer: try await files.readAll(path))
            XCTAssertEqual(text, "hello \(transport)")
            let attributes = try await files.stat(path)
            XCTAssertEqual(attributes.type, .fsReg)
            XCTAssertEqual(attributes.size, UInt64("hello \(transport)".utf8.count))
            XCTAssertEqual(attributes.owner, "unix.1001", "the creator's AUTH_SYS uid is recorded")
            let names = try await files.list("/")
            XCTAssertTrue(names.contains("notes-\(transport).txt"))
            try await files.remove(path)
            await assertStatus(.fsNoent) { _ = try await files.stat(path) }
            await files.close()
        }
    }

    func testLargeFileInChunksOverTCP() async throws {
        let files = client(.tcp)
        let contents = ByteBuffer(bytes: (0..<200_000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        try await files.writeAll("/big.bin", contents: contents)
        let back = try await files.readAll("/big.bin")
        XCTAssertEqual(back, contents)
        let size = try await files.stat("/big.bin").size
        XCTAssertEqual(size, 200_000)
        // Rewriting shorter truncates.
        try await files.writeAll("/big.bin", contents: ByteBuffer(string: "short"))
        let short = String(buffer: try await files.readAll("/big.bin"))
        XCTAssertEqual(short, "short")
        await files.close()
    }

    func testDirectoriesAndErrorStatuses() async throws {
        let files = client(.tcp)
        try await files.makeDirectory("/d")
        try await files.create("/d/f")
        let listing = try await files.list("/d")
        XCTAssertEqual(listing, ["f"])
        let type = try await files.stat("/d").type
        XCTAssertEqual(type, .fsDir)
        await assertStatus(.fsNotempty) { try await files.remove("/d") }
        await assertStatus(.fsIsdir) { _ = try await files.read("/d", offset: 0) }
        await assertStatus(.fsNotdir) { _ = try await files.list("/d/f") }
        await assertStatus(.fsNotdir) { try await files.create("/d/f/g") }
        await assertStatus(.fsNoent) { _ = try await files.read("/missing", offset: 0) }
        await assertStatus(.fsNoent) { try await files.create("/nodir/x") }
        await assertStatus(.fsExist) { try await files.makeDirectory("/d") }
        await assertStatus(.fsNametoolong) { try await files.create("/" + String(repeating: "n", count: 256)) }
        await assertStatus(.fsInval) { try await files.create("relative") }
        try await files.remove("/d/f")
        try await files.remove("/d")
        await files.close()
    }

    func testPathsCannotEscapeTheRoot() async throws {
        let outside = root.deletingLastPathComponent().appendingPathComponent("outside-\(UUID().uuidString)")
        try "secret".write(to: outside, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: outside) }
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("link").path, withDestinationPath: outside.path)
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("dirlink").path, withDestinationPath: "/etc")
        let files = client(.tcp)
        await assertStatus(.fsAcces) { _ = try await files.read("/../\(outside.lastPathComponent)", offset: 0) }
        await assertStatus(.fsAcces) { _ = try await files.read("/link", offset: 0) }
        await assertStatus(.fsAcces) { _ = try await files.read("/dirlink/passwd", offset: 0) }
        await assertStatus(.fsAcces) { try await files.write("/link", offset: 0, data: ByteBuffer(string: "x")) }
        await assertStatus(.fsAcces) { _ = try await files.list("/dirlink") }
        await assertStatus(.fsAcces) { _ = try await files.stat("/\(FileStoreReserved.name)") }
        await assertStatus(.fsNoent) { _ = try await files.read("/etc/passwd", offset: 0) }
        XCTAssertEqual(try String(contentsOf: outside, encoding: .utf8), "secret")
        await files.close()
    }

    func testCommandLineTools() throws {
        let server = Peers.productPath("filesvc-server")
        let cli = Peers.productPath("filesvc")
        let port = 20_000 + Int.random(in: 0..<9000)
        let dir = root.appendingPathComponent("cli-root").path
        let daemon = try BackgroundProcess([server, "--root", dir, "--port", "\(port)", "--require-auth", "none", "--log-level", "info"], readyMarker: "serving")
        defer { daemon.stop(signal: SIGTERM) }
        let local = root.appendingPathComponent("local.txt")
        try "from the cli\n".write(to: local, atomically: true, encoding: .utf8)

        let put = try Command.run([cli, "put", "--auth", "sys", "--port", "\(port)", local.path, "/c.txt"])
        XCTAssertEqual(put.status, 0, put.stderr)
        let ls = try Command.run([cli, "ls", "--auth", "sys", "--port", "\(port)", "/"])
        XCTAssertEqual(ls.stdout, "c.txt\n")
        let cat = try Command.run([cli, "cat", "--auth", "sys", "--port", "\(port)", "--transport", "udp", "/c.txt"])
        XCTAssertEqual(cat.stdout, "from the cli\n")
        let missing = try Command.run([cli, "cat", "--auth", "sys", "--port", "\(port)", "/nope"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertEqual(missing.stderr, "filesvc: /nope: no such file or directory\n")
        let rm = try Command.run([cli, "rm", "--auth", "sys", "--port", "\(port)", "/c.txt"])
        XCTAssertEqual(rm.status, 0, rm.stderr)

        daemon.stop(signal: SIGTERM)
        XCTAssertEqual(daemon.process.terminationStatus, 0, "graceful exit: \(daemon.log)")
        XCTAssertTrue(daemon.log.contains("caller=unix.\(getuid()) operation=create path=/c.txt"), daemon.log)
        let down = try Command.run([cli, "ping", "--auth", "sys", "--port", "\(port)"])
        XCTAssertNotEqual(down.status, 0)
        XCTAssertTrue(down.stderr.hasPrefix("filesvc: cannot connect to"), down.stderr)
        XCTAssertTrue(down.stderr.contains("is filesvc-server running on 127.0.0.1:\(port)?"), down.stderr)
    }
}

enum FileStoreReserved {
    static let name = ".filesvc-meta"
}
