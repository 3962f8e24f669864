// `rpcbench client`: Swift client load against any TESTECHO server, printing the same
// one-line result as the C client (`calls=N seconds=S p50_us=X p99_us=Y`).

import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import ONCRPC
import XDR

struct ClientBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Drive a TESTECHO server with the Swift client and print calls/s and latency."
    )

    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(name: .shortAndLong, help: "Server TCP port.") var port: Int
    @Option(name: .shortAndLong, help: "Calls to time (after 100 warm-up calls).") var calls = 10_000
    @Option(help: "Calls in flight at once on one connection (1 = sequential).") var concurrency = 1
    @Option(help: "Procedure: null or echo.") var procedure: Procedure = .echo
    @Option(help: "Echo payload size in bytes.") var size = 16
    @Option(help: "Event loop threads.") var threads = 1
    @Flag(help: "Run Swift tasks on the client's event loops (NIO's singleton group installed as Swift's global executor) instead of Swift's cooperative pool.")
    var nioExecutor = false
    @Flag(help: "Run the calling tasks on the client's event loop through a task executor preference (RPCClient.taskExecutor), Swift's global executor unchanged.")
    var loopExecutor = false

    enum Procedure: String, ExpressibleByArgument { case null, echo }

    /// Swift's global executor becomes NIO's singleton group of `threads` loops, and the
    /// connection lives on it: a call's task resumes on the loop that read the reply instead
    /// of waking a thread of Swift's own pool (issue 18). Called by `RPCBench.main` before
    /// any task has run.
    func installNIOExecutor() throws {
        NIOSingletons.groupLoopCountSuggestion = threads
        guard NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() else {
            throw ValidationError("could not make NIO's event loops Swift's global executor")
        }
    }

    func run() async throws {
        // With --nio-executor, `RPCBench.main` has installed the executor before this runs.
        let group: MultiThreadedEventLoopGroup = nioExecutor ? .singleton : MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let client = RPCClient(
            transport: .tcp, address: try SocketAddress.makeAddressResolvingHost(host, port: port),
            program: TestEcho.program, version: TestEcho.version, group: group
        )
        if loopExecutor {
            try await withTaskExecutorPreference(client.taskExecutor) { try await measure(client) }
        } else {
            try await measure(client)
        }
        await client.close()
        if group !== MultiThreadedEventLoopGroup.singleton { try await group.shutdownGracefully() }
    }

    private func measure(_ client: RPCClient) async throws {
        var payload = ByteBuffer()
        payload.writeXDR(String(repeating: "x", count: size))
        let arguments = procedure == .null ? ByteBuffer() : payload
        let number: UInt32 = procedure == .null ? 0 : TestEcho.echo
        for _ in 0..<100 { _ = try await client.call(procedure: number, arguments: arguments) }

        let perWorker = calls / concurrency
        let clock = ContinuousClock()
        let start = clock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { tasks in
            for _ in 0..<concurrency {
                tasks.addTask {
                    var samples: [Double] = []
                    samples.reserveCapacity(perWorker)
                    for _ in 0..<perWorker {
                        let t0 = clock.now
                        _ = try await client.call(procedure: number, arguments: arguments)
                        samples.append(microseconds(clock.now - t0))
                    }
                    return samples
                }
            }
            var all: [Double] = []
            for try await samples in tasks { all += samples }
            return all
        }
        let elapsed = clock.now - start
        let seconds = microseconds(elapsed) / 1e6
        let sorted = latencies.sorted()
        let total = sorted.count
        print(String(format: "calls=%d seconds=%.6f p50_us=%.1f p99_us=%.1f", total, seconds, sorted[total / 2], sorted[min(total - 1, Int(Double(total) * 0.99))]))
    }
}

/// The middle value (the upper one of an even count), nil for none: what the interleaved
/// rounds of a measurement report.
func median(_ values: [Double]) -> Double? {
    values.isEmpty ? nil : values.sorted()[values.count / 2]
}

func microseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
}
