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

    private struct CacheKey: Hashable {
        var uid: UInt32
        var group: DHGroupName
        var peer: [UInt8]
    }

    private struct State {
        var keys: [UInt32: [DHGroupName: DHPrivateKey]] = [:]
        var shared: [CacheKey: SecretBytes] = [:]
        var order: [CacheKey] = []
        var hits = 0
        var misses = 0
    }

    private let state = NIOLockedValueBox(State())
    public let cacheCapacity: Int

    public init(cacheCapacity: Int = 4096) {
        self.cacheCapacity = cacheCapacity
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

    public func set(uid: UInt32, mechanism: KeyxMechanism, secret: [UInt8]) -> Keystatus {
        var copy = secret
        defer { SecretBytes.wipe(&copy) }
        guard let key = try? DHPrivateKey(group: Self.group(mechanism), secret: SecretBytes(copying: copy)) else { return .keySystemerr }
        state.withLockedValue { state in
            state.keys[uid, default: [:]][key.group] = key
            state.shared = state.shared.filter { !($0.key.uid == uid && $0.key.group == key.group) }
            state.order.removeAll { $0.uid == uid && $0.group == key.group }
        }
        return .keySuccess
    }

    public func clear(uid: UInt32) {
        state.withLockedValue { state in
            state.keys[uid] = nil
            state.shared = state.shared.filter { $0.key.uid != uid }
            state.order.removeAll { $0.uid == uid }
        }
    }

    public func clearAll() {
        state.withLockedValue { $0 = State() }
    }

    public func publicKey(uid: UInt32, mechanism: KeyxMechanism) -> [UInt8]? {
        state.withLockedValue { $0.keys[uid]?[Self.group(mechanism)]?.publicKey.bytes }
    }

    public var cacheStatistics: (hits: Int, misses: Int) {
        state.withLockedValue { ($0.hits, $0.misses) }
    }

    /// K_ss for `uid` and the holder of `peer`, bound to `info`.
    public func derive(uid: UInt32, mechanism: KeyxMechanism, peer: [UInt8], info: [UInt8]) -> KeyxDeriveRes {
        let group = Self.group(mechanism)
        guard let peerKey = try? DHPublicKey(group: group, bytes: peer) else { return .default(discriminant: .keyUnknown) }
        let cacheKey = CacheKey(uid: uid, group: group, peer: peer)
        let found: (SecretBytes?, DHPrivateKey?) = state.withLockedValue { state in
            if let shared = state.shared[cacheKey] {
                state.hits += 1
                return (shared, nil)
            }
            state.misses += 1
            return (nil, state.keys[uid]?[group])
        }
        let shared: SecretBytes
        if let cached = found.0 {
            shared = cached
        } else {
            guard let mine = found.1 else { return .default(discriminant: .keyNosecret) }
            guard let computed = try? mine.sharedSecret(with: peerKey) else { return .default(discriminant: .keySystemerr) }
            shared = computed
            state.withLockedValue { state in
                guard state.keys[uid]?[group] != nil else { return }
                if state.shared[cacheKey] == nil {
                    state.order.append(cacheKey)
                    if state.order.count > cacheCapacity { state.shared[state.order.removeFirst()] = nil }
                }
                state.shared[cacheKey] = shared
            }
        }
        let key = StrongCrypto.hkdf(inputKeyMaterial: shared, salt: Self.salt, info: info, outputByteCount: 32)
        return .keySuccess(key.copyBytes())
    }
}

/// The SRPC_KEYX program over the same socket and uid checks as KEY_PROG.
public struct StrongKeyService: SrpcKeyxV1Service {
    public let store: StrongKeyStore
    let identity: KeyServerService

    public init(store: StrongKeyStore, identity: KeyServerService) {
        self.store = store
        self.identity = identity
    }

    public func keyxSet(_ argument: KeyxSetArg, request: RPCRequest) async throws -> Keystatus {
        store.set(uid: try identity.actingUID(request), mechanism: argument.mechanism, secret: argument.secret)
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
}

import ONCRPC

extension KeyServerService {
    /// Everything a keyserver serves on its socket: KEY_PROG versions 1 and 2 for libtirpc
    /// clients and SRPC_KEYX version 1 for the strong groups, with one caller check for all.
    public static func programs(core: KeyServerCore, strong: StrongKeyStore, logger: Logger) -> [RPCProgram] {
        let legacy = KeyServerService(core: core, logger: logger)
        return legacy.programs + [StrongKeyService(store: strong, identity: legacy).rpcProgram()]
    }
}
