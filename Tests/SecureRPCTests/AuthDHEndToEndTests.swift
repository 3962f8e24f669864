// AUTH_DH end to end through real keyservers' logic (KEY_GEN, KEY_ENCRYPT_PK on the client's
// side, KEY_DECRYPT_PK on the server's, over a unix socket): the caller is proven, later
// calls use the nickname, a caller below policy gets AUTH_TOOWEAK, a wrong key is refused.

import Foundation
import KeyCrypto
import KeyServer
import Logging
import NIOCore
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

private struct Name: XDRCodable, Sendable {
    var value: String
    init(_ value: String) { self.value = value }
    init(xdr buffer: inout ByteBuffer) throws(XDRError) { value = try buffer.readXDRString(maxLength: 255) }
    func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(value) }
}

final class AuthDHEndToEndTests: XCTestCase {
    // vectors.md §3: alice is the client, bob the server.
    let alice = try! DHPrivateKey(group: .dh192des, secretHex: "053346dd92b7562f80e5431672a175aeb567818bab69c742")
    let bob = try! DHPrivateKey(group: .dh192des, secretHex: "1d3c043748cab5dac980040b71efd18e260d3f2caa4db5d4")
    let clientNetname = "unix.6001@example.org", serverNetname = "unix.server@example.org"

    private var directory: URL!
    private var keyserver: RPCServer!
    private var core: KeyServerCore!
    private var socket: String { directory.appendingPathComponent("keyservsock").path }

    override func setUp() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("authdh-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let started = try await TestKeyserver.start(socket: socket)
        keyserver = started.server
        core = started.core
        XCTAssertEqual(core.setSecret(uid: 6001, hex: Array(alice.secretHex.utf8)), .keySuccess)
        XCTAssertEqual(core.setSecret(uid: 6002, hex: Array(bob.secretHex.utf8)), .keySuccess)
    }

    override func tearDown() async throws {
        await keyserver.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The AuthDHServer of the last `startServer()`.
    private var lastVerifier: AuthDHServer?

    private func startServer() async throws -> (RPCServer, SocketAddress, SocketAddress) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let clientKey = alice.publicKey, clientName = clientNetname
        let verifier = AuthDHServer(keyserver: try KeyServerClient(socketPath: socket, uid: 6002)) { netname in
            netname == clientName ? clientKey : nil
        }
        lastVerifier = verifier
        var program = RPCProgram(number: 0x2000_0300, version: 1, policy: RequireFlavors([.dh]))
        program.addImmediateProcedure(1) { (_: XDRVoid, request) in Name(request.caller.netname ?? "?") }
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), AuthSysServer(), verifier]
        let server = RPCServer(programs: [program], configuration: configuration, logger: logger)
        return (server, try await server.listenTCP(), try await server.listenUDP())
    }

    func testProvenCallerOverTCPAndUDPWithNicknames() async throws {
        let (server, tcp, udp) = try await startServer()
        for (transport, address) in [(RPCTransport.tcp, tcp), (.udp, udp)] {
            let authenticator = AuthDHClient(clientNetname: clientNetname, serverNetname: serverNetname, serverPublicKey: bob.publicKey,
                                             keyserver: try KeyServerClient(socketPath: socket, uid: 6001))
            let client = RPCClient(transport: transport, address: address, program: 0x2000_0300, version: 1, authenticator: authenticator)
            let before = core.cacheStatistics
            for _ in 0..<3 {
                let name = try await client.call(1, XDRVoid(), returning: Name.self)
                XCTAssertEqual(name.value, clientNetname, "the handler sees the proven netname")
            }
            let after = core.cacheStatistics
            // One KEY_ENCRYPT_PK (client) and one KEY_DECRYPT_PK (server) per conversation:
            // the second and third calls went by nickname, without the keyserver.
            XCTAssertEqual((after.hits + after.misses) - (before.hits + before.misses), 2, "\(transport)")
            await client.close()
        }
        await server.shutdown()
    }

    /// Many calls in flight on one client: each timestamp must reach the server later than
    /// the one before, so the client makes and writes credentials one call at a time (the
    /// replies still overlap). Without that, calls overtook each other between tasks and
    /// the server answered AUTH_REJECTEDVERF.
    func testManyConcurrentCallsOnOneClient() async throws {
        let (server, tcp, _) = try await startServer()
        let authenticator = AuthDHClient(clientNetname: clientNetname, serverNetname: serverNetname, serverPublicKey: bob.publicKey,
                                         keyserver: try KeyServerClient(socketPath: socket, uid: 6001))
        let client = RPCClient(transport: .tcp, address: tcp, program: 0x2000_0300, version: 1, authenticator: authenticator)
        let expected = clientNetname
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    for _ in 0..<50 {
                        let name = try await client.call(1, XDRVoid(), returning: Name.self)
                        XCTAssertEqual(name.value, expected)
                    }
                }
            }
            try await group.waitForAll()
        }
        // Every call reached the server in the order of its timestamp: one that overtook a
        // later-stamped one would have been refused as a replay, and the client would have
        // started over with a second fullname call.
        XCTAssertEqual(lastVerifier?.rememberedFullnames, 1, "one fullname call: no nickname call arrived out of order")
        await client.close()
        await server.shutdown()
    }

    /// A nickname call goes out without waiting for a turn; it must still meet the size
    /// check every other call meets before it is written (it did not, at first: the record
    /// went to the server).
    func testAnOversizedNicknameCallIsRefusedBeforeItIsWritten() async throws {
        let (server, tcp, _) = try await startServer()
        var configuration = RPCClient.Configuration()
        configuration.maximumRecordSize = 1024
        let client = RPCClient(transport: .tcp, address: tcp, program: 0x2000_0300, version: 1,
                               authenticator: AuthDHClient(clientNetname: clientNetname, serverNetname: serverNetname,
                                                           serverPublicKey: bob.publicKey, keyserver: try KeyServerClient(socketPath: socket, uid: 6001)),
                               configuration: configuration)
        _ = try await client.call(1, XDRVoid(), returning: Name.self)
        do {
            _ = try await client.call(procedure: 1, arguments: ByteBuffer(repeating: 0, count: 2000))
            XCTFail("a 2 KB record went out past a 1 KB maximum")
        } catch let RPCClientError.messageTooLarge(size, maximum) {
            XCTAssertGreaterThan(size, 2000)
            XCTAssertEqual(maximum, 1024)
        }
        await client.close()
        await server.shutdown()
    }

    func testRejectedCredentialBringsAFreshConversationKey() async throws {
        let authenticator = AuthDHClient(clientNetname: clientNetname, serverNetname: serverNetname, serverPublicKey: bob.publicKey,
                                         keyserver: try KeyServerClient(socketPath: socket, uid: 6001))
        let header = RPCCallHeader(xid: 1, program: 1, version: 1, procedure: 0)
        func wrappedKey() async throws -> [UInt8] {
            let call = try await authenticator.prepare(header, arguments: ByteBuffer())
            guard case let .fullname(_, key, _) = try AuthDHCredential.decode(call.credential.body) else { throw XDRError.invalidString }
            return key
        }
        let first = try await wrappedKey()
        _ = await authenticator.refresh(after: .rejectedVerifier)
        let again = try await wrappedKey()
        XCTAssertEqual(again, first, "a stale nickname: the same conversation key, wrapped again")
        _ = await authenticator.refresh(after: .rejectedCredential)
        let fresh = try await wrappedKey()
        XCTAssertNotEqual(fresh, first, "AUTH_REJECTEDCRED: a new conversation key")
        let refreshed = await authenticator.refresh(after: .tooWeak)
        XCTAssertFalse(refreshed, "no point retrying the same flavor after AUTH_TOOWEAK")
    }

    func testAuthSysCallerIsBelowPolicy() async throws {
        let (server, tcp, _) = try await startServer()
        let client = RPCClient(transport: .tcp, address: tcp, program: 0x2000_0300, version: 1, authenticator: AuthSysClient())
        do {
            _ = try await client.call(1, XDRVoid(), returning: Name.self)
            XCTFail("expected AUTH_TOOWEAK")
        } catch let error as RPCClientError {
            XCTAssertEqual(error, .authError(.tooWeak))
        }
        await client.close()
        await server.shutdown()
    }

    func testClientWithTheWrongKeyIsRefused() async throws {
        let (server, tcp, _) = try await startServer()
        // uid 6003's keyserver holds another secret than the directory's key for the netname.
        XCTAssertEqual(core.setSecret(uid: 6003, hex: Array(DHPrivateKey.generate(group: .dh192des).secretHex.utf8)), .keySuccess)
        let authenticator = AuthDHClient(clientNetname: clientNetname, serverNetname: serverNetname, serverPublicKey: bob.publicKey,
                                         keyserver: try KeyServerClient(socketPath: socket, uid: 6003))
        let client = RPCClient(transport: .tcp, address: tcp, program: 0x2000_0300, version: 1, authenticator: authenticator)
        do {
            _ = try await client.call(1, XDRVoid(), returning: Name.self)
            XCTFail("expected an auth error")
        } catch let error as RPCClientError {
            XCTAssertEqual(error, .authError(.badCredential))
        }
        await client.close()
        await server.shutdown()
    }
}
