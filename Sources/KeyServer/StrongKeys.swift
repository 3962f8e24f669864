// The strong-mechanism half of the keyserver: one secret per RFC 7919 group and uid, and
// K_ss = HKDF-SHA256(DH(secret, peer), salt "securerpc K_ss v1", info) derived for a peer.
// The raw Diffie-Hellman value is cached (per uid, group and peer) but never returned;
// only HKDF outputs bound to the caller's `info` leave. Trusts the uid it is given, like
// KeyServerCore: the service layer has checked it.

import KeyCrypto
import Logging
import NIOConcurrencyHelpers

/// Strong keys per uid.
public final class StrongKeyStore: Sendable {
    public static let salt = Array("securerpc K_ss v1".utf8)

    private struct Peer: Hashable {
        var group: DHGroupName
        var key: [UInt8]
    }

    private struct State {
        var keys: [UInt32: [DHGroupName: DHPrivateKey]] = [:]
        /// Public facts for KEYX_STATUS: when each key was set and the netname given with it.
        var since: [UInt32: [DHGroupName: UInt64]] = [:]
        var netnames: [UInt32: String] = [:]
        var shared: DerivedKeyCache<Peer>
        var hits = 0
        var misses = 0
    }

    private let state: NIOLockedValueBox<State>
    public let cacheCapacity: Int
    /// Called between computing a DH value and storing it (tests: a key change lands there).
    private let afterComputing: (@Sendable () -> Void)?

    /// - Parameters:
    ///   - cacheCapacity: derived values kept in all.
    ///   - perUIDCapacity: derived values kept for one uid (default 1/16 of the whole), so
    ///     one local user cannot flush the others'.
    ///   - afterComputing: called between computing a value and storing it (tests only).
    public init(cacheCapacity: Int = 4096, perUIDCapacity: Int? = nil, afterComputing: (@Sendable () -> Void)? = nil) {
        self.cacheCapacity = cacheCapacity
        self.afterComputing = afterComputing
        state = NIOLockedValueBox(State(shared: DerivedKeyCache(capacity: cacheCapacity,
                                                                perUIDCapacity: perUIDCapacity ?? max(1, cacheCapacity / 16))))
    }

    public static func group(_ mechanism: KeyxMechanism) -> DHGroupName {
        switch mechanism {
        case .keyxFfdhe2048: return .ffdhe2048
        case .keyxFfdhe3072: return .ffdhe3072
        case .keyxFfdhe4096: return .ffdhe4096
        }
    }

    public static func mechanism(_ group: DHGroupName) -> KeyxMechanism? {
        switch group {
        case .ffdhe2048: return .keyxFfdhe2048
        case .ffdhe3072: return .keyxFfdhe3072
        case .ffdhe4096: return .keyxFfdhe4096
        case .dh192des: return nil
        }
    }

    /// Sets `uid`'s key of a group. `secret` is zeroed in its own storage afterwards (it is
    /// the decoded KEYX_SET argument, which nothing reads again). `netname` (empty: none
    /// given, as from a key file) is only reported back by KEYX_STATUS.
    public func set(uid: UInt32, mechanism: KeyxMechanism, secret: [UInt8], netname: String = "") -> Keystatus {
        defer { SecretBytes.wipeStorage(of: secret) }
        guard let key = try? DHPrivateKey(group: Self.group(mechanism), secret: SecretBytes(copying: secret)) else { return .keySystemerr }
        state.withLockedValue { state in
            state.keys[uid, default: [:]][key.group] = key
            state.since[uid, default: [:]][key.group] = KeyServerClock.now()
            if !netname.isEmpty { state.netnames[uid] = netname }
            state.shared.keyChanged(uid: uid) { $0.group == key.group }
        }
        return .keySuccess
    }

    public func clear(uid: UInt32) {
        state.withLockedValue { state in
            state.keys[uid] = nil
            state.since[uid] = nil
            state.netnames[uid] = nil
            state.shared.keyChanged(uid: uid)
        }
    }

    public func clearAll() {
        state.withLockedValue { state in
            state.keys = [:]
            state.since = [:]
            state.netnames = [:]
            state.shared.removeAll()
        }
    }

    public func publicKey(uid: UInt32, mechanism: KeyxMechanism) -> [UInt8]? {
        state.withLockedValue { $0.keys[uid]?[Self.group(mechanism)]?.publicKey.bytes }
    }

    /// The public facts about a uid's strong keys (KEYX_STATUS): the netname given with
    /// them and when each group's key was set, in group order.
    public func holding(uid: UInt32) -> (netname: String?, since: [(group: DHGroupName, since: UInt64)]) {
        state.withLockedValue { state in
            let since = (state.since[uid] ?? [:]).sorted { $0.key.rawValue < $1.key.rawValue }.map { (group: $0.key, since: $0.value) }
            return (state.netnames[uid], since)
        }
    }

    public var cacheStatistics: (hits: Int, misses: Int) {
        state.withLockedValue { ($0.hits, $0.misses) }
    }

    /// Cached values in all and for one uid.
    public func cachedEntries(uid: UInt32? = nil) -> Int {
        state.withLockedValue { state in uid.map { state.shared.entries(of: $0) } ?? state.shared.count }
    }

    /// K_ss for `uid` and the holder of `peer`, bound to `info`.
    public func derive(uid: UInt32, mechanism: KeyxMechanism, peer: [UInt8], info: [UInt8]) -> KeyxDeriveRes {
        let group = Self.group(mechanism)
        guard let peerKey = try? DHPublicKey(group: group, bytes: peer) else { return .default(discriminant: .keyUnknown) }
        let cacheKey = DerivedKeyCache<Peer>.Key(uid: uid, peer: Peer(group: group, key: peer))
        let found: (SecretBytes?, DHPrivateKey?, UInt64) = state.withLockedValue { state in
            if let shared = state.shared[cacheKey] {
                state.hits += 1
                KeyServerMetrics.strongHits.increment()
                return (shared, nil, 0)
            }
            state.misses += 1
            KeyServerMetrics.strongDerives.increment()
            return (nil, state.keys[uid]?[group], state.shared.generation(of: uid))
        }
        let shared: SecretBytes
        if let cached = found.0 {
            shared = cached
        } else {
            guard let mine = found.1 else { return .default(discriminant: .keyNosecret) }
            guard let computed = try? mine.sharedSecret(with: peerKey) else { return .default(discriminant: .keySystemerr) }
            shared = computed
            afterComputing?()
            // Stored only if the key it came from is still the uid's: a KEYX_SET meanwhile
            // must not leave DH(old secret, peer) cached under the new key. This call still
            // gets its answer (it was asked of the old key, before the change).
            state.withLockedValue { _ = $0.shared.store(computed, for: cacheKey, generation: found.2) }
        }
        let key = StrongCrypto.hkdf(inputKeyMaterial: shared, salt: Self.salt, info: info, outputByteCount: 32)
        return .keySuccess(key.copyBytes())
    }
}

/// The SRPC_KEYX program over the same socket and uid checks as KEY_PROG.
public struct StrongKeyService: SrpcKeyxV1Service {
    public let store: StrongKeyStore
    let identity: KeyServerService
    /// Fetches a principal's sealed keys from the site directory (set by keyserverd when
    /// securerpc.conf names directory servers); nil: this keyserver has no directory.
    let fetchSealed: (@Sendable (String) async -> KeyxFetchRes)?
    /// The key files keyserverd loads, which KEYX_STATUS shows root.
    let keyFiles: KeyServerKeyFiles
    /// How long a caller may keep a K_ss from KEYX_DERIVE_LEASED and use it again (0: not
    /// at all). While it lasts, keylogout or a new key does not reach that caller's new
    /// contexts: the lease is the keyserver's consent to that delay.
    public let kssLeaseSeconds: UInt32

    public init(store: StrongKeyStore, identity: KeyServerService, fetchSealed: (@Sendable (String) async -> KeyxFetchRes)? = nil,
                keyFiles: KeyServerKeyFiles = KeyServerKeyFiles(), kssLeaseSeconds: UInt32 = 0) {
        self.store = store
        self.identity = identity
        self.fetchSealed = fetchSealed
        self.keyFiles = keyFiles
        self.kssLeaseSeconds = kssLeaseSeconds
    }

    /// Only for the uid the netname names (`unix.UID@…`), or for root (host principals and
    /// services are root's to log in). The directory then decides whether this host may have
    /// them (an enrolled host, for a user).
    public func keyxFetchSealed(_ argument: Netnamestr, request: RPCRequest) async throws -> KeyxFetchRes {
        let uid = try identity.actingUID(request)
        guard NetnameSyntax.isWellFormed(argument) else { return .default(discriminant: .keyUnknown, value: "not a netname") }
        if uid != 0 {
            let name = argument.dropFirst(5).prefix { $0 != "@" }
            guard UInt32(name) == uid else {
                return .default(discriminant: .keyUnknown, value: "uid \(uid) may fetch only its own keys (unix.\(uid)@DOMAIN)")
            }
        }
        guard let fetchSealed else {
            return .default(discriminant: .keyNosecret, value: "this keyserver has no directory servers (securerpc.conf): use keylogin --db")
        }
        return await fetchSealed(argument)
    }

    public func keyxSet(_ argument: KeyxSetArg, request: RPCRequest) async throws -> Keystatus {
        store.set(uid: try identity.actingUID(request), mechanism: argument.mechanism, secret: argument.secret, netname: argument.netname)
    }

    public func keyxClear(request: RPCRequest) async throws -> Keystatus {
        store.clear(uid: try identity.actingUID(request))
        return .keySuccess
    }

    public func keyxPublic(_ argument: KeyxMechanism, request: RPCRequest) async throws -> KeyxPublicRes {
        guard let key = store.publicKey(uid: try identity.actingUID(request), mechanism: argument) else {
            return .default(discriminant: .keyNosecret)
        }
        return .keySuccess(key)
    }

    /// Runs as a task (the generated program's default): a cold ffdhe3072 derivation takes
    /// milliseconds, too long to hold an event loop.
    public func keyxDerive(_ argument: KeyxDeriveArg, request: RPCRequest) async throws -> KeyxDeriveRes {
        store.derive(uid: try identity.actingUID(request), mechanism: argument.mechanism, peer: argument.peer, info: argument.info)
    }

    /// KEYX_DERIVE with the lease this keyserver grants on the result.
    public func keyxDeriveLeased(_ argument: KeyxDeriveArg, request: RPCRequest) async throws -> KeyxLeaseRes {
        switch try await keyxDerive(argument, request: request) {
        case let .keySuccess(key): return .keySuccess(KeyxLease(key: key, seconds: min(kssLeaseSeconds, KeyServerService.longestKssLease)))
        case let .default(status): return .default(discriminant: status)
        }
    }
}

import ONCRPC

extension KeyServerService {
    /// The longest lease a keyserver grants and a client honours.
    public static let longestKssLease: UInt32 = 3600

    /// Everything a keyserver serves on its socket: KEY_PROG versions 1 and 2 for libtirpc
    /// clients and SRPC_KEYX version 1 for the strong groups, with one caller check for all.
    /// `kssLeaseSeconds`: KEYX_DERIVE_LEASED's lease (keyserverd's `--kss-lease`, default
    /// 30 s there; 0 here, so an embedded keyserver grants none unless asked to).
    public static func programs(core: KeyServerCore, strong: StrongKeyStore, logger: Logger,
                                fetchSealed: (@Sendable (String) async -> KeyxFetchRes)? = nil,
                                keyFiles: KeyServerKeyFiles = KeyServerKeyFiles(), kssLeaseSeconds: UInt32 = 0) -> [RPCProgram] {
        let legacy = KeyServerService(core: core, logger: logger)
        let strongService = StrongKeyService(store: strong, identity: legacy, fetchSealed: fetchSealed, keyFiles: keyFiles,
                                             kssLeaseSeconds: kssLeaseSeconds)
        return legacy.programs + [strongService.rpcProgram()]
    }
}
