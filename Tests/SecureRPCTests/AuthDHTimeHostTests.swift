// Joining a classic Secure RPC site from Swift (issue 17): the server's key from an
// /etc/publickey file (what libtirpc's getpublickey reads) and the timestamps set by a time
// host (what authdes_seccreate's timehost does), through RPCClient.secure. The server's
// clock here is 1,000 s ahead of ours: without the time host its AUTH_DH verifier refuses
// the fullname's stamp; with it the call goes through.

import Foundation
import KeyCrypto
import KeyDirectory
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

final class AuthDHTimeHostTests: XCTestCase {
    private var fixture: AuthDHFixture!

    override func setUp() async throws {
        fixture = try await AuthDHFixture()
        // RPCClient.secure asks the keyserver as this process's uid: log it in as alice.
        XCTAssertEqual(fixture.keyserver.core.setSecret(uid: getuid(), hex: Array(fixture.alice.secretHex.utf8)), .keySuccess)
    }

    override func tearDown() async throws { await fixture.shutdown() }

    func testPublicKeyFileAndTimeHostLetASkewedClientCallAsLibtirpcWould() async throws {
        let serverClock = AuthDHTestClock(Date().timeIntervalSince1970 + 1_000)
        let runs = NIOLockedValueBox(0)
        let (server, address) = try await fixture.rpcServer(try fixture.server(clock: serverClock), runs: runs)

        // The server host's rpcbind answers GETTIME with the server's clock.
        var rpcbind = RPCProgram(number: 100_000, version: 3)
        rpcbind.addImmediateProcedure(6) { (_: XDRVoid, _) -> UInt32 in UInt32(serverClock.now) }
        var logger = Logger(label: "rpcbind")
        logger.logLevel = .critical
        let timeServer = RPCServer(programs: [rpcbind], logger: logger)
        let timeAddress = try await timeServer.listenTCP(host: "127.0.0.1", port: 0)

        // The site's keys in the classic file: "netname public:secret" (the secret part is
        // the encrypted blob; a public-key reader ignores it).
        let publickey = fixture.directory.appendingPathComponent("publickey")
        try "\(fixture.serverNetname) \(fixture.bob.publicKey.hex):\(String(repeating: "0", count: 96))\n"
            .write(to: publickey, atomically: true, encoding: .utf8)
        let keys = try PublicKeyFileSource(path: publickey.path)
        let environment = SecureRPCEnvironment(keyserverSocket: fixture.socket, netname: fixture.clientNetname)

        func client(timeHost: AuthDHTimeHost?) async throws -> RPCClient {
            try await RPCClient.secure(host: "127.0.0.1", port: address.port!, program: 0x2000_0300, version: 1,
                                       auth: .dh(server: fixture.serverNetname), environment: environment, keys: keys, timeHost: timeHost)
        }

        // Our clock alone: the stamp is 1,000 s behind the server's window.
        let unsynchronised = try await client(timeHost: nil)
        do {
            _ = try await unsynchronised.call(1, XDRVoid(), returning: UInt32.self)
            XCTFail("a stamp 1,000 s off was accepted")
        } catch let RPCClientError.authError(status) {
            XCTAssertTrue([.rejectedCredential, .rejectedVerifier, .badCredential].contains(status), "\(status)")
        }
        await unsynchronised.close()
        XCTAssertEqual(runs.withLockedValue { $0 }, 0)

        // With the server host as time host (rpcbind GETTIME): served, and again on the nickname.
        let synchronised = try await client(timeHost: AuthDHTimeHost(host: "127.0.0.1", rpcbindPort: timeAddress.port!, timePort: 1))
        _ = try await synchronised.call(1, XDRVoid(), returning: UInt32.self)
        _ = try await synchronised.call(1, XDRVoid(), returning: UInt32.self)
        XCTAssertEqual(runs.withLockedValue { $0 }, 2)
        await synchronised.close()

        // A time host that answers neither way is an error that says so.
        await timeServer.shutdown()
        let orphan = try await client(timeHost: AuthDHTimeHost(host: "127.0.0.1", rpcbindPort: timeAddress.port!, timePort: 1))
        do {
            _ = try await orphan.call(1, XDRVoid(), returning: UInt32.self)
            XCTFail("a call went out without the time it was asked to take")
        } catch let error as SecureRPCError {
            guard case .clockSyncFailed(host: "127.0.0.1", reason: _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".hasPrefix("cannot read the time of 127.0.0.1"), "\(error)")
        }
        await orphan.close()
        await server.shutdown()
    }
}
