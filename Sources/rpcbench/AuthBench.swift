// `rpcbench auth`: what authentication costs. NULL calls to one server, in one process over
// loopback TCP, with AUTH_NONE, AUTH_SYS and AUTH_DH (a real keyserver logic on a unix
// socket does the key work): the first AUTH_DH call of a conversation (KEY_GEN,
// KEY_ENCRYPT_PK, the server's KEY_DECRYPT_PK), steady state with nicknames, and 32 calls in
// flight, each the median of interleaved rounds. Printed as calls/s and as ratios to AUTH_SYS.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyServer
import Logging
import NIOCore
import NIOPosix
import ONCRPC
import SecureRPC
import XDR

struct AuthBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth",
        abstract: "Authenticated NULL calls per second (AUTH_DH first call, steady state, 32 in flight) beside AUTH_NONE and AUTH_SYS."
    )

    @Option(help: "Calls per measurement round.") var calls = 10_000
    @Option(help: "Interleaved rounds per steady-state row; the median is printed.") var rounds = 5
    @Option(help: "Event loop threads.") var threads = 1

    func validate() throws {
        guard calls >= 32, rounds >= 1 else { throw ValidationError("--calls must be at least 32 and --rounds at least 1") }
    }

    func run() async throws {
        var logger = Logger(label: "rpcbench.auth")
        logger.logLevel = .critical
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("rpcbench-auth-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let socket = work.appendingPathComponent("keyservsock").path

        // Keyserver with a client key (uid 9001) and a server key (uid 9000).
        let core = KeyServerCore()
        var keyserverConfiguration = RPCServer.Configuration()
        keyserverConfiguration.authenticators = [AuthSysServer()]
        let keyserver = RPCServer(programs: KeyServerService(core: core, logger: logger).programs, configuration: keyserverConfiguration,
                                  group: group, logger: logger)
        try await keyserver.listenUnix(path: socket)
        let clientKey = DHPrivateKey.generate(group: .dh192des), serverKey = DHPrivateKey.generate(group: .dh192des)
        _ = core.setSecret(uid: 9001, hex: Array(clientKey.secretHex.utf8))
        _ = core.setSecret(uid: 9000, hex: Array(serverKey.secretHex.utf8))
        // The client is this process's user in the server's local domain, as on a real host:
        // the server hands its handlers that user's uid and groups.
        let clientName = "unix.\(getuid())@bench.example", serverName = "unix.bench@bench.example"

        let verifier = AuthDHServer(keyserver: try KeyServerClient(socketPath: socket, uid: 9000), localDomain: "bench.example") {
            $0 == clientName ? clientKey.publicKey : nil
        }
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), AuthSysServer(), verifier]
        let server = RPCServer(programs: [RPCProgram(number: TestEcho.program, version: TestEcho.version)], configuration: configuration,
                               group: group, logger: logger)
        let address = try await server.listenTCP()

        func dhClient() throws -> RPCClient {
            RPCClient(transport: .tcp, address: address, program: TestEcho.program, version: TestEcho.version,
                      authenticator: AuthDHClient(clientNetname: clientName, serverNetname: serverName, serverPublicKey: serverKey.publicKey,
                                                  keyserver: try KeyServerClient(socketPath: socket, uid: 9001)),
                      group: group)
        }
        // With Tests/CPeers' malloc counter preloaded, heap allocations per call (client and
        // server together, the whole process) are printed beside the rates.
        let counter = AllocationCounter.preloaded()
        func measure(_ client: RPCClient, count: Int, concurrency: Int = 1) async throws -> (rate: Double, allocations: Double?) {
            for _ in 0..<50 { try await client.ping() }
            let allocationsBefore = counter?()
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for _ in 0..<concurrency {
                    tasks.addTask { for _ in 0..<(count / concurrency) { try await client.ping() } }
                }
                try await tasks.waitForAll()
            }
            let made = count / concurrency * concurrency
            let rate = Double(made) / microseconds(ContinuousClock.now - start) * 1e6
            guard let counter, let allocationsBefore else { return (rate, nil) }
            return (rate, Double(counter() - allocationsBefore) / Double(made))
        }

        // One client per flavor; the rounds alternate between the flavors so that a slow
        // moment of this shared machine lands on all of them alike (one measurement each, in
        // a row, moved the ratios by tens of percent from run to run).
        let flavors = ["AUTH_NONE", "AUTH_SYS", "AUTH_DH"]
        let clients = [
            RPCClient(transport: .tcp, address: address, program: TestEcho.program, version: TestEcho.version,
                      authenticator: AuthNoneClient(), group: group),
            RPCClient(transport: .tcp, address: address, program: TestEcho.program, version: TestEcho.version,
                      authenticator: AuthSysClient(), group: group),
            try dhClient(),
        ]
        var rows: [(name: String, rate: Double, allocations: Double?)] = []
        for concurrency in [1, 32] {
            var rates = Array(repeating: [Double](), count: clients.count)
            var allocations = Array(repeating: [Double](), count: clients.count)
            for _ in 0..<rounds {
                for index in clients.indices {
                    let measured = try await measure(clients[index], count: calls, concurrency: concurrency)
                    rates[index].append(measured.rate)
                    if let perCall = measured.allocations { allocations[index].append(perCall) }
                }
            }
            for (index, name) in flavors.enumerated() {
                let shown = concurrency == 1 ? (name == "AUTH_DH" ? "AUTH_DH sequential (nickname)" : "\(name) sequential") : "\(name) 32 in flight"
                rows.append((shown, median(rates[index])!, median(allocations[index])))
            }
        }
        for client in clients { await client.close() }
        // First calls: a new conversation each time (new client, new conversation key).
        let firstCalls = min(calls, 500)
        let start = ContinuousClock.now
        for _ in 0..<firstCalls {
            let fresh = try dhClient()
            try await fresh.ping()
            await fresh.close()
        }
        rows.append(("AUTH_DH first call (fullname)", Double(firstCalls) / microseconds(ContinuousClock.now - start) * 1e6, nil))

        let sys = Dictionary(uniqueKeysWithValues: rows.map { ($0.name, $0.rate) })
        print("rpcbench auth: NULL calls, one process, loopback TCP, \(threads) event loop thread(s); "
              + "steady state: median of \(rounds) interleaved rounds of \(calls) calls")
        if counter == nil {
            print("  (allocations per call: run with LD_PRELOAD=DIR/libmalloc_count.so, built by bash Tests/CPeers/build.sh DIR)")
        }
        for (name, rate, allocations) in rows {
            let base = name.contains("32") ? sys["AUTH_SYS 32 in flight"]! : sys["AUTH_SYS sequential"]!
            print("  " + name.padding(toLength: 32, withPad: " ", startingAt: 0) + String(format: "%9.0f calls/s   %5.2f× AUTH_SYS", rate, rate / base)
                  + (allocations.map { String(format: "   %5.1f allocations/call", $0) } ?? ""))
        }
        try printDESWorkPerCall()
        await server.shutdown()
        await keyserver.shutdown()
        try await group.shutdownGracefully()
    }

    /// The DES work of one nickname call, both sides (client seals, server opens and seals
    /// its reply, client checks it): as the calls do it now (the schedule kept, one block
    /// in and out as an integer, verifiers written into their buffers), and with a one-off
    /// schedule for each block operation (the key-based AuthDHSeal functions, arrays).
    private func printDESWorkPerCall() throws {
        let key = SunDES.randomKey(), schedule = try SunDES.Schedule(key: key)
        let nickname: UInt32 = 7, rounds = 200_000
        func oneCall(_ i: Int, perCallForms: Bool) throws -> Bool {
            let stamp = AuthDHTimestamp(seconds: 1_800_000_000 &+ UInt32(i), microseconds: UInt32(i % 1_000_000))
            if perCallForms {
                let verifier = AuthDHSeal.nicknameVerifier(schedule: schedule, timestamp: stamp)
                let opened = try AuthDHSeal.openNickname(schedule: schedule, verifier: verifier)
                let reply = AuthDHSeal.replyVerifier(schedule: schedule, timestamp: opened, nickname: nickname)
                return AuthDHSeal.checkReply(schedule: schedule, verifier: reply, sent: stamp) == nickname
            }
            let bytes: [UInt8] = [0, 0, 0, 7]
            let verifier = try AuthDHSeal.nickname(conversationKey: key, timestamp: stamp)
            let opened = try AuthDHSeal.openNickname(conversationKey: key, verifier: verifier)
            let reply = try AuthDHSeal.reply(conversationKey: key, timestamp: opened, nickname: bytes)
            return AuthDHSeal.checkReply(conversationKey: key, verifier: reply, sent: stamp) == bytes
        }
        for perCallForms in [false, true] {
            var good = 0
            let start = ContinuousClock.now
            for i in 0..<rounds where try oneCall(i, perCallForms: perCallForms) { good += 1 }
            precondition(good == rounds, "a nickname round trip did not verify")
            let perCall = microseconds(ContinuousClock.now - start) / Double(rounds)
            print("  AUTH_DH DES work per call, " + (perCallForms ? "as calls do it (schedule kept)" : "key expanded each time, arrays ")
                  + String(format: "%7.2f µs", perCall))
        }
    }
}
