// A recording proxy between an AUTH_DH client and server (RecordProxy, GSSSupport.swift):
// the calls it captured are replayed byte for byte on a fresh connection and refused, and the
// handler never runs for them. Also: handlers see the local user's uid and groups for
// netnames of our domain.

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

final class ReplayProxyTests: XCTestCase {
    let alice = try! DHPrivateKey(group: .dh192des, secretHex: "053346dd92b7562f80e5431672a175aeb567818bab69c742")
    let bob = try! DHPrivateKey(group: .dh192des, secretHex: "1d3c043748cab5dac980040b71efd18e260d3f2caa4db5d4")

    func testCapturedCallsReplayedByteForByteAreRefused() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        let socket = work.appendingPathComponent("ks").path
        let keyserver = try await TestKeyserver.start(socket: socket)
        let core = keyserver.core
        _ = core.setSecret(uid: 0, hex: Array(alice.secretHex.utf8))
        _ = core.setSecret(uid: 6002, hex: Array(bob.secretHex.utf8))

        let clientKey = alice.publicKey
        let verifier = AuthDHServer(keyserver: try KeyServerClient(socketPath: socket, uid: 6002), localDomain: "example.org") { $0 == "unix.0@example.org" ? clientKey : nil }
        let runs = NIOLockedValueBox(0)
        let seen = NIOLockedValueBox<RPCCaller?>(nil)
        var program = RPCProgram(number: 0x2000_0300, version: 1, policy: RequireFlavors([.dh]))
        program.addImmediateProcedure(1) { (_: XDRVoid, request) -> UInt32 in
            seen.withLockedValue { $0 = request.caller }
            return UInt32(runs.withLockedValue { $0 += 1; return $0 })
        }
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [verifier]
        let server = RPCServer(programs: [program], configuration: configuration, logger: logger)
        let address = try await server.listenTCP()
        let proxy = RecordProxy()
        let proxied = try await proxy.start(upstream: address)

        let client = RPCClient(transport: .tcp, address: proxied, program: 0x2000_0300, version: 1,
                               authenticator: AuthDHClient(clientNetname: "unix.0@example.org", serverNetname: "unix.server@example.org",
                                                           serverPublicKey: bob.publicKey, keyserver: try KeyServerClient(socketPath: socket, uid: 0)))
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        _ = try await client.call(1, XDRVoid(), returning: UInt32.self)
        XCTAssertEqual(runs.withLockedValue { $0 }, 2)
        // The handler got the local user behind unix.0@example.org.
        let caller = try XCTUnwrap(seen.withLockedValue { $0 })
        XCTAssertEqual(caller.netname, "unix.0@example.org")
        XCTAssertTrue(caller.isVerified)
        XCTAssertEqual(caller.uid, 0)
        XCTAssertEqual(caller.gid, 0)

        // The two records the proxy saw, replayed verbatim on a new connection.
        let records = proxy.recorded(.toServer)
        XCTAssertEqual(records.count, 2)
        guard case .fullname? = try? AuthDHCredential.decode(try RPCCall.decode(records[0]).credential.body),
              case .nickname? = try? AuthDHCredential.decode(try RPCCall.decode(records[1]).credential.body) else {
            return XCTFail("on the wire: a fullname call, then a nickname call")
        }
        for (record, expected) in [(records[0], AuthStatus.rejectedCredential), (records[1], .rejectedVerifier)] {
            let reply = try await sendRawRecord(record, to: address)
            XCTAssertEqual(reply?.status, .denied(.authError(expected)))
            XCTAssertEqual(reply?.xid, try RPCCall.decode(record).xid)
        }
        XCTAssertEqual(runs.withLockedValue { $0 }, 2, "nothing replayed reached the handler")

        await client.close()
        await proxy.stop()
        await server.shutdown()
        await keyserver.shutdown()
    }
}
