// `rpcbench run`: the whole comparison in one invocation. Builds the C peers (rpcgen +
// libtirpc), starts each server pinned with taskset, drives it with the C client and the
// Swift client, and prints one table plus the ratios the project tracks, then the
// allocations per call (`rpcbench allocs` under the counter that build.sh builds). Every
// child process is stopped before returning, also on failure.

import ArgumentParser
import Foundation

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every scenario (C and Swift servers and clients, pinned and concurrent) and print ratios."
    )

    @Option(help: "Directory with echo_server and echo_client already built (default: build them from Tests/CPeers).")
    var cPeers: String?

    @Option(help: "Calls per sequential measurement.")
    var calls = 20_000

    @Option(help: "Calls per client process in the 32-client measurements.")
    var concurrentCalls = 3_000

    @Option(help: "Seconds the 32 C clients get to connect and warm up before the run fails.")
    var connectTimeout = 30.0

    @Option(help: "Rounds of every measurement, the servers alternated between them; a row is its median round.")
    var rounds = 3

    @Flag(help: "A short smoke run (few calls, one round).")
    var quick = false

    func validate() throws {
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
    }

    func run() async throws {
        let calls = quick ? 500 : self.calls
        let concurrentCalls = quick ? 100 : self.concurrentCalls
        let rounds = quick ? 1 : self.rounds
        let peers = try cPeers ?? buildCPeers()
        let cServer = peers + "/echo_server", cClient = peers + "/echo_client"
        let swift = CommandLine.arguments[0].hasPrefix("/") ? CommandLine.arguments[0]
            : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]
        var rows: [Row] = []
        let processes = ChildProcesses()
        defer { processes.stopAll() }

        func startServer(_ kind: String, cpu: String?) throws -> (port: Int, stop: () -> Void) {
            let port = Int.random(in: 30_000..<60_000)
            var command = kind == "C" ? [cServer, "-p", "\(port)"] : [swift, "serve", "-p", "\(port)", "--threads", cpu == nil ? "2" : "1"]
            if let cpu { command = ["taskset", "-c", cpu] + command }
            let child = try processes.start(command, readyMarker: "ready")
            return (port, { processes.stop(child) })
        }

        func clientCommand(_ kind: String, port: Int, cpu: String?, procedure: String, calls: Int, concurrency: Int = 1) -> [String] {
            var command = kind == "C"
                ? [cClient, "-p", "\(port)", "-t", "tcp", "-m", procedure == "null" ? "benchnull" : "bench", "-n", "\(calls)"]
                : [swift, "client", "-p", "\(port)", "--procedure", procedure, "--calls", "\(calls)", "--concurrency", "\(concurrency)",
                   "--threads", "1"] + (kind == swiftOnLoop ? ["--loop-executor"] : [])
            if let cpu { command = ["taskset", "-c", cpu] + command }
            return command
        }

        // Every scenario `rounds` times, C and Swift servers taking turns within each round,
        // so that a slow minute of the machine (it varies by tens of percent) lands in one
        // round of both sides rather than in one side's only measurement.
        for _ in 0..<rounds {
            // Sequential, pinned both ways.
            for (pinning, serverCPU, clientCPU) in [("same CPU", "0", "0"), ("cross CPU", "0", "1")] {
                for serverKind in ["C", "Swift"] {
                    let server = try startServer(serverKind, cpu: serverCPU)
                    for clientKind in ["C", "Swift", swiftOnLoop] {
                        for procedure in ["null", "echo"] {
                            let result = try Measurement.parse(try runToEnd(clientCommand(clientKind, port: server.port, cpu: clientCPU, procedure: procedure, calls: calls)))
                            rows.append(Row(scenario: "sequential \(procedure)", server: serverKind, client: clientKind, pinning: pinning, result: result))
                        }
                    }
                    server.stop()
                }
            }

            // 32 concurrent callers, unpinned: 32 C client processes, or one Swift client with 32
            // calls in flight on one connection. The C processes are timed twice: connected and
            // warmed up before a common start (the honest baseline), and as before, over the wall
            // time of 32 freshly started processes (start-up included, kept for comparison with
            // earlier runs).
            for serverKind in ["C", "Swift"] {
                let server = try startServer(serverKind, cpu: nil)
                let commands = (0..<32).map { _ in clientCommand("C", port: server.port, cpu: nil, procedure: "echo", calls: concurrentCalls) }
                // Bounded generously: a minute plus a millisecond per call.
                let persistent = try runPersistentClients(commands.map { $0 + ["-w"] }, connectTimeout: connectTimeout,
                                                          runTimeout: 60 + Double(32 * concurrentCalls) / 1000)
                rows.append(Row(scenario: "32 callers echo", server: serverKind, client: cPersistent, pinning: "unpinned",
                                result: Measurement.combine(try persistent.lines.map(Measurement.parse), wall: persistent.wall)))
                let started = Date()
                let results = try runConcurrently(commands).map(Measurement.parse)
                let wall = Date().timeIntervalSince(started)
                rows.append(Row(scenario: "32 callers echo", server: serverKind, client: cWithStartUp, pinning: "unpinned",
                                result: Measurement.combine(results, wall: wall)))
                let swiftResult = try Measurement.parse(try runToEnd(clientCommand("Swift", port: server.port, cpu: nil, procedure: "echo",
                                                                                    calls: concurrentCalls * 32, concurrency: 32)))
                rows.append(Row(scenario: "32 callers echo", server: serverKind, client: "Swift, 32 in flight", pinning: "unpinned", result: swiftResult))
                server.stop()
            }
        }
        rows = Row.medians(of: rows)

        printTable(rows, rounds: rounds)
        printRatios(rows)
        printAllocations(peers: peers, swift: swift, quick: quick)
    }

    /// The Swift client with its calling task on the connection's event loop
    /// (`rpcbench client --loop-executor`: ONCRPC's `EventLoopTaskExecutor` as the task's
    /// executor preference).
    private var swiftOnLoop: String { "Swift, on its loop" }
    private var cPersistent: String { "C ×32 processes" }
    private var cWithStartUp: String { "C ×32 processes, start-up incl." }

    // MARK: output

    private func printTable(_ rows: [Row], rounds: Int) {
        print("\nrpcbench — ONC RPC over loopback TCP, AUTH_NONE, 16-byte echo strings; each row the median of \(rounds) round\(rounds == 1 ? "" : "s")")
        print(pad("scenario", 18) + pad("server", 7) + pad("client", 33) + pad("pinning", 10) + pad("calls/s", 10, right: true) + pad("p50 µs", 9, right: true) + pad("p99 µs", 9, right: true))
        for row in rows {
            print(pad(row.scenario, 18) + pad(row.server, 7) + pad(row.client, 33) + pad(row.pinning, 10)
                  + pad(String(format: "%.0f", row.result.rate), 10, right: true)
                  + pad(String(format: "%.1f", row.result.p50), 9, right: true)
                  + pad(String(format: "%.1f", row.result.p99), 9, right: true))
        }
    }

    private func printRatios(_ rows: [Row]) {
        func rate(_ scenario: String, _ server: String, _ client: String, _ pinning: String) -> Double? {
            rows.first { $0.scenario == scenario && $0.server == server && $0.client == client && $0.pinning == pinning }?.result.rate
        }
        print("\nratios (Swift / C, same run)")
        for pinning in ["same CPU", "cross CPU"] {
            for procedure in ["null", "echo"] {
                let scenario = "sequential \(procedure)"
                if let swiftServer = rate(scenario, "Swift", "C", pinning), let cServer = rate(scenario, "C", "C", pinning) {
                    print(String(format: "  %@, %@: Swift server vs C server, same C client: %.2f×", scenario, pinning, swiftServer / cServer))
                }
                if let swiftBoth = rate(scenario, "Swift", "Swift", pinning), let cBoth = rate(scenario, "C", "C", pinning) {
                    print(String(format: "  %@, %@: Swift client+server vs C client+server: %.2f×", scenario, pinning, swiftBoth / cBoth)
                          + (rate(scenario, "Swift", swiftOnLoop, pinning).map { String(format: "; client tasks on its event loop: %.2f×", $0 / cBoth) } ?? ""))
                }
            }
        }
        // The aims are judged on the persistent C clients; the start-up-included figure of
        // earlier runs is printed beside them so that the two can be compared.
        func startUpIncluded(_ value: Double?) -> String {
            value.map { String(format: "; with start-up incl.: %.2f×", $0) } ?? ""
        }
        if let swiftServer = rate("32 callers echo", "Swift", cPersistent, "unpinned"),
           let cServer = rate("32 callers echo", "C", cPersistent, "unpinned") {
            let old = rate("32 callers echo", "Swift", cWithStartUp, "unpinned").flatMap { swift in
                rate("32 callers echo", "C", cWithStartUp, "unpinned").map { swift / $0 }
            }
            print(String(format: "  32 concurrent C clients: Swift server vs C server: %.2f× (issue 18 aims at ≥ 1.25)", swiftServer / cServer) + startUpIncluded(old))
        }
        // Both against the C server, as the label says (until 2026-12-03 the numerator was
        // the Swift client against the Swift server).
        if let swiftClient = rate("32 callers echo", "C", "Swift, 32 in flight", "unpinned"),
           let cClients = rate("32 callers echo", "C", cPersistent, "unpinned") {
            let old = rate("32 callers echo", "C", cWithStartUp, "unpinned").map { swiftClient / $0 }
            print(String(format: "  one Swift client, 32 in flight vs 32 C client processes (C server): %.2f× (aim > 1)", swiftClient / cClients)
                  + startUpIncluded(old))
        }
    }

    /// `rpcbench allocs` as a child process under the counter build.sh puts beside the C
    /// peers (LD_PRELOAD must be set before the process starts, hence not in-process).
    private func printAllocations(peers: String, swift: String, quick: Bool) {
        let counter = peers + "/libmalloc_count.so"
        let command = ["LD_PRELOAD=" + counter, swift, "allocs"] + (quick ? ["--quick"] : [])
        guard FileManager.default.fileExists(atPath: counter) else {
            print("\nallocations per call: not measured (\(counter) missing; rebuild the peers with Tests/CPeers/build.sh)")
            return
        }
        print("")
        do {
            print(try runToEnd(command))
        } catch {
            print("allocations per call: \(command.joined(separator: " ")) failed: \(error)")
        }
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let count = text.count
        if count >= width { return text + " " }
        let fill = String(repeating: " ", count: width - count)
        return right ? fill + text + " " : text + fill
    }

    // MARK: processes

    private func buildCPeers() throws -> String {
        var directory = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Tests/CPeers/build.sh").path) {
            guard directory.path != "/" else {
                throw ValidationError("cannot find Tests/CPeers/build.sh: run from the repository or pass --c-peers DIR")
            }
            directory.deleteLastPathComponent()
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("rpcbench-cpeers").path
        _ = try runToEnd(["bash", directory.appendingPathComponent("Tests/CPeers/build.sh").path, out])
        return out
    }
}

struct Row {
    var scenario: String
    var server: String
    var client: String
    var pinning: String
    var result: Measurement

    /// One row per scenario, server, client and pinning, in the order first measured: the
    /// round with the median rate (the upper one of an even count), latencies from that
    /// same round.
    static func medians(of rows: [Row]) -> [Row] {
        var order: [String] = []
        var rounds: [String: [Row]] = [:]
        for row in rows {
            let key = [row.scenario, row.server, row.client, row.pinning].joined(separator: "\u{1F}")
            if rounds[key] == nil { order.append(key) }
            rounds[key, default: []].append(row)
        }
        return order.map { key in
            let sorted = rounds[key]!.sorted { $0.result.rate < $1.result.rate }
            return sorted[sorted.count / 2]
        }
    }
}

struct Measurement {
    var calls: Int
    var seconds: Double
    var p50: Double
    var p99: Double
    var rate: Double { Double(calls) / seconds }

    static func parse(_ line: String) throws -> Measurement {
        var fields: [String: String] = [:]
        for part in line.split(whereSeparator: \.isWhitespace) {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        guard let calls = fields["calls"].flatMap(Int.init), let seconds = fields["seconds"].flatMap(Double.init),
              let p50 = fields["p50_us"].flatMap(Double.init), let p99 = fields["p99_us"].flatMap(Double.init) else {
            throw ValidationError("unexpected client output: \(line)")
        }
        return Measurement(calls: calls, seconds: seconds, p50: p50, p99: p99)
    }

    /// Many client processes at once: total calls over `wall`, the time of the whole batch
    /// (from the common start for persistent clients; from launch, so process start-up
    /// included, otherwise); latency percentiles are the median of the clients' own
    /// percentiles.
    static func combine(_ parts: [Measurement], wall: Double) -> Measurement {
        let p50s = parts.map(\.p50).sorted(), p99s = parts.map(\.p99).sorted()
        return Measurement(calls: parts.reduce(0) { $0 + $1.calls }, seconds: wall, p50: p50s[p50s.count / 2], p99: p99s[p99s.count / 2])
    }
}

/// Runs a command to completion; returns its standard output; throws with its stderr.
func runToEnd(_ command: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = command
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ValidationError("\(command.joined(separator: " ")) failed: \(String(decoding: errors, as: UTF8.self))")
    }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Starts all commands at once and waits for all.
func runConcurrently(_ commands: [[String]]) throws -> [String] {
    let results = UnsafeResults(count: commands.count)
    DispatchQueue.concurrentPerform(iterations: commands.count) { index in
        results.set(index, Result { try runToEnd(commands[index]) })
    }
    return try results.values.map { try $0!.get() }
}

private final class UnsafeResults: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Result<String, any Error>?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: Result<String, any Error>) {
        lock.lock()
        values[index] = value
        lock.unlock()
    }
}

/// Long-running children, stopped with SIGKILL when done (they hold no state worth a
/// graceful stop, and a blocked SIGTERM would make them linger).
final class ChildProcesses: @unchecked Sendable {
    private var children: [Process] = []

    func start(_ command: [String], readyMarker: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.standardError
        try process.run()
        children.append(process)
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains(readyMarker) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { throw ValidationError("\(command.joined(separator: " ")) exited before it was ready") }
            seen.append(chunk)
        }
        return process
    }

    func stop(_ process: Process) {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func stopAll() {
        for child in children { stop(child) }
    }
}
