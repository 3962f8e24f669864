// `keybench keyserver`: KEY_ENCRYPT_PK round trips per second through a real keyserver on a
// unix socket (our client, AUTH_SYS), once with a cached derived key (same peer every time)
// and once cold (a new peer public key every call, so each needs a Diffie-Hellman).

import ArgumentParser
import Foundation
import KeyCrypto
import KeyServer
import Logging
import NIOCore
import NIOPosix
import ONCRPC

struct KeyServerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyserver",
        abstract: "Keyserver round trips per second, cached and cold common keys."
    )

    @Option(help: "Calls per measurement.") var calls = 20_000

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keybench-ks-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = directory.appendingPathComponent("sock").path
        var logger = Logger(label: "keybench")
        logger.logLevel = .critical
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), AuthSysServer()]
        let core = KeyServerCore(cacheCapacity: 1 << 20)
        let strongStore = StrongKeyStore(cacheCapacity: 1 << 20)
        let server = RPCServer(programs: KeyServerService.programs(core: core, strong: strongStore, logger: logger),
                               configuration: configuration, logger: logger)
        try await server.listenUnix(path: socket)
        let client = try KeyServerClient(socketPath: socket, uid: 4000)
        let mine = DHPrivateKey.generate(group: .dh192des)
        _ = try await client.perform { try await $0.keySet(Array(mine.secretHex.utf8)) }
        let block: [UInt8] = [0x3b, 0x5d, 0x7f, 0x10, 0x02, 0x34, 0x57, 0x79]
        let peer = Array(DHPrivateKey.generate(group: .dh192des).publicKey.hex.utf8) + [0]
        let coldCount = min(calls, 5_000)
        let coldPeers = (0..<coldCount).map { _ in Array(DHPrivateKey.generate(group: .dh192des).publicKey.hex.utf8) + [0] }

        func measure(_ count: Int, _ peerFor: (Int) -> [UInt8]) async throws -> (rate: Double, microseconds: Double) {
            let start = ContinuousClock.now
            for i in 0..<count {
                let argument = Cryptkeyarg2(remotename: "unix.peer@example.org", remotekey: peerFor(i), deskey: block)
                guard case .keySuccess = try await client.client.keyEncryptPk(argument) else { throw ValidationError("keyserver refused") }
            }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return (Double(count) / seconds, seconds / Double(count) * 1e6)
        }
        _ = try await measure(200) { _ in peer }
        let cached = try await measure(calls) { _ in peer }
        let cold = try await measure(coldCount) { coldPeers[$0] }
        print("""
            keybench keyserver: round trips over a unix socket, sequential, one client
              dh192-des  KEY_ENCRYPT_PK cached: \(Int(cached.rate)) round trips/s (\(String(format: "%.1f", cached.microseconds)) µs each)
              dh192-des  KEY_ENCRYPT_PK cold:   \(Int(cold.rate)) round trips/s (\(String(format: "%.1f", cold.microseconds)) µs each)
            """)
        for group in [DHGroupName.ffdhe2048, .ffdhe3072, .ffdhe4096] {
            let mechanism = StrongKeyStore.mechanism(group)!
            let mine = DHPrivateKey.generate(group: group)
            _ = try await client.performStrong { try await $0.keyxSet(KeyxSetArg(mechanism: mechanism, secret: mine.secret.copyBytes(), netname: "bench")) }
            let peer = DHPrivateKey.generate(group: group).publicKey.bytes
            let coldPeers = (0..<50).map { _ in DHPrivateKey.generate(group: group).publicKey.bytes }
            let info = Array("bench".utf8)
            func derive(_ count: Int, _ peerFor: (Int) -> [UInt8]) async throws -> (rate: Double, microseconds: Double) {
                let start = ContinuousClock.now
                for i in 0..<count {
                    guard case .keySuccess = try await client.strong.keyxDerive(KeyxDeriveArg(mechanism: mechanism, peer: peerFor(i), info: info)) else {
                        throw ValidationError("keyserver refused")
                    }
                }
                let elapsed = ContinuousClock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                return (Double(count) / seconds, seconds / Double(count) * 1e6)
            }
            _ = try await derive(100) { _ in peer }
            let hot = try await derive(min(calls, 5_000)) { _ in peer }
            let coldStrong = try await derive(coldPeers.count) { coldPeers[$0] }
            print("  \(group.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) KEYX_DERIVE cached:    \(Int(hot.rate)) round trips/s (\(String(format: "%.1f", hot.microseconds)) µs each)")
            print("  \(group.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) KEYX_DERIVE cold:      \(Int(coldStrong.rate)) round trips/s (\(String(format: "%.1f", coldStrong.microseconds)) µs each)")
        }
        await client.close()
        await server.shutdown()
    }
}
