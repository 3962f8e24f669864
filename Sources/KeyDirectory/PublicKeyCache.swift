// The lookup cache of a host without the directory file: what a network key source remembers
// between directory answers. A pure state machine on an injected clock (no sockets, no
// locks: its owner serialises access), so every rule is a table test:
//   fresh   — younger than its TTL (positive or negative): answer without asking;
//   stale   — older, but within the serve-stale window: ask the directory, and answer this
//             only when no directory answers;
//   gone    — older than that: as if never cached.
// Invalidation by netname comes from the directory's change feed. Bounded in entries.

import KeyCrypto

/// Cached public-key answers, positive and negative.
public struct PublicKeyCache: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Seconds a key is used without asking again.
        public var ttl: Double = 300
        /// Seconds "no such key" is remembered.
        public var negativeTTL: Double = 30
        /// Seconds past its TTL an entry may still be served while no directory answers.
        public var serveStale: Double = 3600
        /// Entries kept; the least recently fetched go first.
        public var capacity: Int = 100_000

        public init(ttl: Double = 300, negativeTTL: Double = 30, serveStale: Double = 3600, capacity: Int = 100_000) {
            self.ttl = ttl
            self.negativeTTL = negativeTTL
            self.serveStale = serveStale
            self.capacity = capacity
        }
    }

    public enum Answer: Sendable, Equatable {
        case fresh(DHPublicKey?)
        case stale(DHPublicKey?)
        case miss
    }

    struct Key: Hashable, Sendable {
        var netname: String
        var mechanism: DHGroupName
    }

    struct Entry: Sendable {
        var key: DHPublicKey?
        var fetchedAt: Double
        var freshUntil: Double
    }

    public let settings: Settings
    private var entries: [Key: Entry] = [:]

    public init(settings: Settings = Settings()) {
        precondition(settings.capacity > 0)
        self.settings = settings
    }

    public var count: Int { entries.count }

    /// What the cache holds for `netname` and `mechanism` at `now`.
    public mutating func answer(netname: String, mechanism: DHGroupName, now: Double) -> Answer {
        let key = Key(netname: netname, mechanism: mechanism)
        guard let entry = entries[key] else { return .miss }
        if now < entry.freshUntil { return .fresh(entry.key) }
        if now < entry.freshUntil + settings.serveStale { return .stale(entry.key) }
        entries[key] = nil
        return .miss
    }

    /// Remembers a directory answer (nil: the principal has no such active key).
    public mutating func store(netname: String, mechanism: DHGroupName, key: DHPublicKey?, now: Double) {
        let ttl = key == nil ? settings.negativeTTL : settings.ttl
        entries[Key(netname: netname, mechanism: mechanism)] = Entry(key: key, fetchedAt: now, freshUntil: now + ttl)
        if entries.count > settings.capacity { shrink(now: now) }
    }

    /// Forgets every answer about `netname` (its keys changed).
    public mutating func invalidate(netname: String) {
        for mechanism in DHGroupName.allCases {
            entries[Key(netname: netname, mechanism: mechanism)] = nil
        }
    }

    /// Forgets everything (the change feed lost track).
    public mutating func invalidateAll() {
        entries.removeAll(keepingCapacity: true)
    }

    /// Netnames with an entry (for tests and for re-checking sessions after a feed gap).
    public var netnames: Set<String> { Set(entries.keys.map(\.netname)) }

    /// Drops what can no longer be served, then the oldest tenth, so a flood of distinct
    /// names costs one sort per capacity/10 insertions.
    private mutating func shrink(now: Double) {
        entries = entries.filter { now < $0.value.freshUntil + settings.serveStale }
        guard entries.count > settings.capacity else { return }
        let excess = entries.count - settings.capacity + max(1, settings.capacity / 10)
        let oldest = entries.sorted { $0.value.fetchedAt < $1.value.fetchedAt }.prefix(excess).map(\.key)
        for key in oldest { entries[key] = nil }
    }
}
