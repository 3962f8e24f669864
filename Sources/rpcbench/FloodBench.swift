// `rpcbench flood`: does a legitimate client keep its call rate while the server is flooded
// (issue 13 item 4)? One client on 127.0.0.1 calls ECHO as fast as it can on one connection,
// first with nothing else going on, then during each flood from another loopback address
// (Floods.swift), then idle again (how much the shared machine drifted). Each phase: the
// client's calls/s and its ratio to the first idle phase, the time a brand-new client takes
// for its connection (and context) and first call half-way through the flood, the server's
// CPU, and its RSS and descriptors before and after. The server is a child process
// (`serve-secure`) so /proc/PID is the server's alone, and each flood runs in a process of
// its own (`flood-worker`), as an attacker's would: sharing this process, a flood's tasks
// would queue ahead of the legitimate client's in Swift's cooperative thread pool, and the
// client would be measured, not the server. A "cpu-hog" phase (a process spinning on one
// core, no network) shows what losing a core of this machine alone does to the client.
//
// Loopback only: floods are refused for any other target.

import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC

struct FloodBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flood",
        abstract: "A legitimate client's calls/s idle and under each flood: garbage UDP, half records, bad RPCSEC_GSS INITs, connection churn.",
        discussion: """
            Starts its own server (`rpcbench serve-secure` as a child process) and an in-process \
            keyserver (needs root), on loopback. Each flood runs until its count bound or \
            --seconds, whichever comes first. --address HOST:PORT (with --udp-port and \
            --server-pid) floods a running TESTECHO server instead, loopback only and with \
            --auth sys only. Exit status 1 if a legitimate call or a flood failed. Release build expected.
            """
    )

    enum Kind: String, ExpressibleByArgument, CaseIterable, Sendable {
        case cpuHog = "cpu-hog", udpGarbage = "udp-garbage", halfRecords = "half-records", gssInit = "gss-init", churn
    }

    @Option(help: "Seconds per phase (each idle phase and each flood).") var seconds: Double = 10
    @Option(help: "Run only this flood (repeatable): cpu-hog (a control: no network), udp-garbage, half-records, gss-init, churn.")
    var flood: [Kind] = []
    @Option(help: "The legitimate client's flavor: gss-privacy, gss-integrity, gss-none, dh or sys.") var auth: BenchAuth = .gssPrivacy
    @Option(help: "The legitimate client's ECHO argument size in bytes.") var size = 4096
    @Option(help: "Calls the legitimate client keeps in flight on its connection.") var inFlight = 1
    @Option(help: "Garbage UDP datagrams, at most.") var udpDatagrams = 5_000_000
    @Option(help: "Half-record connections to hold.") var halfRecords = 1000
    @Option(help: "Source addresses the half-record connections come from (127.0.0.2 and up): the server holds 256 per address.")
    var halfRecordAddresses = 4
    @Option(help: "Principals the bad INITs name (the server knows each, with its own key).") var principals = 5000
    @Option(help: "Bad INITs, at most.") var inits = 500_000
    @Option(help: "TCP connections the INIT flood uses.") var initConnections = 4
    @Option(help: "INITs in flight on each of them (sent together, the next batch when all are answered).") var initWindow = 32
    @Option(help: "Connections the churn opens and closes, at most.") var churnConnections = 200_000
    @Option(help: "Connect/close loops running at once.") var churnParallel = 8
    @Option(help: "The floods' source address (loopback, not 127.0.0.1).") var source = "127.0.0.2"
    @Option(help: "Flood a running server at HOST:PORT (TCP; loopback only; --auth sys only).") var address: String?
    @Option(help: "With --address: the server's UDP port (without it the UDP flood is skipped).") var udpPort: Int?
    @Option(help: "With --address: the server's pid, for RSS, descriptors and CPU.") var serverPid: Int32?
    @Option(help: "Event loop threads of the server started here.") var serverThreads = System.coreCount
    @Option(help: "Run the flood processes at this niceness (0 to 19). A diagnostic, not a flood: a niced flooder only gets the CPU nobody else wants, as one on another host would, but it also floods less when the machine is busy.")
    var flooderNice: Int32 = 0
    @Option(name: .customLong("flooder-cpus"), help: "Run the flood processes on these CPUs only (a taskset list, e.g. 1). Holds a flooder to the CPU an attacker on another host would bring: unpinned, the connection churn takes more than one of two vCPUs for itself. The server and the legitimate client stay unpinned.")
    var flooderCPUs: String?
    @Option(help: "Rounds of all phases (a shared machine drifts); with more than one, a table of medians follows.") var rounds = 1

    func validate() throws {
        guard seconds > 0, inFlight > 0, halfRecordAddresses > 0, principals > 0, initConnections > 0, initWindow > 0, churnParallel > 0,
              rounds > 0 else {
            throw ValidationError("--seconds, --in-flight, --rounds and the flood sizes must be positive")
        }
        if let flooderCPUs, flooderCPUs.isEmpty || !flooderCPUs.allSatisfy({ $0.isNumber || $0 == "," || $0 == "-" }) {
            throw ValidationError("--flooder-cpus takes a CPU list such as 1 or 0,2-3, not '\(flooderCPUs)'")
        }
        guard Self.isLoopback(source), source != "127.0.0.1" else {
            throw ValidationError("--source must be a loopback address other than 127.0.0.1 (the legitimate client's)")
        }
        guard halfRecordAddresses <= 250 else { throw ValidationError("--half-record-addresses: 250 at most (127.0.0.2 to 127.0.0.251)") }
        if address != nil, auth != .sys {
            throw ValidationError("--address works with --auth sys only (the keyed flavors need the keys made for the server started here)")
        }
        if address == nil, udpPort != nil || serverPid != nil {
            throw ValidationError("--udp-port and --server-pid go with --address")
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        guard let address = try? SocketAddress(ipAddress: host, port: 0), case .v4 = address else { return false }
        return host.hasPrefix("127.")
    }

    func run() async throws {
        let kinds = flood.isEmpty ? Kind.allCases : flood
        let legitGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let site = auth.needsKeys || address == nil ? try await BenchSite(label: "flood") : nil
        var child: ServerProcess?
        let tcp: SocketAddress, udp: SocketAddress?, pid: Int32?
        if let address {
            tcp = try parseHostPort(address)
            guard let ip = tcp.ipAddress, Self.isLoopback(ip) else {
                throw ValidationError("rpcbench flood floods loopback only (127.0.0.0/8); \(address) is not")
            }
            udp = try udpPort.map { try SocketAddress(ipAddress: ip, port: $0) }
            pid = serverPid
        } else {
            let server = try await ServerProcess(arguments: ["--threads", "\(serverThreads)"]
                                                 + (site?.serverArguments(floodPrincipals: principals) ?? []))
            child = server
            tcp = try SocketAddress(ipAddress: "127.0.0.1", port: server.tcpPort)
            udp = try SocketAddress(ipAddress: "127.0.0.1", port: server.udpPort)
            pid = server.pid
        }

        let argument = echoArgument(size: size)
        let legitimate = RPCClient(transport: .tcp, address: tcp, program: TestEcho.program, version: TestEcho.version,
                                   authenticator: try makeAuthenticator(auth, site: site), group: legitGroup)
        for _ in 0..<200 { _ = try await legitimate.call(procedure: TestEcho.echo, arguments: argument) }  // makes the context, warms the caches
        print("rpcbench flood: legitimate client \(auth.rawValue), \(size)-byte ECHO, \(inFlight) in flight, one connection from 127.0.0.1; "
              + "floods from \(source); \(Self.format(seconds)) s per phase; server \(pid.map { "pid \($0)" } ?? "pid unknown")"
              + (child == nil ? "" : " (child process, \(serverThreads) threads)") + (flooderNice == 0 ? "" : "; flooders at nice \(flooderNice)")
              + (flooderCPUs.map { "; flooders on CPU \($0)" } ?? ""))

        var phases: [Kind?] = [nil]
        for kind in kinds {
            if kind == .udpGarbage, udp == nil {
                print("(udp-garbage skipped: no --udp-port)")
                continue
            }
            phases.append(kind)
        }
        phases.append(nil)

        var rounds: [[PhaseResult]] = []
        let auth = self.auth
        for round in 1...self.rounds {
            var results: [PhaseResult] = []
            for (index, kind) in phases.enumerated() {
                let before = await child?.statistics() ?? [:]
                var result = await measure(name: kind?.rawValue ?? (index == 0 ? "idle" : "idle again"),
                                           worker: kind.map { workerArguments($0, tcp: tcp, udp: udp) },
                                           client: legitimate, argument: argument, pid: pid,
                                           newClient: {
                                               RPCClient(transport: .tcp, address: tcp, program: TestEcho.program, version: TestEcho.version,
                                                         authenticator: try makeAuthenticator(auth, site: site), group: legitGroup)
                                           })
                let after = await child?.statistics() ?? [:]
                result.serverCounters = Self.difference(after, before)
                results.append(result)
                try await Task.sleep(for: .seconds(1))  // let the server close what the flood left
            }
            if self.rounds > 1 { print("\nround \(round) of \(self.rounds)") }
            Self.printTable(results)
            Self.printDetails(results)
            fflush(nil)  // a round's table as soon as it is done, also into a pipe
            rounds.append(results)
        }
        if rounds.count > 1 {
            print("\nmedian of \(rounds.count) rounds (RSS and fds: before the first round's phase, after the last round's)")
            Self.printTable(Self.medians(rounds))
        }

        let results = rounds.flatMap { $0 }
        let errors = results.reduce(0) { $0 + $1.errors + ($1.newClientError == nil ? 0 : 1) + ($1.floodFailed ? 1 : 0) }
        await legitimate.close()
        await child?.stop()
        await site?.shutdown()
        try await legitGroup.shutdownGracefully()
        if errors > 0 { throw ExitCode(1) }
    }

    /// The `flood-worker` command line of one flood against this server.
    private func workerArguments(_ kind: Kind, tcp: SocketAddress, udp: SocketAddress?) -> [String] {
        var arguments = ["flood-worker", "--kind", kind.rawValue, "--seconds", "\(seconds)", "--source", source,
                         "--tcp", "\(tcp.ipAddress!):\(tcp.port!)"]
        if let udp { arguments += ["--udp", "\(udp.ipAddress!):\(udp.port!)"] }
        switch kind {
        case .cpuHog: break
        case .udpGarbage: arguments += ["--count", "\(udpDatagrams)"]
        case .halfRecords: arguments += ["--count", "\(halfRecords)", "--addresses", "\(halfRecordAddresses)"]
        case .gssInit:
            arguments += ["--count", "\(inits)", "--principals", "\(principals)", "--parallel", "\(initConnections)", "--window", "\(initWindow)"]
        case .churn: arguments += ["--count", "\(churnConnections)", "--parallel", "\(churnParallel)"]
        }
        return arguments
    }

    /// One phase: the legitimate client calls until the flood worker reports that its flood
    /// has ended (or, idle, for --seconds); a new client makes its first call half-way through.
    private func measure(name: String, worker arguments: [String]?, client: RPCClient, argument: ByteBuffer, pid: Int32?,
                         newClient: @escaping @Sendable () throws -> RPCClient) async -> PhaseResult {
        let seconds = self.seconds
        let rssBefore = pid.flatMap(ProcessReading.residentKiB), fdsBefore = pid.flatMap(ProcessReading.openDescriptors)
        let cpuBefore = pid.flatMap(ProcessReading.cpuSeconds)
        let stop = NIOLockedValueBox(false)
        let counts = NIOLockedValueBox((calls: 0, errors: 0, firstError: String?.none))
        let latencies = NIOLockedValueBox<[Double]>([])
        let clock = ContinuousClock()
        let started = clock.now
        let load = Task { [inFlight] in
            await withTaskGroup(of: Void.self) { tasks in
                for _ in 0..<inFlight {
                    tasks.addTask {
                        var mine: [Double] = []
                        while !stop.withLockedValue({ $0 }) {
                            let issued = clock.now
                            do {
                                let reply = try await client.call(procedure: TestEcho.echo, arguments: argument)
                                mine.append(microseconds(clock.now - issued))
                                counts.withLockedValue { counts in
                                    if reply == argument { counts.calls += 1 } else { counts.errors += 1 }
                                }
                            } catch {
                                counts.withLockedValue { $0.errors += 1; $0.firstError = $0.firstError ?? "\(error)" }
                            }
                        }
                        latencies.withLockedValue { $0 += mine }
                    }
                }
            }
        }
        let probe = Task { () -> Result<Double, any Error> in
            try? await Task.sleep(for: .seconds(seconds / 2))
            do {
                let fresh = try newClient()
                let t0 = clock.now
                _ = try await fresh.call(procedure: TestEcho.echo, arguments: argument)
                let took = clock.now - t0
                await fresh.close()
                return .success(microseconds(took) / 1e3)
            } catch {
                return .failure(error)
            }
        }
        var sent = 0, detail = "no flood", workerCPU: Double?, floodFailed = false
        var worker: BenchChild?
        if let arguments {
            do {
                let flooder = try BenchChild(arguments, nice: flooderNice, cpus: flooderCPUs)
                worker = flooder
                let line = await flooder.line(startingWith: "result ", timeout: .seconds(seconds + 60))
                workerCPU = ProcessReading.cpuSeconds(flooder.pid)
                if let line, let rest = line.range(of: " detail=") {
                    sent = Int(keyValues(String(line[..<rest.lowerBound]))["sent"] ?? "") ?? 0
                    detail = String(line[rest.upperBound...])
                } else {
                    detail = "the flood worker did not report (see its messages above)"
                    floodFailed = true
                }
            } catch {
                detail = "the flood worker did not start: \(error)"
                floodFailed = true
            }
        } else {
            try? await Task.sleep(for: .seconds(seconds))
        }
        stop.withLockedValue { $0 = true }
        let elapsed = clock.now - started
        await load.value
        let newClientResult = await probe.value
        // Read while the flood still holds what it holds (the half records).
        let rssAfter = pid.flatMap(ProcessReading.residentKiB), fdsAfter = pid.flatMap(ProcessReading.openDescriptors)
        let cpuAfter = pid.flatMap(ProcessReading.cpuSeconds)
        await worker?.stop()
        let done = counts.withLockedValue { $0 }
        let sorted = latencies.withLockedValue { $0 }.sorted()
        var result = PhaseResult(name: name, sent: sent, detail: detail, rate: Double(done.calls) / (microseconds(elapsed) / 1e6),
                                 errors: done.errors, seconds: microseconds(elapsed) / 1e6,
                                 p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99),
                                 rssBefore: rssBefore, rssAfter: rssAfter, fdsBefore: fdsBefore, fdsAfter: fdsAfter)
        if let cpuBefore, let cpuAfter { result.serverCPU = (cpuAfter - cpuBefore) / result.seconds }
        result.workerCPU = workerCPU.map { $0 / result.seconds }
        switch newClientResult {
        case let .success(ms): result.newClientMs = ms
        case let .failure(error): result.newClientError = "\(error)"
        }
        result.firstError = done.firstError
        result.floodFailed = floodFailed
        return result
    }

    struct PhaseResult {
        var name: String
        var sent: Int
        var detail: String
        var rate: Double
        var errors: Int
        var seconds: Double
        /// The legitimate client's call latency, µs.
        var p50: Double
        var p99: Double
        var rssBefore, rssAfter, fdsBefore, fdsAfter: Int?
        var serverCPU: Double?
        /// The flood worker process's CPU over the phase (its start-up included).
        var workerCPU: Double?
        var newClientMs: Double?
        var newClientError: String?
        /// The flood did not run: the row measures nothing and the run fails.
        var floodFailed = false
        var firstError: String?
        var serverCounters: [String: Int] = [:]
    }

    /// Per phase, the median over rounds of each measurement; errors add up.
    private static func medians(_ rounds: [[PhaseResult]]) -> [PhaseResult] {
        // A measurement some rounds lack (nil) is the median of the rounds that have it.
        func medianOfKnown(_ values: [Double?]) -> Double? { median(values.compactMap { $0 }) }
        return rounds[0].indices.map { index in
            let all = rounds.map { $0[index] }
            var result = all[0]
            result.sent = Int(median(all.map { Double($0.sent) })!)
            result.rate = median(all.map(\.rate))!
            result.errors = all.reduce(0) { $0 + $1.errors }
            result.p50 = median(all.map(\.p50))!
            result.p99 = median(all.map(\.p99))!
            result.newClientMs = medianOfKnown(all.map(\.newClientMs))
            result.newClientError = all.compactMap(\.newClientError).first
            result.floodFailed = all.contains { $0.floodFailed }
            result.serverCPU = medianOfKnown(all.map(\.serverCPU))
            result.workerCPU = medianOfKnown(all.map(\.workerCPU))
            result.rssAfter = all.last!.rssAfter
            result.fdsAfter = all.last!.fdsAfter
            return result
        }
    }

    private static func printTable(_ results: [PhaseResult]) {
        let idle = results.first?.rate ?? 0
        func mib(_ kib: Int?) -> String { kib.map { String(format: "%.1f", Double($0) / 1024) } ?? "-" }
        func cell(_ text: String, _ width: Int, right: Bool = true) -> String {
            let fill = String(repeating: " ", count: max(0, width - text.count))
            return right ? fill + text : text + fill
        }
        print("")
        print(cell("flood", 12, right: false) + cell("sent", 10) + cell("legit calls/s", 15) + cell("vs idle", 9) + cell("p50 µs", 8)
              + cell("p99 µs", 8) + cell("errors", 8)
              + cell("new client ms", 15) + cell("server CPU", 12) + cell("flooder CPU", 13) + cell("RSS MiB before → after", 24) + cell("fds before → after", 20))
        for r in results {
            let sent = r.floodFailed ? "FAILED" : r.name.hasPrefix("idle") || r.name == "cpu-hog" ? "-" : "\(r.sent)"
            print(cell(r.name, 12, right: false) + cell(sent, 10)
                  + cell(String(format: "%.0f", r.rate), 15) + cell(String(format: "%.2f", idle > 0 ? r.rate / idle : 0), 9)
                  + cell(String(format: "%.0f", r.p50), 8) + cell(String(format: "%.0f", r.p99), 8)
                  + cell("\(r.errors)", 8) + cell(r.newClientMs.map { String(format: "%.1f", $0) } ?? "failed", 15)
                  + cell(r.serverCPU.map { String(format: "%.0f %%", $0 * 100) } ?? "-", 12)
                  + cell(r.workerCPU.map { String(format: "%.0f %%", $0 * 100) } ?? "-", 13)
                  + cell("\(mib(r.rssBefore)) → \(mib(r.rssAfter))", 24) + cell("\(r.fdsBefore.map(String.init) ?? "-") → \(r.fdsAfter.map(String.init) ?? "-")", 20))
        }
    }

    private static func printDetails(_ results: [PhaseResult]) {
        print("")
        for r in results {
            var line = "\(r.name): \(r.detail)"
            let counters = r.serverCounters.filter { $0.value != 0 && $0.key != "connections" && $0.key != "gss_contexts" }
            if !counters.isEmpty { line += "; server: " + counters.sorted { $0.key < $1.key }.map { "\($0.key) +\($0.value)" }.joined(separator: " ") }
            if let why = r.firstError { line += "; first failed call: \(why)" }
            if let why = r.newClientError { line += "; new client failed: \(why)" }
            print(line)
        }
    }

    /// Counter increases over a phase.
    private static func difference(_ after: [String: Int], _ before: [String: Int]) -> [String: Int] {
        after.reduce(into: [:]) { $0[$1.key] = $1.value - (before[$1.key] ?? 0) }
    }

    static func format(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(value) }
}
