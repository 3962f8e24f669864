// rpcbench: ONC RPC throughput and latency of this runtime side by side with the C
// baseline (rpcgen + libtirpc) in the same run, printed as ratios.

import ArgumentParser
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
}
