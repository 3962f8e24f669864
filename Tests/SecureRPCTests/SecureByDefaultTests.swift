// Secure by default (issue 17): a server whose verifiers come from SecureRPCServer serves
// proven callers only, even when a program was built without a policy (the mistake the old
// README snippet made: it built a policy and never passed it). AUTH_NONE and AUTH_SYS still
// get NULL (rpcinfo's pings); serving them more takes `unproven: .decidedByPolicy`, by name.

import Foundation
import KeyCrypto
import KeyDirectory
import NIOCore
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

final class SecureByDefaultTests: XCTestCase {
    private var fixture: GSSFixture!

    override func setUp() async throws {
        fixture = try await GSSFixture()
        // SecureRPCServer asks the keyserver as this process's uid: give it the server's keys.
        for (group, keys) in gssLongTermKeys {
            let secret = keys.server.secret.withUnsafeBytes { Array($0) }
            XCTAssertEqual(fixture.store.set(uid: getuid(), mechanism: group.keyserverMechanism, secret: secret), .keySuccess)
        }
    }

    override func tearDown() async throws { await fixture.shutdown() }

    /// A server with SecureRPC's verifiers and a program made without a policy.
    private func startServer(unproven: UnprovenCallers? = nil) async throws -> (RPCServer, SocketAddress) {
        let keys = ClosurePublicKeySource { netname, mechanism in
            guard netname == gssClientNetname, let group = GSSGroup(rawValue: mechanism.rawValue) else { return nil }
            return gssLongTermKeys[group]?.client.publicKey
        }
        let gss = GSSServer.Configuration(serverNetname: gssServerNetname)
        var configuration = RPCServer.Configuration()
        if let unproven {
            configuration.authenticators = try SecureRPCServer.authenticators(keys: keys, keyserverSocket: fixture.socket, gss: gss, unproven: unproven)
        } else {
            configuration.authenticators = try SecureRPCServer.authenticators(keys: keys, keyserverSocket: fixture.socket, gss: gss)
        }
        var program = RPCProgram(number: gssProgramNumber, version: 1)  // no policy given
        program.addImmediateProcedure(1) { (argument: GSSBlob, _) -> GSSBlob in argument }
        let server = RPCServer(programs: [program], configuration: configuration, logger: fixture.logger)
        return (server, try await server.listenTCP(host: "127.0.0.1", port: 0))
    }

    private func status(of client: RPCClient) async -> String {
        do {
            _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
            return "served"
        } catch let RPCClientError.authError(status) {
            return "\(status)"
        } catch {
            return "\(error)"
        }
    }

    func testAServerWithNoPolicyRefusesAuthNoneAndAuthSysButAnswersPings() async throws {
        let (server, address) = try await startServer()
        for authenticator in [AuthNoneClient(), AuthSysClient()] as [any RPCClientAuthenticator] {
            let client = fixture.client(.tcp, address, authenticator)
            let outcome = await status(of: client)
            XCTAssertEqual(outcome, "\(AuthStatus.tooWeak)", "\(authenticator)")
            try await client.ping()  // NULL stays open: rpcinfo -t works
            await client.close()
        }
        // A proven caller is served.
        let gss = fixture.client(.tcp, address, try fixture.authenticator())
        let served = await status(of: gss)
        XCTAssertEqual(served, "served")
        await gss.close()
        await server.shutdown()
    }

    func testServingUnprovenCallersIsSaidByName() async throws {
        let (server, address) = try await startServer(unproven: .decidedByPolicy)
        let client = fixture.client(.tcp, address, AuthSysClient())
        let outcome = await status(of: client)
        XCTAssertEqual(outcome, "served", "with .decidedByPolicy, a program without a policy serves anyone")
        await client.close()
        await server.shutdown()
    }
}
