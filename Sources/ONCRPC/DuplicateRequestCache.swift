// The duplicate request cache (DRC) for UDP: RPC over UDP may deliver a call several times
// (client retransmissions), and a non-idempotent procedure must not run twice. Keyed by
// client address, xid and a hash of the whole datagram, and consulted before
// authentication: an exact retransmission gets the cached reply without being verified or
// run again, so flavors with replay protection (AUTH_DH) can refuse every other repeat. Bounded in entries and in time; owned
// by one channel, so it is confined to that channel's event loop and needs no lock.

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
        /// Which insertion this is: a key forgotten or expired and then inserted again has
        /// an older position in `order` that must not count for the new entry.
        var serial: UInt64
    }

    let capacity: Int
    let timeToLive: TimeAmount
    private var entries: [Key: Entry] = [:]
    /// Insertion order for eviction: oldest first. Positions whose entry was removed or
    /// inserted again since are skipped.
    private var order: [(key: Key, serial: UInt64)] = []
    private var orderHead = 0
    private var nextSerial: UInt64 = 0
    private(set) var hits = 0

    init(capacity: Int, timeToLive: TimeAmount) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.timeToLive = timeToLive
    }

    var count: Int { entries.count }

    /// The key of a received datagram, or nil when it is too short to hold an xid.
    static func key(for message: ByteBuffer, from address: SocketAddress) -> Key? {
        guard let xid = message.getInteger(at: message.readerIndex, endianness: .big, as: UInt32.self) else { return nil }
        var hasher = Hasher()
        message.withUnsafeReadableBytes { hasher.combine(bytes: $0) }
        return Key(address: address, xid: xid, messageHash: hasher.finalize())
    }

    /// Looks the call up; when it is new, records it as in progress.
    mutating func check(_ key: Key, now: NIODeadline) -> DuplicateCheck {
        if let entry = entries[key], entry.expires > now {
            hits += 1
            switch entry.state {
            case .inProgress: return .drop
            case let .completed(reply): return .resend(reply)
            }
        }
        insert(key, state: .inProgress, expires: now + timeToLive, now: now)
        return .execute
    }

    /// Stores the reply of a call that ran (nil: it produced none, forget it).
    mutating func complete(_ key: Key, reply: ByteBuffer?, now: NIODeadline) {
        guard entries[key] != nil else { return }  // evicted meanwhile
        if let reply {
            entries[key]!.state = .completed(reply)
            entries[key]!.expires = now + timeToLive
        } else {
            entries[key] = nil
        }
    }

    private mutating func insert(_ key: Key, state: State, expires: NIODeadline, now: NIODeadline) {
        // An expired entry for the same key is replaced, not counted against the capacity.
        entries[key] = nil
        if entries.count >= capacity {
            evict(now: now)
        }
        let serial = nextSerial
        nextSerial += 1
        entries[key] = Entry(state: state, expires: expires, serial: serial)
        order.append((key, serial))
    }

    /// Drops expired entries from the front, and at least the oldest one.
    private mutating func evict(now: NIODeadline) {
        var removedOne = false
        while orderHead < order.count {
            let (key, serial) = order[orderHead]
            guard let entry = entries[key], entry.serial == serial else {
                orderHead += 1
                continue
            }
            if removedOne && entry.expires > now { break }
            entries[key] = nil
            orderHead += 1
            removedOne = true
        }
        // Compact the order array once its dead prefix dominates.
        if orderHead > 1024 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }
}
