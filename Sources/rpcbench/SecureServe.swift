// `rpcbench serve-secure`: the TESTECHO server with every flavor this project verifies
// (AUTH_NONE, AUTH_SYS, AUTH_DH, RPCSEC_GSS srpc-dh), run as a child process by `rpcbench soak`
// and `rpcbench flood` so that the RSS and descriptors read from /proc/PID are the server's
// alone. Server limits are the library defaults: the point is to measure what a daemon that
// sets nothing gets.
//
// Trust: the keyserver socket and the public-key file come from the parent that started this
// process (both in its private work directory). Standard input is the parent's control line:
// "stats" asks for one line of counters, end of file means the parent is gone, so the server
// goes too (a benchmark must not leave a server behind when it is killed).

import ArgumentParser
import Foundation
import KeyCrypto
import KeyServer
import Logging
import NIOCore
import NIOPosix
import ONCRPC
import SecureRPC

struct SecureServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve-secure",
        abstract: "Serve TESTECHO over TCP and UDP with AUTH_SYS, AUTH_DH and RPCSEC_GSS (the server `soak` and `flood` start).",
        discussion: """
            Prints "ready tcp=PORT udp=PORT" when listening. Reads commands on standard input: \
            "stats" prints one line of server counters; end of input stops the server.
            """
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Event loop threads.") var threads = System.coreCount
    @Option(help: "The keyserver's unix socket (omit: AUTH_NONE and AUTH_SYS only).") var keyserver: String?
    @Option(help: "The uid the keyserver acts for (logged in as --netname).") var uid: UInt32 = BenchKeys.serverUID
    @Option(help: "This server's netname.") var netname = BenchKeys.serverNetname
    @Option(help: "Clients' public keys, one \"NETNAME GROUP HEX\" a line.") var publicKeys: String?
    @Option(help: "Also know this many principals (random ffdhe2048 keys) for the bad-INIT flood to name.") var floodPrincipals = 0
    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical).") var logLevel: Logger.Level = .warning

    func run() async throws {
        ProcessSignals.unblockShutdownSignals()
        var logger = Logger(label: "rpcbench.serve-secure")
        logger.logLevel = logLevel
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)

        var configuration = RPCServer.Configuration()
        var gss: GSSServer?
        var dh: AuthDHServer?
        if let keyserver {
            let directory = try BenchKeys.readPublicKeys(publicKeys)
            // The flood's principals exist, each with its own key, so that without admission
            // control every bad INIT would cost a directory hit and a keyserver derive.
            var floodKeys: [String: DHPublicKey] = [:]
            for index in 0..<floodPrincipals {
                var bytes = (0..<256).map { _ in UInt8.random(in: 0...255) }
                bytes[0] = .random(in: 1...0x7f)  // below the prime, not 0 or 1
                floodKeys[BenchKeys.floodPrincipal(index)] = try DHPublicKey(group: .ffdhe2048, bytes: bytes)
            }
            let keys = floodKeys
            let client = try KeyServerClient(socketPath: keyserver, uid: uid)
            let dhServer = AuthDHServer(keyserver: client) { directory[$0]?[.dh192des] }
            let gssServer = GSSServer(configuration: GSSServer.Configuration(serverNetname: netname), keyserver: client,
                                      logger: logger) { name, gssGroup in
                directory[name]?[gssGroup.dhGroup] ?? (gssGroup == .ffdhe2048 ? keys[name] : nil)
            }
            (dh, gss) = (dhServer, gssServer)
            configuration.authenticators = [AuthNoneServer(), AuthSysServer(), dhServer, gssServer]
        }
        let server = RPCServer(programs: [TestEcho.makeProgram()], configuration: configuration, group: group, logger: logger)
        let tcp = try await server.listenTCP(host: host, port: 0)
        let udp = try await server.listenUDP(host: host, port: 0)

        let counters: @Sendable () -> String = { [gss, dh] in Self.statisticsLine(server: server, gss: gss, dh: dh) }
        // The control line is a pipe, not a socket: a plain thread blocked in read is simplest.
        let control = Thread {
            while let line = readLine() {
                if line == "stats" { Self.write(counters()) }
            }
            // The parent closed our input (it finished, or died): nothing is worth a graceful stop.
            Foundation.exit(0)
        }
        control.start()
        Self.write("ready tcp=\(tcp.port ?? 0) udp=\(udp.port ?? 0) pid=\(getpid())")
        // Serve until the control thread exits the process (or a signal ends it).
        while true { try await Task.sleep(for: .seconds(3600)) }
    }

    /// stdout may be a pipe: write each line unbuffered so the parent sees it at once.
    static func write(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func statisticsLine(server: RPCServer, gss: GSSServer?, dh: AuthDHServer?) -> String {
        let s = server.statistics
        var fields: [(String, Int)] = [
            ("connections", server.connectionCount),
            ("refused_server_full", s.connectionsRefusedServerFull),
            ("refused_peer_full", s.connectionsRefusedPeerFull),
            ("closed_record_deadline", s.connectionsClosedRecordDeadline),
            ("closed_framing_error", s.connectionsClosedFramingError),
            ("accept_errors", s.acceptErrors),
            ("udp_received", s.udpDatagramsReceived),
            ("udp_dropped_in_flight_cap", s.udpCallsDroppedInFlightLimit),
        ]
        if let gss {
            let g = gss.statistics, a = gss.admission.statistics
            fields += [
                ("gss_contexts", gss.contextCount), ("gss_contexts_created", g.contextsCreated), ("gss_init_refused", g.initRefused),
                ("gss_admitted", a.admitted), ("gss_refused_busy", a.refusedBusy), ("gss_refused_address", a.refusedAddress),
                ("gss_refused_principal", a.refusedPrincipal),
            ]
        }
        if let dh {
            fields.append(("dh_admitted", dh.admission.statistics.admitted))
        }
        return "stats " + fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
    }
}
