// rpcbench: ONC RPC throughput and latency of this runtime side by side with the C
// baseline (rpcgen + libtirpc) in the same run, printed as ratios.

import ArgumentParser
import Dispatch
import Release

@main
struct RPCBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpcbench",
        abstract: "Benchmark ONC RPC calls: this Swift runtime against rpcgen/libtirpc C peers.",
        version: SecureRPCRelease.versionLine("rpcbench"),
        subcommands: [Run.self, Serve.self, ClientBench.self, AuthBench.self, GSSBench.self, GSSPartsBench.self,
                      SoakBench.self, FloodBench.self, SecureServe.self, FloodWorker.self, AllocBench.self],
        defaultSubcommand: Run.self
    )

    /// Parsed synchronously and run by a detached task while the main thread waits, instead
    /// of through the asynchronous `main`: there the main thread sits in libdispatch's
    /// `dispatch_main`, whose `sigsuspend` valgrind 3.19 cannot run (the client's call path is
    /// profiled with callgrind: docs/PERFORMANCE.md); and `client --nio-executor` must make
    /// NIO's event loops Swift's global executor before the first task runs.
    static func main() {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
            if let client = command as? ClientBench, client.nioExecutor {
                try client.installNIOExecutor()
            }
        } catch {
            exit(withError: error)
        }
        let running = RunningCommand(command)
        Task.detached { await running.run() }
        running.finished.wait()
        if let error = running.error { exit(withError: error) }
    }
}

/// A parsed command on its way to a detached task and back; `finished` orders the task's
/// writes before the main thread's reads.
private final class RunningCommand: @unchecked Sendable {
    private var command: any ParsableCommand
    private(set) var error: (any Error)?
    let finished = DispatchSemaphore(value: 0)

    init(_ command: any ParsableCommand) {
        self.command = command
    }

    func run() async {
        do {
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            self.error = error
        }
        finished.signal()
    }
}
