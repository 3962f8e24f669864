// Secret keys at rest, sealed under a password: scrypt (parameters stored in the blob) then
// AES-256-GCM. The blob is self-describing and versioned so later versions can still read
// it, and it is untrusted input: every length and KDF parameter is bounded before use, so a
// hostile blob cannot make us allocate gigabytes or spin for minutes.
//
// Layout, version 1 (all integers big-endian):
//   "SRPCSK" | version=1 | kdf=1 (scrypt) | log2 N | r | p | group length | group name
//   | salt (16) | password check (16) | nonce (12) | ciphertext length (u32)
//   | AES-256-GCM ciphertext+tag (AAD = everything before it) | SHA-256(all before)[0..<16]
// The trailing checksum tells corruption from a wrong password; the password check (from
// the same scrypt output as the key) tells a wrong password from a tampered ciphertext.

import _CryptoExtras
import Crypto

/// A DH secret key sealed under a password.
///
/// ```swift
/// let key = DHPrivateKey.generate(group: .ffdhe3072)
/// let sealed = try SealedSecretKey.seal(key, password: SecretBytes(copying: Array("pw".utf8)))
/// let opened = try SealedSecretKey(encoded: sealed.encoded).open(password: SecretBytes(copying: Array("pw".utf8)))
/// ```
public struct SealedSecretKey: Sendable, Equatable {
    /// scrypt cost parameters.
    public struct Parameters: Sendable, Equatable {
        public var log2N: UInt8
        public var r: UInt8
        public var p: UInt8

        public init(log2N: UInt8, r: UInt8, p: UInt8) {
            self.log2N = log2N
            self.r = r
            self.p = p
        }

        /// N = 2^15, r = 8, p = 1: 32 MiB and about 0.1 s per seal or open on this machine
        /// kind — the interactive-login setting scrypt's author recommends.
        public static let `default` = Parameters(log2N: 15, r: 8, p: 1)
        /// Cheap parameters for tests only.
        public static let testing = Parameters(log2N: 10, r: 8, p: 1)

        /// Memory scrypt needs: 128 · r · N bytes.
        var memory: Int { 128 * Int(r) * (1 << Int(log2N)) }

        /// Refuses parameters a hostile blob could use to exhaust memory or time.
        func validate() throws(KeyCryptoError) {
            guard (1...20).contains(log2N) else { throw .unacceptableParameters("log2 N = \(log2N) (allowed 1...20)") }
            guard (1...32).contains(r) else { throw .unacceptableParameters("r = \(r) (allowed 1...32)") }
            guard (1...16).contains(p) else { throw .unacceptableParameters("p = \(p) (allowed 1...16)") }
            guard memory <= 256 << 20 else { throw .unacceptableParameters("needs \(memory >> 20) MiB (allowed 256)") }
        }
    }

    static let magic = Array("SRPCSK".utf8)
    static let currentVersion: UInt8 = 1
    static let scryptID: UInt8 = 1

    /// The encoded blob.
    public let encoded: [UInt8]
    public let group: DHGroupName
    public let parameters: Parameters

    private let header: [UInt8]
    private let salt: [UInt8]
    private let passwordCheck: [UInt8]
    private let nonce: [UInt8]
    private let ciphertext: [UInt8]

    /// Seals a key under a password with fresh salt and nonce.
    public static func seal(_ key: DHPrivateKey, password: SecretBytes, parameters: Parameters = .default) throws -> SealedSecretKey {
        try parameters.validate()
        let salt = RandomBytes.array(count: 16)
        let nonce = RandomBytes.array(count: 12)
        let (aesKey, check) = try derive(password: password, salt: salt, parameters: parameters)
        let groupName = Array(key.group.rawValue.utf8)
        var header = magic + [currentVersion, scryptID, parameters.log2N, parameters.r, parameters.p, UInt8(groupName.count)]
        header += groupName + salt + check + nonce
        var plaintext = key.secret.copyBytes()
        defer { SecretBytes.wipe(&plaintext) }
        let aadPrefix = header + withUnsafeBytes(of: UInt32(plaintext.count + 16).bigEndian, Array.init)
        let sealed = try StrongCrypto.seal(.aes256GCM, key: aesKey, nonce: nonce, plaintext: plaintext, authenticating: aadPrefix)
        let body = aadPrefix + sealed
        return try SealedSecretKey(encoded: body + StrongCrypto.sha256(body).prefix(16))
    }

    /// Parses a blob (no password needed). Throws `truncated`, `notASealedKey`,
    /// `unsupportedVersion`, `corrupted` or `unacceptableParameters`.
    public init(encoded: [UInt8]) throws(KeyCryptoError) {
        var reader = ByteReader(encoded)
        guard try reader.take(6) == Self.magic else { throw .notASealedKey }
        let version = try reader.byte()
        guard version == Self.currentVersion else { throw .unsupportedVersion(Int(version)) }
        let kdf = try reader.byte()
        let parameters = Parameters(log2N: try reader.byte(), r: try reader.byte(), p: try reader.byte())
        let groupLength = Int(try reader.byte())
        let groupText = String(decoding: try reader.take(groupLength), as: UTF8.self)
        let salt = try reader.take(16), check = try reader.take(16), nonce = try reader.take(12)
        let ciphertextLength = Int(try reader.uint32())
        let headerEnd = reader.offset
        guard ciphertextLength >= 16, ciphertextLength <= 4096 else { throw .corrupted }
        let ciphertext = try reader.take(ciphertextLength)
        let checksum = try reader.take(16)
        guard reader.remaining == 0 else { throw .corrupted }
        let body = Array(encoded[0..<(headerEnd + ciphertextLength)])
        guard SecretBytes.constantTimeEqual(checksum, Array(StrongCrypto.sha256(body).prefix(16))) else { throw .corrupted }
        guard kdf == Self.scryptID else { throw .unacceptableParameters("unknown KDF \(kdf)") }
        guard let group = DHGroupName(rawValue: groupText) else { throw .unknownGroup(groupText) }
        try parameters.validate()
        self.encoded = encoded
        self.group = group
        self.parameters = parameters
        self.header = Array(encoded[0..<headerEnd])
        self.salt = salt
        self.passwordCheck = check
        self.nonce = nonce
        self.ciphertext = ciphertext
    }

    /// Opens with a password. Throws `wrongPassword`, or `corrupted` if the ciphertext was
    /// altered.
    public func open(password: SecretBytes) throws(KeyCryptoError) -> DHPrivateKey {
        let (aesKey, check): (SecretBytes, [UInt8])
        do {
            (aesKey, check) = try Self.derive(password: password, salt: salt, parameters: parameters)
        } catch {
            throw .unacceptableParameters("scrypt failed: \(error)")
        }
        guard SecretBytes.constantTimeEqual(check, passwordCheck) else {
            throw .wrongPassword
        }
        var plaintext: [UInt8]
        do {
            plaintext = try StrongCrypto.open(.aes256GCM, key: aesKey, nonce: nonce, sealed: ciphertext, authenticating: header)
        } catch {
            throw .corrupted
        }
        defer { SecretBytes.wipe(&plaintext) }
        return try DHPrivateKey(group: group, secret: SecretBytes(copying: plaintext))
    }

    /// A 16-byte scrypt verifier of a password under a caller-chosen salt, domain-separated
    /// from the sealing key derivation (a tag never equals any blob's password check). The key
    /// directory stores one per key, with a salt per principal, so that it can tell without
    /// the password whether two keys of a principal were sealed under the same one. Guessing
    /// a password from a tag costs what guessing it from a sealed blob costs (same scrypt).
    public static func passwordVerifier(password: SecretBytes, salt: [UInt8], parameters: Parameters) throws -> [UInt8] {
        try parameters.validate()
        let derived = try password.withUnsafeBytes { pw in
            var copy = Array(pw)
            defer { SecretBytes.wipe(&copy) }
            return try KDF.Scrypt.deriveKey(
                from: copy, salt: Array("SRPC password tag".utf8) + salt, outputByteCount: 16,
                rounds: 1 << Int(parameters.log2N), blockSize: Int(parameters.r), parallelism: Int(parameters.p)
            )
        }
        return derived.withUnsafeBytes { Array($0) }
    }

    /// scrypt → 48 bytes: an AES-256 key and a 16-byte password check.
    private static func derive(password: SecretBytes, salt: [UInt8], parameters: Parameters) throws -> (SecretBytes, [UInt8]) {
        let derived = try password.withUnsafeBytes { pw in
            try KDF.Scrypt.deriveKey(
                from: Array(pw), salt: salt, outputByteCount: 48,
                rounds: 1 << Int(parameters.log2N), blockSize: Int(parameters.r), parallelism: Int(parameters.p)
            )
        }
        return derived.withUnsafeBytes { bytes in
            (SecretBytes(copying: bytes.prefix(32)), Array(bytes.suffix(16)))
        }
    }
}

/// Bounded reads from an untrusted blob.
private struct ByteReader {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var remaining: Int { bytes.count - offset }

    mutating func take(_ count: Int) throws(KeyCryptoError) -> [UInt8] {
        guard count <= remaining else { throw .truncated }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func byte() throws(KeyCryptoError) -> UInt8 { try take(1)[0] }

    mutating func uint32() throws(KeyCryptoError) -> UInt32 {
        try take(4).reduce(0) { $0 << 8 | UInt32($1) }
    }
}
