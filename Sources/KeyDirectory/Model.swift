// The directory's data: principals named by netname, one key entry per mechanism, and the
// audit trail. Values only; storage lives behind `KeyDirectoryStore`.

import Foundation
import KeyCrypto

/// Netnames as Secure RPC writes them (PROTOCOL.md §4.7).
public enum Netname {
    /// `unix.<uid>@<domain>`.
    public static func user(uid: UInt32, domain: String) -> String { "unix.\(uid)@\(domain)" }
    /// `unix.<hostname>@<domain>`.
    public static func host(_ name: String, domain: String) -> String { "unix.\(name)@\(domain)" }
    /// The netname a process of `uid` speaks as on this host: root's is the host's own
    /// (`unix.HOST@DOMAIN`, Sun's host2netname), so every host has its own key rather than
    /// all sharing one `unix.0@DOMAIN`; everyone else is `unix.UID@DOMAIN`.
    public static func local(uid: UInt32, domain: String) -> String {
        uid == 0 ? host(localHostName, domain: domain) : user(uid: uid, domain: domain)
    }

    /// This host's name as gethostname(2) gives it, up to the first dot (Sun's netnames use
    /// the short name).
    public static var localHostName: String {
        var buffer = [UInt8](repeating: 0, count: 256)
        _ = buffer.withUnsafeMutableBufferPointer { gethostname($0.baseAddress!, 255) }
        let name = String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        return String(name.split(separator: ".", maxSplits: 1).first ?? Substring(name))
    }

    /// `unix.<service>/<hostname>@<domain>`: a daemon on one host (Kerberos' service/host).
    public static func service(_ name: String, host: String, domain: String) -> String { "unix.\(name)/\(host)@\(domain)" }

    /// Checks the classic form (`NetnameSyntax`): `unix.<name>@<domain>` with exactly one `@`,
    /// at most 255 bytes, printable, no spaces.
    public static func validate(_ netname: String) throws(DirectoryError) {
        if let problem = NetnameSyntax.problem(netname) { throw .invalidNetname(netname, problem) }
    }

    /// The principal kind and, for users, the uid a netname names.
    public static func classify(_ netname: String) -> (kind: PrincipalKind, name: String, uid: UInt32?) {
        let local = netname.dropFirst(5).prefix { $0 != "@" }
        if let uid = UInt32(local) { return (.user, String(local), uid) }
        if local.contains("/") { return (.service, String(local), nil) }
        return (.host, String(local), nil)
    }
}

public enum PrincipalKind: String, Codable, Sendable {
    /// `unix.UID@DOMAIN`: a person, logged in with a password.
    case user
    /// `unix.HOST@DOMAIN`: a machine, its key in the root key file (keylogin -r).
    case host
    /// `unix.NAME/HOST@DOMAIN`: a daemon that does not run as root, its key in a service key
    /// file sealed for its host (a keytab's role).
    case service
}

/// A user or host that can hold keys.
public struct Principal: Codable, Sendable, Equatable {
    public var netname: String
    public var kind: PrincipalKind
    /// The user name (or uid) or host name given at creation.
    public var name: String
    public var uid: UInt32?
    public var createdAt: Date
    /// The salt of this principal's password tags (`PasswordTag`): one per principal, so
    /// that tags of its keys compare equal exactly when they were sealed under one password.
    /// Nil for principals made before tags existed or imported from a publickey file.
    public var passwordSalt: Data?

    public init(netname: String, kind: PrincipalKind, name: String, uid: UInt32?, createdAt: Date = Date(),
                passwordSalt: Data? = nil) {
        self.netname = netname
        self.kind = kind
        self.name = name
        self.uid = uid
        self.createdAt = createdAt
        self.passwordSalt = passwordSalt
    }
}

public enum KeyState: String, Codable, Sendable {
    case active, revoked
}

/// One key pair of a principal for one mechanism. The secret is stored only sealed: for
/// `dh192-des` as the classic xencrypt hex (so `/etc/publickey` round-trips), for the strong
/// groups as a `SealedSecretKey` blob (scrypt + AES-256-GCM).
public struct KeyEntry: Codable, Sendable, Equatable {
    public var netname: String
    public var mechanism: DHGroupName
    /// Lowercase hex, the group's full width.
    public var publicKey: String
    public var sealedSecret: [UInt8]
    public var state: KeyState
    public var createdAt: Date
    public var rotatedAt: Date?
    /// The tag of the password the secret is sealed under (`PasswordTag`), or nil when
    /// unknown (sealed before tags existed, or imported without one).
    public var passwordTag: [UInt8]?

    public init(netname: String, mechanism: DHGroupName, publicKey: String, sealedSecret: [UInt8],
                state: KeyState = .active, createdAt: Date = Date(), rotatedAt: Date? = nil, passwordTag: [UInt8]? = nil) {
        self.netname = netname
        self.mechanism = mechanism
        self.publicKey = publicKey
        self.sealedSecret = sealedSecret
        self.state = state
        self.createdAt = createdAt
        self.rotatedAt = rotatedAt
        self.passwordTag = passwordTag
    }

    /// The legacy AUTH_DES key, whose sealing (unsalted DES) is far weaker than the others'.
    public var isLegacy: Bool { mechanism == .dh192des }

    /// Seals a fresh or given key under a password.
    public static func sealing(_ key: DHPrivateKey, netname: String, password: SecretBytes,
                               parameters: SealedSecretKey.Parameters = .default) throws -> KeyEntry {
        let sealed: [UInt8]
        if key.group == .dh192des {
            sealed = Array(try XCrypt.encryptSecret(key, password: password).utf8)
        } else {
            sealed = try SealedSecretKey.seal(key, password: password, parameters: parameters).encoded
        }
        return KeyEntry(netname: netname, mechanism: key.group, publicKey: key.publicKey.hex, sealedSecret: sealed)
    }

    /// Opens the sealed secret. Throws `KeyCryptoError.wrongPassword` for a wrong password.
    public func open(password: SecretBytes) throws -> DHPrivateKey {
        let key: DHPrivateKey
        if mechanism == .dh192des {
            key = try XCrypt.decryptSecret(String(decoding: sealedSecret, as: UTF8.self), password: password)
        } else {
            let sealed = try SealedSecretKey(encoded: sealedSecret)
            guard sealed.group == mechanism else { throw DirectoryError.inconsistent(netname, "sealed key is for \(sealed.group.rawValue)") }
            key = try sealed.open(password: password)
        }
        guard key.publicKey.hex == publicKey else {
            throw DirectoryError.inconsistent(netname, "the sealed secret does not match the public key")
        }
        return key
    }

    /// Checks what can be checked without a password: the public key is a valid element of
    /// its group and the sealed blob is well-formed. Returns the problems found.
    public func verify() -> [String] {
        var problems: [String] = []
        do {
            _ = try DHPublicKey(group: mechanism, hex: publicKey)
        } catch {
            problems.append("public key: \(error)")
        }
        if mechanism == .dh192des {
            let text = String(decoding: sealedSecret, as: UTF8.self)
            if text.utf8.count != 64 || !text.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) {
                problems.append("encrypted secret is not 64 lowercase hex digits")
            }
        } else {
            do {
                let sealed = try SealedSecretKey(encoded: sealedSecret)
                if sealed.group != mechanism { problems.append("sealed secret is for \(sealed.group.rawValue)") }
            } catch {
                problems.append("sealed secret: \(error)")
            }
        }
        return problems
    }
}

/// Who makes a change, as the audit trail records it. A string literal is a bare actor
/// (tests, tools that know no more).
public struct AuditActor: Sendable, Equatable, ExpressibleByStringLiteral {
    /// The effective user: "root (uid 0)".
    public var name: String
    /// The user who ran sudo ($SUDO_USER), when the change was made under sudo. The
    /// environment says so; root could forge it, so it is a hint beside `loginUID`.
    public var sudoUser: String?
    /// The kernel's login uid (/proc/self/loginuid): who logged in, kept across su and sudo.
    public var loginUID: UInt32?

    public init(name: String, sudoUser: String? = nil, loginUID: UInt32? = nil) {
        self.name = name
        self.sudoUser = sudoUser
        self.loginUID = loginUID
    }

    public init(stringLiteral value: String) { self.init(name: value) }
}

/// One line of the audit trail.
public struct AuditEvent: Codable, Sendable, Equatable {
    public var id: Int64
    public var at: Date
    /// Who made the change (login name and uid).
    public var actor: String
    public var action: String
    public var netname: String?
    public var mechanism: String?
    public var detail: String?
    /// The user who ran sudo, if any.
    public var sudoUser: String?
    /// The login uid of the session that made the change, if the kernel keeps one.
    public var loginUID: UInt32?

    public init(id: Int64, at: Date, actor: String, action: String, netname: String? = nil, mechanism: String? = nil,
                detail: String? = nil, sudoUser: String? = nil, loginUID: UInt32? = nil) {
        self.id = id
        self.at = at
        self.actor = actor
        self.action = action
        self.netname = netname
        self.mechanism = mechanism
        self.detail = detail
        self.sudoUser = sudoUser
        self.loginUID = loginUID
    }
}

/// Failures of the directory, each naming what and where.
public enum DirectoryError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidNetname(String, String)
    case noSuchPrincipal(String)
    case principalExists(String)
    case noSuchKey(String, DHGroupName)
    case keyExists(String, DHGroupName)
    case inconsistent(String, String)
    /// A bad line in an import file: 1-based line number and what is wrong.
    case badImportLine(line: Int, String)
    case badImportFile(String)
    case storage(String)
    /// No database at the path, and the command may not create one.
    case noDirectory(String)
    /// The principal does not hold that role.
    case noSuchRole(String, PrincipalRole)
    /// A file that is not a key directory (no schema), and the command may not create one.
    case notADirectory(String)

    public var description: String {
        switch self {
        case let .invalidNetname(name, why): return "invalid netname \"\(name)\": \(why)"
        case let .noSuchPrincipal(name): return "no principal \(name)"
        case let .principalExists(name): return "principal \(name) already exists"
        case let .noSuchKey(name, mechanism): return "\(name) has no \(mechanism.rawValue) key"
        case let .keyExists(name, mechanism): return "\(name) already has a \(mechanism.rawValue) key (use chkey --rotate)"
        case let .inconsistent(name, why): return "\(name): \(why)"
        case let .badImportLine(line, why): return "line \(line): \(why)"
        case let .badImportFile(why): return why
        case let .storage(why): return "database: \(why)"
        case let .noDirectory(path): return "no key directory at \(path) (keyadmin init creates one)"
        case let .noSuchRole(name, role): return "\(name) does not hold the \(role.rawValue) role"
        case let .notADirectory(path): return "\(path) is not a key directory (keyadmin init creates one)"
        }
    }
}
