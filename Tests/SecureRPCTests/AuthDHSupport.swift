// What the AUTH_DH hardening tests share: a real keyserver in-process (TestKeyserver) holding
// the client's and the server's dh192-des secrets, an AuthDHServer on an injected clock, and
// credentials made by hand with a conversation key the keyserver generated and wrapped (so a
// test can put any timestamp or window into a call and hand it straight to the server).
// Trusts only the real keyserver and the AuthDHSeal functions for the wire forms.

import Foundation
import KeyCrypto
import KeyServer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

/// The injected clock: Unix seconds, moved by the test.
final class AuthDHTestClock: Sendable {
    private let value: NIOLockedValueBox<TimeInterval>
    init(_ start: TimeInterval) { value = NIOLockedValueBox(start) }
    var now: TimeInterval { value.withLockedValue { $0 } }
    func set(_ time: TimeInterval) { value.withLockedValue { $0 = time } }
    func advance(by seconds: TimeInterval) { value.withLockedValue { $0 += seconds } }
    var function: @Sendable () -> TimeInterval { { self.now } }
}

/// A conversation key from the keyserver (KEY_GEN) and its wrapping for the server
/// (KEY_ENCRYPT_PK), as AuthDHClient makes them, kept by the test.
struct HandMadeConversation {
    let netname: String
    let key: SecretBytes
    let wrapped: [UInt8]

    static func make(keyserver: KeyServerClient, netname: String, serverNetname: String, serverKey: DHPublicKey) async throws -> HandMadeConversation {
        let generated = try await keyserver.perform { try await $0.keyGen() }
        let argument = Cryptkeyarg2(remotename: serverNetname, remotekey: Array(serverKey.hex.utf8) + [0], deskey: generated)
        guard case let .keySuccess(wrapped) = try await keyserver.perform({ try await $0.keyEncryptPk(argument) }) else {
            throw SecureRPCError.keyserverRefused("KEY_ENCRYPT_PK")
        }
        return HandMadeConversation(netname: netname, key: SecretBytes(copying: generated), wrapped: wrapped)
    }

    func fullname(_ stamp: AuthDHTimestamp, window: UInt32 = 60, xid: UInt32 = 1) throws -> RPCCall {
        let sealed = try AuthDHSeal.fullname(conversationKey: key, timestamp: stamp, window: window)
        return authDHCall(.fullname(netname: netname, wrappedKey: wrapped, encryptedWindow: sealed.encryptedWindow), verifier: sealed.verifier, xid: xid)
    }

    func nickname(_ nickname: [UInt8], _ stamp: AuthDHTimestamp, xid: UInt32 = 2) throws -> RPCCall {
        authDHCall(.nickname(nickname), verifier: try AuthDHSeal.nickname(conversationKey: key, timestamp: stamp), xid: xid)
    }
}

func authDHCall(_ credential: AuthDHCredential, verifier: [UInt8], xid: UInt32 = 1) -> RPCCall {
    RPCCall(xid: xid, program: 0x2000_0300, version: 1, procedure: 1, credential: credential.opaqueAuth,
            verifier: OpaqueAuth(flavor: .dh, body: ByteBuffer(bytes: verifier)))
}

let authDHTestContext = RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil)

/// A decision in a form tests can compare: nil for accepted, else the status.
enum AuthDHOutcome: Equatable, CustomStringConvertible {
    case accepted(nickname: [UInt8])
    case rejected(AuthStatus)
    case other

    init(_ decision: RPCAuthDecision) {
        switch decision {
        case let .accepted(call): self = .accepted(nickname: Array(call.replyVerifier.body.readableBytesView.suffix(4)))
        case let .rejected(status): self = .rejected(status)
        case let .disconnecting(inner): self.init(inner)
        default: self = .other
        }
    }

    var isAccepted: Bool { if case .accepted = self { return true } else { return false } }
    var nickname: [UInt8]? { if case let .accepted(nickname) = self { return nickname } else { return nil } }

    var description: String {
        switch self {
        case .accepted: return "accepted"
        case let .rejected(status): return "\(status)"
        case .other: return "other"
        }
    }
}

extension AuthDHTimestamp {
    /// `seconds` (whole or fractional Unix time) plus `microseconds`.
    static func at(_ seconds: TimeInterval, plusMicroseconds extra: Int64 = 0) -> AuthDHTimestamp {
        let total = Int64((seconds * 1_000_000).rounded(.down)) + extra
        return AuthDHTimestamp(seconds: UInt32(total / 1_000_000), microseconds: UInt32(total % 1_000_000))
    }
}

/// A fast generator for sweeps, seeded from the system so each run tries new bits; the seed
/// is printed so a failure can be replayed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](); out.reserveCapacity(count)
        while out.count < count {
            withUnsafeBytes(of: next()) { out.append(contentsOf: $0.prefix(count - out.count)) }
        }
        return out
    }
}

/// A keyserver with alice (client, uid 6001) and bob (server, uid 6002) logged in, in a
/// temporary directory.
final class AuthDHFixture: @unchecked Sendable {
    // vectors.md §3: alice is the client, bob the server.
    let alice = try! DHPrivateKey(group: .dh192des, secretHex: "053346dd92b7562f80e5431672a175aeb567818bab69c742")
    let bob = try! DHPrivateKey(group: .dh192des, secretHex: "1d3c043748cab5dac980040b71efd18e260d3f2caa4db5d4")
    let clientNetname = "unix.6001@example.org", serverNetname = "unix.server@example.org"
    let directory: URL
    let keyserver: TestKeyserver
    var socket: String { directory.appendingPathComponent("keyservsock").path }

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("authdh-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        keyserver = try await TestKeyserver.start(socket: directory.appendingPathComponent("keyservsock").path)
        XCTAssertEqual(keyserver.core.setSecret(uid: 6001, hex: Array(alice.secretHex.utf8)), .keySuccess)
        XCTAssertEqual(keyserver.core.setSecret(uid: 6002, hex: Array(bob.secretHex.utf8)), .keySuccess)
    }

    func shutdown() async {
        await keyserver.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    /// An AuthDHServer as bob, knowing only alice's key.
    func server(limits: AuthDHServer.Limits = .init(), cacheSize: Int = 128, clock: AuthDHTestClock? = nil) throws -> AuthDHServer {
        let clientKey = alice.publicKey, clientName = clientNetname
        if let clock {
            return AuthDHServer(keyserver: try KeyServerClient(socketPath: socket, uid: 6002), cacheSize: cacheSize, limits: limits,
                                now: clock.function) { $0 == clientName ? clientKey : nil }
        }
        return AuthDHServer(keyserver: try KeyServerClient(socketPath: socket, uid: 6002), cacheSize: cacheSize, limits: limits) {
            $0 == clientName ? clientKey : nil
        }
    }

    /// A conversation key of alice's for bob.
    func conversation() async throws -> HandMadeConversation {
        try await HandMadeConversation.make(keyserver: try KeyServerClient(socketPath: socket, uid: 6001), netname: clientNetname,
                                            serverNetname: serverNetname, serverKey: bob.publicKey)
    }

    func client(uid: UInt32 = 6001, netname: String? = nil) throws -> AuthDHClient {
        AuthDHClient(clientNetname: netname ?? clientNetname, serverNetname: serverNetname, serverPublicKey: bob.publicKey,
                     keyserver: try KeyServerClient(socketPath: socket, uid: uid))
    }

    /// An RPC server with `verifier` and program 0x20000300: procedure 1 counts its runs in
    /// `runs`, procedure 2 in `otherRuns`.
    func rpcServer(_ verifier: AuthDHServer, runs: NIOLockedValueBox<Int>, otherRuns: NIOLockedValueBox<Int> = .init(0)) async throws -> (RPCServer, SocketAddress) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var program = RPCProgram(number: 0x2000_0300, version: 1, policy: RequireFlavors([.dh]))
        program.addImmediateProcedure(1) { (_: XDRVoid, _) -> UInt32 in UInt32(runs.withLockedValue { $0 += 1; return $0 }) }
        program.addImmediateProcedure(2) { (_: XDRVoid, _) -> UInt32 in UInt32(otherRuns.withLockedValue { $0 += 1; return $0 }) }
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [verifier]
        let server = RPCServer(programs: [program], configuration: configuration, logger: logger)
        return (server, try await server.listenTCP())
    }
}

/// Hands `call` to `server` and checks the outcome (any nickname counts for `.accepted`).
func expectOutcome(_ server: AuthDHServer, _ call: RPCCall, _ expected: AuthDHOutcome, _ message: String = "",
                   file: StaticString = #filePath, line: UInt = #line) async {
    let got = AuthDHOutcome(await server.authenticate(call, context: authDHTestContext))
    if expected.isAccepted {
        XCTAssertTrue(got.isAccepted, "\(message): \(got)", file: file, line: line)
    } else {
        XCTAssertEqual(got, expected, message, file: file, line: line)
    }
}

/// Hands `call` to `server`, which must accept it; returns the nickname of the reply.
func expectAccepted(_ server: AuthDHServer, _ call: RPCCall, _ message: String = "",
                    file: StaticString = #filePath, line: UInt = #line) async throws -> [UInt8] {
    let got = AuthDHOutcome(await server.authenticate(call, context: authDHTestContext))
    return try XCTUnwrap(got.nickname, "\(message): \(got)", file: file, line: line)
}

extension AuthDHOutcome {
    static let acceptedAny = AuthDHOutcome.accepted(nickname: [])
}

/// User + system CPU seconds of this process so far (sweeps report what they cost, since
/// wall time on a shared machine says little).
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}
