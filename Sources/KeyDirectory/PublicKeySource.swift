// Where servers and clients get other principals' public keys: a local directory file or the
// site's directory service, behind one small interface. A source may go to the network, so
// lookups are async; `cachedPublicKey` never waits, for code on an event loop that only needs
// to re-check a key it already holds. Changes (revocations, rotations) are pushed to
// observers so servers can end the sessions that depended on the old key.

import KeyCrypto

/// A source of validated public keys.
public protocol PublicKeySource: Sendable {
    /// The active public key of `netname` for `mechanism`, or nil when it has none (unknown,
    /// revoked or removed). Throws when the source cannot answer (directory unreachable).
    func fetchPublicKey(netname: String, mechanism: DHGroupName) async throws -> DHPublicKey?

    /// What the source would answer now without waiting: `.some(key or nil)` when it knows,
    /// `.none` when only a lookup could tell.
    func cachedPublicKey(netname: String, mechanism: DHGroupName) -> DHPublicKey??

    /// Calls `handler` with a netname whenever that principal's keys changed (nil: anything
    /// may have changed). The source keeps the handler for its life (servers register once).
    func observeChanges(_ handler: @escaping @Sendable (String?) -> Void)
}

extension PublicKeySource {
    public func observeChanges(_ handler: @escaping @Sendable (String?) -> Void) {}
}

/// A local directory file as a key source: every answer comes straight from SQLite (about
/// 10 µs), so there is nothing to cache and changes are seen by the next lookup.
extension PublicKeyLookup: PublicKeySource {
    public func fetchPublicKey(netname: String, mechanism: DHGroupName) async throws -> DHPublicKey? {
        try publicKey(netname: netname, mechanism: mechanism)
    }

    public func cachedPublicKey(netname: String, mechanism: DHGroupName) -> DHPublicKey?? {
        do {
            return .some(try publicKey(netname: netname, mechanism: mechanism))
        } catch {
            return .none
        }
    }
}

/// A lookup function as a key source (tests, and code that already has one). Both the
/// waiting and the non-waiting answer come from the function.
public struct ClosurePublicKeySource: PublicKeySource {
    private let lookup: @Sendable (String, DHGroupName) -> DHPublicKey?

    public init(_ lookup: @escaping @Sendable (String, DHGroupName) -> DHPublicKey?) {
        self.lookup = lookup
    }

    public func fetchPublicKey(netname: String, mechanism: DHGroupName) async throws -> DHPublicKey? {
        lookup(netname, mechanism)
    }

    public func cachedPublicKey(netname: String, mechanism: DHGroupName) -> DHPublicKey?? {
        .some(lookup(netname, mechanism))
    }
}
