// The example service behind AUTH_DH, over TCP and UDP: users who ran keylogin are
// identified by netname and own their files (one cannot read or delete another's); a user
// who did not gets a clear error; a user unknown to the directory gets AUTH_BADCRED.

import FileService
import Foundation
import KeyCrypto
import KeyDirectory
import KeyServer
import Logging
import NIOCore
import ONCRPC
import XCTest
@testable import SecureRPC

final class FileServiceAuthDHTests: XCTestCase {
    private var work: URL!
    private var keyserver: RPCServer!
    private var core: KeyServerCore!
    private var socket: String { work.appendingPathComponent("keyservsock").path }
    private var db: String { work.appendingPathComponent("keys.db").path }
    private let domain = "example.org"

    override func setUp() async throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("fs-dh-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work.appendingPathComponent("root"), withIntermediateDirectories: true)
        let started = try await TestKeyserver.start(socket: socket)
        keyserver = started.server
        core = started.core
        // The directory: a server principal and two users; everyone "logs in" but uid 8003.
        let directory = try SQLiteKeyDirectory(path: db)
        for (uid, name) in [(8000, "unix.fs1@example.org"), (8001, "unix.8001@example.org"), (8002, "unix.8002@example.org"), (8003, "unix.8003@example.org")] {
            let key = DHPrivateKey.generate(group: .dh192des)
            let (kind, shortName, principalUID) = Netname.classify(name)
            try directory.add(Principal(netname: name, kind: kind, name: shortName, uid: principalUID),
                              keys: [try KeyEntry.sealing(key, netname: name, password: SecretBytes(copying: Array("pw".utf8)))], actor: "test")
            if uid != 8003 { _ = core.setSecret(uid: UInt32(uid), hex: Array(key.secretHex.utf8), netname: name) }
        }
    }

    override func tearDown() async throws {
        await keyserver.shutdown()
        try? FileManager.default.removeItem(at: work)
    }

    private func client(_ transport: RPCTransport, uid: UInt32, netname: String, address: SocketAddress) throws -> FileServiceClient {
        let lookup = try PublicKeyLookup(path: db)
        let authenticator = AuthDHClient(clientNetname: netname, serverNetname: "unix.fs1@example.org",
                                         serverPublicKey: try lookup.publicKey(netname: "unix.fs1@example.org", mechanism: .dh192des)!,
                                         keyserver: try KeyServerClient(socketPath: socket, uid: uid))
        return FileServiceClient(rpc: RPCClient(transport: transport, address: address, program: FileServiceProtocol.program,
                                                version: FileServiceProtocol.version, authenticator: authenticator))
    }

    func testOwnershipIdentificationAndRefusals() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let lookup = try PublicKeyLookup(path: db)
        let verifier = AuthDHServer(keyserver: try KeyServerClient(socketPath: socket, uid: 8000)) { try? lookup.publicKey(netname: $0, mechanism: .dh192des) }
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthNoneServer(), AuthSysServer(), verifier]
        let files = try FileServiceServer(root: work.appendingPathComponent("root").path, logger: logger)
        let server = RPCServer(programs: [files.program(policy: SecureRPCServer.require([.dh]))], configuration: configuration, logger: logger)
        let tcp = try await server.listenTCP(), udp = try await server.listenUDP()

        for (transport, address) in [(RPCTransport.tcp, tcp), (.udp, udp)] {
            let alice = try client(transport, uid: 8001, netname: "unix.8001@example.org", address: address)
            let bob = try client(transport, uid: 8002, netname: "unix.8002@example.org", address: address)
            let path = "/alice-\(transport).txt"
            try await alice.writeAll(path, contents: ByteBuffer(string: "alice's"))
            let attributes = try await alice.stat(path)
            XCTAssertEqual(attributes.owner, "unix.8001@example.org", "the proven netname owns the file")
            for attempt in [{ _ = try await bob.readAll(path) }, { try await bob.remove(path) }, { try await bob.write(path, offset: 0, data: ByteBuffer(string: "x")) }] {
                do {
                    try await attempt()
                    XCTFail("bob reached alice's file over \(transport)")
                } catch let error as FileServiceError {
                    XCTAssertEqual(error.status, .fsAcces)
                }
            }
            let text = String(buffer: try await alice.readAll(path))
            XCTAssertEqual(text, "alice's")
            try await alice.remove(path)

            // Not logged in: a clear error. Unknown to the directory: AUTH_BADCRED.
            let carol = try client(transport, uid: 8003, netname: "unix.8003@example.org", address: address)
            do {
                _ = try await carol.list("/")
                XCTFail("expected notLoggedIn")
            } catch let error as SecureRPCError {
                XCTAssertEqual(error, .notLoggedIn("unix.8003@example.org"))
            }
            _ = core.setSecret(uid: 8009, hex: Array(DHPrivateKey.generate(group: .dh192des).secretHex.utf8))
            let stranger = try client(transport, uid: 8009, netname: "unix.8009@example.org", address: address)
            do {
                _ = try await stranger.list("/")
                XCTFail("expected AUTH_BADCRED")
            } catch let error as RPCClientError {
                XCTAssertEqual(error, .authError(.badCredential))
            }
            for c in [alice, bob, carol, stranger] { await c.close() }
        }
        await server.shutdown()
    }
}
