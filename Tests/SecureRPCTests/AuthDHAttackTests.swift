// AUTH_DH under attack: replayed credentials and verifiers, timestamps outside the window,
// flipped bits, unknown users, users not logged in, a restarted server. In every refused
// case nothing reaches the handler (it counts its runs).

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

/// Sends whatever credential and verifier it was given, every time: a replaying attacker.
private struct ReplayingAuthenticator: RPCClientAuthenticator {
    var flavor: AuthFlavor { .dh }
    let credential: OpaqueAuth
    let verifier: OpaqueAuth
    func prepare(_ header: RPCCallHeader, arguments: ByteBuffer) async throws -> RPCPreparedCall {
        RPCPreparedCall(credential: credential, verifier: verifier, arguments: arguments)
    }
}

/// Records what the wrapped authenticator produces, so a test can look at the wire form.
private final class RecordingAuthenticator: RPCClientAuthenticator, @unchecked Sendable {
    var flavor: AuthFlavor { .dh }
    let inner: AuthDHClient
    let prepared = NIOLockedValueBox<[RPCPreparedCall]>([])
    init(_ inner: AuthDHClient) { self.inner = inner }
    func prepare(_ header: RPCCallHeader, arguments: ByteBuffer) async throws -> RPCPreparedCall {
        let call = try await inner.prepare(header, arguments: arguments)
        prepared.withLockedValue { $0.append(call) }
        return call
    }
    func refresh(after status: AuthStatus) async -> Bool { await inner.refresh(after: status) }
}

final class AuthDHAttackTests: XCTestCase {
    let alice = try! DHPrivateKey(group: .dh192des, secretHex: "053346dd92b7562f80e5431672a175aeb567818bab69c742")
    let bob = try! DHPrivateKey(group: .dh192des, secretHex: "1d3c043748cab5dac980040b71efd18e260d3f2caa4db5d4")
    let clientNetname = "unix.6001@example.org", serverNetname = "unix.server@example.org"

    private var directory: URL!
    private var keyserver: RPCServer!
    private var core: KeyServerCore!
    private let runs = NIOLockedValueBox(0)
    private var socket: String { directory.appendingPathComponent("keyservsock").path }

    override func setUp() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("authdh-attack-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let started = try await TestKeyserver.start(socket: socket)
        keyserver = started.server
        core = started.core
        _ = core.setSecret(uid: 6001, hex: Array(alice.secretHex.utf8))
        _ = core.setSecret(uid: 6002, hex: Array(bob.secretHex.utf8))
    }

    override func tearDown() async throws {
        await keyserver.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    private func startServer(port: Int = 0) async throws -> (RPCServer, SocketAddress) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let clientKey = alice.publicKey, clientName = clientNetname
        let verifier = AuthDHServer(keyserver: try KeyServerClient(socketPath: socket, uid: 6002)) { $0 == clientName ? clientKey : nil }
        var program = RPCProgram(number: 0x2000_0300, version: 1, policy: RequireFlavors([.dh]))
        let runs = self.runs
        program.addImmediateProcedure(1) { (_: XDRVoid, _) -> UInt32 in UInt32(runs.withLockedValue { $0 += 1; return $0 }) }
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [verifier]
        let server = RPCServer(programs: [program], configuration: configuration, logger: logger)
        return (server, try await server.listenTCP(port: port))
    }

    private func authenticator(uid: UInt32 = 6001, netname: String? = nil, clockOffset: Int64 = 0) throws -> AuthDHClient {
        AuthDHClient(clientNetname: netname ?? clientNetname, serverNetname: serverNetname, serverPublicKey: bob.publicKey,
                     keyserver: try KeyServerClient(socketPath: socket, uid: uid), clockOffset: clockOffset)
    }

    private func expectAuthError(_ client: RPCClient, _ status: AuthStatus, file: StaticString = #filePath, line: UInt = #line) async {
        do {
            _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
            XCTFail("expected \(status)", file: file, line: line)
        } catch let error as RPCClientError {
            XCTAssertEqual(error, .authError(status), file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    func testNicknamesOnTheWireAndReplaysRefused() async throws {
        let (server, address) = try await startServer()
        let recorder = RecordingAuthenticator(try authenticator())
        let client = RPCClient(transport: .tcp, address: address, program: 0x2000_0300, version: 1, authenticator: recorder)
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        let sent = recorder.prepared.withLockedValue { $0 }
        guard case .fullname? = try? AuthDHCredential.decode(sent[0].credential.body),
              case .nickname? = try? AuthDHCredential.decode(sent[1].credential.body) else {
            return XCTFail("first call fullname, then nickname")
        }
        XCTAssertEqual(runs.withLockedValue { $0 }, 2)

        // Replays of either captured call (its credential and verifier, on a new xid and
        // connection, where no duplicate request cache can help) are refused.
        for (index, status) in [(0, AuthStatus.rejectedCredential), (1, .rejectedVerifier)] {
            let attacker = RPCClient(transport: .tcp, address: address, program: 0x2000_0300, version: 1,
                                     authenticator: ReplayingAuthenticator(credential: sent[index].credential, verifier: sent[index].verifier))
            await expectAuthError(attacker, status)
            await attacker.close()
        }
        // Flipped bits in the credential or the verifier.
        for (part, position) in [("credential", 30), ("credential", 41), ("verifier", 0), ("verifier", 6), ("verifier", 10)] {
            var credential = sent[0].credential, verifier = sent[0].verifier
            if part == "credential" {
                var body = Array(credential.body.readableBytesView); body[min(position, body.count - 1)] ^= 0x04
                credential = OpaqueAuth(flavor: .dh, body: ByteBuffer(bytes: body))
            } else {
                var body = Array(verifier.body.readableBytesView); body[position] ^= 0x04
                verifier = OpaqueAuth(flavor: .dh, body: ByteBuffer(bytes: body))
            }
            let attacker = RPCClient(transport: .tcp, address: address, program: 0x2000_0300, version: 1,
                                     authenticator: ReplayingAuthenticator(credential: credential, verifier: verifier))
            do {
                _ = try await attacker.call(1, XDRVoid(), returning: UInt32.self)
                XCTFail("flipped \(part) byte \(position) accepted")
            } catch let error as RPCClientError {
                guard case .authError = error else { return XCTFail("\(error)") }
            }
            await attacker.close()
        }
        XCTAssertEqual(runs.withLockedValue { $0 }, 2, "nothing reached the handler")
        // The real client goes on.
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        await client.close()
        await server.shutdown()
    }

    func testTimestampOutsideTheWindowIsRefused() async throws {
        let (server, address) = try await startServer()
        let client = RPCClient(transport: .tcp, address: address, program: 0x2000_0300, version: 1,
                               authenticator: try authenticator(clockOffset: -3600))
        await expectAuthError(client, .badCredential)
        XCTAssertEqual(runs.withLockedValue { $0 }, 0)
        await client.close()
        await server.shutdown()
    }

    func testUnknownUserAndUserNotLoggedIn() async throws {
        let (server, address) = try await startServer()
        // Logged in, but not in the directory the server consults.
        _ = core.setSecret(uid: 6005, hex: Array(DHPrivateKey.generate(group: .dh192des).secretHex.utf8))
        let stranger = RPCClient(transport: .tcp, address: address, program: 0x2000_0300, version: 1,
                                 authenticator: try authenticator(uid: 6005, netname: "unix.6005@example.org"))
        await expectAuthError(stranger, .badCredential)
        await stranger.close()
        // Not logged in: a clear error before anything is sent.
        let absent = RPCClient(transport: .tcp, address: address, program: 0x2000_0300, version: 1,
                               authenticator: try authenticator(uid: 6009, netname: "unix.6009@example.org"))
        do {
            _ = try await absent.call(1, XDRVoid(), returning: UInt32.self)
            XCTFail("expected notLoggedIn")
        } catch let error as SecureRPCError {
            XCTAssertEqual(error, .notLoggedIn("unix.6009@example.org"))
            XCTAssertEqual("\(error)", "unix.6009@example.org is not logged in to the keyserver (run keylogin)")
        }
        await absent.close()
        XCTAssertEqual(runs.withLockedValue { $0 }, 0)
        await server.shutdown()
    }

    func testClientRecoversAfterTheServerRestarts() async throws {
        let (first, address) = try await startServer()
        let client = RPCClient(transport: .tcp, address: address, program: 0x2000_0300, version: 1, authenticator: try authenticator())
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        await first.shutdown()
        let (second, _) = try await startServer(port: address.port!)
        // The nickname means nothing to the new server: AUTH_BADCRED, the client goes back to
        // a fullname credential by itself, and the call succeeds.
        let count = try await client.call(1, XDRVoid(), returning: UInt32.self)
        XCTAssertEqual(count, 3)
        await client.close()
        await second.shutdown()
    }
}
