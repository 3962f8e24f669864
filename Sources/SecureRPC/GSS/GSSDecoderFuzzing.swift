// The fuzz body for the RPCSEC_GSS decoders (credential, INIT argument and result, srpc-dh
// tokens, integrity and privacy bodies) and the sequence window, run by the tests over random
// and mutated inputs and the fuzz corpus. (Not in the libFuzzer target: SecureRPC needs the
// XDRGenPlugin tool, and `--sanitize fuzzer` links libFuzzer's main into that tool too.) Whatever decodes must survive encode-then-decode unchanged; nothing may trap; and
// the window must never accept one sequence number twice, whatever order they come in.

import KeyCrypto
import NIOCore
import ONCRPC
import XDR

@_spi(Fuzzing)
public enum GSSDecoderFuzzing {
    private static let keys = SRPCDH.sessionKeys(
        kss: SecretBytes(copying: Array(repeating: UInt8(1), count: 32)), ephemeralShared: SecretBytes(copying: Array(repeating: UInt8(2), count: 256)),
        clientNonce: Array(repeating: 3, count: 16), serverNonce: Array(repeating: 4, count: 16), transcript: Array(repeating: 5, count: 32)
    ).clientToServer

    public static func run(_ bytes: UnsafeRawBufferPointer) {
        let buffer = ByteBuffer(bytes: bytes)

        if let credential = try? GSSCredential.decode(OpaqueAuth(flavor: .rpcsecGSS, body: buffer)) {
            precondition((try? GSSCredential.decode(credential.opaqueAuth)) == credential, "GSS credential does not round-trip")
        }
        roundTrip(buffer, RpcGssInitArg.self)
        roundTrip(buffer, RpcGssInitRes.self)
        roundTrip(buffer, SrpcDhInitToken.self)
        roundTrip(buffer, SrpcDhReplyToken.self)

        for service in [GSSService.integrity, .privacy] {
            _ = try? SRPCDH.unwrap(buffer, sequence: 1, service: service, keys: keys, clientToServer: true)
        }

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

    private static func roundTrip<T: XDRCodable & Equatable>(_ buffer: ByteBuffer, _ type: T.Type) {
        guard let value = try? buffer.decodeXDRExactly(T.self) else { return }
        precondition((try? value.xdrEncoded().decodeXDRExactly(T.self)) == value, "\(T.self) does not round-trip")
    }
}
