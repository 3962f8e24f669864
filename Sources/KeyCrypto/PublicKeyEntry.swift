// One line of the classic `/etc/publickey` file:
// `<netname> <48-hex public key>:<64-hex encrypted secret>`. Parsing is strict about the
// parts (lengths, hex) and says what is wrong; comment and `+` lines are the caller's to skip.

/// A legacy publickey entry (dh192-des).
public struct PublicKeyEntry: Sendable, Equatable {
    public var netname: String
    public var publicKey: DHPublicKey
    /// xencrypt output: 64 lowercase hex digits.
    public var encryptedSecret: String

    public init(netname: String, publicKey: DHPublicKey, encryptedSecret: String) {
        self.netname = netname
        self.publicKey = publicKey
        self.encryptedSecret = encryptedSecret
    }

    /// The line as newkey writes it (no newline).
    public var line: String { "\(netname) \(publicKey.hex):\(encryptedSecret)" }

    /// Parses a line. Throws `malformedPublicKeyLine` saying which part is wrong.
    public init(line: String) throws(KeyCryptoError) {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2 else { throw .malformedPublicKeyLine("expected \"netname public:secret\"") }
        if fields.count > 2, !fields[2].hasPrefix("#") {
            throw .malformedPublicKeyLine("unexpected text after the key: \"\(fields[2].prefix(20))\"")
        }
        let netname = String(fields[0])
        guard netname.utf8.count <= 255, !netname.isEmpty else { throw .malformedPublicKeyLine("netname longer than 255 bytes") }
        let value = fields[1].split(separator: ":", omittingEmptySubsequences: false)
        guard value.count == 2 else { throw .malformedPublicKeyLine("key field must be public:secret") }
        let publicKey: DHPublicKey
        do {
            publicKey = try DHPublicKey(group: .dh192des, hex: String(value[0]))
        } catch {
            throw .malformedPublicKeyLine("public key: \(error)")
        }
        let secret = String(value[1]).lowercased()
        guard secret.utf8.count == 64, (try? Hex.decode(secret)) != nil else {
            throw .malformedPublicKeyLine("encrypted secret must be 64 hex digits")
        }
        self.init(netname: netname, publicKey: publicKey, encryptedSecret: secret)
    }
}
