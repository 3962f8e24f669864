// `rpcbench soak`: a long run at a fixed call rate over many connections, to show that the
// server neither fails calls nor grows in memory or descriptors over time (issue 13 item 4).
// Calls are scheduled open-loop: connection i of N calls at start + i/rate + k·N/rate, so the
// offered load does not drop when the server slows down (a late call goes as soon as the
// previous one on its connection returns). Latency is measured from when a call is issued.
// Every report interval one line: calls, errors, p50/p99/p99.9 latency, and the server's RSS
// and open descriptors read from /proc/PID — which is why the server runs as a child process.

import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ONCRPC

struct SoakBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Fixed-rate ECHO calls over many connections for a long time; reports latency and the server's RSS and descriptors.",
        discussion: """
            By default starts its own server (`rpcbench serve-secure` as a child process, so the \
            RSS and descriptors read from /proc are the server's alone) and an in-process keyserver \
            with the client's and server's keys (needs root, like `rpcbench gss`), all on loopback.

            --address HOST:PORT targets a running TESTECHO server instead (for example \
            `rpcbench serve`); then only --auth sys is supported, because the keyed flavors need \
            the keyserver and keys this command makes for its own server. Add --server-pid PID to \
            read that server's RSS and descriptors.

            One line every --report-interval seconds, then a summary line. Exit status 1 if any \
            call failed. Release build expected: swift build -c release --product rpcbench
            """
    )

    @Option(help: "TCP connections (a client each; with RPCSEC_GSS each makes its own context).") var connections = 64
    @Option(help: "Target calls per second over all connections.") var rate: Double = 1000
    @Option(help: "Seconds to run.") var duration: Double = 600
    @Option(help: "Flavor: gss-privacy, gss-integrity, gss-none, dh or sys.") var auth: BenchAuth = .gssPrivacy
    @Option(help: "ECHO argument (and result) size in bytes.") var size = 4096
    @Option(help: "Seconds between report lines.") var reportInterval: Double = 30
    @Option(help: "Use a running server at HOST:PORT (--auth sys only) instead of starting one.") var address: String?
    @Option(help: "With --address: the server's pid, whose RSS and descriptors are reported.") var serverPid: Int32?
    @Option(help: "Event loop threads of the clients.") var threads = 1
    @Option(help: "Event loop threads of the server started here.") var serverThreads = System.coreCount

    func validate() throws {
        guard connections > 0, rate > 0, duration > 0, reportInterval > 0, size >= 0 else {
            throw ValidationError("--connections, --rate, --duration and --report-interval must be positive")
        }
        if address != nil, auth != .sys {
            throw ValidationError("--address works with --auth sys only (the keyed flavors need the keys made for the server started here)")
        }
        if serverPid != nil, address == nil {
            throw ValidationError("--server-pid goes with --address (the server started here is measured anyway)")
        }
    }

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let site = auth.needsKeys ? try await BenchSite(label: "soak") : nil
        var server: ServerProcess?
        let target: SocketAddress
        let pid: Int32?
        if let address {
            target = try parseHostPort(address)
            pid = serverPid
        } else {
            let child = try await ServerProcess(arguments: ["--threads", "\(serverThreads)"] + (site?.serverArguments() ?? []))
            server = child
            target = try SocketAddress(ipAddress: "127.0.0.1", port: child.tcpPort)
            pid = child.pid
        }

        let argument = echoArgument(size: size)
        var clients: [RPCClient] = []
        for _ in 0..<connections {
            clients.append(RPCClient(transport: .tcp, address: target, program: TestEcho.program, version: TestEcho.version,
                                     authenticator: try makeAuthenticator(auth, site: site), group: group))
        }
        // Connect (and make every context) one at a time before the clock starts: set-ups are
        // not what this measures, and 64 at once from one address would meet the server's
        // handshake admission limit (16 in progress per source).
        for client in clients { _ = try await client.call(procedure: TestEcho.echo, arguments: argument) }

        print("rpcbench soak: \(connections) connections, \(Self.format(rate)) calls/s, \(Self.format(duration)) s, \(auth.rawValue), "
              + "\(size)-byte arguments, server \(pid.map { "pid \($0)" } ?? "pid unknown")\(server == nil ? "" : " (child process)")")
        print("start server_rss_kib=\(Self.reading(pid.flatMap(ProcessReading.residentKiB))) server_fds=\(Self.reading(pid.flatMap(ProcessReading.openDescriptors)))")
        fflush(nil)

        let recorder = SoakRecorder()
        let (rate, connections, duration) = (self.rate, self.connections, self.duration)
        let clock = ContinuousClock()
        let start = clock.now + .milliseconds(100)
        let end = start + .seconds(duration)
        let reporter = Task { [reportInterval] () -> [SoakReport] in
            var done: [SoakReport] = []
            var index = 1
            while start + .seconds(reportInterval * Double(index)) < end {
                do { try await clock.sleep(until: start + .seconds(reportInterval * Double(index))) } catch { break }
                done.append(Self.report(recorder.take(), elapsed: clock.now - start, pid: pid))
                index += 1
            }
            return done
        }
        await withTaskGroup(of: Void.self) { tasks in
            for (index, client) in clients.enumerated() {
                tasks.addTask {
                    // Calls are numbered over all connections (this one makes index, index + N,
                    // …) and the run makes exactly ⌈rate × duration⌉ of them; each one's time
                    // is computed from its number, not summed, so rounding cannot add or drop one.
                    let total = Int((rate * duration - 1e-6).rounded(.up))  // 1e-6: no extra call from float error
                    for number in stride(from: index, to: total, by: connections) {
                        try? await clock.sleep(until: start + .nanoseconds(Int64((Double(number) / rate * 1e9).rounded())))
                        let issued = clock.now
                        do {
                            let reply = try await client.call(procedure: TestEcho.echo, arguments: argument)
                            if reply == argument {
                                recorder.record(latency: clock.now - issued)
                            } else {
                                recorder.fail("the reply differs from the argument")
                            }
                        } catch {
                            recorder.fail("\(error)")
                        }
                    }
                }
            }
        }
        let elapsed = clock.now - start
        reporter.cancel()
        var reports = await reporter.value
        let rest = recorder.take()
        if rest.calls > 0 || reports.isEmpty { reports.append(Self.report(rest, elapsed: elapsed, pid: pid)) }

        let calls = reports.reduce(0) { $0 + $1.calls }, errors = reports.reduce(0) { $0 + $1.errors }
        let rss = reports.compactMap(\.rssKiB), fds = reports.compactMap(\.fds)
        print("summary calls=\(calls) errors=\(errors) achieved_per_s=\(String(format: "%.1f", Double(calls) / seconds(elapsed)))"
              + " rss_first_kib=\(Self.reading(rss.first)) rss_last_kib=\(Self.reading(rss.last)) rss_max_kib=\(Self.reading(rss.max()))"
              + " fds_first=\(Self.reading(fds.first)) fds_last=\(Self.reading(fds.last))")
        for why in recorder.firstErrors { FileHandle.standardError.write(Data("rpcbench soak: call failed: \(why)\n".utf8)) }

        for client in clients { await client.close() }
        await server?.stop()
        await site?.shutdown()
        try await group.shutdownGracefully()
        if errors > 0 { throw ExitCode(1) }
    }

    private static func report(_ interval: SoakRecorder.Interval, elapsed: Duration, pid: Int32?) -> SoakReport {
        let sorted = interval.latencies.sorted()
        let line = SoakReport(calls: interval.calls, errors: interval.errors,
                              rssKiB: pid.flatMap(ProcessReading.residentKiB), fds: pid.flatMap(ProcessReading.openDescriptors))
        print(String(format: "elapsed_s=%.0f calls=%d errors=%d p50_ms=%.3f p99_ms=%.3f p99.9_ms=%.3f",
                     seconds(elapsed), interval.calls, interval.errors,
                     percentile(sorted, 0.5) * 1e3, percentile(sorted, 0.99) * 1e3, percentile(sorted, 0.999) * 1e3)
              + " server_rss_kib=\(reading(line.rssKiB)) server_fds=\(reading(line.fds))")
        fflush(nil)  // a long run's lines should reach a pipe or file as they come
        return line
    }

    static func reading(_ value: Int?) -> String { value.map(String.init) ?? "-" }
    static func format(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(value) }
}

struct SoakReport {
    var calls: Int
    var errors: Int
    var rssKiB: Int?
    var fds: Int?
}

/// Latencies and errors since the last report, from every connection's task.
final class SoakRecorder: Sendable {
    struct Interval {
        var latencies: [Double] = []  // seconds, successful calls only
        var errors = 0
        var calls: Int { latencies.count + errors }
    }

    private let state = NIOLockedValueBox(Interval())
    private let errorSamples = NIOLockedValueBox<[String]>([])

    func record(latency: Duration) {
        let value = seconds(latency)
        state.withLockedValue { $0.latencies.append(value) }
    }

    /// Counts a failed call; the first few reasons are kept for the end of the run.
    func fail(_ why: String) {
        state.withLockedValue { $0.errors += 1 }
        errorSamples.withLockedValue { if $0.count < 10 { $0.append(why) } }
    }

    func take() -> Interval {
        state.withLockedValue { interval in
            defer { interval = Interval() }
            return interval
        }
    }

    var firstErrors: [String] { errorSamples.withLockedValue { $0 } }
}

func seconds(_ duration: Duration) -> Double { microseconds(duration) / 1e6 }
