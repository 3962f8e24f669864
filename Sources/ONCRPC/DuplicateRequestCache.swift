// The duplicate request cache (DRC) for UDP: RPC over UDP may deliver a call several times
// (client retransmissions), and a non-idempotent procedure must not run twice. Keyed by
// client address, xid and a hash of the whole datagram, and consulted before
// authentication: an exact retransmission gets the cached reply without being verified or
// run again, so flavors with replay protection (AUTH_DH) can refuse every other repeat.
// Everything here comes from unauthenticated datagrams, so memory is bounded whatever
// arrives: in entries, in reply bytes, and in time (expired entries are dropped as time
// passes, not only when the cache is full). Owned by one channel, so it is confined to that
// channel's event loop and needs no lock.

import NIOCore

struct DuplicateRequestCache {
    struct Key: Hashable {
        var address: SocketAddress
        var xid: UInt32
        var messageHash: Int
    }

    private enum State {
        case inProgress
        case completed(ByteBuffer)
    }

    private struct Entry {
        var state: State
        var expires: NIODeadline
        /// Which slot of `order` is this entry's: every insertion and every completion
        /// appends a new slot, and the older ones no longer count.
        var serial: UInt64
        /// Reply bytes this entry holds (counted against `maximumReplyBytes`).
        var bytes: Int
    }

    let capacity: Int
    let maximumReplyBytes: Int
    let timeToLive: TimeAmount
    private var entries: [Key: Entry] = [:]
    /// Expiry order, earliest first: a slot is appended whenever an entry's expiry is set
    /// (insertion, completion), and every expiry is `now + timeToLive` with a monotonic
    /// `now`, so the order is sorted. Slots whose entry is gone or has a newer slot are dead;
    /// they are skipped at the front and compacted away once they outnumber the live ones,
    /// so the array stays within about twice the entries whatever arrives.
    private var order: [(key: Key, serial: UInt64)] = []
    private var orderHead = 0
    private var nextSerial: UInt64 = 0
    private(set) var replyBytes = 0
    private(set) var hits = 0

    init(capacity: Int, timeToLive: TimeAmount, maximumReplyBytes: Int = .max) {
        precondition(capacity > 0 && maximumReplyBytes > 0)
        self.capacity = capacity
        self.timeToLive = timeToLive
        self.maximumReplyBytes = maximumReplyBytes
    }

    var count: Int { entries.count }

    /// Slots held for eviction order, dead ones included (what the bound is about).
    var orderSlots: Int { order.count - orderHead }

    /// The key of a received datagram, or nil when it is too short to hold an xid.
    static func key(for message: ByteBuffer, from address: SocketAddress) -> Key? {
        guard let xid = message.getInteger(at: message.readerIndex, endianness: .big, as: UInt32.self) else { return nil }
        var hasher = Hasher()
        message.withUnsafeReadableBytes { hasher.combine(bytes: $0) }
        return Key(address: address, xid: xid, messageHash: hasher.finalize())
    }

    /// Looks the call up; when it is new and `admit` is true, records it as in progress and
    /// answers `.execute`. A new call that may not run (`admit` false: the transport is at
    /// its limit of calls in flight) is not recorded and answers `.refused`.
    mutating func check(_ key: Key, now: NIODeadline, admit: Bool = true) -> DuplicateCheck {
        dropExpired(now: now)
        if let entry = entries[key] {
            hits += 1
            switch entry.state {
            case .inProgress: return .drop
            case let .completed(reply): return .resend(reply)
            }
        }
        guard admit else { return .refused }
        if entries.count >= capacity {
            evictOldest()
        }
        entries[key] = Entry(state: .inProgress, expires: now + timeToLive, serial: appendSlot(key), bytes: 0)
        return .execute
    }

    /// Stores the reply of a call that ran (nil: it produced none, forget it).
    mutating func complete(_ key: Key, reply: ByteBuffer?, now: NIODeadline) {
        guard var entry = entries[key] else { return }  // evicted or expired meanwhile
        guard let reply else {
            remove(key)
            return
        }
        // What the reply really holds in memory, not only what it sends.
        let bytes = reply.capacity
        guard bytes <= maximumReplyBytes else {
            remove(key)
            return
        }
        entry.state = .completed(reply)
        entry.expires = now + timeToLive
        entry.serial = appendSlot(key)
        entry.bytes = bytes
        entries[key] = entry
        replyBytes += bytes
        while replyBytes > maximumReplyBytes {
            evictOldest()
        }
        compactIfMostlyDead()
    }

    /// Drops every entry whose time is up (the UDP handler also calls this on a timer, so a
    /// quiet socket gives its memory back).
    mutating func dropExpired(now: NIODeadline) {
        while orderHead < order.count {
            let (key, serial) = order[orderHead]
            if let entry = entries[key], entry.serial == serial {
                guard entry.expires <= now else { break }
                remove(key)
            }
            orderHead += 1
        }
        compactIfMostlyDead()
    }

    // MARK: bookkeeping

    private mutating func appendSlot(_ key: Key) -> UInt64 {
        let serial = nextSerial
        nextSerial += 1
        order.append((key, serial))
        return serial
    }

    private mutating func remove(_ key: Key) {
        if let entry = entries.removeValue(forKey: key) {
            replyBytes -= entry.bytes
        }
    }

    /// Removes the entry that expires first.
    private mutating func evictOldest() {
        while orderHead < order.count {
            let (key, serial) = order[orderHead]
            orderHead += 1
            if let entry = entries[key], entry.serial == serial {
                remove(key)
                return
            }
        }
    }

    /// Keeps `order` within about twice the live entries: the dead prefix goes once it is
    /// half the array, and dead slots in the middle (calls without a reply, completions that
    /// moved an entry back) are filtered out once they outnumber the live ones. Each
    /// compaction costs O(slots) and follows at least as many operations that made a dead
    /// slot, so it is amortised O(1).
    private mutating func compactIfMostlyDead() {
        let slots = order.count - orderHead
        if slots - entries.count > entries.count + 64 {
            let live = entries
            order.removeFirst(orderHead)
            order.removeAll { live[$0.key]?.serial != $0.serial }
            orderHead = 0
        } else if orderHead > 1024 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }
}
