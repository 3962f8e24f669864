// What `rpcbench soak` and `rpcbench flood` share: a keyserver in this process holding the
// client's and the server's secret keys (as GSSBench does), a `serve-secure` child process
// that uses it, client authenticators for each flavor, and readings of the child's memory,
// descriptors and CPU from /proc. The server runs in its own process so that what is read
// there is the server's alone, not the load generator's or the keyserver's.
//
// Trust: everything here is local and made by this process: a private work directory (mode
// 0700) holds the keyserver socket and the public-key file the child reads.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyServer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC
import SecureRPC
import XDR

/// The flavor a benchmark client uses.
enum BenchAuth: String, ExpressibleByArgument, CaseIterable, Sendable {
    case gssPrivacy = "gss-privacy", gssIntegrity = "gss-integrity", gssNone = "gss-none", dh, sys

    var needsKeys: Bool { self != .sys }
}

/// Names and key files shared by the parent and the `serve-secure` child.
enum BenchKeys {
    static let clientUID: UInt32 = 9001, serverUID: UInt32 = 9000
    static let clientNetname = "unix.9001@bench.example", serverNetname = "unix.9000@bench.example"
    /// The principals the bad-INIT flood names (the child knows the same names).
    static func floodPrincipal(_ index: Int) -> String { "unix.\(100_000 + index)@bench.example" }

    /// Reads "NETNAME GROUP HEX" lines.
    static func readPublicKeys(_ path: String?) throws -> [String: [DHGroupName: DHPublicKey]] {
        guard let path else { return [:] }
        var keys: [String: [DHGroupName: DHPublicKey]] = [:]
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3 else { throw ValidationError("bad line in \(path): \(line)") }
            let group = try DHGroupName(parsing: String(parts[1]))
            keys[String(parts[0]), default: [:]][group] = try DHPublicKey(group: group, hex: String(parts[2]))
        }
        return keys
    }
}

/// The keyserver and keys of one run, and the authenticators clients use with them.
final class BenchSite: Sendable {
    let work: URL
    let keysFile: String
    let socket: String
    private let group: MultiThreadedEventLoopGroup
    private let keyserver: RPCServer
    private let clientKeyserver: KeyServerClient
    private let serverDH: DHPublicKey
    private let serverGSS: DHPublicKey

    /// Starts a keyserver on a unix socket in a new work directory with both parties logged
    /// in: legacy keys and one key per strong group, like `rpcbench gss`.
    init(label: String) async throws {
        // The keyserver acts for a uid only when the socket's peer is that uid or root; this
        // one process speaks for two uids (client 9001, server 9000), so it must be root.
        guard getuid() == 0 else {
            throw ValidationError("keys need root: the in-process keyserver acts for two uids (use --auth sys otherwise)")
        }
        var logger = Logger(label: "rpcbench.\(label).keyserver")
        logger.logLevel = .critical
        work = FileManager.default.temporaryDirectory.appendingPathComponent("rpcbench-\(label)-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        socket = work.appendingPathComponent("keyservsock").path
        keysFile = work.appendingPathComponent("public-keys").path
        // Its own thread: context set-ups must not queue behind the load generator's loop.
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

        let core = KeyServerCore()
        let store = StrongKeyStore()
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthSysServer()]
        keyserver = RPCServer(programs: KeyServerService.programs(core: core, strong: store, logger: logger),
                              configuration: configuration, group: group, logger: logger)
        try await keyserver.listenUnix(path: socket)
        let clientDH = DHPrivateKey.generate(group: .dh192des), serverDHKey = DHPrivateKey.generate(group: .dh192des)
        _ = core.setSecret(uid: BenchKeys.clientUID, hex: Array(clientDH.secretHex.utf8))
        _ = core.setSecret(uid: BenchKeys.serverUID, hex: Array(serverDHKey.secretHex.utf8))
        var lines = ["\(BenchKeys.clientNetname) \(DHGroupName.dh192des.rawValue) \(clientDH.publicKey.hex)"]
        var serverStrong: [GSSGroup: DHPublicKey] = [:]
        for gssGroup in GSSGroup.allCases {
            let c = DHPrivateKey.generate(group: gssGroup.dhGroup), s = DHPrivateKey.generate(group: gssGroup.dhGroup)
            _ = store.set(uid: BenchKeys.clientUID, mechanism: gssGroup.keyserverMechanism, secret: c.secret.withUnsafeBytes { Array($0) })
            _ = store.set(uid: BenchKeys.serverUID, mechanism: gssGroup.keyserverMechanism, secret: s.secret.withUnsafeBytes { Array($0) })
            lines.append("\(BenchKeys.clientNetname) \(gssGroup.dhGroup.rawValue) \(c.publicKey.hex)")
            serverStrong[gssGroup] = s.publicKey
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: keysFile, atomically: true, encoding: .utf8)
        serverDH = serverDHKey.publicKey
        serverGSS = serverStrong[.ffdhe3072]!
        clientKeyserver = try KeyServerClient(socketPath: socket, uid: BenchKeys.clientUID)
    }

    /// A fresh authenticator (each connection gets its own: its own context or conversation).
    func authenticator(_ auth: BenchAuth) throws -> any RPCClientAuthenticator {
        switch auth {
        case .sys: return AuthSysClient()
        case .dh:
            return AuthDHClient(clientNetname: BenchKeys.clientNetname, serverNetname: BenchKeys.serverNetname,
                                serverPublicKey: serverDH, keyserver: clientKeyserver)
        case .gssNone, .gssIntegrity, .gssPrivacy:
            let service: GSSService = auth == .gssNone ? .none : auth == .gssIntegrity ? .integrity : .privacy
            return try GSSClient(clientNetname: BenchKeys.clientNetname, serverNetname: BenchKeys.serverNetname,
                                 serverPublicKey: serverGSS, service: service, keyserver: clientKeyserver)
        }
    }

    /// The `serve-secure` arguments that use this site.
    func serverArguments(floodPrincipals: Int = 0) -> [String] {
        ["--keyserver", socket, "--public-keys", keysFile, "--flood-principals", "\(floodPrincipals)"]
    }

    func shutdown() async {
        await clientKeyserver.close()
        await keyserver.shutdown()
        try? await group.shutdownGracefully()
        try? FileManager.default.removeItem(at: work)
    }
}

/// Authenticators for a run: from the site, or AUTH_SYS alone when there is none.
func makeAuthenticator(_ auth: BenchAuth, site: BenchSite?) throws -> any RPCClientAuthenticator {
    if let site { return try site.authenticator(auth) }
    precondition(auth == .sys, "keyed flavors need a BenchSite")
    return AuthSysClient()
}

/// A child process of this same executable (`rpcbench SUBCOMMAND …`), talked to in lines:
/// it writes lines on its standard output, and reads commands on its standard input, whose
/// end tells it to stop (so it cannot outlive this process).
final class BenchChild: @unchecked Sendable {  // `process` and the pipes are set once in init
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let lines = NIOLockedValueBox<[String]>([])
    var pid: Int32 { process.processIdentifier }

    /// - Parameter nice: started through nice(1) at this niceness when not 0 (every thread of
    ///   the child then has it; setpriority in the child would set only its calling thread's).
    /// - Parameter cpus: started through taskset(1) on these CPUs (a list such as "1" or
    ///   "2-3") when given; every thread of the child inherits the mask.
    init(_ arguments: [String], nice: Int32 = 0, cpus: String? = nil) throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var command = [executable] + arguments
        if nice != 0 { command = ["/usr/bin/nice", "-n", "\(nice)"] + command }
        if let cpus { command = ["/usr/bin/taskset", "-c", cpus] + command }
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        let lines = self.lines
        let partial = NIOLockedValueBox("")
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { return }
            let complete: [String] = partial.withLockedValue { rest in
                rest += String(decoding: data, as: UTF8.self)
                var parts = rest.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                rest = parts.removeLast()
                return parts
            }
            lines.withLockedValue { $0.append(contentsOf: complete) }
        }
        try process.run()
    }

    /// The first line from index `after` on that starts with `prefix`; nil when the child
    /// exits or `timeout` passes first. Polls: the pipe is read by Foundation's handler.
    func line(startingWith prefix: String, after: Int = 0, timeout: Duration) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = lines.withLockedValue({ $0.dropFirst(after).first { $0.hasPrefix(prefix) } }) { return line }
            if !process.isRunning { return nil }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    var lineCount: Int { lines.withLockedValue { $0.count } }

    func send(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    /// Closes its input (the child's cue to exit); SIGKILL if it is still there after 5 s.
    func stop() async {
        try? input.fileHandleForWriting.close()
        for _ in 0..<500 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
    }
}

/// A `serve-secure` child: started, asked for counters, stopped.
final class ServerProcess: Sendable {
    let pid: Int32
    let tcpPort: Int
    let udpPort: Int
    private let child: BenchChild

    /// Starts `rpcbench serve-secure` and waits for its ready line.
    init(arguments: [String]) async throws {
        child = try BenchChild(["serve-secure"] + arguments)
        // Up to 60 s: 5,000 random keys take a moment in a debug build.
        let fields = await child.line(startingWith: "ready ", timeout: .seconds(60)).map(keyValues) ?? [:]
        guard let tcp = fields["tcp"].flatMap(Int.init), let udp = fields["udp"].flatMap(Int.init) else {
            await child.stop()
            throw ValidationError("rpcbench serve-secure did not start")
        }
        pid = child.pid
        tcpPort = tcp
        udpPort = udp
    }

    /// The server's counters (`serve-secure`'s "stats" line, as key → value).
    func statistics() async -> [String: Int] {
        let before = child.lineCount
        child.send("stats")
        return await child.line(startingWith: "stats ", after: before, timeout: .seconds(5)).map { keyValues($0).compactMapValues { Int($0) } } ?? [:]
    }

    func stop() async { await child.stop() }
}

/// "key=value key=value" fields of a line.
func keyValues(_ line: String) -> [String: String] {
    var fields: [String: String] = [:]
    for part in line.split(separator: " ") {
        let kv = part.split(separator: "=", maxSplits: 1)
        if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
    }
    return fields
}

/// What /proc says about a process (Linux only; nil when it cannot be read).
enum ProcessReading {
    /// Resident set size in KiB (VmRSS).
    static func residentKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }

    /// Open file descriptors.
    static func openDescriptors(_ pid: Int32) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }

    /// User + system CPU seconds used so far.
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after "(comm)": state is field 3, utime 14 and stime 15 (proc(5)).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// Parses "HOST:PORT" (IPv6 as "[::1]:PORT").
func parseHostPort(_ text: String) throws -> SocketAddress {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
        throw ValidationError("expected HOST:PORT, got \(text)")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return try SocketAddress.makeAddressResolvingHost(host, port: port)
}

/// The echo argument of `size` bytes: an XDR string (the reply is the same bytes).
func echoArgument(size: Int) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeXDR(String(repeating: "x", count: size))
    return buffer
}

/// Percentile of sorted samples (nearest rank).
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((Double(sorted.count) * p).rounded(.up))
    return sorted[max(0, min(sorted.count - 1, rank - 1))]
}
