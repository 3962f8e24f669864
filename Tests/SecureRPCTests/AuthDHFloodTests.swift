// AUTH_DH fullname admission (issue 13 item 1, the AUTH_DH half): before a fullname
// credential is proven, the server looks the client's key up and asks the keyserver for
// KEY_DECRYPT_PK (a modexp on a cache miss). Those steps now run only for fullnames that
// HandshakeAdmission lets through (concurrency, per-address and per-netname buckets). Before,
// every bad fullname naming a principal with a key cost a keyserver call: 5,000 bad fullnames
// from one address made 5,000 KEY_DECRYPT_PKs.

import Foundation
import KeyCrypto
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XCTest
@testable import SecureRPC

final class AuthDHFloodTests: XCTestCase {
    private var fixture: AuthDHFixture!

    override func setUp() async throws { fixture = try await AuthDHFixture() }
    override func tearDown() async throws { await fixture.shutdown() }

    func testBadFullnameFloodFromOneAddressCostsBoundedKeyserverWorkAndTheClientGetsIn() async throws {
        // The clock stands still: no bucket refills during the flood, so the bound is exact.
        let clock = AuthDHTestClock(Date().timeIntervalSince1970)
        // 5,000 principals with keys of their own (distinct: every derive would be a miss).
        var keys: [String: DHPublicKey] = [fixture.clientNetname: fixture.alice.publicKey]
        let names = (0..<5_000).map { "unix.\(100_000 + $0)@example.org" }
        for name in names { keys[name] = DHPrivateKey.generate(group: .dh192des).publicKey }
        let directory = keys
        let server = AuthDHServer(keyserver: try KeyServerClient(socketPath: fixture.socket, uid: 6002), now: clock.function) { directory[$0] }
        let limits = server.limits.admission

        let flooder = RPCCallContext(transport: .tcp, remoteAddress: try SocketAddress(ipAddress: "127.0.0.2", port: 40_000), localAddress: nil)
        let before = fixture.keyserver.core.cacheStatistics
        let (refused, disconnected) = await withTaskGroup(of: (Int, Int).self) { group in
            for task in 0..<8 {
                group.addTask {
                    var random = SplitMix64(seed: UInt64(task) &+ 0x5eed)
                    var refused = 0, disconnected = 0
                    for name in names[(task * 625)..<((task + 1) * 625)] {
                        let credential = AuthDHCredential.fullname(netname: name, wrappedKey: random.bytes(8), encryptedWindow: random.bytes(4))
                        let decision = await server.authenticate(authDHCall(credential, verifier: random.bytes(12)), context: flooder)
                        if case .disconnecting = decision { disconnected += 1 }
                        if case .rejected = AuthDHOutcome(decision) { refused += 1 }
                    }
                    return (refused, disconnected)
                }
            }
            return await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        }
        let after = fixture.keyserver.core.cacheStatistics
        let keyserverCalls = (after.hits + after.misses) - (before.hits + before.misses)
        XCTAssertEqual(refused, 5_000, "no bad fullname is accepted")
        XCTAssertLessThanOrEqual(keyserverCalls, Int(limits.perAddress.burst), "the keyserver saw at most one address's burst")
        XCTAssertGreaterThanOrEqual(server.admission.statistics.refusedAddress + server.admission.statistics.refusedBusy, 5_000 - Int(limits.perAddress.burst))
        // Refused for its address's rate, the flooder also loses its connection (it must pay
        // a new one per try; RPCSEC_GSS INITs likewise, GSSFloodTests).
        XCTAssertEqual(disconnected, server.admission.statistics.refusedAddress)
        XCTAssertGreaterThan(disconnected, 0)
        print("AuthDHFloodTests: 5,000 bad fullnames from one address → \(keyserverCalls) KEY_DECRYPT_PK, admission \(server.admission.statistics)")

        // The legitimate client, from another address, is admitted at once.
        let conversation = try await fixture.conversation()
        let stamp = AuthDHTimestamp(seconds: UInt32(clock.now), microseconds: 0)
        let client = RPCCallContext(transport: .tcp, remoteAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 40_001), localAddress: nil)
        guard case .accepted = await server.authenticate(try conversation.fullname(stamp), context: client) else {
            return XCTFail("the legitimate client was refused during the flood")
        }
    }

    func testAMalformedNetnameIsRefusedBeforeLookupAndAdmission() async throws {
        let looked = NIOLockedValueBox(0)
        let server = AuthDHServer(keyserver: try KeyServerClient(socketPath: fixture.socket, uid: 6002)) { _ in
            looked.withLockedValue { $0 += 1 }
            return nil
        }
        for netname in ["unix.1@a@example.org", "unix.1\n@example.org", String(repeating: "u", count: 300) + "@example.org"] {
            let credential = AuthDHCredential.fullname(netname: netname, wrappedKey: [UInt8](repeating: 1, count: 8), encryptedWindow: [1, 2, 3, 4])
            let decision = await server.authenticate(authDHCall(credential, verifier: [UInt8](repeating: 0, count: 12)), context: authDHTestContext)
            XCTAssertEqual(AuthDHOutcome(decision), .rejected(.badCredential), netname)
        }
        XCTAssertEqual(looked.withLockedValue { $0 }, 0, "never looked up")
        XCTAssertEqual(server.admission.statistics.admitted, 0, "never metered")
    }
}
