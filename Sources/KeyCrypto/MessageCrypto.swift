// The per-message primitives of the strong mechanism, on the system's OpenSSL libcrypto:
// HMAC-SHA256 with the key prepared once (its inner and outer SHA-256 states kept in
// SecretBytes) and AES-256-GCM, both working on caller-provided memory so a 4 KiB body is
// hashed or encrypted in place instead of copied into arrays. They run on every protected
// call; rpcbench gss-parts shows why they are not swift-crypto's (whose generic HMAC and
// AEAD wrappers cost more than the hashing and encryption themselves).

import CMessageCrypto

/// HMAC-SHA256 under a key prepared once.
public struct PreparedHMAC: Sendable {
    public static let tagLength = 32
    private let state: SecretBytes

    /// `key` of at most 64 bytes (the session keys are 32).
    public init(key: SecretBytes) {
        precondition(key.count <= 64, "HMAC-SHA256 keys longer than a block are not prepared here")
        state = SecretBytes(count: srpc_hmac_sha256_state_size()) { state in
            key.withUnsafeBytes { keyBytes in
                let ok = srpc_hmac_sha256_prepare(keyBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), keyBytes.count, state.baseAddress)
                precondition(ok == 1, "libcrypto SHA-256 failed")
            }
        }
    }

    /// HMAC(key, prefix ‖ data) into the first 32 bytes of `out`.
    public func authenticate(prefix: UInt8, _ data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= Self.tagLength)
        state.withUnsafeBytes { state in
            srpc_hmac_sha256(state.baseAddress, prefix, data.baseAddress, data.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// HMAC(key, prefix ‖ data).
    public func authenticate(prefix: UInt8, _ data: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Self.tagLength) { buffer, count in
            authenticate(prefix: prefix, data, into: UnsafeMutableRawBufferPointer(buffer))
            count = Self.tagLength
        }
    }

    /// Recomputes the tag and compares in constant time.
    public func verify(prefix: UInt8, _ data: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer) -> Bool {
        guard tag.count == Self.tagLength else { return false }
        return withUnsafeTemporaryAllocation(byteCount: Self.tagLength, alignment: 16) { expected in
            authenticate(prefix: prefix, data, into: expected)
            let equal = SecretBytes.constantTimeEqual(UnsafeRawBufferPointer(expected), tag)
            expected.initializeMemory(as: UInt8.self, repeating: 0)
            return equal
        }
    }
}

/// An AES-256-GCM key (96-bit nonces, no associated data, into caller-provided memory), kept
/// ready: its expanded cipher contexts are reused across messages (a small pool, so
/// concurrent callers never share one) instead of being set up for each.
/// The C side holds a copy of the key and the expanded schedules, and cleanses all of them
/// when this object is released.
public final class PreparedAES256GCM: @unchecked Sendable {
    public static let tagLength = 16
    // The pool inside is guarded by its own mutex; the pointer itself never changes.
    private let key: OpaquePointer

    public init(key secret: SecretBytes) throws(KeyCryptoError) {
        precondition(secret.count == 32)
        guard let prepared = secret.withUnsafeBytes({ srpc_gcm_key_new($0.baseAddress?.assumingMemoryBound(to: UInt8.self)) }) else {
            throw .cryptoFailure("AES-256-GCM key")
        }
        key = prepared
    }

    deinit { srpc_gcm_key_free(key) }

    /// Encrypts `plaintext` into `ciphertext` (the same length; they may be the same memory)
    /// and writes the tag into `tag`. A nonce must never be used twice under one key.
    public func seal(nonce: [UInt8], _ plaintext: UnsafeRawBufferPointer, into ciphertext: UnsafeMutableRawBufferPointer,
                     tag: UnsafeMutableRawBufferPointer) throws(KeyCryptoError) {
        precondition(nonce.count == 12 && ciphertext.count >= plaintext.count && tag.count >= Self.tagLength)
        let ok = srpc_gcm_key_seal(key, nonce, plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), plaintext.count,
                                   ciphertext.baseAddress?.assumingMemoryBound(to: UInt8.self), tag.baseAddress?.assumingMemoryBound(to: UInt8.self))
        guard ok == 1 else { throw .cryptoFailure("AES-256-GCM seal") }
    }

    /// Decrypts `ciphertext` into `plaintext` (the same length; they may be the same memory)
    /// and checks `tag`. Returns false, with `plaintext` wiped, when the tag does not verify.
    public func open(nonce: [UInt8], _ ciphertext: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer,
                     into plaintext: UnsafeMutableRawBufferPointer) -> Bool {
        precondition(nonce.count == 12 && plaintext.count >= ciphertext.count)
        guard tag.count == Self.tagLength else { return false }
        return srpc_gcm_key_open(key, nonce, ciphertext.baseAddress?.assumingMemoryBound(to: UInt8.self), ciphertext.count,
                                 tag.baseAddress?.assumingMemoryBound(to: UInt8.self), plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self)) == 1
    }

    /// GMAC (NIST SP 800-38D): the GCM tag over `data` as associated data, no plaintext;
    /// the nonce rule of `seal`.
    public func authenticate(nonce: [UInt8], _ data: UnsafeRawBufferPointer, into tag: UnsafeMutableRawBufferPointer) throws(KeyCryptoError) {
        precondition(nonce.count == 12 && tag.count >= Self.tagLength)
        let ok = srpc_gcm_key_gmac(key, nonce, data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count,
                                   tag.baseAddress?.assumingMemoryBound(to: UInt8.self))
        guard ok == 1 else { throw .cryptoFailure("AES-256-GCM GMAC") }
    }

    /// Recomputes a GMAC tag and compares in constant time.
    public func verify(nonce: [UInt8], _ data: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer) -> Bool {
        guard tag.count == Self.tagLength else { return false }
        return withUnsafeTemporaryAllocation(byteCount: Self.tagLength, alignment: 16) { expected in
            guard (try? authenticate(nonce: nonce, data, into: expected)) != nil else { return false }
            return SecretBytes.constantTimeEqual(UnsafeRawBufferPointer(expected), tag)
        }
    }
}
