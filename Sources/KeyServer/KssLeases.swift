// K_ss kept by a keyserver client while the keyserver's lease lasts (KEYX_DERIVE_LEASED).
// An RPCSEC_GSS set-up needs K_ss on both sides; without a lease each one is a round trip
// to the keyserver even when the keyserver has it cached. Entries are the keyserver's HKDF
// outputs, already bound to their use by `info`; they live in SecretBytes (wiped when they
// go) and are never kept past the lease, whatever the entry's use.

import Foundation
import KeyCrypto
import NIOConcurrencyHelpers
import ONCRPC
import Synchronization

/// What the keyserver (or a lease on its answer) gave for a KEYX_DERIVE argument.
public enum KssAnswer: Sendable {
    /// `fromLease`: taken from this client's lease cache rather than fresh from the
    /// keyserver. A caller whose peer rejects it should `forgetKss` and ask again: the key
    /// behind it may have changed since.
    case key(SecretBytes, fromLease: Bool)
    case refused(Keystatus)
}

struct KssLeases {
    struct Key: Hashable {
        var mechanism: KeyxMechanism
        var peer: [UInt8]
        var info: [UInt8]
    }

    /// What a lease answers for: the whole KEYX_DERIVE argument.
    static func key(for argument: KeyxDeriveArg) -> Key {
        Key(mechanism: argument.mechanism, peer: argument.peer, info: argument.info)
    }

    private struct Entry {
        var key: SecretBytes
        var expires: Double
    }

    let capacity: Int
    private var entries: [Key: Entry] = [:]

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    var count: Int { entries.count }

    /// The leased key, if its lease has not run out (an expired entry goes now).
    mutating func key(for key: Key, now: Double) -> SecretBytes? {
        guard let entry = entries[key] else { return nil }
        if now < entry.expires { return entry.key }
        entries[key] = nil
        return nil
    }

    /// Keeps `secret` for `seconds` (0: not kept). When full, expired entries go first,
    /// then the one whose lease ends soonest.
    mutating func store(_ secret: SecretBytes, for key: Key, seconds: UInt32, now: Double) {
        guard seconds > 0 else { return }
        if entries[key] == nil, entries.count >= capacity {
            entries = entries.filter { now < $0.value.expires }
            if entries.count >= capacity, let soonest = entries.min(by: { $0.value.expires < $1.value.expires })?.key {
                entries[soonest] = nil
            }
        }
        // A lease longer than the longest (from a keyserver of another build) is cut to it.
        entries[key] = Entry(key: secret, expires: now + Double(min(seconds, KeyServerService.longestKssLease)))
    }

    mutating func forget(_ key: Key) {
        entries[key] = nil
    }

    mutating func forgetAll() {
        entries.removeAll()
    }
}

extension KeyServerClient {
    /// K_ss for `argument`: from this client's leases while the keyserver's lease on an
    /// earlier answer lasts, else from the keyserver (KEYX_DERIVE_LEASED; KEYX_DERIVE from a
    /// keyserver without it, and nothing kept).
    public func kss(_ argument: KeyxDeriveArg) async throws -> KssAnswer {
        let key = KssLeases.key(for: argument)
        let asked = leaseClock()
        if let leased = leases.withLockedValue({ $0.key(for: key, now: asked) }) {
            return .key(leased, fromLease: true)
        }
        if keyserverGrantsLeases.load(ordering: .relaxed) {
            var answer: KeyxLeaseRes? = try await performStrong { strong in
                do {
                    return try await strong.keyxDeriveLeased(argument)
                } catch RPCClientError.procedureUnavailable {
                    return nil
                }
            }
            if answer != nil {
                guard case .keySuccess(var lease)? = answer else {
                    if case let .default(status)? = answer { return .refused(status) }
                    return .refused(.keySystemerr)
                }
                answer = nil  // `lease.key` is now its array's only owner
                let secret = KssBytes.take(&lease.key)
                leases.withLockedValue { $0.store(secret, for: key, seconds: lease.seconds, now: asked) }
                return .key(secret, fromLease: false)
            }
            // A keyserverd older than KEYX_DERIVE_LEASED: ask it the old way from now on.
            keyserverGrantsLeases.store(false, ordering: .relaxed)
        }
        var answer = try await performStrong { try await $0.keyxDerive(argument) }
        guard case .keySuccess(var bytes) = answer else {
            if case let .default(status) = answer { return .refused(status) }
            return .refused(.keySystemerr)
        }
        answer = .default(discriminant: .keySystemerr)
        return .key(KssBytes.take(&bytes), fromLease: false)
    }

    /// Drops the leased K_ss for `argument` (the peer did not accept it: the key behind it
    /// changed since the lease was granted), so that the next `kss` asks the keyserver.
    public func forgetKss(_ argument: KeyxDeriveArg) {
        leases.withLockedValue { $0.forget(KssLeases.key(for: argument)) }
    }

    /// Drops every leased K_ss (the keyserver says the user is no longer logged in: what it
    /// leased before must not make new contexts).
    public func forgetAllKss() {
        leases.withLockedValue { $0.forgetAll() }
    }

    /// K_ss keys held under a lease now (expired ones are counted until next looked up).
    public var leasedKssCount: Int { leases.withLockedValue { $0.count } }
}

/// K_ss out of a keyserver answer's array into SecretBytes, the array zeroed in its own
/// storage. The caller overwrites the answer first, so that the array has no other owner and
/// the wipe cannot land on a copy-on-write copy (`var copy = kss; wipe(&copy)` did, leaving
/// the original intact).
enum KssBytes {
    static func take(_ bytes: inout [UInt8]) -> SecretBytes {
        let secret = SecretBytes(copying: bytes)
        let before = bytes.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) }
        if KssWipeTracking.enabled.load(ordering: .relaxed) {
            let after = bytes.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
            KssWipeTracking.record(inPlace: before == after && bytes.allSatisfy { $0 == 0 })
        }
        return secret
    }
}

/// Test hook: counts the wipes of K_ss arrays from the keyserver, and whether each zeroed the
/// storage the array had (in place) or a copy-on-write copy of it (the original left intact).
@_spi(Testing)
public enum KssWipeTracking {
    static let enabled = Atomic<Bool>(false)
    private static let counts = Mutex<(inPlace: Int, ofACopy: Int)>((0, 0))

    public static func start() {
        counts.withLock { $0 = (0, 0) }
        enabled.store(true, ordering: .relaxed)
    }

    public static func stop() { enabled.store(false, ordering: .relaxed) }

    /// Wipes that zeroed the key's own storage.
    public static var inPlace: Int { counts.withLock { $0.inPlace } }
    /// Wipes that zeroed a copy and left the key where it was (must stay 0).
    public static var ofACopy: Int { counts.withLock { $0.ofACopy } }

    static func record(inPlace: Bool) {
        counts.withLock { if inPlace { $0.inPlace += 1 } else { $0.ofACopy += 1 } }
    }
}
