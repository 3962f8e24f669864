// Sun's legacy DES rules for AUTH_DES (PROTOCOL.md §4.3-4.5): the parity rule that clears
// bit 7, the DH common key to DES key derivation, and DES-ECB/CBC for conversation keys and
// timestamps. The block cipher is the system OpenSSL libcrypto's DES (COpenSSLDES); nothing
// here implements DES itself. 56-bit (48 effective) keys: for compatibility only.

import COpenSSLDES

/// Sun-compatible DES operations.
public enum SunDES {
    /// Sun's `des_setparity`: clears bit 7, keeps bits 6..1, sets bit 0 for odd parity.
    public static func setParity(_ byte: UInt8) -> UInt8 {
        let v = byte & 0x7e
        return v | (v.nonzeroBitCount % 2 == 0 ? 1 : 0)
    }

    public static func setParity(_ bytes: [UInt8]) -> [UInt8] { bytes.map(setParity) }

    /// The DES key keyserv derives from a 192-bit common key: bytes 15, 14, …, 8 of the
    /// 24-byte big-endian value (middle bytes, least significant first), Sun parity.
    public static func desKey(fromCommonKey common: SecretBytes) throws(KeyCryptoError) -> SecretBytes {
        guard common.count == 24 else { throw .invalidLength("a dh192-des common key is 24 bytes, got \(common.count)") }
        return SecretBytes(count: 8) { out in
            common.withUnsafeBytes { b in
                for i in 0..<8 { out[i] = setParity(b[15 - i]) }
            }
        }
    }

    /// A random conversation key with Sun parity (what KEY_GEN returns).
    public static func randomKey() -> SecretBytes {
        let raw = SecretBytes.random(count: 8)
        return SecretBytes(count: 8) { out in
            raw.withUnsafeBytes { for i in 0..<8 { out[i] = setParity($0[i]) } }
        }
    }

    public static func ecbEncrypt(key: SecretBytes, _ data: [UInt8]) throws(KeyCryptoError) -> [UInt8] {
        try ecb(key: key, data, encrypt: true)
    }

    public static func ecbDecrypt(key: SecretBytes, _ data: [UInt8]) throws(KeyCryptoError) -> [UInt8] {
        try ecb(key: key, data, encrypt: false)
    }

    public static func cbcEncrypt(key: SecretBytes, iv: [UInt8] = [UInt8](repeating: 0, count: 8), _ data: [UInt8]) throws(KeyCryptoError) -> [UInt8] {
        try cbc(key: key, iv: iv, data, encrypt: true)
    }

    public static func cbcDecrypt(key: SecretBytes, iv: [UInt8] = [UInt8](repeating: 0, count: 8), _ data: [UInt8]) throws(KeyCryptoError) -> [UInt8] {
        try cbc(key: key, iv: iv, data, encrypt: false)
    }

    /// Wraps a conversation key for a peer: DES-ECB under the DH-derived key (KEY_ENCRYPT_PK).
    public static func wrapConversationKey(_ conversationKey: SecretBytes, under key: SecretBytes) throws(KeyCryptoError) -> [UInt8] {
        try ecbEncrypt(key: key, conversationKey.copyBytes())
    }

    /// Unwraps a conversation key (KEY_DECRYPT_PK).
    public static func unwrapConversationKey(_ wrapped: [UInt8], under key: SecretBytes) throws(KeyCryptoError) -> SecretBytes {
        var plain = try ecbDecrypt(key: key, wrapped)
        defer { SecretBytes.wipe(&plain) }
        return SecretBytes(copying: plain)
    }

    /// A conversation key expanded once for the DES rounds. AUTH_DH seals and opens two
    /// timestamps per call under the same key; expanding it each time cost more than the
    /// block operations. The schedule is key material: it lives in a SecretBytes.
    public struct Schedule: Sendable {
        fileprivate let expanded: SecretBytes

        public init(key: SecretBytes) throws(KeyCryptoError) {
            try SunDES.check(key: key)
            expanded = SecretBytes(count: srpc_des_schedule_size()) { schedule in
                key.withUnsafeBytes { k in
                    srpc_des_make_schedule(k.baseAddress!.assumingMemoryBound(to: UInt8.self), schedule.baseAddress)
                }
            }
        }
    }

    /// One 8-byte block in ECB, its bytes as a big-endian integer (the form AUTH_DH's
    /// timestamps take): no array, no allocation, for the per-call path.
    public static func encryptBlock(schedule: Schedule, _ block: UInt64) -> UInt64 {
        blockOperation(schedule: schedule, block, encrypt: true)
    }

    public static func decryptBlock(schedule: Schedule, _ block: UInt64) -> UInt64 {
        blockOperation(schedule: schedule, block, encrypt: false)
    }

    private static func blockOperation(schedule: Schedule, _ block: UInt64, encrypt: Bool) -> UInt64 {
        var output: UInt64 = 0
        schedule.expanded.withUnsafeBytes { s in
            withUnsafeBytes(of: block.bigEndian) { input in
                withUnsafeMutableBytes(of: &output) { out in
                    srpc_des_ecb_scheduled(s.baseAddress, input.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                           out.baseAddress!.assumingMemoryBound(to: UInt8.self), 8, encrypt ? 1 : 0)
                }
            }
        }
        return UInt64(bigEndian: output)
    }

    public static func ecbEncrypt(schedule: Schedule, _ data: [UInt8]) throws(KeyCryptoError) -> [UInt8] {
        try ecb(schedule: schedule, data, encrypt: true)
    }

    public static func ecbDecrypt(schedule: Schedule, _ data: [UInt8]) throws(KeyCryptoError) -> [UInt8] {
        try ecb(schedule: schedule, data, encrypt: false)
    }

    private static func ecb(schedule: Schedule, _ data: [UInt8], encrypt: Bool) throws(KeyCryptoError) -> [UInt8] {
        try check(blocks: data)
        var out = [UInt8](repeating: 0, count: data.count)
        schedule.expanded.withUnsafeBytes { s in
            data.withUnsafeBufferPointer { input in
                out.withUnsafeMutableBufferPointer { output in
                    srpc_des_ecb_scheduled(s.baseAddress, input.baseAddress, output.baseAddress, data.count, encrypt ? 1 : 0)
                }
            }
        }
        return out
    }

    private static func check(key: SecretBytes) throws(KeyCryptoError) {
        guard key.count == 8 else { throw .invalidLength("a DES key is 8 bytes, got \(key.count)") }
    }

    private static func check(blocks data: [UInt8]) throws(KeyCryptoError) {
        guard data.count % 8 == 0 else { throw .invalidLength("DES data must be a multiple of 8 bytes, got \(data.count)") }
    }

    /// One ECB implementation: a one-off schedule (the key is checked there, the data in
    /// the scheduled path), wiped when it goes.
    private static func ecb(key: SecretBytes, _ data: [UInt8], encrypt: Bool) throws(KeyCryptoError) -> [UInt8] {
        try ecb(schedule: Schedule(key: key), data, encrypt: encrypt)
    }

    private static func cbc(key: SecretBytes, iv: [UInt8], _ data: [UInt8], encrypt: Bool) throws(KeyCryptoError) -> [UInt8] {
        try check(key: key)
        try check(blocks: data)
        guard iv.count == 8 else { throw .invalidLength("a DES IV is 8 bytes, got \(iv.count)") }
        var out = [UInt8](repeating: 0, count: data.count)
        key.withUnsafeBytes { k in
            data.withUnsafeBufferPointer { input in
                out.withUnsafeMutableBufferPointer { output in
                    srpc_des_cbc(k.baseAddress!.assumingMemoryBound(to: UInt8.self), iv, input.baseAddress, output.baseAddress, data.count, encrypt ? 1 : 0)
                }
            }
        }
        return out
    }
}
