// Helpers for the xdrgen tests: locating the build directory (for the xdrgen binary and
// the compiled modules), running subprocesses, hex encoding, and building the C peers
// once per test run. Trusts the build layout SwiftPM produces on Linux.

import Foundation
import NIOCore
import XCTest
import XDR

enum TestEnvironment {
    /// The directory holding this test binary: `.build/<triple>/debug`.
    static let buildDirectory: URL = {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        // On Linux the tests run from `<build>/SecureRPCPackageTests.xctest`; on macOS from
        // inside a bundle, so walk up until the Modules directory appears.
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Modules").path), directory.path != "/" {
            directory = directory.deletingLastPathComponent()
        }
        return directory
    }()

    /// The package root (the directory holding Package.swift).
    static let packageRoot: URL = {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path), directory.path != "/" {
            directory = directory.deletingLastPathComponent()
        }
        return directory
    }()

    /// The xdrgen command: the product, or the host-tool build of it that SwiftPM makes for
    /// XDRGenPlugin (always present, since this test target uses the plugin).
    static var xdrgen: URL {
        let product = buildDirectory.appendingPathComponent("xdrgen")
        if FileManager.default.isExecutableFile(atPath: product.path) { return product }
        return buildDirectory.appendingPathComponent("xdrgen-tool")
    }

    static func temporaryDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("xdrgen-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

struct ProcessResult {
    var status: Int32
    var output: String
    var errors: String
}

/// Runs a program to completion, collecting its output (both pipes read concurrently).
func runProcess(_ executable: String, _ arguments: [String], currentDirectory: URL? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.contains("/") ? executable : "/usr/bin/env")
    process.arguments = executable.contains("/") ? arguments : [executable] + arguments
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let group = DispatchGroup()
    let errorData = DataBox()
    group.enter()
    DispatchQueue.global().async {
        errorData.set(errors.fileHandleForReading.readDataToEndOfFile())
        group.leave()
    }
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return ProcessResult(
        status: process.terminationStatus,
        output: String(decoding: outputData, as: UTF8.self),
        errors: String(decoding: errorData.get(), as: UTF8.self)
    )
}

private final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}

func hex(_ buffer: ByteBuffer) -> String {
    buffer.readableBytesView.map { String(format: "%02x", $0) }.joined()
}

func hex<T: XDREncodable>(_ value: T) -> String {
    hex(value.xdrEncoded())
}

/// The C peers (zoo_server, zoo_client), built once per test process.
enum CPeers {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var built: Result<URL, Error>?

    static func directory() throws -> URL {
        lock.lock()
        defer { lock.unlock() }
        if let built { return try built.get() }
        let result = Result<URL, Error> {
            let out = try TestEnvironment.temporaryDirectory("cpeers")
            let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/XDRGenTests/CPeers/build.sh").path
            let run = try runProcess("/bin/sh", [script, out.path])
            guard run.status == 0 else {
                throw CPeerError.buildFailed(run.output + run.errors)
            }
            return out
        }
        built = result
        return try result.get()
    }

    /// Removes the built peers (called when the tests that use them are done).
    static func remove() {
        lock.lock()
        defer { lock.unlock() }
        if case let .success(directory)? = built {
            try? FileManager.default.removeItem(at: directory)
        }
        built = nil
    }
}

enum CPeerError: Error, CustomStringConvertible {
    case buildFailed(String)
    case notReady(String)

    var description: String {
        switch self {
        case let .buildFailed(log): return "C peers did not build:\n\(log)"
        case let .notReady(log): return "C server did not start:\n\(log)"
        }
    }
}

/// A running C server; killed by `stop()`.
final class CServer: @unchecked Sendable {
    let process = Process()
    let port: Int

    init(port: Int) throws {
        self.port = port
        let directory = try CPeers.directory()
        process.executableURL = directory.appendingPathComponent("zoo_server")
        process.arguments = ["-p", "\(port)"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Wait for "ready" (the server prints it once it listens); EOF means it died.
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("ready") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty {
                throw CPeerError.notReady(String(decoding: seen, as: UTF8.self))
            }
            seen.append(chunk)
        }
    }

    func stop() {
        if process.isRunning {
            // SIGKILL: a child spawned from a Dispatch or concurrency thread inherits that
            // thread's blocked signals, SIGTERM among them.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }

    /// Starts a server on a free port, retrying if another process took the port between
    /// the probe and the C server's bind.
    static func start() throws -> CServer {
        var lastError: Error?
        for _ in 0..<3 {
            do {
                return try CServer(port: try freeLoopbackPort())
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }
}

/// A loopback TCP port that was free a moment ago (for the C server, which takes a
/// fixed port); the kernel hands out ephemeral ports in sequence, so reuse is unlikely.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
