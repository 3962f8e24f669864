// Ephemeral Diffie-Hellman key pairs made ahead of need. A context set-up generates a fresh
// key pair on each side (a fixed-base exponentiation: 0.2-0.9 ms for ffdhe2048-4096 here)
// before it can send its token; taking one made in the background while an earlier set-up
// waited on the network takes that step off the set-up's path.
//
// Each key is used for one set-up only and is wiped when that set-up drops it, as before.
// What changes is only when it was made: a ready key is at most `maximumAge` old, and an
// older one is wiped unused rather than handed out (a key that sat in memory for long gives
// a memory disclosure more time; it protects nothing until it is used). The background
// starts on a group's second set-up in the process, so a program that makes one context
// pays for no spare. Keys are made only to bring a group back to `depth` ready, so a flood
// of set-ups costs no more key generations than set-ups, plus `depth` per group.

import Foundation
import KeyCrypto
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Ephemeral key pairs for RPCSEC_GSS context set-ups, made ahead of need, two per group.
///
/// ``GSSClient`` and ``GSSServer`` take their set-ups' ephemeral keys from ``shared``. A
/// program that wants every ephemeral key made at the moment of its set-up (none waiting in
/// memory, no background work) turns it off:
///
/// ```swift
/// EphemeralKeyReserve.shared.isEnabled = false
/// ```
///
/// A program that forks without exec after making contexts must turn it off first: parent
/// and child would otherwise hold the same ready keys.
public final class EphemeralKeyReserve: Sendable {
    /// The reserve that GSSClient and GSSServer share in a process.
    public static let shared = EphemeralKeyReserve()

    /// A ready key older than this is wiped unused.
    public let maximumAge: TimeInterval
    /// Keys kept ready per group: two, so that a process that is both a client and a server
    /// of set-ups (or one in-process benchmark) finds one for each side.
    public let depth: Int
    private let enabled: Synchronization.Atomic<Bool>
    private let now: @Sendable () -> TimeInterval
    /// Where keys are made ahead: off Swift's cooperative pool and off the event loops. The
    /// utility QoS is a hint; Linux's libdispatch does not lower the thread's priority.
    private let queue = DispatchQueue(label: "SecureRPC.EphemeralKeyReserve", qos: .utility)

    private struct Slot {
        var ready: [(key: DHPrivateKey, made: TimeInterval)] = []
        var filling = false
        var taken = 0
    }
    /// The groups' slots and the counters, under one lock: a take decides and counts at once.
    private struct State {
        var slots: [DHGroupName: Slot] = [:]
        var counters = Counters()
    }
    private let state = NIOLockedValueBox(State())

    /// What the reserve has done since the process started.
    public struct Counters: Equatable, Sendable {
        /// Set-ups that took a key made ahead.
        public var takenReady = 0
        /// Set-ups that made their key themselves (none ready, or the reserve is off).
        public var madeInline = 0
        /// Keys made in the background.
        public var madeAhead = 0
        /// Ready keys wiped unused because they were older than ``maximumAge``.
        public var discardedStale = 0
    }

    /// On by default where the process has more than one CPU (`System.coreCount`, which
    /// counts a container's cgroup limit): on one, a key made ahead takes the CPU time from
    /// the set-up that it would save (rpcbench gss pinned to one vCPU: 0.93-1.04×).
    init(maximumAge: TimeInterval = 30, depth: Int = 2, enabled: Bool = System.coreCount > 1,
         now: @escaping @Sendable () -> TimeInterval = { ProcessInfo.processInfo.systemUptime }) {
        precondition(depth >= 1)
        self.enabled = Atomic(enabled)
        self.maximumAge = maximumAge
        self.depth = depth
        self.now = now
    }

    /// Whether set-ups take keys made ahead (on by default where the process has more than
    /// one CPU). Turning it off wipes the ready keys; set-ups then make their keys themselves.
    public var isEnabled: Bool {
        get { enabled.load(ordering: .relaxed) }
        set {
            enabled.store(newValue, ordering: .relaxed)
            if !newValue { clear() }
        }
    }

    /// What the reserve has done so far.
    public var counts: Counters { state.withLockedValue { $0.counters } }

    /// A key pair for one set-up: the oldest ready one still fresh, else one made now. From
    /// the group's second set-up on, the background then fills it up to `depth` again.
    func take(_ group: DHGroupName) -> DHPrivateKey {
        guard isEnabled else {
            state.withLockedValue { $0.counters.madeInline += 1 }
            return DHPrivateKey.generate(group: group)
        }
        let moment = now()
        // The expired keys come out of the lock to be dropped (their SecretBytes wiped) here.
        let (ready, _, startFilling) = state.withLockedValue { state -> (DHPrivateKey?, [DHPrivateKey], Bool) in
            var slot = state.slots[group] ?? Slot()
            // Oldest first; the too old are wiped unused.
            let expired = slot.ready.prefix { moment - $0.made > maximumAge }.map(\.key)
            slot.ready.removeFirst(expired.count)
            let ready = slot.ready.isEmpty ? nil : slot.ready.removeFirst().key
            slot.taken += 1
            let start = !slot.filling && slot.taken >= 2
            if start { slot.filling = true }
            state.slots[group] = slot
            state.counters.discardedStale += expired.count
            if ready == nil { state.counters.madeInline += 1 } else { state.counters.takenReady += 1 }
            return (ready, expired, start)
        }
        if startFilling { queue.async { self.fill(group) } }
        return ready ?? DHPrivateKey.generate(group: group)
    }

    /// Makes keys until `depth` are ready.
    private func fill(_ group: DHGroupName) {
        while true {
            guard isEnabled else {
                state.withLockedValue { $0.slots[group, default: Slot()].filling = false }
                return
            }
            let key = DHPrivateKey.generate(group: group)
            let made = now()
            let full = state.withLockedValue { state -> Bool in
                var slot = state.slots[group] ?? Slot()
                slot.ready.append((key, made))
                let full = slot.ready.count >= depth
                if full { slot.filling = false }
                state.slots[group] = slot
                state.counters.madeAhead += 1
                return full
            }
            if full { return }
        }
    }

    /// Keys ready for `group` now.
    func readyCount(_ group: DHGroupName) -> Int {
        state.withLockedValue { $0.slots[group]?.ready.count ?? 0 }
    }

    /// Waits until no key is being made ahead (tests).
    func settle() {
        queue.sync {}
    }

    /// Wipes every ready key once the replacement being made, if any, is done.
    func clear() {
        queue.sync {}
        state.withLockedValue { $0.slots.removeAll() }
    }
}
