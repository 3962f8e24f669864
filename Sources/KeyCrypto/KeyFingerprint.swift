// Fingerprints of public keys: what a host pins for its directory servers (securerpc.conf) and
// what an administrator reads aloud to compare. SHA-256 over a labelled encoding of the group
// and the key, so the same number in another group never has the same fingerprint. Public
// values only.

import Crypto

extension DHPublicKey {
    /// `sha256:` and 64 lowercase hex digits, over "securerpc-key-v1", the group name and the
    /// key's full-width big-endian bytes (each part NUL-separated).
    ///
    /// ```swift
    /// let pinned = directoryKey.fingerprint   // "sha256:6b1f…"
    /// ```
    public var fingerprint: String {
        var hasher = SHA256()
        hasher.update(data: Array("securerpc-key-v1".utf8) + [0] + Array(group.rawValue.utf8) + [0])
        hasher.update(data: bytes)
        return "sha256:" + Hex.encode(Array(hasher.finalize()))
    }
}
