// Every way key material can be refused. Messages name what is wrong, never the secret.

/// A typed failure from KeyCrypto.
public enum KeyCryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A peer's public key is not a valid group element (0, 1, p-1, >= p, wrong length,
    /// outside the prime-order subgroup).
    case invalidPublicKey(group: String, reason: String)
    /// A secret exponent is out of range for the group.
    case invalidSecretKey(group: String, reason: String)
    /// Text that should be hexadecimal is not, or has the wrong length.
    case invalidHex(expectedLength: Int?, reason: String)
    /// A DES operation was given data that is not a whole number of blocks or a wrong key size.
    case invalidLength(String)
    /// Decryption under the given password failed the checksum / authentication.
    case wrongPassword
    /// A sealed blob is shorter than its header says.
    case truncated
    /// A sealed blob does not start with the expected magic.
    case notASealedKey
    /// A sealed blob of a format version this code does not read.
    case unsupportedVersion(Int)
    /// A sealed blob asks for KDF parameters outside the accepted bounds.
    case unacceptableParameters(String)
    /// A sealed blob was modified (authentication failed with a well-formed header) — only
    /// reported when the password is known to be right, otherwise `wrongPassword`.
    case corrupted
    /// An `/etc/publickey` line that does not parse.
    case malformedPublicKeyLine(String)
    /// A group name we do not know.
    case unknownGroup(String)
    /// libcrypto reported a failure it should not have (out of memory, a missing algorithm).
    case cryptoFailure(String)

    public var description: String {
        switch self {
        case let .invalidPublicKey(group, reason): return "invalid \(group) public key: \(reason)"
        case let .invalidSecretKey(group, reason): return "invalid \(group) secret key: \(reason)"
        case let .invalidHex(length, reason):
            return "invalid hex\(length.map { " (expected \($0) digits)" } ?? ""): \(reason)"
        case let .invalidLength(what): return "invalid length: \(what)"
        case .wrongPassword: return "wrong password"
        case .truncated: return "sealed key is truncated"
        case let .cryptoFailure(what): return "libcrypto failed: \(what)"
        case .notASealedKey: return "not a sealed secret key"
        case let .unsupportedVersion(v): return "sealed key format version \(v) is not supported"
        case let .unacceptableParameters(why): return "sealed key parameters refused: \(why)"
        case .corrupted: return "sealed key is corrupted"
        case let .malformedPublicKeyLine(why): return "malformed publickey line: \(why)"
        case let .unknownGroup(name): return "unknown Diffie-Hellman group \"\(name)\""
        }
    }
}
