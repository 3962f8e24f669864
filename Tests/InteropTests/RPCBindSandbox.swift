// A real rpcbind in a private network and mount namespace for one test. The test reaches it
// three ways: commands run through nsenter (rpcinfo, C peers, our executables), and an
// event loop group whose threads were created inside the namespace, so in-process Swift
// servers and clients bind and connect there.

import Foundation
import NIOCore
import NIOPosix
import XCTest

final class RPCBindSandbox: @unchecked Sendable {
    private let launcher = Process()
    private let input = Pipe()
    private let output = Pipe()
    let rpcbindPID: Int32
    private(set) var group: MultiThreadedEventLoopGroup!

    init() throws {
        guard getuid() == 0 else { throw CommandError("rpcbind sandbox tests need root (unshare, mount)") }
        launcher.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        launcher.arguments = ["unshare", "-n", "-m", "bash", Peers.packageRoot.appendingPathComponent("Tests/InteropTests/with-rpcbind.sh").path]
        launcher.standardInput = input
        launcher.standardOutput = output
        try launcher.run()
        // Read the "ready PID" line.
        var line = Data()
        let deadline = Date().addingTimeInterval(15)
        while !line.contains(UInt8(ascii: "\n")) && Date() < deadline {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("ready "), let pid = Int32(text.dropFirst(6).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            launcher.terminate()
            throw CommandError("rpcbind sandbox failed to start: \(text)")
        }
        rpcbindPID = pid
        group = try makeGroupInsideNamespace()
    }

    /// Threads inherit the network namespace of the thread that creates them: enter the
    /// namespace on a fresh thread and create the event loops from there.
    private func makeGroupInsideNamespace() throws -> MultiThreadedEventLoopGroup {
        let fd = open("/proc/\(rpcbindPID)/ns/net", O_RDONLY)
        guard fd >= 0 else { throw CommandError("cannot open the sandbox's network namespace") }
        defer { close(fd) }
        final class Box: @unchecked Sendable { var group: MultiThreadedEventLoopGroup?; var error: String? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            if enterNetworkNamespace(fd) != 0 {
                box.error = "setns failed: errno \(errno)"
            } else {
                box.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            }
            done.signal()
        }
        thread.start()
        done.wait()
        guard let group = box.group else { throw CommandError(box.error ?? "no group") }
        return group
    }

    /// nsenter arguments that run a command inside the sandbox.
    func inside(_ command: [String]) -> [String] {
        ["nsenter", "--net=/proc/\(rpcbindPID)/ns/net", "--mount=/proc/\(rpcbindPID)/ns/mnt", "--"] + command
    }

    func run(_ command: [String], timeout: TimeInterval = 60) throws -> Command.Output {
        try Command.run(inside(command), timeout: timeout)
    }

    /// `rpcinfo -p` inside the sandbox, as (program, version, proto, port) rows.
    func registrations() throws -> [(program: UInt32, version: UInt32, proto: String, port: Int)] {
        let out = try run(["rpcinfo", "-p"])
        guard out.status == 0 else { throw CommandError("rpcinfo -p failed: \(out.stderr)") }
        return out.stdout.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 4, let p = UInt32(f[0]), let v = UInt32(f[1]), let port = Int(f[3]) else { return nil }
            return (p, v, String(f[2]), port)
        }
    }

    func stop() async {
        try? await group?.shutdownGracefully()
        group = nil
        try? input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(10)
        while launcher.isRunning && Date() < deadline { usleep(10_000) }
        if launcher.isRunning {
            kill(rpcbindPID, SIGKILL)
            kill(launcher.processIdentifier, SIGKILL)
        }
    }
}

/// `setns(fd, CLONE_NEWNET)`: glibc declares setns only under _GNU_SOURCE, which the Swift
/// Glibc module does not set, so look the symbol up at run time.
private func enterNetworkNamespace(_ fd: Int32) -> Int32 {
    typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else { return -1 }
    let cloneNewNet: Int32 = 0x4000_0000
    return unsafeBitCast(symbol, to: SetNS.self)(fd, cloneNewNet)
}
