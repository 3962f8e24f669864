// The AUTH_DH server's memory of accepted fullname credentials: each (netname, timestamp)
// pair is kept until its window has passed, so that a recorded fullname call is refused
// even after its conversation has left the nickname table (ATTACKS.md #15). It trusts its
// caller for the times it is given (the server's clock, in microseconds) and for having
// checked the credential; it keeps no secrets.
//
// Memory is bounded twice: `capacity` pairs in all, `perPrincipalCapacity` pairs per netname
// (one principal alone cannot fill it for everyone). Expiry runs on every use and costs at
// most one pass over a fixed ring of time buckets, so it cannot stall the way a "prune when
// the count reaches a threshold" cache can (issue 12 item 3): once the oldest bucket's time
// has passed its pairs are gone, whatever the count. A full cache refuses new pairs (the
// server then refuses the fullname call) until a bucket expires: no entry is ever dropped
// before its time, because a dropped entry is a replay let through.

/// Accepted fullname (netname, timestamp) pairs, each until its expiry time.
struct AuthDHReplayCache {
    struct Entry: Hashable {
        var netname: String
        var stamp: AuthDHTimestamp
    }

    enum Outcome: Equatable {
        /// Not seen before: now remembered.
        case fresh
        /// Seen before and not yet expired.
        case replay
        /// Not seen, but there is no room (in all, or for this netname) until a bucket expires.
        case full
    }

    private struct Bucket {
        /// Entries here expire before `(epoch + 1) * width`.
        var epoch: Int64 = .min
        var entries: [Entry] = []
    }

    let capacity: Int
    let perPrincipalCapacity: Int
    /// Longest time from now to an entry's expiry that the ring can hold, in µs.
    let span: Int64
    /// Microseconds per bucket.
    private let width: Int64
    private var buckets: [Bucket]
    private var seen: Set<Entry> = []
    private var perPrincipal: [String: Int] = [:]

    var count: Int { seen.count }

    /// - Parameters:
    ///   - span: the longest lifetime of an entry, in µs (the server's maximum window plus
    ///     its maximum clock skew).
    ///   - bucketCount: ring size; expiry works in steps of `span / (bucketCount - 2)`, so an
    ///     entry may outlive its expiry by one step (keeping it longer is the safe side).
    init(span: Int64, capacity: Int, perPrincipalCapacity: Int, bucketCount: Int = 64) {
        precondition(span > 0 && capacity > 0 && perPrincipalCapacity > 0 && bucketCount >= 3)
        self.span = span
        self.capacity = capacity
        self.perPrincipalCapacity = perPrincipalCapacity
        // An expiry at most `span` ahead lands at most span/width + 1 < bucketCount epochs
        // ahead of now, so no two live epochs share a bucket.
        width = span / Int64(bucketCount - 2) + 1
        buckets = Array(repeating: Bucket(), count: bucketCount)
    }

    /// Forgets every entry whose bucket ended at or before `now` (µs). At most one pass over
    /// the ring, whatever the count.
    mutating func expire(now: Int64) {
        let current = now / width
        for index in buckets.indices where buckets[index].epoch < current && !buckets[index].entries.isEmpty {
            for entry in buckets[index].entries {
                seen.remove(entry)
                if let left = perPrincipal[entry.netname], left > 1 {
                    perPrincipal[entry.netname] = left - 1
                } else {
                    perPrincipal[entry.netname] = nil
                }
            }
            buckets[index].entries = []
        }
    }

    /// Expires what is due, then looks `entry` up and remembers it until `expiresAt` (µs).
    mutating func insert(_ entry: Entry, expiresAt: Int64, now: Int64) -> Outcome {
        expire(now: now)
        if seen.contains(entry) { return .replay }
        // The server never asks for more than `span`; anything later could share a bucket
        // with a live epoch, so it is refused rather than expired early.
        guard expiresAt - now <= span,
              seen.count < capacity,
              perPrincipal[entry.netname, default: 0] < perPrincipalCapacity
        else { return .full }
        let epoch = max(expiresAt, now, 0) / width
        let index = Int(epoch % Int64(buckets.count))
        // A clock that stepped back can meet a bucket that still holds a later epoch: keep
        // the later one, so nothing in it expires early.
        buckets[index].epoch = max(buckets[index].epoch, epoch)
        buckets[index].entries.append(entry)
        seen.insert(entry)
        perPrincipal[entry.netname, default: 0] += 1
        return .fresh
    }
}
