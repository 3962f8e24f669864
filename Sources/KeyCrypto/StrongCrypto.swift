// The modern primitives, all from swift-crypto: HKDF-SHA256 (the only way a raw DH value
// becomes a key), HMAC-SHA256, AES-256-GCM and ChaCha20-Poly1305. Thin wrappers that take
// and return SecretBytes so keys never sit in ordinary arrays.

import Crypto
import Foundation

/// Key derivation and authenticated encryption for the strong mechanism.
public enum StrongCrypto {
    /// HKDF-SHA256 (RFC 5869).
    public static func hkdf(inputKeyMaterial: SecretBytes, salt: [UInt8], info: [UInt8], outputByteCount: Int) -> SecretBytes {
        let ikm = inputKeyMaterial.withUnsafeBytes { SymmetricKey(data: $0) }
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: salt, info: info, outputByteCount: outputByteCount)
        return key.withUnsafeBytes { SecretBytes(copying: $0) }
    }

    /// HMAC-SHA256.
    public static func hmac(key: SecretBytes, _ message: [UInt8]) -> [UInt8] {
        let symmetric = key.withUnsafeBytes { SymmetricKey(data: $0) }
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: symmetric))
    }

    /// Constant-time check of an HMAC-SHA256 tag.
    public static func verifyHMAC(key: SecretBytes, _ message: [UInt8], tag: [UInt8]) -> Bool {
        let symmetric = key.withUnsafeBytes { SymmetricKey(data: $0) }
        return HMAC<SHA256>.isValidAuthenticationCode(tag, authenticating: message, using: symmetric)
    }

    /// The AEADs the strong mechanism offers.
    public enum AEAD: String, Sendable, CaseIterable {
        case aes256GCM = "aes-256-gcm"
        case chacha20Poly1305 = "chacha20-poly1305"
    }

    /// Seals: returns ciphertext followed by the 16-byte tag. `nonce` is 12 bytes and must
    /// never repeat under one key.
    public static func seal(_ aead: AEAD, key: SecretBytes, nonce: [UInt8], plaintext: [UInt8], authenticating aad: [UInt8]) throws -> [UInt8] {
        let symmetric = key.withUnsafeBytes { SymmetricKey(data: $0) }
        switch aead {
        case .aes256GCM:
            let box = try AES.GCM.seal(plaintext, using: symmetric, nonce: AES.GCM.Nonce(data: nonce), authenticating: aad)
            return Array(box.ciphertext) + Array(box.tag)
        case .chacha20Poly1305:
            let box = try ChaChaPoly.seal(plaintext, using: symmetric, nonce: ChaChaPoly.Nonce(data: nonce), authenticating: aad)
            return Array(box.ciphertext) + Array(box.tag)
        }
    }

    /// Opens what `seal` produced; throws when the tag does not verify.
    public static func open(_ aead: AEAD, key: SecretBytes, nonce: [UInt8], sealed: [UInt8], authenticating aad: [UInt8]) throws -> [UInt8] {
        guard sealed.count >= 16 else { throw KeyCryptoError.truncated }
        let symmetric = key.withUnsafeBytes { SymmetricKey(data: $0) }
        let ciphertext = sealed.prefix(sealed.count - 16), tag = sealed.suffix(16)
        switch aead {
        case .aes256GCM:
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
            return Array(try AES.GCM.open(box, using: symmetric, authenticating: aad))
        case .chacha20Poly1305:
            let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
            return Array(try ChaChaPoly.open(box, using: symmetric, authenticating: aad))
        }
    }

    /// SHA-256, for transcripts and checksums of public data.
    public static func sha256(_ data: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: data)) }
}
