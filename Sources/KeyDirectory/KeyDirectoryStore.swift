// The directory's storage interface. The embedded default is one SQLite file
// (`SQLiteKeyDirectory`); a network directory service and a server database can sit
// behind the same protocol later. Every multi-row change is atomic: all or nothing.

import KeyCrypto

/// Storage for principals, keys and the audit trail.
public protocol KeyDirectoryStore: Sendable {
    /// The active public key of a principal for a mechanism: the hot path of every server.
    func publicKey(netname: String, mechanism: DHGroupName) throws -> DHPublicKey?
    func principal(_ netname: String) throws -> Principal?
    func keys(of netname: String) throws -> [KeyEntry]
    /// Every principal with its keys, ordered by netname.
    func allEntries() throws -> [(Principal, [KeyEntry])]
    /// Adds a new principal with its first keys.
    func add(_ principal: Principal, keys: [KeyEntry], actor: String) throws
    /// Adds a key for another mechanism, or replaces one (new password or rotation).
    func put(_ key: KeyEntry, replacing: Bool, actor: String, action: String) throws
    func revoke(netname: String, mechanism: DHGroupName?, actor: String) throws
    func remove(netname: String, actor: String) throws
    /// Imports principals and keys in one transaction; existing principals are updated
    /// (their keys for the imported mechanisms replaced). Returns how many were written.
    func importEntries(_ entries: [(Principal, [KeyEntry])], actor: String, source: String,
                       progress: ((Int) -> Void)?) throws -> Int
    func audit(limit: Int) throws -> [AuditEvent]
}
