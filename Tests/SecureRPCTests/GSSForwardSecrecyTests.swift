// Forward secrecy (ATTACKS.md #26): record an RPCSEC_GSS session under privacy, then hand
// the attacker both parties' long-term secret keys. The attacker can compute K_ss and so
// open the INIT authenticator (it really holds everything long-term), but every session
// key it can build from what it has fails to open the recorded calls and replies: the
// session keys also need DH(client ephemeral, server ephemeral), and both ephemeral
// secrets were gone when the handshake ended. The same recorded bytes do open with the
// real session keys, so the capture and the attacker's procedure are sound.

import Foundation
@_spi(Testing) import KeyCrypto
import KeyServer
import NIOCore
import ONCRPC
import XCTest
import XDR
@_spi(Testing) @testable import SecureRPC

final class GSSForwardSecrecyTests: XCTestCase {
    func testRecordedSessionStaysSecretWhenLongTermKeysLeak() async throws {
        let fixture = try await GSSFixture()
        let (server, _, tcp, _) = try await fixture.startServer()
        let proxy = RecordProxy()
        let proxied = try await proxy.start(upstream: tcp)
        let group = GSSGroup.ffdhe3072
        let authenticator = try fixture.authenticator(group: group, service: .privacy)
        let client = fixture.client(.tcp, proxied, authenticator)
        let secret = Array("meet at the old mill at midnight".utf8)
        _ = try await client.call(1, GSSBlob(secret), returning: GSSBlob.self)
        _ = try await client.call(1, GSSBlob(secret.reversed()), returning: GSSBlob.self)
        let realKeys = try XCTUnwrap(authenticator.currentContext).sessionKeysForTesting
        await client.close()
        await proxy.stop()
        await server.shutdown()
        await fixture.shutdown()

        // --- What the attacker has: the recording and both long-term secret keys. ---
        let toServer = proxy.recorded(.toServer), toClient = proxy.recorded(.toClient)
        let clientLongTerm = try DHPrivateKey(group: group.dhGroup, secret: gssLongTermKeys[group]!.client.secret)
        let serverLongTerm = try DHPrivateKey(group: group.dhGroup, secret: gssLongTermKeys[group]!.server.secret)

        let initCall = try RPCCall.decode(toServer[0])
        let token = try ByteBuffer(bytes: try initCall.arguments.decodeXDRExactly(RpcGssInitArg.self).gssToken)
            .decodeXDRExactly(SrpcDhInitToken.self)
        guard case let .accepted(_, .success(initResults)) = try RPCReply.decode(toClient[0]).status else { return XCTFail("INIT reply") }
        let initResult = try initResults.decodeXDRExactly(RpcGssInitRes.self)
        let reply = try ByteBuffer(bytes: initResult.gssToken).decodeXDRExactly(SrpcDhReplyToken.self)

        // K_ss exactly as a keyserver makes it, from either long-term secret.
        let info = SRPCDH.kssInfo(group: group, client: token.body.client, server: token.body.server)
        let staticShared = try clientLongTerm.sharedSecret(with: serverLongTerm.publicKey)
        XCTAssertEqual(staticShared, try serverLongTerm.sharedSecret(with: clientLongTerm.publicKey))
        let kss = StrongCrypto.hkdf(inputKeyMaterial: staticShared, salt: StrongKeyStore.salt, info: info, outputByteCount: 32)
        XCTAssertTrue(SRPCDH.openAuthenticator(kss: kss, token: token), "the attacker's K_ss is the real one")

        // Every Diffie-Hellman value the attacker can compute with the ephemeral public keys
        // it saw, and K_ss alone.
        let clientEphemeral = try DHPublicKey(group: group.dhGroup, bytes: token.body.clientEphemeral)
        let serverEphemeral = try DHPublicKey(group: group.dhGroup, bytes: reply.body.serverEphemeral)
        var candidates: [(String, SecretBytes)] = [
            ("client static x server ephemeral", try clientLongTerm.sharedSecret(with: serverEphemeral)),
            ("server static x client ephemeral", try serverLongTerm.sharedSecret(with: clientEphemeral)),
            ("client static x client ephemeral", try clientLongTerm.sharedSecret(with: clientEphemeral)),
            ("server static x server ephemeral", try serverLongTerm.sharedSecret(with: serverEphemeral)),
            ("static x static", staticShared),
            ("nothing", SecretBytes(count: 0)),
        ]
        candidates.append(("zeros", SecretBytes(count: group.bits / 8)))
        let transcript = SRPCDH.transcript(initToken: token, replyBody: reply.body)

        // The recorded privacy calls and replies (after INIT).
        let dataCalls = try toServer.dropFirst().map { try RPCCall.decode($0) }.filter { $0.procedure == 1 }
        XCTAssertEqual(dataCalls.count, 2)
        func opensAll(_ keys: GSSSessionKeys) -> Bool {
            dataCalls.allSatisfy { call in
                guard let credential = try? GSSCredential.decode(call.credential),
                      let plain = try? SRPCDH.unwrap(call.arguments, sequence: credential.sequence, service: .privacy,
                                                     keys: keys.clientToServer, clientToServer: true) else { return false }
                let blob = try? plain.decodeXDRExactly(GSSBlob.self)
                return blob?.bytes == secret || blob?.bytes == secret.reversed()
            }
        }
        for (name, shared) in candidates {
            let keys = SRPCDH.sessionKeys(kss: kss, ephemeralShared: shared, clientNonce: token.body.nonce,
                                          serverNonce: reply.body.nonce, transcript: transcript)
            XCTAssertFalse(opensAll(keys), "session keys from \(name) must not open the recording")
            XCTAssertFalse(SecretBytes.constantTimeEqual(SRPCDH.confirmation(keys: keys, transcript: transcript), reply.confirmation), name)
            XCTAssertNotEqual(keys.clientToServer.seal, realKeys.clientToServer.seal, name)
        }
        // Control: the real session keys open every recorded call.
        XCTAssertTrue(opensAll(realKeys))
        XCTAssertTrue(SecretBytes.constantTimeEqual(SRPCDH.confirmation(keys: realKeys, transcript: transcript), reply.confirmation))
    }
}

/// ATTACKS.md #26, second half: after a handshake nothing that could recompute the session
/// keys is left. Every ephemeral exponent and every ephemeral Diffie-Hellman value made for
/// a context (client and server side, both in this process) is released — and zeroed —
/// by the time the call that made the context returns. What stays are the ephemeral keys
/// made ahead for later set-ups (EphemeralKeyReserve), which no context has used yet; they
/// too are zeroed when the reserve lets them go.
final class GSSEphemeralWipeTests: XCTestCase {
    func testEphemeralSecretsDoNotOutliveTheHandshake() async throws {
        let fixture = try await GSSFixture()
        let (server, gss, tcp, _) = try await fixture.startServer()
        let group = GSSGroup.ffdhe3072
        // Warm the keyserver's K_ss cache and the comb tables (they live on by design).
        let warm = fixture.client(.tcp, tcp, try fixture.authenticator(group: group))
        _ = try await warm.call(1, GSSBlob([0]), returning: GSSBlob.self)
        await warm.close()

        let exponentBytes = (DHGroup.named(group.dhGroup).exponentBits + 7) / 8
        let valueBytes = DHGroup.named(group.dhGroup).byteLength
        let reserve = EphemeralKeyReserve.shared
        reserve.clear()
        let takenReadyBefore = reserve.counts.takenReady
        SecretBytesTracking.start()
        defer { SecretBytesTracking.stop() }
        var clients: [RPCClient] = []
        for i in 0..<5 {
            let client = fixture.client(.tcp, tcp, try fixture.authenticator(group: group))
            _ = try await client.call(1, GSSBlob([UInt8(i)]), returning: GSSBlob.self)
            clients.append(client)
        }
        // Five live contexts on both sides, and not one ephemeral secret or DH value left.
        XCTAssertEqual(gss.contextCount, 5)
        reserve.settle()
        if reserve.isEnabled {   // off where the process has one CPU
            XCTAssertGreaterThan(reserve.counts.takenReady, takenReadyBefore, "the set-ups took keys made ahead")
        }
        XCTAssertEqual(SecretBytesTracking.live(count: exponentBytes), 0, "ephemeral exponents (\(exponentBytes) bytes) still alive")
        // Each key waiting in the reserve holds one secret of the prime's width; nothing else does.
        XCTAssertEqual(SecretBytesTracking.live(count: valueBytes), reserve.readyCount(group.dhGroup),
                       "ephemeral DH values or used ephemeral keys (\(valueBytes) bytes) still alive")
        reserve.clear()
        XCTAssertEqual(SecretBytesTracking.live(count: valueBytes), 0, "the reserve's unused keys are released")
        XCTAssertEqual(SecretBytesTracking.releasedNotZeroed, 0)
        // The hook does see what lives on: each context's session keys (32 bytes).
        XCTAssertGreaterThanOrEqual(SecretBytesTracking.live(count: 32), 5 * 2 * 4)
        for client in clients { await client.close() }
        await server.shutdown()
        await fixture.shutdown()
    }
}
