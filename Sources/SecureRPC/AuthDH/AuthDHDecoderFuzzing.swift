// The fuzz body for the AUTH_DH wire decoders, shared by the libFuzzer target `fuzz-authdh`
// (Fuzz/) and the tests that replay the corpus and its crashers. Every input goes to each
// decoder: as a credential body, as a whole RPC call whose credential and verifier are
// AUTH_DH (what a server reads first), and as verifiers opened under a fixed conversation
// key the way the server (fullname, nickname) and the client (reply) open them. Trusts
// nothing in the input; it traps (precondition) only on a real bug: a credential that does
// not survive encode-then-decode, a decoder that accepts a non-canonical length, or a
// verifier that does not reseal to the bytes it was opened from.

import KeyCrypto
import NIOCore
import ONCRPC
import XDR

@_spi(Fuzzing)
public enum AuthDHDecoderFuzzing {
    private static let key = SecretBytes(copying: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef])

    public static func run(_ bytes: UnsafeRawBufferPointer) {
        let buffer = ByteBuffer(bytes: bytes)
        credential(buffer)
        if let call = try? RPCCall.decode(buffer), call.credential.flavor == .dh {
            credential(call.credential.body)
            verifiers(Array(call.verifier.body.readableBytesView))
        }
        verifiers(Array(bytes))
    }

    /// A credential that decodes re-encodes to the same value and the same length (XDR
    /// padding may be non-zero on the wire and is written as zeros).
    private static func credential(_ body: ByteBuffer) {
        guard let credential = try? AuthDHCredential.decode(body) else { return }
        var encoded = ByteBuffer()
        credential.encode(into: &encoded)
        precondition(encoded.readableBytes == body.readableBytes, "AUTH_DH credential re-encodes to another length")
        precondition((try? AuthDHCredential.decode(encoded)) == credential, "AUTH_DH credential does not round-trip")
        switch credential {
        case let .fullname(netname, wrappedKey, encryptedWindow):
            precondition(netname.utf8.count <= Int(AuthDHCredential.maximumNetnameLength), "netname over its bound")
            precondition(wrappedKey.count == 8 && encryptedWindow.count == 4, "fullname fields of the wrong size")
        case let .nickname(nickname):
            precondition(nickname.count == 4, "nickname of the wrong size")
        }
    }

    /// The verifier openers: whatever a 12-byte verifier decrypts to must seal back to it.
    private static func verifiers(_ bytes: [UInt8]) {
        // Any length but 12 (16 for a fullname's window + verifier) is refused, never read past.
        if bytes.count != 12 {
            precondition((try? AuthDHSeal.openNickname(conversationKey: key, verifier: bytes)) == nil, "nickname verifier of \(bytes.count) bytes opened")
            precondition(AuthDHSeal.checkReply(conversationKey: key, verifier: bytes, sent: AuthDHTimestamp(seconds: 0, microseconds: 0)) == nil,
                         "reply verifier of \(bytes.count) bytes accepted")
        }
        if bytes.count >= 12 {
            let verifier = Array(bytes.prefix(12))
            guard let stamp = try? AuthDHSeal.openNickname(conversationKey: key, verifier: verifier) else {
                preconditionFailure("a 12-byte nickname verifier does not open")
            }
            let resealed = (try? AuthDHSeal.nickname(conversationKey: key, timestamp: stamp)) ?? []
            precondition(resealed.prefix(8).elementsEqual(verifier.prefix(8)), "nickname verifier does not reseal")

            // The client accepts a reply verifier exactly when it echoes the stamp it sent
            // minus one second, and then takes the nickname from its last four bytes.
            let sent = AuthDHTimestamp(seconds: stamp.seconds &+ 1, microseconds: stamp.microseconds)
            precondition(AuthDHSeal.checkReply(conversationKey: key, verifier: verifier, sent: sent) == Array(verifier[8..<12]),
                         "reply verifier echoing the stamp refused")
            let other = AuthDHTimestamp(seconds: sent.seconds, microseconds: sent.microseconds &+ 1)
            precondition(AuthDHSeal.checkReply(conversationKey: key, verifier: verifier, sent: other) == nil,
                         "reply verifier for another stamp accepted")
        }
        if bytes.count >= 16 {
            let window = Array(bytes[0..<4])
            let verifier = Array(bytes[4..<16])
            guard let opened = try? AuthDHSeal.openFullname(conversationKey: key, encryptedWindow: window, verifier: verifier) else {
                preconditionFailure("a 4 + 12-byte fullname verifier does not open")
            }
            // Only a window verifier of window - 1 shows the key was right; then the whole
            // CBC block reseals to exactly what came in.
            if opened.windowVerifier == opened.window &- 1 {
                let resealed = try? AuthDHSeal.fullname(conversationKey: key, timestamp: opened.timestamp, window: opened.window)
                precondition(resealed?.encryptedWindow == window && resealed?.verifier == verifier, "fullname verifier does not reseal")
            }
        }
    }
}
