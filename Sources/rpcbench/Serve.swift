// `rpcbench serve`: the Swift TESTECHO server, used by the benchmark (pinned with taskset)
// and by the interop tests (registered with a real rpcbind).

import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ONCRPC

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the TESTECHO program (Tests/CPeers/echo.x) until SIGINT/SIGTERM."
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(name: .shortAndLong, help: "TCP port (0 picks a free one).")
    var port = 0

    @Option(name: [.customShort("U"), .long], help: "UDP port (0 picks a free one; omit for no UDP).")
    var udpPort: Int?

    @Option(help: "Event loop threads.")
    var threads = System.coreCount

    @Flag(help: "Register with the host's rpcbind (and unregister on shutdown).")
    var register = false

    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical).")
    var logLevel: Logger.Level = .notice

    func run() async throws {
        ProcessSignals.unblockShutdownSignals()
        var logger = Logger(label: "rpcbench.serve")
        logger.logLevel = logLevel
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let server = RPCServer(programs: [TestEcho.makeProgram()], group: group, logger: logger)
        let tcp = try await server.listenTCP(host: host, port: port)
        var line = "ready tcp=\(tcp.port ?? 0)"
        if let udpPort {
            let udp = try await server.listenUDP(host: host, port: udpPort)
            line += " udp=\(udp.port ?? 0)"
        }
        if register {
            let mappings = try await server.registerWithRPCBind()
            line += " registered=\(mappings.count)"
        }
        // One line that launchers wait for, once SIGTERM is a graceful stop (registrations
        // removed); stdout may be a pipe, so write it unbuffered.
        let ready = line
        try await server.runUntilShutdownSignal(logger: logger) {
            FileHandle.standardOutput.write(Data((ready + "\n").utf8))
        }
        try await group.shutdownGracefully()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
