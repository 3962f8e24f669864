// Type=notify readiness: the daemons speak systemd's notify protocol. The test plays
// systemd: a unix datagram socket in a temporary directory, named by NOTIFY_SOCKET in the
// daemon's environment; READY=1 must arrive once the daemon serves (its socket answers),
// STOPPING=1 when SIGTERM starts the graceful shutdown. Without NOTIFY_SOCKET nothing is
// sent (every other test runs the daemons so).

import Foundation
import XCTest

final class ServiceNotificationTests: XCTestCase {
    /// A bound SOCK_DGRAM unix socket, as systemd holds for a Type=notify unit.
    private final class NotifySocket {
        let path: String
        let fd: Int32

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: Array(path.utf8) + [0]) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard fd >= 0, bound == 0 else { throw CommandError("cannot bind \(path): errno \(errno)") }
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        /// The next datagram, or nil after 30 s (or at once when `timeout` is 0 and none waits).
        func receive(timeout: Int = 30) -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, timeout == 0 ? Int32(MSG_DONTWAIT) : 0)
            return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : nil
        }

        deinit { close(fd) }
    }

    func testDaemonsSayReadyWhenServingAndStoppingOnSIGTERM() throws {
        let bin = { Peers.productPath($0) }
        let site = try SiteSandbox(prefix: "notify")
        defer { site.remove() }
        let notify = try NotifySocket(path: site.path("notify"))

        let keyserver = try BackgroundProcess(["NOTIFY_SOCKET=\(notify.path)", bin("keyserverd"), "--socket", site.socket,
                                               "--root-key", site.path("none"), "--no-rpcbind"], readyMarker: nil)
        defer { keyserver.stop() }
        let ready = notify.receive()
        XCTAssertEqual(ready, "READY=1\nSTATUS=serving \(site.socket)", keyserver.log)
        // Ready means serving: the socket exists and answers at once.
        XCTAssertTrue(FileManager.default.fileExists(atPath: site.socket))
        let listed = try Command.run([bin("keylist"), "--socket", site.socket])
        XCTAssertEqual(listed.status, 1, "not logged in, but answered: \(listed.stderr)")
        kill(keyserver.process.processIdentifier, SIGTERM)
        XCTAssertEqual(notify.receive(), "STOPPING=1", keyserver.log)
        keyserver.stop()

        let port = freePort()
        let files = try BackgroundProcess(["NOTIFY_SOCKET=\(notify.path)", bin("filesvc-server"), "--root", site.path("files"),
                                           "--port", "\(port)", "--require-auth", "none"], readyMarker: nil)
        defer { files.stop() }
        XCTAssertEqual(notify.receive(), "READY=1\nSTATUS=serving \(site.path("files"))", files.log)
        let listed2 = try Command.run([bin("filesvc"), "ls", "/", "--port", "\(port)", "--auth", "sys"])
        XCTAssertEqual(listed2.status, 0, listed2.stderr + "\n" + files.log)
        kill(files.process.processIdentifier, SIGTERM)
        XCTAssertEqual(notify.receive(), "STOPPING=1", files.log)
    }

    /// A supervisor may stop a daemon the moment it says ready. Before, the daemons said so
    /// before trapping SIGTERM, and such a SIGTERM killed them by its default action (status
    /// 143, the socket left behind) in most rounds; now readiness comes from inside the
    /// ServiceGroup, after the signals are trapped, and every round is a graceful stop.
    func testASIGTERMTheMomentADaemonSaysReadyIsAGracefulStop() throws {
        let bin = { Peers.productPath($0) }
        let site = try SiteSandbox(prefix: "notify-race")
        defer { site.remove() }
        let notify = try NotifySocket(path: site.path("notify"))
        for round in 0..<8 {
            let keyserver = try BackgroundProcess(["NOTIFY_SOCKET=\(notify.path)", bin("keyserverd"), "--socket", site.socket,
                                                   "--root-key", site.path("none"), "--no-rpcbind"], readyMarker: nil)
            XCTAssertEqual(notify.receive(), "READY=1\nSTATUS=serving \(site.socket)", keyserver.log)
            kill(keyserver.process.processIdentifier, SIGTERM)
            keyserver.process.waitUntilExit()
            XCTAssertEqual(keyserver.process.terminationReason, .exit, "round \(round): killed by the signal\n\(keyserver.log)")
            XCTAssertEqual(keyserver.process.terminationStatus, 0, "round \(round)\n\(keyserver.log)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: site.socket), "round \(round): the socket was left behind")
            while let message = notify.receive(timeout: 0), message == "STOPPING=1" {}
        }
        for round in 0..<8 {
            let files = try BackgroundProcess(["NOTIFY_SOCKET=\(notify.path)", bin("filesvc-server"), "--root", site.path("files"),
                                               "--port", "\(freePort())", "--require-auth", "none"], readyMarker: nil)
            XCTAssertEqual(notify.receive(), "READY=1\nSTATUS=serving \(site.path("files"))", files.log)
            kill(files.process.processIdentifier, SIGTERM)
            files.process.waitUntilExit()
            XCTAssertEqual(files.process.terminationReason, .exit, "round \(round): killed by the signal\n\(files.log)")
            XCTAssertEqual(files.process.terminationStatus, 0, "round \(round)\n\(files.log)")
            while let message = notify.receive(timeout: 0), message == "STOPPING=1" {}
        }
        // rpcbench serve, which benchmarks start and stop at once, prints its ready line the
        // same way (it was killed by the signal in 18 of 20 rounds before).
        for round in 0..<8 {
            let serve = try BackgroundProcess([bin("rpcbench"), "serve", "--threads", "1"], readyMarker: "ready tcp=")
            kill(serve.process.processIdentifier, SIGTERM)
            serve.process.waitUntilExit()
            XCTAssertEqual(serve.process.terminationReason, .exit, "round \(round): killed by the signal\n\(serve.log)")
            XCTAssertEqual(serve.process.terminationStatus, 0, "round \(round)\n\(serve.log)")
        }
    }
}
