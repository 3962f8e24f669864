// `rpcbench gss-parts`: the per-message pieces of RPCSEC_GSS srpc-dh on their own, to see
// where a protected call's time goes: the header MIC, the integrity and privacy wrappers
// each way, and what swift-crypto's primitives cost for the same sizes.

import ArgumentParser
import Crypto
import Foundation
import KeyCrypto
import NIOCore
import ONCRPC
import SecureRPC
import XDR

struct GSSPartsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gss-parts",
        abstract: "Microseconds per RPCSEC_GSS per-message operation (MIC, wrap, unwrap) and per primitive."
    )

    @Option(help: "Body size in bytes.") var size = 4096
    @Option(help: "Iterations per row.") var iterations = 100_000

    func run() async throws {
        let keys = SRPCDH.sessionKeys(kss: SecretBytes.random(count: 32), ephemeralShared: SecretBytes.random(count: 384),
                                      clientNonce: Array(repeating: 1, count: 16), serverNonce: Array(repeating: 2, count: 16),
                                      transcript: Array(repeating: 3, count: 32)).clientToServer
        var body = ByteBuffer()
        body.writeXDR(String(repeating: "x", count: size - 4))
        let header = RPCCall.headerBytesForChecksum(
            xid: 1, program: 0x2000_0199, version: 1, procedure: 1,
            credential: GSSCredential(procedure: .rpcsecGssData, sequence: 1, service: .privacy, handle: Array(repeating: 7, count: 16)).opaqueAuth)
        let integrity = try SRPCDH.wrap(body, sequence: 1, service: .integrity, keys: keys, clientToServer: true)
        let privacy = try SRPCDH.wrap(body, sequence: 1, service: .privacy, keys: keys, clientToServer: true)
        let bytes = Array(body.readableBytesView)
        let key = SymmetricKey(size: .bits256)
        let hmacKey = HMAC<SHA256>(key: key)
        let nonce = AES.GCM.Nonce()

        // The pieces of a context set-up around its two exponentiations (ffdhe3072 sizes).
        let kss = SecretBytes.random(count: 32), shared = SecretBytes.random(count: 384)
        let initBody = SrpcDhInitBody(tokenVersion: SRPCDH.tokenVersion, group: .srpcDhFfdhe3072,
                                      client: "unix.9001@bench.example", server: "unix.9000@bench.example",
                                      clientEphemeral: Array(repeating: 5, count: 384), timestamp: 1, nonce: Array(repeating: 6, count: 16))
        let initToken = try SRPCDH.sealAuthenticator(kss: kss, body: initBody)
        let replyBody = SrpcDhReplyBody(tokenVersion: SRPCDH.tokenVersion, group: .srpcDhFfdhe3072,
                                        serverEphemeral: Array(repeating: 8, count: 384), nonce: Array(repeating: 9, count: 16), lifetime: 3600)
        let transcript = SRPCDH.transcript(initToken: initToken, replyBody: replyBody)
        let sessionKeys = SRPCDH.sessionKeys(kss: kss, ephemeralShared: shared, clientNonce: initBody.nonce,
                                             serverNonce: replyBody.nonce, transcript: transcript)

        var sink = 0
        let rows: [(String, () throws -> Void)] = [
            ("set-up: seal the INIT authenticator", { sink &+= try SRPCDH.sealAuthenticator(kss: kss, body: initBody).authenticator.count }),
            ("set-up: open the INIT authenticator", { sink &+= SRPCDH.openAuthenticator(kss: kss, token: initToken) ? 1 : 0 }),
            ("set-up: transcript hash", { sink &+= SRPCDH.transcript(initToken: initToken, replyBody: replyBody).count }),
            ("set-up: session keys (HKDF, 4 keys prepared)", {
                sink &+= SRPCDH.sessionKeys(kss: kss, ephemeralShared: shared, clientNonce: initBody.nonce,
                                            serverNonce: replyBody.nonce, transcript: transcript).clientToServer.mac.count
            }),
            ("set-up: confirmation tag", { sink &+= SRPCDH.confirmation(keys: sessionKeys, transcript: transcript).count }),
            ("set-up: random 16-byte nonce", { sink &+= Int(RandomBytes.array(count: 16)[0]) }),
            ("header MIC (\(header.readableBytes) bytes)", { sink &+= SRPCDH.mic(keys, .callHeader, header).count }),
            ("verify reply-sequence MIC", {
                let tag = ByteBuffer(bytes: SRPCDH.mic(keys, .replySequence, sequence: 9))
                sink &+= SRPCDH.verifyMIC(keys, .replySequence, sequence: 9, tag: tag) ? 1 : 0
            }),
            ("integrity wrap \(size) B", { sink &+= try SRPCDH.wrap(body, sequence: 1, service: .integrity, keys: keys, clientToServer: true).readableBytes }),
            ("integrity unwrap \(size) B", { sink &+= try SRPCDH.unwrap(integrity, sequence: 1, service: .integrity, keys: keys, clientToServer: true).readableBytes }),
            ("privacy wrap \(size) B", { sink &+= try SRPCDH.wrap(body, sequence: 1, service: .privacy, keys: keys, clientToServer: true).readableBytes }),
            ("privacy unwrap \(size) B", { sink &+= try SRPCDH.unwrap(privacy, sequence: 1, service: .privacy, keys: keys, clientToServer: true).readableBytes }),
            ("swift-crypto SHA256 \(size) B", { sink &+= SHA256.hash(data: bytes).withUnsafeBytes { Int($0[0]) } }),
            ("swift-crypto HMAC-SHA256 \(size) B (keyed state)", {
                var mac = hmacKey
                mac.update(data: bytes)
                sink &+= mac.finalize().withUnsafeBytes { Int($0[0]) }
            }),
            ("swift-crypto AES-256-GCM seal \(size) B", { sink &+= try AES.GCM.seal(bytes, using: key, nonce: nonce).ciphertext.count }),
        ]
        print("rpcbench gss-parts: \(iterations) iterations each, one thread")
        for (name, body) in rows {
            for _ in 0..<1000 { try body() }
            let start = ContinuousClock.now
            for _ in 0..<iterations { try body() }
            let perCall = microseconds(ContinuousClock.now - start) / Double(iterations)
            print("  " + name.padding(toLength: 46, withPad: " ", startingAt: 0)
                  + String(format: "%7.2f µs   %7.0f MB/s", perCall, name.contains(" B") ? Double(size) / perCall : 0))
        }
        if sink == 42 { print("") }
    }
}
