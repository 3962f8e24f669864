// The AUTH_DH server's table of live conversations (Sun's nickname cache, PROTOCOL.md §3.7):
// a fixed number of slots, least recently used replaced, each found in O(1) by its nickname.
// Nicknames are random 32-bit handles, unique among live slots, not slot indices: a nickname
// is then no hint of where a conversation lives, and one that was never handed out names
// nothing (issue 12 item 1). It trusts its caller for every decision; it only keeps the
// state, including the conversation keys (SecretBytes, never printed).

import KeyCrypto
import ONCRPC

/// Live AUTH_DH conversations by nickname.
struct AuthDHConversationTable {
    struct Conversation {
        let netname: String
        let conversationKey: SecretBytes
        /// The conversation key expanded for DES, so nickname calls skip the key schedule.
        let schedule: SunDES.Schedule
        /// The client's public key the conversation was made with (issue 12 item 5).
        let clientKey: DHPublicKey
        /// Who handlers are told the caller is (with the local uid and groups of a netname
        /// of our domain), looked up when the conversation is made and at each key re-check.
        var caller: RPCCaller
        /// The client's window, cut to the server's maximum.
        let window: UInt32
        /// The nickname handed to the client.
        let handle: UInt32
        /// Tells this conversation from a later one in the same slot while the table was
        /// unlocked (the key re-check looks the key up outside the lock).
        let serial: UInt64
        var lastStamp: AuthDHTimestamp
        var lastUsed: UInt64
        /// When the client's key was last looked up (µs, the server's clock).
        var keyCheckedAt: Int64
    }

    private var slots: [Conversation?]
    private var byHandle: [UInt32: Int]
    private var clock: UInt64 = 0
    private var serials: UInt64 = 0
    private var random = SystemRandomNumberGenerator()

    init(capacity: Int) {
        precondition(capacity > 0)
        slots = Array(repeating: nil, count: capacity)
        byHandle = [:]
        // Sized once, so inserting and removing handles later never reallocates.
        byHandle.reserveCapacity(capacity)
    }

    var count: Int { byHandle.count }

    /// The slot of a live nickname.
    func index(of handle: UInt32) -> Int? { byHandle[handle] }

    subscript(index: Int) -> Conversation? { slots[index] }

    /// Records an accepted nickname call.
    mutating func accepted(_ index: Int, stamp: AuthDHTimestamp) {
        clock += 1
        slots[index]?.lastStamp = stamp
        slots[index]?.lastUsed = clock
    }

    mutating func keyChecked(_ index: Int, at now: Int64) {
        slots[index]?.keyCheckedAt = now
    }

    mutating func setCaller(_ index: Int, _ caller: RPCCaller) {
        slots[index]?.caller = caller
    }

    /// The slot of the conversation with this netname and key, if it is live (a linear scan:
    /// fullname calls only, which wait for the keyserver anyway).
    func find(netname: String, conversationKey: SecretBytes) -> Int? {
        slots.firstIndex { slot in
            guard let slot else { return false }
            return slot.netname == netname && slot.conversationKey == conversationKey
        }
    }

    /// Makes (or renews, when `existing` is its slot) a conversation and returns it. A new
    /// one takes a free slot or the least recently used one, and a fresh random handle.
    mutating func admit(existing: Int?, netname: String, conversationKey: SecretBytes, schedule: SunDES.Schedule,
                        clientKey: DHPublicKey, caller: RPCCaller, window: UInt32, stamp: AuthDHTimestamp, now: Int64) -> Conversation {
        let index: Int
        let handle: UInt32
        if let existing, let slot = slots[existing] {
            index = existing
            handle = slot.handle
        } else {
            index = slots.firstIndex { $0 == nil }
                ?? slots.indices.min { (slots[$0]?.lastUsed ?? 0) < (slots[$1]?.lastUsed ?? 0) }!
            end(index)
            var fresh: UInt32
            repeat { fresh = UInt32.random(in: .min ... .max, using: &random) } while byHandle[fresh] != nil
            handle = fresh
            byHandle[handle] = index
        }
        clock += 1
        serials += 1
        let conversation = Conversation(netname: netname, conversationKey: conversationKey, schedule: schedule, clientKey: clientKey, caller: caller,
                                        window: window, handle: handle, serial: serials, lastStamp: stamp, lastUsed: clock, keyCheckedAt: now)
        slots[index] = conversation
        return conversation
    }

    /// Ends the conversation in a slot (its nickname then names nothing).
    mutating func end(_ index: Int) {
        guard let slot = slots[index] else { return }
        byHandle[slot.handle] = nil
        slots[index] = nil
    }

    /// Ends every conversation of `netname`; returns how many there were.
    mutating func end(netname: String) -> Int {
        end(netname: netname, keeping: nil)
    }

    /// Ends `netname`'s conversations made with another client key than `kept` (all of them
    /// when `kept` is nil: the key was revoked or removed).
    mutating func end(netname: String, keeping kept: DHPublicKey?) -> Int {
        var ended = 0
        for index in slots.indices where slots[index]?.netname == netname && slots[index]?.clientKey != kept {
            end(index)
            ended += 1
        }
        return ended
    }
}
