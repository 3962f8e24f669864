// AUTH_DH (flavor 3, Sun AUTH_DES) on the wire: the credential (fullname or nickname), the
// 12-byte verifiers, and the DES sealing of timestamps and windows exactly as Sun, illumos,
// FreeBSD and libtirpc do it (PROTOCOL.md §3.2-3.5, vectors.md §5). Pure functions over
// bytes; decoding takes untrusted input and refuses anything that is not one of the shapes.

import KeyCrypto
import NIOCore
import ONCRPC
import XDR

/// An AUTH_DH credential body.
public enum AuthDHCredential: Equatable, Sendable {
    /// First call of a conversation: who the client is, the conversation key wrapped for the
    /// server, and the encrypted window (bytes 8..11 of the fullname CBC block).
    case fullname(netname: String, wrappedKey: [UInt8], encryptedWindow: [UInt8])
    /// Later calls: the 4 bytes the server handed back, echoed verbatim.
    case nickname([UInt8])

    public static let maximumNetnameLength: UInt32 = 255

    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case let .fullname(netname, wrappedKey, encryptedWindow):
            buffer.writeXDR(UInt32(0))
            buffer.writeXDR(netname)
            buffer.writeXDRFixedOpaque(wrappedKey)
            buffer.writeXDRFixedOpaque(encryptedWindow)
        case let .nickname(nickname):
            buffer.writeXDR(UInt32(1))
            buffer.writeXDRFixedOpaque(nickname)
        }
    }

    public var opaqueAuth: OpaqueAuth {
        var body = ByteBuffer()
        encode(into: &body)
        return OpaqueAuth(flavor: .dh, body: body)
    }

    /// Decodes a credential body; it must be consumed exactly.
    public static func decode(_ body: ByteBuffer) throws(XDRError) -> AuthDHCredential {
        var buffer = body
        let kind = try buffer.readXDRUInt32()
        let credential: AuthDHCredential
        switch kind {
        case 0:
            let netname = try buffer.readXDRString(maxLength: maximumNetnameLength)
            let key = try buffer.readXDRFixedOpaqueBytes(count: 8)
            let window = try buffer.readXDRFixedOpaqueBytes(count: 4)
            credential = .fullname(netname: netname, wrappedKey: key, encryptedWindow: window)
        case 1:
            credential = .nickname(try buffer.readXDRFixedOpaqueBytes(count: 4))
        default:
            throw .invalidDiscriminant(type: "authdes_namekind", value: Int64(kind))
        }
        if buffer.readableBytes != 0 { throw .trailingBytes(count: buffer.readableBytes) }
        return credential
    }
}

/// A timestamp as AUTH_DH carries it: Unix seconds and microseconds.
public struct AuthDHTimestamp: Equatable, Hashable, Sendable, Comparable {
    public var seconds: UInt32
    public var microseconds: UInt32

    public init(seconds: UInt32, microseconds: UInt32) {
        self.seconds = seconds
        self.microseconds = microseconds
    }

    /// Seconds and microseconds as one big-endian 8-byte block, as DES seals them.
    var block: UInt64 { UInt64(seconds) << 32 | UInt64(microseconds) }

    init(block: UInt64) {
        seconds = UInt32(truncatingIfNeeded: block >> 32)
        microseconds = UInt32(truncatingIfNeeded: block)
    }

    var bytes: [UInt8] {
        withUnsafeBytes(of: seconds.bigEndian, Array.init) + withUnsafeBytes(of: microseconds.bigEndian, Array.init)
    }

    init(bytes: ArraySlice<UInt8>) {
        let b = Array(bytes)
        seconds = b[0..<4].reduce(0) { $0 << 8 | UInt32($1) }
        microseconds = b[4..<8].reduce(0) { $0 << 8 | UInt32($1) }
    }

    public static func < (a: AuthDHTimestamp, b: AuthDHTimestamp) -> Bool {
        (a.seconds, a.microseconds) < (b.seconds, b.microseconds)
    }
}

/// The DES work of AUTH_DH under a conversation key.
public enum AuthDHSeal {
    private static func word(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    private static func value(_ bytes: ArraySlice<UInt8>) -> UInt32 { bytes.reduce(0) { $0 << 8 | UInt32($1) } }

    /// Fullname call: CBC (zero IV) of sec | usec | window | window-1; returns the credential's
    /// encrypted window (cipher bytes 8..11) and the 12-byte verifier (bytes 0..7 ‖ 12..15).
    public static func fullname(
        conversationKey: SecretBytes, timestamp: AuthDHTimestamp, window: UInt32
    ) throws(KeyCryptoError) -> (encryptedWindow: [UInt8], verifier: [UInt8]) {
        let plain = timestamp.bytes + word(window) + word(window &- 1)
        let cipher = try SunDES.cbcEncrypt(key: conversationKey, plain)
        return (Array(cipher[8..<12]), Array(cipher[0..<8] + cipher[12..<16]))
    }

    /// Server side of `fullname`: the timestamp, window and window verifier.
    public static func openFullname(
        conversationKey: SecretBytes, encryptedWindow: [UInt8], verifier: [UInt8]
    ) throws(KeyCryptoError) -> (timestamp: AuthDHTimestamp, window: UInt32, windowVerifier: UInt32) {
        guard encryptedWindow.count == 4, verifier.count == 12 else { throw .invalidLength("AUTH_DH fullname verifier") }
        let cipher = Array(verifier[0..<8]) + encryptedWindow + Array(verifier[8..<12])
        let plain = try SunDES.cbcDecrypt(key: conversationKey, cipher)
        return (AuthDHTimestamp(bytes: plain[0..<8]), value(plain[8..<12]), value(plain[12..<16]))
    }

    /// Nickname call: ECB of sec | usec, then 4 unencrypted zero bytes.
    public static func nickname(conversationKey: SecretBytes, timestamp: AuthDHTimestamp) throws(KeyCryptoError) -> [UInt8] {
        try nickname(schedule: SunDES.Schedule(key: conversationKey), timestamp: timestamp)
    }

    public static func nickname(schedule: SunDES.Schedule, timestamp: AuthDHTimestamp) throws(KeyCryptoError) -> [UInt8] {
        Array(nicknameVerifier(schedule: schedule, timestamp: timestamp).readableBytesView)
    }

    /// `nickname(schedule:timestamp:)` as the verifier body it goes out in (the per-call
    /// path: one buffer, no arrays).
    public static func nicknameVerifier(schedule: SunDES.Schedule, timestamp: AuthDHTimestamp) -> ByteBuffer {
        var body = ByteBuffer()
        body.reserveCapacity(12)
        body.writeInteger(SunDES.encryptBlock(schedule: schedule, timestamp.block))
        body.writeInteger(UInt32(0))
        return body
    }

    public static func openNickname(conversationKey: SecretBytes, verifier: [UInt8]) throws(KeyCryptoError) -> AuthDHTimestamp {
        try openNickname(schedule: SunDES.Schedule(key: conversationKey), verifier: verifier)
    }

    public static func openNickname(schedule: SunDES.Schedule, verifier: [UInt8]) throws(KeyCryptoError) -> AuthDHTimestamp {
        try openNickname(schedule: schedule, verifier: ByteBuffer(bytes: verifier))
    }

    /// The timestamp of a 12-byte nickname verifier (its last 4 bytes are not looked at,
    /// as in Sun's servers).
    public static func openNickname(schedule: SunDES.Schedule, verifier: ByteBuffer) throws(KeyCryptoError) -> AuthDHTimestamp {
        guard verifier.readableBytes == 12, let sealed = verifier.getInteger(at: verifier.readerIndex, as: UInt64.self) else {
            throw .invalidLength("AUTH_DH nickname verifier")
        }
        return AuthDHTimestamp(block: SunDES.decryptBlock(schedule: schedule, sealed))
    }

    /// The server's reply verifier: ECB(sec-1 | usec) ‖ nickname.
    public static func reply(conversationKey: SecretBytes, timestamp: AuthDHTimestamp, nickname: [UInt8]) throws(KeyCryptoError) -> [UInt8] {
        try reply(schedule: SunDES.Schedule(key: conversationKey), timestamp: timestamp, nickname: nickname)
    }

    public static func reply(schedule: SunDES.Schedule, timestamp: AuthDHTimestamp, nickname: [UInt8]) throws(KeyCryptoError) -> [UInt8] {
        guard nickname.count == 4 else { throw .invalidLength("an AUTH_DH nickname is 4 bytes") }
        return Array(replyVerifier(schedule: schedule, timestamp: timestamp, nickname: value(nickname[...])).readableBytesView)
    }

    /// `reply(schedule:timestamp:nickname:)` as the verifier body it goes out in, the
    /// nickname as the big-endian integer its 4 bytes are.
    public static func replyVerifier(schedule: SunDES.Schedule, timestamp: AuthDHTimestamp, nickname: UInt32) -> ByteBuffer {
        let earlier = AuthDHTimestamp(seconds: timestamp.seconds &- 1, microseconds: timestamp.microseconds)
        var body = ByteBuffer()
        body.reserveCapacity(12)
        body.writeInteger(SunDES.encryptBlock(schedule: schedule, earlier.block))
        body.writeInteger(nickname)
        return body
    }

    /// The client's check of a reply verifier: decrypt, add one second, compare with what it
    /// sent. Returns the nickname to use from now on, or nil when the verifier is wrong.
    public static func checkReply(conversationKey: SecretBytes, verifier: [UInt8], sent: AuthDHTimestamp) -> [UInt8]? {
        guard let schedule = try? SunDES.Schedule(key: conversationKey) else { return nil }
        return checkReply(schedule: schedule, verifier: verifier, sent: sent)
    }

    public static func checkReply(schedule: SunDES.Schedule, verifier: [UInt8], sent: AuthDHTimestamp) -> [UInt8]? {
        checkReply(schedule: schedule, verifier: ByteBuffer(bytes: verifier), sent: sent)
            .map(word)
    }

    /// `checkReply(schedule:verifier:sent:)` on the verifier body as it came; the nickname
    /// as the big-endian integer its 4 bytes are.
    public static func checkReply(schedule: SunDES.Schedule, verifier: ByteBuffer, sent: AuthDHTimestamp) -> UInt32? {
        guard verifier.readableBytes == 12, let sealed = verifier.getInteger(at: verifier.readerIndex, as: UInt64.self),
              let nickname = verifier.getInteger(at: verifier.readerIndex + 8, as: UInt32.self) else { return nil }
        let echoed = AuthDHTimestamp(block: SunDES.decryptBlock(schedule: schedule, sealed))
        guard echoed.seconds &+ 1 == sent.seconds, echoed.microseconds == sent.microseconds else { return nil }
        return nickname
    }
}
