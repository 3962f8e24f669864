// What the RPCSEC_GSS hardening tests share: INIT calls made the way a client makes them
// (K_ss from the client's long-term secret, as its keyserver derives it, then the real
// authenticator) so that a test can drive thousands of INITs straight into the server's
// authenticator without a socket per context; a LogHandler that keeps every entry for
// inspection; and the process's resident set size. Trusts the fixture's keys and nothing
// the server says beyond the decoded INIT result.

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

/// Makes INIT calls for one client key pair against the test server's key.
struct GSSInitMaker {
    let client: String
    let group: GSSGroup
    let clientKey: DHPrivateKey
    /// K_ss exactly as the client's keyserver would derive it.
    let kss: SecretBytes
    /// One ephemeral key for every token (the server does not care; a real client would not
    /// reuse one, but these tests are about what happens before the ephemeral is used).
    let ephemeral: DHPrivateKey

    init(client: String, group: GSSGroup = .ffdhe2048, clientKey: DHPrivateKey? = nil, server: DHPublicKey? = nil) throws {
        self.client = client
        self.group = group
        let key = clientKey ?? gssLongTermKeys[group]!.client
        self.clientKey = key
        let serverKey = server ?? gssLongTermKeys[group]!.server.publicKey
        let shared = try key.sharedSecret(with: serverKey)
        kss = StrongCrypto.hkdf(inputKeyMaterial: shared, salt: StrongKeyStore.salt,
                                info: SRPCDH.kssInfo(group: group, client: client, server: gssServerNetname), outputByteCount: 32)
        ephemeral = DHPrivateKey.generate(group: group.dhGroup)
    }

    /// A token with a valid authenticator (unless `forge`), timestamped `at` (seconds).
    func token(at seconds: TimeInterval, nonce: [UInt8]? = nil, clientName: String? = nil, serverName: String = gssServerNetname,
               forge: Bool = false) throws -> SrpcDhInitToken {
        let body = SrpcDhInitBody(tokenVersion: SRPCDH.tokenVersion, group: group.wire, client: clientName ?? client, server: serverName,
                                  clientEphemeral: ephemeral.publicKey.bytes, timestamp: UInt64(seconds * 1_000_000),
                                  nonce: nonce ?? (0..<16).map { _ in UInt8.random(in: 0...255) })
        if forge {
            return SrpcDhInitToken(body: body, authNonce: (0..<12).map { _ in .random(in: 0...255) },
                                   authenticator: (0..<40).map { _ in .random(in: 0...255) })
        }
        return try SRPCDH.sealAuthenticator(kss: kss, body: body)
    }

    static func call(_ token: SrpcDhInitToken, xid: UInt32 = 1) -> RPCCall {
        let credential = GSSCredential(procedure: .rpcsecGssInit, sequence: 0, service: .none, handle: []).opaqueAuth
        return RPCCall(xid: xid, program: gssProgramNumber, version: 1, procedure: 0, credential: credential, verifier: .none,
                       arguments: RpcGssInitArg(gssToken: Array(token.xdrEncoded().readableBytesView)).xdrEncoded())
    }

    /// The framed-ready record of an INIT call (for raw sockets).
    static func record(_ token: SrpcDhInitToken, xid: UInt32 = 1) -> ByteBuffer {
        var out = ByteBuffer()
        call(token, xid: xid).encode(into: &out)
        return out
    }
}

/// Where a test call comes from.
func callContext(_ address: String = "127.0.0.1", port: Int = 40_000) -> RPCCallContext {
    RPCCallContext(transport: .tcp, remoteAddress: try! SocketAddress(ipAddress: address, port: port), localAddress: nil)
}

/// Runs an INIT through the server's authenticator as the dispatcher would, and decodes
/// the INIT result (nil when the call was not answered with one).
func initResult(_ gss: GSSServer, _ call: RPCCall, from context: RPCCallContext = callContext()) async -> RpcGssInitRes? {
    let decision: RPCAuthDecision
    if let immediate = gss.authenticateImmediately(call, context: context) {
        decision = immediate
    } else {
        decision = await gss.authenticate(call, context: context)
    }
    var answered = decision
    if case let .disconnecting(inner) = decision { answered = inner }
    guard case let .handled(_, .success(results)) = answered else { return nil }
    return try? results.decodeXDRExactly(RpcGssInitRes.self)
}

/// Every log entry, as swift-log hands it over.
final class CapturedLog: @unchecked Sendable {
    struct Entry {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
        /// What a line-oriented handler (StreamLogHandler) would print for it.
        var rendered: String { ([message] + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: " ") }
    }

    private let entries = NIOLockedValueBox<[Entry]>([])
    var all: [Entry] { entries.withLockedValue { $0 } }
    func append(_ entry: Entry) { entries.withLockedValue { $0.append(entry) } }

    func logger(label: String = "captured") -> Logger {
        var logger = Logger(label: label) { _ in CapturingLogHandler(log: self) }
        logger.logLevel = .trace
        return logger
    }
}

struct CapturingLogHandler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        log.append(.init(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
    }
}

/// The resident set size of this process, from /proc/self/status (bytes).
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
    return kilobytes * 1024
}

/// A fast, seeded generator for sweeps of random inputs (they need many bits, not secret
/// ones): SplitMix64. Seeded from the system generator unless a seed is given.
struct SweepRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64 = UInt64.random(in: 0...UInt64.max)) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = next()
            for _ in 0..<min(8, count - index) {
                out[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return out
    }
}
