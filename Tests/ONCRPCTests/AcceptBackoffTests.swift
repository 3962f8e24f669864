// A server out of file descriptors (ATTACKS.md #6, CVE-2021-46828): a connection waits in
// the listen backlog, accept() fails with EMFILE, and the listening socket stays readable.
// The server must pause accepting rather than retry at once (an event loop at 100 % CPU),
// and accept again once descriptors are back. The test lowers this process's own
// RLIMIT_NOFILE (the server runs in it), uses up the descriptors, and counts failed
// accepts over about a second (a spinning loop makes thousands), and compares the CPU time
// the process burns with the wall time that passed: generous bounds that a noisy machine
// can only make easier to meet.

import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
@testable import ONCRPC

final class AcceptBackoffTests: XCTestCase {
    private func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    func testNoSpinWhileOutOfFileDescriptorsAndAcceptingResumesAfter() async throws {
        let logs = LogCapture()
        var configuration = RPCServer.Configuration()
        configuration.refusalLogInterval = .seconds(60)
        let server = RPCServer(programs: TestProgram.make(counter: NIOLockedValueBox(0)), configuration: configuration,
                               logger: logs.logger(level: .info))
        let address = try await server.listenTCP()
        let port = address.port!

        // A client in another process (its own descriptors) that connects once told to, by
        // a directory appearing: mkdir needs no descriptor.
        let flag = FileManager.default.temporaryDirectory.appendingPathComponent("emfile-go-\(UUID().uuidString)").path
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/bash")
        child.arguments = ["-c", "while [ ! -d \(flag) ]; do sleep 0.02; done; exec 3<>/dev/tcp/127.0.0.1/\(port); sleep 60"]
        try child.run()
        defer {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            rmdir(flag)
        }

        // The test sleeps while the descriptors are used up. Swift's first Task.sleep in a
        // process makes libdispatch create its timer descriptors, and with none to be had it
        // traps (SIGILL; seen once in a fresh-clone CI run, where no earlier test had slept
        // yet, and every time in a small program that sleeps first with none left). Sleep
        // once before, so they exist.
        try await Task.sleep(nanoseconds: 1_000_000)

        // Use up this process's descriptors: a low soft limit, then /dev/null until EMFILE.
        let nofile = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var saved = rlimit()
        XCTAssertEqual(getrlimit(nofile, &saved), 0)
        let openNow = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        var lowered = saved
        lowered.rlim_cur = rlim_t(openNow + 256)
        XCTAssertEqual(setrlimit(nofile, &lowered), 0)
        var held: [Int32] = []
        func giveBack() {
            for fd in held { close(fd) }
            held = []
            var restore = saved
            setrlimit(nofile, &restore)
        }
        defer { giveBack() }
        while true {
            let fd = open("/dev/null", O_RDONLY)
            if fd < 0 { break }
            held.append(fd)
        }
        mkdir(flag, 0o755)

        // The pending connection makes accept() fail; then watch the CPU for a second.
        let deadline = NIODeadline.now() + .seconds(20)
        while server.statistics.acceptErrors == 0 && NIODeadline.now() < deadline {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertGreaterThan(server.statistics.acceptErrors, 0, "accept never failed: the test did not exhaust descriptors")
        let wallStart = Date(), cpuStart = cpuSeconds()
        try await Task.sleep(nanoseconds: 1_000_000_000)
        let cpu = cpuSeconds() - cpuStart, wall = Date().timeIntervalSince(wallStart)
        let errors = server.statistics.acceptErrors
        giveBack()

        // Pausing 250 ms after each failure: about 5 attempts in the second. Spinning: tens
        // of thousands, which a loaded machine can slow but not bring near 50.
        XCTAssertLessThan(errors, 50, "accept retried \(errors) times in about a second")
        XCTAssertLessThan(cpu / wall, 0.3, "the process burned \(cpu) s of CPU in \(wall) s while out of descriptors (\(errors) failed accepts)")
        let lines = logs.lines { $0.message.hasPrefix("accepting connections failed") }
        XCTAssertEqual(lines.count, 1, "one rate-limited line for \(errors) failed accepts")

        // With descriptors back, the waiting connection is accepted and new calls served.
        let resumed = NIODeadline.now() + .seconds(10)
        while server.connectionCount == 0 && NIODeadline.now() < resumed {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertEqual(server.connectionCount, 1, "the waiting connection was accepted")
        let client = RPCClient(transport: .tcp, address: address, program: TestProgram.number, version: 1)
        let reply = try await client.call(TestProgram.echo, TestText("back"), returning: TestText.self)
        XCTAssertEqual(reply.value, "back")
        await client.close()
        await server.shutdown()
    }
}
