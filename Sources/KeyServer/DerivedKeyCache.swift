// The keyserver's cache of derived keys (DES keys for AUTH_DH, raw DH values for the strong
// groups), shared by every local user, so it is built against two abuses:
//
// - Fairness: one uid deriving with many peers (any local user can) must not flush the
//   others' entries. Each uid holds at most `perUIDCapacity`; beyond that its own oldest
//   entry goes. When the whole cache is full, the oldest entry of the uid holding the most
//   goes. A flooding uid therefore only ever evicts itself.
// - Staleness: a derive computes outside the lock; if the uid's key changes meanwhile (a new
//   KEY_SET, keylogout), its result belongs to the old key and must not be stored. Each
//   uid's key has a generation, bumped on every change; a result is stored only under the
//   generation it was computed for.

import KeyCrypto

struct DerivedKeyCache<Peer: Hashable & Sendable>: Sendable {
    struct Key: Hashable {
        var uid: UInt32
        var peer: Peer
    }

    let capacity: Int
    let perUIDCapacity: Int
    private var entries: [Key: SecretBytes] = [:]
    private var orderByUID: [UInt32: [Key]] = [:]
    private var generations: [UInt32: UInt64] = [:]
    private var nextGeneration: UInt64 = 1

    init(capacity: Int, perUIDCapacity: Int) {
        precondition(capacity > 0 && perUIDCapacity > 0)
        self.capacity = capacity
        self.perUIDCapacity = min(perUIDCapacity, capacity)
    }

    var count: Int { entries.count }

    func entries(of uid: UInt32) -> Int { orderByUID[uid]?.count ?? 0 }

    subscript(key: Key) -> SecretBytes? { entries[key] }

    /// The generation of `uid`'s current key, captured with the key before computing.
    func generation(of uid: UInt32) -> UInt64 { generations[uid] ?? 0 }

    /// `uid`'s key changed or went: everything derived from the old one goes, and results
    /// still being computed from it will not be stored.
    mutating func keyChanged(uid: UInt32) {
        generations[uid] = nextGeneration
        nextGeneration += 1
        for key in orderByUID.removeValue(forKey: uid) ?? [] { entries[key] = nil }
    }

    /// Only the entries of `uid` matching `predicate` go (one group's keys); the generation
    /// still moves, as for any change of the uid's keys.
    mutating func keyChanged(uid: UInt32, where predicate: (Peer) -> Bool) {
        generations[uid] = nextGeneration
        nextGeneration += 1
        guard var order = orderByUID[uid] else { return }
        order.removeAll { key in
            guard predicate(key.peer) else { return false }
            entries[key] = nil
            return true
        }
        orderByUID[uid] = order.isEmpty ? nil : order
    }

    mutating func removeAll() {
        entries = [:]
        orderByUID = [:]
        // Generations stay: a derive in flight across clearAll must not store either.
        for uid in generations.keys { generations[uid] = nextGeneration }
        nextGeneration += 1
    }

    /// Stores `value` if `uid`'s key is still the one of `generation`; false otherwise.
    @discardableResult
    mutating func store(_ value: SecretBytes, for key: Key, generation: UInt64) -> Bool {
        guard self.generation(of: key.uid) == generation else { return false }
        if entries.updateValue(value, forKey: key) != nil { return true }
        orderByUID[key.uid, default: []].append(key)
        if orderByUID[key.uid]!.count > perUIDCapacity {
            evictOldest(of: key.uid)
        }
        while entries.count > capacity {
            // The uid holding the most pays.
            guard let heaviest = orderByUID.max(by: { $0.value.count < $1.value.count })?.key else { break }
            evictOldest(of: heaviest)
        }
        return true
    }

    private mutating func evictOldest(of uid: UInt32) {
        guard var order = orderByUID[uid], !order.isEmpty else { return }
        entries[order.removeFirst()] = nil
        orderByUID[uid] = order.isEmpty ? nil : order
    }
}
