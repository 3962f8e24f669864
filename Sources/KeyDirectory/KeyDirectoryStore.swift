// The directory's storage interface. The embedded default is one SQLite file
// (`SQLiteKeyDirectory`); a network directory service and a server database can sit
// behind the same protocol later. Every multi-row change is atomic: all or nothing.

import Foundation
import KeyCrypto

/// Storage for principals, keys and the audit trail.
public protocol KeyDirectoryStore: Sendable {
    /// The active public key of a principal for a mechanism: the hot path of every server.
    func publicKey(netname: String, mechanism: DHGroupName) throws -> DHPublicKey?
    /// The same key as stored (hex), unvalidated: for callers that pass it on (keydird) and
    /// leave validation to whoever uses it.
    func publicKeyHex(netname: String, mechanism: DHGroupName) throws -> String?
    func principal(_ netname: String) throws -> Principal?
    func keys(of netname: String) throws -> [KeyEntry]
    /// Every principal with its keys, ordered by netname.
    func allEntries() throws -> [(Principal, [KeyEntry])]
    /// Adds a new principal with its first keys.
    func add(_ principal: Principal, keys: [KeyEntry], actor: AuditActor) throws
    /// Changes keys of one principal in one transaction (a new password for all its keys,
    /// rotations, an added mechanism): all or nothing, one audit row per audited change.
    /// `passwordSalt`, when given, becomes the principal's tag salt.
    func apply(_ changes: [KeyChange], to netname: String, passwordSalt: Data?, actor: AuditActor) throws
    func revoke(netname: String, mechanism: DHGroupName?, actor: AuditActor) throws
    /// Revocation's counterpart: serves revoked keys again.
    func enable(netname: String, mechanism: DHGroupName?, actor: AuditActor) throws
    func remove(netname: String, actor: AuditActor) throws
    /// Imports principals and keys in one transaction. New principals are added; an existing
    /// one is changed only with `replace`, never to an older key than it has, and a key
    /// revoked here stays revoked. One audit row per principal changed, and a summary.
    func importEntries(_ entries: [(Principal, [KeyEntry])], actor: AuditActor, source: String, replace: Bool,
                       progress: ((Int) -> Void)?) throws -> ImportReport
    func audit(limit: Int) throws -> [AuditEvent]

    // MARK: the site (keydird)

    /// The newest audit rows first, of one principal when `netname` is given.
    func audit(limit: Int, netname: String?) throws -> [AuditEvent]
    /// The roles a principal holds in the directory (none for an unknown principal).
    func roles(of netname: String) throws -> Set<PrincipalRole>
    /// Gives a principal a role (audited); granting a role it holds changes nothing.
    func grant(_ role: PrincipalRole, to netname: String, actor: AuditActor) throws
    /// Takes a role away (audited); `DirectoryError.noSuchRole` when it was not held.
    func revokeRole(_ role: PrincipalRole, from netname: String, actor: AuditActor) throws
    /// What changed after `serial` (the audit trail is the change feed: every change writes
    /// exactly one row per principal it touched), at most `limit` rows, oldest first.
    func changes(since serial: UInt64, limit: Int) throws -> DirectoryChanges
}

/// What a principal may do in the directory beyond its own keys.
public enum PrincipalRole: String, Codable, Sendable, CaseIterable, Comparable {
    /// May run every administration procedure of keydird.
    case admin
    /// An enrolled host: its keyserver may fetch users' sealed keys for keylogin.
    case host

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A page of the change feed.
public struct DirectoryChanges: Sendable, Equatable {
    public struct Change: Sendable, Equatable {
        public var serial: UInt64
        public var netname: String
        /// Empty when the change concerned the principal as a whole.
        public var mechanism: String

        public init(serial: UInt64, netname: String, mechanism: String) {
            self.serial = serial
            self.netname = netname
            self.mechanism = mechanism
        }
    }

    /// The newest serial covered by this page: ask again from here.
    public var serial: UInt64
    public var changes: [Change]

    public init(serial: UInt64, changes: [Change]) {
        self.serial = serial
        self.changes = changes
    }
}

extension KeyDirectoryStore {
    /// Adds a key for another mechanism, or replaces one (new password or rotation).
    public func put(_ key: KeyEntry, replacing: Bool, actor: AuditActor, action: String) throws {
        try apply([KeyChange(key, replacing ? .replace : .add, action: action)], to: key.netname, passwordSalt: nil, actor: actor)
    }

    /// Imports without replacing anything that exists.
    public func importEntries(_ entries: [(Principal, [KeyEntry])], actor: AuditActor, source: String,
                              progress: ((Int) -> Void)?) throws -> ImportReport {
        try importEntries(entries, actor: actor, source: source, replace: false, progress: progress)
    }
}

/// One change to a principal's keys.
public struct KeyChange: Sendable {
    public enum Kind: Sendable {
        /// A mechanism the principal has no key for.
        case add
        /// A new sealing or key pair for an existing key; its state (active or revoked) stays.
        case replace
        /// Only the password tag, for a key whose password was just proven (the sealed
        /// secret and public key must be as read).
        case retag
    }

    public var entry: KeyEntry
    public var kind: Kind
    /// The audit action ("addkey", "chkey", "rotate"), or nil for bookkeeping not audited.
    public var action: String?
    public var detail: String?

    public init(_ entry: KeyEntry, _ kind: Kind, action: String?, detail: String? = nil) {
        self.entry = entry
        self.kind = kind
        self.action = action
        self.detail = detail
    }
}

/// What an import did, principal by principal.
public struct ImportReport: Sendable, Equatable {
    public struct Kept: Sendable, Equatable {
        public var netname: String
        public var reason: String

        /// Public for stores in other modules (the PostgreSQL one).
        public init(netname: String, reason: String) {
            self.netname = netname
            self.reason = reason
        }
    }

    /// New principals.
    public var added = 0
    /// Existing principals changed (only with `replace`).
    public var replaced = 0
    /// Existing principals identical to the file.
    public var unchanged = 0
    /// Existing principals (or keys) the file differs from, left as they are.
    public var keptAsTheyWere: [Kept] = []
    /// "NETNAME MECHANISM" of keys revoked here that the file would have brought back.
    public var stillRevoked: [String] = []

    public init() {}

    public var summary: String {
        "\(added) added, \(replaced) replaced, \(unchanged) unchanged, \(Set(keptAsTheyWere.map(\.netname)).count) left as they were"
            + (stillRevoked.isEmpty ? "" : ", \(stillRevoked.count) revoked keys kept revoked")
    }
}
