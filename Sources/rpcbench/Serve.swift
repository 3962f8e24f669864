// `rpcbench serve`: the Swift TESTECHO server, used by the benchmark (pinned with taskset)
// and by the interop tests (registered with a real rpcbind).

import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ONCRPC
import ServiceLifecycle

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
        // One line that launchers wait for; stdout may be a pipe, so write it unbuffered.
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
        let services = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await services.run()
        try await group.shutdownGracefully()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
