// A bounded table in least-recently-used order with O(1) lookup, touch, insert and removal
// of the oldest entry: a dictionary from key to node index, and a doubly linked list threaded
// through an array of nodes (freed nodes are reused, so a full table allocates nothing). The
// RPCSEC_GSS context table and the handshake limiter's per-address and per-principal buckets
// use it; both used to scan their whole table to find the oldest entry. Trusts its caller to
// hold whatever lock guards it: the type itself is a plain value.

/// Entries in least-recently-used order.
package struct LRUTable<Key: Hashable, Value> {
    fileprivate struct Node {
        var key: Key?
        var value: Value?
        var older = -1
        var newer = -1
    }

    private var index: [Key: Int] = [:]
    private var nodes: [Node] = []
    private var free: [Int] = []
    private var oldestIndex = -1
    private var newestIndex = -1

    package init() {}

    package var count: Int { index.count }
    package var isEmpty: Bool { index.isEmpty }

    /// The value of `key`, without changing its place.
    package subscript(key: Key) -> Value? {
        index[key].flatMap { nodes[$0].value }
    }

    /// The node holding `key`, for `touch(at:)` and `value(at:)` without a second lookup.
    package func position(of key: Key) -> Int? { index[key] }

    package func value(at position: Int) -> Value { nodes[position].value! }

    /// Changes the value at `position` in place.
    package mutating func modify<R>(at position: Int, _ body: (inout Value) throws -> R) rethrows -> R {
        try body(&nodes[position].value!)
    }

    /// Makes the entry at `position` the most recently used.
    package mutating func touch(at position: Int) {
        guard position != newestIndex else { return }
        unlink(position)
        linkNewest(position)
    }

    /// Inserts or replaces `key` as the most recently used entry.
    package mutating func insert(_ key: Key, _ value: Value) {
        if let position = index[key] {
            nodes[position].value = value
            touch(at: position)
            return
        }
        let position: Int
        if let reused = free.popLast() {
            position = reused
            nodes[position] = Node(key: key, value: value)
        } else {
            position = nodes.count
            nodes.append(Node(key: key, value: value))
        }
        index[key] = position
        linkNewest(position)
    }

    @discardableResult
    package mutating func remove(_ key: Key) -> Value? {
        guard let position = index.removeValue(forKey: key) else { return nil }
        return release(position)
    }

    /// The least recently used entry.
    package var oldest: (key: Key, value: Value)? {
        oldestIndex < 0 ? nil : (nodes[oldestIndex].key!, nodes[oldestIndex].value!)
    }

    @discardableResult
    package mutating func removeOldest() -> (key: Key, value: Value)? {
        guard oldestIndex >= 0 else { return nil }
        let position = oldestIndex
        let key = nodes[position].key!
        index[key] = nil
        return (key, release(position))
    }

    /// Every entry, oldest first.
    package func forEach(_ body: (Key, Value) throws -> Void) rethrows {
        var position = oldestIndex
        while position >= 0 {
            try body(nodes[position].key!, nodes[position].value!)
            position = nodes[position].newer
        }
    }

    private mutating func release(_ position: Int) -> Value {
        unlink(position)
        let value = nodes[position].value!
        // Drop the references now, not when the node is reused.
        nodes[position].key = nil
        nodes[position].value = nil
        free.append(position)
        return value
    }

    private mutating func unlink(_ position: Int) {
        let older = nodes[position].older, newer = nodes[position].newer
        if older >= 0 { nodes[older].newer = newer } else { oldestIndex = newer }
        if newer >= 0 { nodes[newer].older = older } else { newestIndex = older }
        nodes[position].older = -1
        nodes[position].newer = -1
    }

    private mutating func linkNewest(_ position: Int) {
        nodes[position].older = newestIndex
        nodes[position].newer = -1
        if newestIndex >= 0 { nodes[newestIndex].newer = position } else { oldestIndex = position }
        newestIndex = position
    }
}

extension LRUTable: Sendable where Key: Sendable, Value: Sendable {}
extension LRUTable.Node: Sendable where Key: Sendable, Value: Sendable {}
