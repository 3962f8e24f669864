// Token buckets per key (a source address, a principal, a peer) in a bounded LRU table: a
// key may spend `burst` at once and then `perSecond`. Used where a peer's word is cheap and
// its cost to the server is not: connections per address here, handshakes per address and
// per principal in SecureRPC's HandshakeAdmission. A plain value: its owner holds the lock.

import Foundation

package struct TokenBucketTable<Key: Hashable> {
    package struct Bucket {
        var tokens: Double
        var updated: TimeInterval
    }

    package let perSecond: Double
    package let burst: Double
    /// At most this many keys; the least recently used goes first.
    package let capacity: Int
    private var table = LRUTable<Key, Bucket>()

    package init(perSecond: Double, burst: Double, capacity: Int) {
        precondition(perSecond > 0 && burst >= 1 && capacity > 0)
        self.perSecond = perSecond
        self.burst = burst
        self.capacity = capacity
    }

    package var count: Int { table.count }

    /// Takes a token for `key` if it has one.
    package mutating func take(_ key: Key, now: TimeInterval) -> Bool {
        forgetFull(now: now)
        if let position = table.position(of: key) {
            table.touch(at: position)
            let perSecond = self.perSecond, burst = self.burst
            return table.modify(at: position) { bucket in
                bucket.tokens = Self.refilled(bucket, perSecond: perSecond, burst: burst, now: now)
                bucket.updated = now
                guard bucket.tokens >= 1 else { return false }
                bucket.tokens -= 1
                return true
            }
        }
        if table.count >= capacity { _ = table.removeOldest() }
        table.insert(key, Bucket(tokens: burst - 1, updated: now))
        return true
    }

    /// Whether `key` has a token now (changes nothing).
    package func hasToken(_ key: Key, now: TimeInterval) -> Bool {
        guard let bucket = table[key] else { return true }
        return Self.refilled(bucket, perSecond: perSecond, burst: burst, now: now) >= 1
    }

    /// Gives a token back (never above the burst).
    package mutating func giveBack(_ key: Key, now: TimeInterval) {
        guard let position = table.position(of: key) else { return }
        let perSecond = self.perSecond, burst = self.burst
        table.modify(at: position) { bucket in
            bucket.tokens = min(burst, Self.refilled(bucket, perSecond: perSecond, burst: burst, now: now) + 1)
            bucket.updated = now
        }
    }

    /// Drops entries, oldest first, whose bucket has filled up again: they carry no
    /// information. Stops at the first one still short (newer ones were touched later).
    private mutating func forgetFull(now: TimeInterval) {
        while let (_, bucket) = table.oldest, Self.refilled(bucket, perSecond: perSecond, burst: burst, now: now) >= burst {
            _ = table.removeOldest()
        }
    }

    private static func refilled(_ bucket: Bucket, perSecond: Double, burst: Double, now: TimeInterval) -> Double {
        let elapsed = max(0, now - bucket.updated)
        return min(burst, bucket.tokens + elapsed * perSecond)
    }
}

extension TokenBucketTable: Sendable where Key: Sendable {}
extension TokenBucketTable.Bucket: Sendable {}
