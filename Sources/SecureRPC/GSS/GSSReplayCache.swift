// The RPCSEC_GSS server's memory of verified INIT tokens, so that a recorded INIT cannot make a
// second context. A token is acceptable only while its timestamp is within `clockSkew` of the
// server's clock, so it must be remembered until `timestamp + clockSkew` and not a moment
// longer. Tokens are kept in time buckets by that expiry (`clockSkew / 32` wide): expiry is
// dropping whole buckets, and it runs on every insertion, whatever the count — the old scheme
// pruned only at a count and could stall full for good (issue 12 item 3). Memory is bounded
// by `capacity` entries of 16 bytes (a SHA-256 prefix of client, timestamp and nonce), and
// one principal may hold at most `perClientCapacity` of them, so a verified client looping
// INITs fills its own share, not everyone's. Trusts its caller to have verified the token's
// authenticator first (otherwise anyone could block a client by sending its nonce first)
// and to hold the lock that guards it.

import Foundation
import KeyCrypto

struct GSSReplayCache {
    /// What the cache says about a token.
    enum Verdict: Equatable {
        /// Not seen before; now remembered.
        case fresh
        /// Seen before within its lifetime.
        case replay
        /// The cache holds `capacity` live tokens.
        case full
        /// This client holds its whole share.
        case clientFull
    }

    /// 128 bits of SHA-256(len ‖ client ‖ timestamp ‖ nonce): enough against accidental and
    /// chosen collisions, an eighth of the memory of the strings and arrays themselves.
    struct Digest: Hashable {
        var high: UInt64
        var low: UInt64
    }

    private struct Bucket {
        var tokens: Set<Digest> = []
        var clients: [String: Int] = [:]
    }

    let lifetime: TimeInterval
    let bucketWidth: TimeInterval
    let capacity: Int
    let perClientCapacity: Int
    private var buckets: [Int64: Bucket] = [:]
    private var perClient: [String: Int] = [:]
    private(set) var count = 0

    /// - Parameters:
    ///   - lifetime: how long after its timestamp a token stays acceptable (the clock skew).
    init(lifetime: TimeInterval, capacity: Int, perClientCapacity: Int) {
        precondition(lifetime > 0 && capacity > 0 && perClientCapacity > 0)
        self.lifetime = lifetime
        bucketWidth = lifetime / 32
        self.capacity = capacity
        self.perClientCapacity = perClientCapacity
    }

    /// Live buckets (at most 65: expiries lie within [now, now + 2 × lifetime]).
    var bucketCount: Int { buckets.count }
    func count(of client: String) -> Int { perClient[client, default: 0] }

    /// Looks the token up and remembers it when fresh. The caller has checked that the
    /// timestamp lies within `lifetime` of `now`.
    mutating func insert(client: String, timestampMicroseconds: UInt64, nonce: [UInt8], now: TimeInterval) -> Verdict {
        let firstLive = expire(now: now)
        let expiry = Double(timestampMicroseconds) / 1_000_000 + lifetime
        let index = Int64((expiry / bucketWidth).rounded(.down))
        // A token whose bucket is already gone is outside the window: never acceptable.
        guard index >= firstLive else { return .replay }
        let digest = Self.digest(client: client, timestampMicroseconds: timestampMicroseconds, nonce: nonce)
        if buckets[index]?.tokens.contains(digest) == true { return .replay }
        if count >= capacity { return .full }
        if perClient[client, default: 0] >= perClientCapacity { return .clientFull }
        buckets[index, default: Bucket()].tokens.insert(digest)
        buckets[index]!.clients[client, default: 0] += 1
        perClient[client, default: 0] += 1
        count += 1
        return .fresh
    }

    /// Drops every bucket whose whole time span has passed: each of its tokens has a
    /// timestamp older than now − lifetime, which the timestamp check refuses anyway.
    /// Returns the index of the first bucket still live.
    @discardableResult
    mutating func expire(now: TimeInterval) -> Int64 {
        let firstLive = Int64((now / bucketWidth).rounded(.down))
        // Bucket i holds expiries in [i·w, (i+1)·w): it is dead once now ≥ (i+1)·w.
        let dead = buckets.keys.filter { $0 < firstLive }
        for index in dead {
            let bucket = buckets.removeValue(forKey: index)!
            count -= bucket.tokens.count
            for (client, held) in bucket.clients {
                let left = perClient[client, default: 0] - held
                perClient[client] = left > 0 ? left : nil
            }
        }
        return firstLive
    }

    static func digest(client: String, timestampMicroseconds: UInt64, nonce: [UInt8]) -> Digest {
        var data: [UInt8] = []
        data.reserveCapacity(4 + client.utf8.count + 8 + nonce.count)
        withUnsafeBytes(of: UInt32(client.utf8.count).bigEndian) { data += $0 }
        data += client.utf8
        withUnsafeBytes(of: timestampMicroseconds.bigEndian) { data += $0 }
        data += nonce
        let hash = StrongCrypto.sha256(data)
        func word(_ offset: Int) -> UInt64 { hash[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        return Digest(high: word(0), low: word(8))
    }
}
