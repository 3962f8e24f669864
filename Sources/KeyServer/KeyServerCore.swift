// The keyserver's state: each logged-in uid's secret keys, in memory only, and a bounded
// cache of derived DES keys. It trusts its callers' uids because the service layer
// (KeyServerService) has already checked them against the kernel's peer credentials; no
// secret or derived key ever leaves through this type except as the classic protocol
// requires (wrapped conversation keys, KEY_NET_GET to the key's own uid, KEY_GET_CONV).

import KeyCrypto
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// Per-uid secrets and the Diffie-Hellman work done with them.
public final class KeyServerCore: Sendable {
    struct UserKeys {
        var legacy: DHPrivateKey
        var netname: String?
        /// When the key was set (seconds since 1970), for KEYX_STATUS.
        var since: UInt64
    }

    private struct State {
        var users: [UInt32: UserKeys] = [:]
        var cache: DerivedKeyCache<[UInt8]>
        var hits = 0
        var misses = 0
    }

    private let state: NIOLockedValueBox<State>
    /// Most derived keys kept (DerivedKeyCache: per uid at most `perUIDCapacity`).
    public let cacheCapacity: Int
    /// Finds a principal's legacy public key for the version 1 calls that name the peer
    /// only by netname (KEY_ENCRYPT/KEY_DECRYPT).
    private let lookup: (@Sendable (String) -> DHPublicKey?)?
    /// Called between computing a DES key and storing it (tests: a KEY_SET lands there).
    private let afterComputing: (@Sendable () -> Void)?

    public init(cacheCapacity: Int = 4096, perUIDCapacity: Int? = nil, lookup: (@Sendable (String) -> DHPublicKey?)? = nil,
                afterComputing: (@Sendable () -> Void)? = nil) {
        self.cacheCapacity = cacheCapacity
        self.lookup = lookup
        self.afterComputing = afterComputing
        state = NIOLockedValueBox(State(cache: DerivedKeyCache(capacity: cacheCapacity,
                                                               perUIDCapacity: perUIDCapacity ?? max(1, cacheCapacity / 16))))
    }

    // MARK: secrets

    /// KEY_SET: stores a uid's dh192-des secret (48 hex digits). All zeros (or all '0'
    /// characters) clears it, as keylogout does.
    /// `hex` is zeroed in its own storage afterwards (the decoded KEY_SET argument).
    public func setSecret(uid: UInt32, hex: [UInt8], netname: String? = nil) -> Keystatus {
        defer { SecretBytes.wipeStorage(of: hex) }
        if hex.allSatisfy({ $0 == 0 || $0 == UInt8(ascii: "0") }) {
            clear(uid: uid)
            return .keySuccess
        }
        guard let key = try? DHPrivateKey(group: .dh192des, secretHex: String(decoding: hex, as: UTF8.self)) else {
            return .keySystemerr
        }
        state.withLockedValue { state in
            state.users[uid] = UserKeys(legacy: key, netname: netname ?? state.users[uid]?.netname, since: KeyServerClock.now())
            state.cache.keyChanged(uid: uid)
        }
        return .keySuccess
    }

    /// Forgets a uid's keys and every key derived from them (keylogout).
    public func clear(uid: UInt32) {
        state.withLockedValue { state in
            state.users[uid] = nil
            state.cache.keyChanged(uid: uid)
        }
    }

    /// Forgets everything (shutdown). Dropping the last references wipes the secrets.
    public func clearAll() {
        state.withLockedValue { state in
            state.users = [:]
            state.cache.removeAll()
        }
    }

    public func hasSecret(uid: UInt32) -> Bool {
        state.withLockedValue { $0.users[uid] != nil }
    }

    /// The public facts about a uid's dh192-des key (KEYX_STATUS): its netname and since when.
    public func legacyHolding(uid: UInt32) -> (netname: String?, since: UInt64)? {
        state.withLockedValue { state in state.users[uid].map { ($0.netname, $0.since) } }
    }

    /// KEY_NET_GET: the uid's own secret, public key and netname.
    public func netGet(uid: UInt32) -> KeyNetstarg? {
        state.withLockedValue { state in
            guard let user = state.users[uid] else { return nil }
            return KeyNetstarg(stPrivKey: Array(user.legacy.secretHex.utf8), stPubKey: Array(user.legacy.publicKey.hex.utf8),
                               stNetname: user.netname ?? "")
        }
    }

    public var cacheStatistics: (hits: Int, misses: Int, entries: Int) {
        state.withLockedValue { ($0.hits, $0.misses, $0.cache.count) }
    }

    // MARK: Diffie-Hellman work

    /// The DES key shared by `uid` and the holder of `peer` (Sun rule: middle bytes of the
    /// 192-bit common key, Sun parity), from the cache when possible.
    func desKey(uid: UInt32, peer: DHPublicKey) throws(KeyServerFailure) -> SecretBytes {
        let key = DerivedKeyCache<[UInt8]>.Key(uid: uid, peer: peer.bytes)
        let found: (SecretBytes?, DHPrivateKey?, UInt64) = state.withLockedValue { state in
            if let cached = state.cache[key] {
                state.hits += 1
                KeyServerMetrics.legacyHits.increment()
                return (cached, nil, 0)
            }
            state.misses += 1
            KeyServerMetrics.legacyDerives.increment()
            return (nil, state.users[uid]?.legacy, state.cache.generation(of: uid))
        }
        if let cached = found.0 { return cached }
        guard let secret = found.1 else { throw .noSecret }
        let derived: SecretBytes
        do {
            derived = try SunDES.desKey(fromCommonKey: try secret.sharedSecret(with: peer))
        } catch {
            throw .systemError
        }
        afterComputing?()
        // Stored only under the key it came from: a KEY_SET or keylogout meanwhile must not
        // leave the old secret's DES key cached for the new one.
        state.withLockedValue { _ = $0.cache.store(derived, for: key, generation: found.2) }
        return derived
    }

    /// KEY_ENCRYPT_PK / KEY_DECRYPT_PK: wraps or unwraps an 8-byte conversation key.
    public func crypt(uid: UInt32, peerPublicKey: [UInt8], block: [UInt8], encrypt: Bool) -> Cryptkeyres {
        guard let peer = Self.parsePublicKey(peerPublicKey) else { return .default(discriminant: .keyUnknown) }
        return crypt(uid: uid, peer: peer, block: block, encrypt: encrypt)
    }

    /// KEY_ENCRYPT / KEY_DECRYPT (version 1): the peer's public key comes from the directory.
    public func crypt(uid: UInt32, peerNetname: String, block: [UInt8], encrypt: Bool) -> Cryptkeyres {
        guard let peer = lookup?(peerNetname) else { return .default(discriminant: .keyUnknown) }
        return crypt(uid: uid, peer: peer, block: block, encrypt: encrypt)
    }

    private func crypt(uid: UInt32, peer: DHPublicKey, block: [UInt8], encrypt: Bool) -> Cryptkeyres {
        guard block.count == 8 else { return .default(discriminant: .keySystemerr) }
        do {
            let key = try desKey(uid: uid, peer: peer)
            let out = encrypt ? try SunDES.ecbEncrypt(key: key, block) : try SunDES.ecbDecrypt(key: key, block)
            return .keySuccess(out)
        } catch KeyServerFailure.noSecret {
            return .default(discriminant: .keyNosecret)
        } catch {
            return .default(discriminant: .keySystemerr)
        }
    }

    /// KEY_GET_CONV: the derived DES key itself (the classic protocol hands it to the uid).
    public func conversationKey(uid: UInt32, peerPublicKey: [UInt8]) -> Cryptkeyres {
        guard let peer = Self.parsePublicKey(peerPublicKey) else { return .default(discriminant: .keyUnknown) }
        do {
            return .keySuccess(try desKey(uid: uid, peer: peer).copyBytes())
        } catch .noSecret {
            return .default(discriminant: .keyNosecret)
        } catch {
            return .default(discriminant: .keySystemerr)
        }
    }

    /// A public key sent as hex, usually with the C string's trailing NUL.
    static func parsePublicKey(_ bytes: [UInt8]) -> DHPublicKey? {
        let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        return try? DHPublicKey(group: .dh192des, hex: text)
    }
}

/// Wall-clock seconds, for the "since" of KEYX_STATUS (a fact shown to people, so not a
/// monotonic clock).
enum KeyServerClock {
    static func now() -> UInt64 {
        UInt64(max(0, time(nil)))
    }
}

enum KeyServerFailure: Error {
    case noSecret
    case systemError
}
