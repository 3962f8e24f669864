// The fuzz body for the RPCSEC_GSS decoders (credential, INIT argument and result, srpc-dh
// tokens, integrity and privacy bodies in both directions, MIC verifiers) and the sequence
// window, shared by the libFuzzer target `fuzz-gss` (Fuzz/) and the tests that replay its
// corpus and crashers. Every input goes to each decoder. Trusts nothing in the input; it
// traps (precondition) only on a real bug: a decoded value that does not survive
// encode-then-decode, a forged MIC that verifies, a sealed authenticator or wrapped body
// that does not open to what was sealed (or opens for another body, sequence number or
// direction), or a window that accepts one sequence number twice, whatever order they come in.

import KeyCrypto
import NIOCore
import ONCRPC
import XDR

@_spi(Fuzzing)
public enum GSSDecoderFuzzing {
    private static let kss = SecretBytes(copying: Array(repeating: UInt8(1), count: 32))
    private static let sessionKeys = SRPCDH.sessionKeys(
        kss: kss, ephemeralShared: SecretBytes(copying: Array(repeating: UInt8(2), count: 256)),
        clientNonce: Array(repeating: 3, count: 16), serverNonce: Array(repeating: 4, count: 16), transcript: Array(repeating: 5, count: 32)
    )
    private static let keys = sessionKeys.clientToServer

    public static func run(_ bytes: UnsafeRawBufferPointer) {
        let buffer = ByteBuffer(bytes: bytes)

        // A credential reaches its decoder only as an opaque_auth body, which decoding has
        // bounded to 400 bytes (OpaqueAuth traps on a longer one: a programming error).
        if buffer.readableBytes <= Int(OpaqueAuth.maximumBodyLength),
           let credential = try? GSSCredential.decode(OpaqueAuth(flavor: .rpcsecGSS, body: buffer)) {
            precondition((try? GSSCredential.decode(credential.opaqueAuth)) == credential, "GSS credential does not round-trip")
        }
        roundTrip(buffer, RpcGssInitArg.self)
        roundTrip(buffer, RpcGssInitRes.self)
        roundTrip(buffer, SrpcDhReplyToken.self)
        if let token = roundTrip(buffer, SrpcDhInitToken.self) {
            _ = SRPCDH.openAuthenticator(kss: kss, token: token)
            // Whatever the body holds, an authenticator sealed over it opens, and only for it.
            guard let sealed = try? SRPCDH.sealAuthenticator(kss: kss, body: token.body) else {
                preconditionFailure("sealing an INIT authenticator failed")
            }
            precondition(SRPCDH.openAuthenticator(kss: kss, token: sealed), "a sealed INIT authenticator does not open")
            var other = sealed
            other.body.timestamp &+= 1
            precondition(!SRPCDH.openAuthenticator(kss: kss, token: other), "an INIT authenticator opened for another body")
        }

        // Bodies as the server unwraps calls (sequence 1: the seeds are sealed for it) and the
        // client unwraps replies. One that unwraps was sealed under these keys: wrapping its
        // content again gives a body of the same length (only padding may differ).
        for service in [GSSService.integrity, .privacy] {
            for (directionKeys, clientToServer) in [(keys, true), (sessionKeys.serverToClient, false)] {
                guard let body = try? SRPCDH.unwrap(buffer, sequence: 1, service: service, keys: directionKeys, clientToServer: clientToServer) else {
                    continue
                }
                let again = try? SRPCDH.wrap(body, sequence: 1, service: service, keys: directionKeys, clientToServer: clientToServer)
                precondition(again?.readableBytes == buffer.readableBytes, "\(service) body re-wraps to another length")
            }
        }
        // And what wrap makes unwraps to the same bytes, under its own sequence number and
        // direction only.
        let sequence = UInt32(bytes.count)
        for service in [GSSService.integrity, .privacy] {
            guard let wrapped = try? SRPCDH.wrap(buffer, sequence: sequence, service: service, keys: keys, clientToServer: true) else {
                preconditionFailure("\(service) wrap failed")
            }
            precondition((try? SRPCDH.unwrap(wrapped, sequence: sequence, service: service, keys: keys, clientToServer: true)) == buffer,
                         "\(service) body does not unwrap to what was wrapped")
            precondition((try? SRPCDH.unwrap(wrapped, sequence: sequence &+ 1, service: service, keys: keys, clientToServer: true)) == nil,
                         "\(service) body unwrapped under another sequence number")
            precondition((try? SRPCDH.unwrap(wrapped, sequence: sequence, service: service, keys: keys, clientToServer: false)) == nil,
                         "\(service) body unwrapped in the other direction")
        }

        // Verifiers: the input as the tag of a call header and of a reply's sequence number.
        precondition(!SRPCDH.verifyMIC(keys, .callHeader, buffer, tag: buffer), "a forged header MIC verified")
        precondition(!SRPCDH.verifyMIC(sessionKeys.serverToClient, .replySequence, sequence: sequence, tag: buffer),
                     "a forged reply verifier verified")

        var window = GSSSequenceWindow(size: 128)
        var accepted = Set<UInt32>()
        var numbers = buffer
        while let raw = numbers.readInteger(as: UInt16.self) {
            // Mostly small steps, sometimes large jumps.
            let sequence = raw & 0x8000 != 0 ? UInt32(raw & 0x7fff) * 97 : UInt32(raw & 0x3ff)
            if window.accept(sequence) {
                precondition(accepted.insert(sequence).inserted, "the window accepted \(sequence) twice")
            }
        }
    }

    @discardableResult
    private static func roundTrip<T: XDRCodable & Equatable>(_ buffer: ByteBuffer, _ type: T.Type) -> T? {
        guard let value = try? buffer.decodeXDRExactly(T.self) else { return nil }
        precondition((try? value.xdrEncoded().decodeXDRExactly(T.self)) == value, "\(T.self) does not round-trip")
        return value
    }
}
