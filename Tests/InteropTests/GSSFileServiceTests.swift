// The example service on its defaults, as processes: filesvc-server requires RPCSEC_GSS
// (srpc-dh, ffdhe3072 or more, privacy), a user logs in and uses filesvc over TCP and UDP.
// tcpdump records the loopback traffic and tshark — a dissector no one here wrote — decodes
// the RPCSEC_GSS credentials in it: INIT, DATA with increasing sequence numbers and the
// privacy service, the context handle, and DESTROY. The file's contents never appear in the
// capture. A client asking for less than the server's policy gets AUTH_TOOWEAK.

import Foundation
import XCTest

final class GSSFileServiceTests: XCTestCase {
    func testDefaultServiceIsGSSPrivacyAndTsharkDecodesIt() throws {
        let bin = { Peers.productPath($0) }
        let site = try SiteSandbox(prefix: "gssfs")
        defer { site.remove() }
        let work = site.work, db = site.db, socket = site.socket, password = site.password
        XCTAssertEqual(try site.run([bin("keyadmin"), "init", "--db", db]).status, 0)
        for user in ["0", "4253"] {
            let made = try site.run([bin("keyadmin"), "newkey", "--db", db, "--user", user, "--domain", "example.org", "--mechanism", "ffdhe3072", "--password-file", password])
            XCTAssertEqual(made.status, 0, made.stderr)
        }
        for file in [db, db + "-wal", db + "-shm"] { chmod(file, 0o644) }
        let keyserver = try BackgroundProcess([bin("keyserverd"), "--socket", socket, "--root-key", work.appendingPathComponent("rootkey").path, "--no-rpcbind"], readyMarker: "ready")
        defer { keyserver.stop(signal: SIGTERM) }
        XCTAssertEqual(try site.run([bin("keylogin"), "--db", db, "--netname", "unix.0@example.org", "--socket", socket, "--password-stdin"], stdin: "pw").status, 0)
        let login = try site.run([bin("keylogin"), "--db", db, "--netname", "unix.4253@example.org", "--socket", socket, "--password-stdin"], as: 4253, stdin: "pw")
        XCTAssertEqual(login.status, 0, login.stderr)

        let port = 21_000 + Int.random(in: 0..<8000)
        let pcap = work.appendingPathComponent("gss.pcap").path
        let capture = try BackgroundProcess(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-w", pcap, "port \(port)"], readyMarker: "listening on")
        defer { capture.stop(signal: SIGKILL) }

        // Defaults only: no --require-auth, no --auth.
        let server = try BackgroundProcess([bin("filesvc-server"), "--root", work.appendingPathComponent("files").path, "--port", "\(port)",
                                            "--netname", "unix.0@example.org", "--db", db, "--keyserver-socket", socket], readyMarker: "serving")
        defer { server.stop(signal: SIGTERM) }
        let plaintext = "capture-me-if-you-can \(UUID().uuidString)\n"
        let local = work.appendingPathComponent("note.txt").path
        try plaintext.write(toFile: local, atomically: true, encoding: .utf8)
        chmod(local, 0o644)
        func filesvc(_ transport: String, _ args: [String], extra: [String] = []) throws -> Command.Output {
            try site.run([bin("filesvc")] + args + ["--port", "\(port)", "--transport", transport, "--server", "unix.0@example.org",
                                              "--domain", "example.org", "--db", db, "--keyserver-socket", socket] + extra, as: 4253)
        }
        let put = try filesvc("tcp", ["put", local, "/note.txt"])
        XCTAssertEqual(put.status, 0, put.stderr)
        let cat = try filesvc("udp", ["cat", "/note.txt"])
        XCTAssertEqual(cat.stdout, plaintext, cat.stderr)
        let stat = try filesvc("tcp", ["stat", "/note.txt"])
        XCTAssertTrue(stat.stdout.contains("owner unix.4253@example.org"), stat.stdout + stat.stderr)
        let weak = try filesvc("tcp", ["ls", "/"], extra: ["--service", "integrity"])
        XCTAssertNotEqual(weak.status, 0)
        XCTAssertTrue(weak.stderr.contains("AUTH_TOOWEAK"), weak.stderr)
        let sys = try Command.run([bin("filesvc"), "ls", "--auth", "sys", "--port", "\(port)", "/"])
        XCTAssertTrue(sys.stderr.contains("AUTH_TOOWEAK"), sys.stderr)
        usleep(300_000)
        capture.stop(signal: SIGKILL)
        server.stop(signal: SIGTERM)
        XCTAssertTrue(server.log.contains("caller=unix.4253@example.org operation=create path=/note.txt transport=tcp"), server.log)

        // The file's contents are nowhere in the capture.
        let captured = try Data(contentsOf: URL(fileURLWithPath: pcap))
        XCTAssertGreaterThan(captured.count, 1000)
        XCTAssertNil(captured.range(of: Data(plaintext.utf8)), "privacy: plaintext on the wire")
        XCTAssertNil(captured.range(of: Data("capture-me-if-you-can".utf8)))

        // tshark's RPCSEC_GSS dissector reads our credentials.
        let fields = ["frame.number", "rpc.msgtyp", "rpc.authgss.procedure", "rpc.authgss.seqnum", "rpc.authgss.service",
                      "rpc.authgss.context", "rpc.authgss.major", "rpc.authgss.window"]
        let tshark = try Command.run(["tshark", "-r", pcap, "-o", "rpc.dissect_unknown_programs:TRUE",
                                      "-d", "tcp.port==\(port),rpc", "-d", "udp.port==\(port),rpc",
                                      "-Y", "rpc.auth.flavor == 6 || rpc.authgss.major", "-T", "fields", "-E", "separator=;"]
                                     + fields.flatMap { ["-e", $0] })
        XCTAssertEqual(tshark.status, 0, tshark.stderr)
        let rows = tshark.stdout.split(separator: "\n").map { $0.split(separator: ";", omittingEmptySubsequences: false).map(String.init) }
        let calls = rows.filter { $0.count == fields.count && $0[1] == "0" }
        let inits = calls.filter { $0[2] == "1" }, data = calls.filter { $0[2] == "0" }, destroys = calls.filter { $0[2] == "3" }
        XCTAssertGreaterThanOrEqual(inits.count, 4, tshark.stdout)       // one context per filesvc run
        XCTAssertGreaterThanOrEqual(data.count, 4, tshark.stdout)
        XCTAssertGreaterThanOrEqual(destroys.count, 4, tshark.stdout)    // every filesvc run destroys its context on exit
        XCTAssertTrue(data.contains { $0[4] == "3" }, "privacy service decoded: \(tshark.stdout)")
        XCTAssertTrue(data.contains { $0[4] == "2" }, "integrity (the refused call) decoded: \(tshark.stdout)")
        XCTAssertTrue(data.allSatisfy { $0[5].count == 32 }, "16-byte context handles: \(tshark.stdout)")
        // The put ran two DATA calls (create, write) on one context, then DESTROY: sequence
        // numbers 1, 2, 3 under one handle.
        let firstHandle = try XCTUnwrap(data.first?[5])
        let sequences = calls.filter { $0[5] == firstHandle }.compactMap { UInt32($0[3]) }
        XCTAssertEqual(calls.filter { $0[5] == firstHandle }.map { $0[2] }, ["0", "0", "3"], tshark.stdout)
        XCTAssertEqual(Array(sequences.prefix(3)), [1, 2, 3], tshark.stdout)
        // INIT replies: major 0 (complete) and the 1024-number window.
        let initReplies = rows.filter { $0.count == fields.count && $0[1] == "1" && $0[6] == "0" }
        XCTAssertTrue(initReplies.contains { $0[7] == "1024" && $0[5] == firstHandle }, tshark.stdout)
        try tshark.stdout.write(toFile: work.appendingPathComponent("tshark.txt").path, atomically: true, encoding: .utf8)
    }
}
