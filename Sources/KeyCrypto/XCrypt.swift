// The classic protection of secret keys in the publickey map (PROTOCOL.md §4.5):
// passwd2des turns a password into a DES key, xencrypt/xdecrypt wrap the hex secret with
// DES-CBC and a built-in 16-hex-digit checksum. Weak by design (unsalted, 48-bit keys);
// implemented for compatibility with existing maps only.

/// Sun's password-to-DES-key rule.
public enum Passwd2DES {
    /// key[i mod 8] ^= password[i] << 1 over every byte, then Sun parity.
    public static func key(password: SecretBytes) -> SecretBytes {
        SecretBytes(count: 8) { out in
            password.withUnsafeBytes { pw in
                for (i, byte) in pw.enumerated() { out[i % 8] ^= byte << 1 }
            }
            for i in 0..<8 { out[i] = SunDES.setParity(out[i]) }
        }
    }
}

/// xencrypt / xdecrypt of a hex secret key.
public enum XCrypt {
    /// Encrypts a dh192-des secret (48 hex digits): appends its first 16 digits as the
    /// checksum, DES-CBC (zero IV) under passwd2des(password), lowercase hex (64 digits).
    public static func encryptSecret(_ secret: DHPrivateKey, password: SecretBytes) throws(KeyCryptoError) -> String {
        guard secret.group == .dh192des else {
            throw .invalidSecretKey(group: secret.group.rawValue, reason: "xencrypt protects dh192-des keys only")
        }
        var plaintext = secret.secret.withUnsafeBytes { Array($0) } + secret.secret.withUnsafeBytes { Array($0.prefix(8)) }
        defer { SecretBytes.wipe(&plaintext) }
        let key = Passwd2DES.key(password: password)
        return Hex.encode(try SunDES.cbcEncrypt(key: key, plaintext))
    }

    /// Decrypts the 64-digit form. A wrong password shows up as a checksum mismatch and is
    /// reported as `wrongPassword`, never as a key.
    public static func decryptSecret(_ encryptedHex: String, password: SecretBytes) throws(KeyCryptoError) -> DHPrivateKey {
        let ciphertext = try Hex.decode(encryptedHex, expectedLength: 64)
        let key = Passwd2DES.key(password: password)
        var plaintext = try SunDES.cbcDecrypt(key: key, ciphertext)
        defer { SecretBytes.wipe(&plaintext) }
        // The checksum compares hex digits 0..15 with 48..63, i.e. bytes 0..7 with 24..31.
        let matches = plaintext.withUnsafeBytes { p in
            SecretBytes.constantTimeEqual(UnsafeRawBufferPointer(rebasing: p[0..<8]), UnsafeRawBufferPointer(rebasing: p[24..<32]))
        }
        guard matches else { throw .wrongPassword }
        return try DHPrivateKey(group: .dh192des, secret: SecretBytes(copying: plaintext[0..<24]))
    }
}
