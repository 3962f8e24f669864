// Which password opens which key at login. The strong keys of a principal share one
// password (keyadmin keeps it so and verify checks it); the legacy dh192-des key has its
// own unless the administrator chose --legacy-shares-password, because its unsalted DES
// sealing can be guessed offline and must not give away the strong keys' password. So a
// login opens every strong key with the password it was given, and the legacy key with the
// same one or, failing that, with a second password asked for only then.
// Trusts: the entries as read from the directory; every secret here stays in SecretBytes.

import KeyCrypto

/// The keys a login hands to the keyserver.
///
/// ```swift
/// let opened = try LoginKeys.open(entries, password: pw) { readSecondPassword() }
/// for note in opened.notes { print(note) }
/// ```
public enum LoginKeys {
    public struct Opened {
        public var keys: [DHPrivateKey]
        /// What was not loaded and why, one line each (for the user, never secret).
        public var notes: [String]
    }

    /// Opens `entries` (one principal's active keys). Throws `KeyCryptoError.wrongPassword`
    /// when the password does not open the strong keys (or, with no strong keys, the
    /// legacy key); nothing is opened then. A legacy key with a password of its own is opened
    /// with `legacyPassword()` — nil or empty skips it, with a note.
    public static func open(_ entries: [KeyEntry], password: SecretBytes,
                            legacyPassword: () throws -> SecretBytes?) throws -> Opened {
        let strong = entries.filter { !$0.isLegacy }
        let legacy = entries.filter(\.isLegacy)
        var opened = Opened(keys: [], notes: [])
        for entry in strong { opened.keys.append(try entry.open(password: password)) }
        for entry in legacy {
            do {
                opened.keys.append(try entry.open(password: password))
                continue
            } catch KeyCryptoError.wrongPassword where !strong.isEmpty {
                // Its own password: asked for below.
            }
            guard let second = try legacyPassword(), second.count > 0 else {
                opened.notes.append("the dh192-des key of \(entry.netname) has a password of its own and was not loaded (legacy AUTH_DH calls will fail)")
                continue
            }
            do {
                opened.keys.append(try entry.open(password: second))
            } catch KeyCryptoError.wrongPassword {
                opened.notes.append("wrong password for the dh192-des key of \(entry.netname): not loaded (legacy AUTH_DH calls will fail)")
            }
        }
        return opened
    }
}
