// The server side of AUTH_DH, in the order and with the statuses of PROTOCOL.md §3.6 —
// except that a timestamp equal to the last one is refused too (Sun lets it through so
// retransmissions reach the duplicate request cache; ours runs before authentication). The
// client's public key comes from the directory (the `publicKey` closure), the conversation
// key from this host's keyserver (KEY_DECRYPT_PK); nothing the client sends is trusted until
// the window verifier (fullname) or the timestamp order (nickname) says the key was right.
// Nickname calls are decided on the event loop (DES only); fullname calls wait for the
// keyserver.
//
// Limits beyond Sun's (issue 12 items 1, 2 and 5; defaults in `AuthDHServer.Limits`):
// - a timestamp later than now + `maximumClockSkew` (300 s) is refused, fullname and
//   nickname alike: Sun has no upper bound, so a random verifier decrypted to an accepted
//   far-future stamp about once in 7,400 tries and locked the real client out;
// - the client-chosen window is cut to `maximumWindow` (300 s);
// - nicknames are random 32-bit handles (AuthDHConversations.swift), not slot indices;
// - accepted fullname (netname, timestamp) pairs are remembered for their window
//   (AuthDHReplayCache.swift, at most 131,072 pairs, 16,384 per netname), so a recorded
//   fullname call stays refused after its conversation was evicted;
// - a conversation re-looks-up its client's key at most every `keyRecheckInterval` (30 s):
//   a revoked, removed or changed key ends it with AUTH_REJECTEDCRED.

import Foundation
import KeyCrypto
import KeyDirectory
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC

/// Verifies AUTH_DH calls.
///
/// ```swift
/// var limits = AuthDHServer.Limits()
/// limits.maximumClockSkew = 60
/// let dh = AuthDHServer(keyserver: try KeyServerClient(), limits: limits) { netname in
///     try? lookup.publicKey(netname: netname, mechanism: .dh192des)
/// }
/// ```
public final class AuthDHServer: RPCServerAuthenticator {
    public var flavor: AuthFlavor { .dh }

    /// How much time and memory the server grants AUTH_DH clients.
    public struct Limits: Sendable, Equatable {
        /// How far a client's timestamp may be ahead of this server's clock, in seconds.
        /// 300 s, as Kerberos (RFC 4120 §10) and our RPCSEC_GSS mechanism allow: a client
        /// synchronised by NTP is milliseconds off, one synchronised by rpcbind GETTIME
        /// (PROTOCOL.md §3.8) about a second (whole seconds, plus the round trip), and an
        /// unsynchronised one drifts seconds a day; minutes cover a host whose clock was set
        /// by hand. Being late is bounded by the window instead.
        public var maximumClockSkew: TimeInterval = 300
        /// The longest window a client may choose, in seconds; a longer one is cut to this.
        /// Sun clients ask for 60 s (ours too); a window is how long a captured call could be
        /// replayed had the replay cache forgotten it, and how long its pair stays cached.
        public var maximumWindow: UInt32 = 300
        /// How often a live conversation looks its client's key up again, in seconds: the
        /// longest a revoked or rotated key keeps working on a conversation made with it.
        public var keyRecheckInterval: TimeInterval = 30
        /// Fullname (netname, timestamp) pairs kept against replay, in all. A full cache
        /// refuses new fullname calls (AUTH_FAILED) until its oldest pairs expire, at most
        /// `maximumWindow` + `maximumClockSkew` later; about 20 MB when full.
        public var maximumRememberedFullnames = 131_072
        /// …and per netname, so that one principal cannot fill it for everyone (16,384 in
        /// 5 minutes is 55 new conversations a second).
        public var maximumRememberedFullnamesPerPrincipal = 16_384
        /// Bounds on fullname credentials not yet proven (each costs a directory lookup and a
        /// KEY_DECRYPT_PK at the keyserver, a modexp on a cache miss): at most so many at
        /// once, and token buckets per source address and per claimed netname. A refused
        /// fullname gets AUTH_FAILED at once, with no lookup and no keyserver call.
        public var admission = HandshakeAdmission.Limits()

        public init() {}
    }

    private struct State {
        var conversations: AuthDHConversationTable
        var replays: AuthDHReplayCache
    }

    /// What the nickname path decided under the lock, or that the client's key is due to be
    /// looked up again first.
    private enum NicknameStep {
        case decided(RPCAuthDecision)
        case recheckKey(netname: String, key: DHPublicKey, serial: UInt64)
    }

    public let limits: Limits
    /// The fullname admission (``Limits/admission``); its statistics count refusals.
    public let admission: HandshakeAdmission
    private let keyserver: KeyServerClient
    /// Clients' dh192-des public keys: the directory file, the site directory, a closure.
    private let keys: any PublicKeySource
    private let state: NIOLockedValueBox<State>
    private let now: @Sendable () -> TimeInterval
    private let localDomain: String?
    /// netname, domain → the local user's uid, gid and groups (getpwuid, getgrouplist);
    /// tests count its calls.
    let unixCredentials: @Sendable (String, String) -> Unixcred?
    private let skew: Int64, recheck: Int64

    /// - Parameters:
    ///   - keyserver: this host's keyserver, as the server's own uid.
    ///   - cacheSize: nickname slots (Sun: 64; illumos: 128).
    ///   - localDomain: netnames `unix.UID@localDomain` are mapped to the local user's uid,
    ///     gid and groups (as netname2user does), looked up when a conversation starts and
    ///     again at each key re-check, not on every call; nil maps none.
    ///   - limits: clock skew, window cap, key re-check interval, replay cache size.
    ///   - now: the clock (Unix seconds); tests inject one.
    ///   - publicKey: the directory lookup of a client's dh192-des public key by netname;
    ///     nil for a principal that has none (unknown, revoked, removed). Also called on the
    ///     event loop, at most once per `keyRecheckInterval` per conversation.
    public convenience init(keyserver: KeyServerClient, cacheSize: Int = 128, localDomain: String? = nil, limits: Limits = Limits(),
                            now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 },
                            publicKey: @escaping @Sendable (String) -> DHPublicKey?) {
        self.init(keyserver: keyserver, cacheSize: cacheSize, localDomain: localDomain, limits: limits, now: now,
                  keys: ClosurePublicKeySource { netname, mechanism in mechanism == .dh192des ? publicKey(netname) : nil })
    }

    /// - Parameters:
    ///   - keyserver: this host's keyserver, as the server process's uid.
    ///   - cacheSize: conversations kept (nickname slots).
    ///   - localDomain: netnames of this domain are mapped to local uids and groups for
    ///     handlers (looked up per conversation and at each key re-check).
    ///   - limits: the window, skew, replay cache and admission bounds.
    ///   - now: the clock (seconds since 1970), injected by tests.
    ///   - keys: where clients' dh192-des keys come from: a fullname waits for
    ///     `fetchPublicKey`; a conversation's periodic re-check, on the event loop, uses
    ///     `cachedPublicKey` and keeps the conversation when the source cannot answer without
    ///     waiting (it refreshes in the background); a change the source announces ends the
    ///     principal's conversations made with another key at once.
    public convenience init(keyserver: KeyServerClient, cacheSize: Int = 128, localDomain: String? = nil, limits: Limits = Limits(),
                            now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 },
                            keys: any PublicKeySource) {
        self.init(keyserver: keyserver, cacheSize: cacheSize, localDomain: localDomain, limits: limits, now: now, keys: keys,
                  unixCredentials: { KeyServerService.unixCredentials(netname: $0, domain: $1) })
    }

    init(keyserver: KeyServerClient, cacheSize: Int = 128, localDomain: String? = nil, limits: Limits = Limits(),
         now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 },
         keys: any PublicKeySource, unixCredentials: @escaping @Sendable (String, String) -> Unixcred?) {
        precondition(limits.maximumClockSkew >= 0 && limits.keyRecheckInterval >= 0)
        self.keyserver = keyserver
        self.keys = keys
        self.now = now
        self.localDomain = localDomain
        self.unixCredentials = unixCredentials
        self.limits = limits
        admission = HandshakeAdmission(limits: limits.admission, now: now)
        skew = Self.microseconds(limits.maximumClockSkew)
        recheck = Self.microseconds(limits.keyRecheckInterval)
        let span = skew + Int64(limits.maximumWindow) * 1_000_000 + 1
        state = NIOLockedValueBox(State(
            conversations: AuthDHConversationTable(capacity: cacheSize),
            replays: AuthDHReplayCache(span: span, capacity: limits.maximumRememberedFullnames,
                                       perPrincipalCapacity: limits.maximumRememberedFullnamesPerPrincipal)))
        keys.observeChanges { [weak self] netname in
            guard let self, let netname else { return }
            Task { await self.recheckConversations(of: netname) }
        }
    }

    /// The key source says `netname`'s keys changed: end its conversations made with a key
    /// that is no longer the directory's. A source that cannot answer ends nothing (the
    /// periodic re-check tries again).
    /// - Returns: how many conversations ended.
    @discardableResult
    public func recheckConversations(of netname: String) async -> Int {
        let current: DHPublicKey?
        do {
            current = try await keys.fetchPublicKey(netname: netname, mechanism: .dh192des)
        } catch {
            return 0
        }
        return state.withLockedValue { $0.conversations.end(netname: netname, keeping: current) }
    }

    static func microseconds(_ seconds: TimeInterval) -> Int64 { Int64((seconds * 1_000_000).rounded(.down)) }

    /// Ends every conversation of `netname` now (its next nickname call gets AUTH_BADCRED and
    /// the client sends a fullname credential, which meets the directory's current key).
    /// Call it after revoking or rotating that principal's key to act before the next re-check.
    /// - Returns: how many conversations ended.
    @discardableResult
    public func endConversations(of netname: String) -> Int {
        state.withLockedValue { $0.conversations.end(netname: netname) }
    }

    /// Live conversations (tests).
    var conversationCount: Int { state.withLockedValue { $0.conversations.count } }
    /// Remembered fullname pairs (tests).
    var rememberedFullnames: Int { state.withLockedValue { $0.replays.count } }

    public func authenticateImmediately(_ call: RPCCall, context: RPCCallContext) -> RPCAuthDecision? {
        guard let handle = Self.nicknameHandle(call.credential.body) else {
            // Not a nickname: a fullname (decided in `authenticate`) or nothing we take.
            return (try? AuthDHCredential.decode(call.credential.body)) == nil ? .rejected(.badCredential) : nil
        }
        let verifier = call.verifier.body
        guard call.verifier.flavor == .dh, verifier.readableBytes == 12 else { return .rejected(.badVerifier) }
        let nowMicros = Self.microseconds(now())
        let step = state.withLockedValue { state in
            decideNickname(&state, call: call, handle: handle, verifier: verifier, now: nowMicros, checkKey: true)
        }
        switch step {
        case let .decided(decision):
            return decision
        case let .recheckKey(netname, key, serial):
            // A synchronous directory lookup on the event loop: it happens at most once per
            // keyRecheckInterval per conversation (the slot was marked checked before the
            // lock was let go, so concurrent calls do not repeat it), and it is a point
            // lookup by primary key (MEASURED.md: ~6 µs in SQLite) — cheaper than hopping to
            // another thread and back. It runs outside the lock so that other event loops'
            // nickname calls do not wait for it.
            let current: DHPublicKey?
            switch keys.cachedPublicKey(netname: netname, mechanism: .dh192des) {
            case let .some(known):
                current = known
            case .none:
                // The source cannot tell without waiting (a network directory whose cache
                // entry expired): keep the conversation, which was marked checked, and let
                // a background fetch refresh the cache for the next re-check.
                current = key
                let keys = self.keys
                Task { _ = try? await keys.fetchPublicKey(netname: netname, mechanism: .dh192des) }
            }
            // The local user's groups are looked up again with the key, so that a change
            // reaches a long conversation within the same interval.
            let refreshedCaller = caller(netname)
            return state.withLockedValue { state in
                guard let index = state.conversations.index(of: handle), let slot = state.conversations[index],
                      slot.serial == serial else {
                    return .rejected(.badCredential)  // ended or replaced meanwhile
                }
                if current != key {
                    // Revoked, removed or rotated: this conversation ends, the client starts
                    // a new one, which meets the directory's current key. A lookup that failed
                    // (nil) ends it too: the directory cannot vouch for the key any more.
                    state.conversations.end(index)
                    return .rejected(.rejectedCredential)
                }
                state.conversations.setCaller(index, refreshedCaller)
                guard case let .decided(decision) = decideNickname(&state, call: call, handle: handle,
                                                                   verifier: verifier, now: nowMicros, checkKey: false)
                else { return .rejected(.failed) }
                return decision
            }
        }
    }

    /// A nickname credential's 4 bytes as a big-endian integer: the body that
    /// `AuthDHCredential.decode` reads as `.nickname` (discriminant 1, 4 bytes, nothing
    /// after), read in place, as every call after the first carries one.
    static func nicknameHandle(_ body: ByteBuffer) -> UInt32? {
        guard body.readableBytes == 8, body.getInteger(at: body.readerIndex, as: UInt32.self) == 1 else { return nil }
        return body.getInteger(at: body.readerIndex + 4, as: UInt32.self)
    }

    /// The nickname checks of PROTOCOL.md §3.6 plus the upper bound, under the lock.
    private func decideNickname(_ state: inout State, call: RPCCall, handle: UInt32, verifier: ByteBuffer,
                                now: Int64, checkKey: Bool) -> NicknameStep {
        guard let index = state.conversations.index(of: handle), let slot = state.conversations[index] else {
            return .decided(.rejected(.badCredential))
        }
        if checkKey && now - slot.keyCheckedAt >= recheck {
            state.conversations.keyChecked(index, at: now)
            return .recheckKey(netname: slot.netname, key: slot.clientKey, serial: slot.serial)
        }
        guard let stamp = try? AuthDHSeal.openNickname(schedule: slot.schedule, verifier: verifier) else {
            return .decided(.rejected(.failed))
        }
        if stamp.microseconds >= 1_000_000 { return .decided(.rejected(.rejectedVerifier)) }
        // Strictly newer than the last accepted call of this conversation: any repeat is
        // refused here (an exact UDP retransmission never gets this far: the duplicate
        // request cache answers it first).
        if !(slot.lastStamp < stamp) { return .decided(.rejected(.rejectedVerifier)) }
        if !isTimely(stamp, window: slot.window, now: now) { return .decided(.rejected(.rejectedVerifier)) }
        let reply = AuthDHSeal.replyVerifier(schedule: slot.schedule, timestamp: stamp, nickname: handle)
        state.conversations.accepted(index, stamp: stamp)
        return .decided(.accepted(RPCAcceptedCall(caller: slot.caller, replyVerifier: OpaqueAuth(flavor: .dh, body: reply),
                                                  arguments: call.arguments)))
    }

    /// now − window < stamp ≤ now + maximumClockSkew, to the microsecond (Sun compares the
    /// lower edge the same way: `BEFORE(now − window, stamp)`). `stamp.microseconds` < 10^6.
    private func isTimely(_ stamp: AuthDHTimestamp, window: UInt32, now: Int64) -> Bool {
        let micros = Self.microseconds(of: stamp)
        return now - Int64(window) * 1_000_000 < micros && micros <= now + skew
    }

    static func microseconds(of stamp: AuthDHTimestamp) -> Int64 {
        Int64(stamp.seconds) * 1_000_000 + Int64(stamp.microseconds)
    }

    public func authenticate(_ call: RPCCall, context: RPCCallContext) async -> RPCAuthDecision {
        if let decided = authenticateImmediately(call, context: context) { return decided }
        guard case let .fullname(netname, wrappedKey, encryptedWindow)? = try? AuthDHCredential.decode(call.credential.body) else {
            return .rejected(.badCredential)
        }
        let verifier = Array(call.verifier.body.readableBytesView)
        guard call.verifier.flavor == .dh, verifier.count == 12 else { return .rejected(.badVerifier) }
        // A netname that could not be anyone's (control characters, two '@', too long) is
        // refused before it is looked up, logged or metered.
        guard NetnameSyntax.isWellFormed(netname) else { return .rejected(.badCredential) }
        // Unproven work is metered: lookups and keyserver calls only for admitted fullnames.
        let ticket: HandshakeAdmission.Ticket
        switch admission.admit(context: context, principal: netname) {
        case let .refused(why):
            // A source over its rate also loses its connection (as for RPCSEC_GSS INITs).
            return why == .addressRate ? .disconnecting(.rejected(.failed)) : .rejected(.failed)
        case let .admitted(admitted):
            ticket = admitted
        }
        var proven = false
        defer { admission.finish(ticket, proven: proven) }
        let clientKey: DHPublicKey
        do {
            guard let found = try await keys.fetchPublicKey(netname: netname, mechanism: .dh192des) else { return .rejected(.badCredential) }
            clientKey = found
        } catch {
            // The directory could not answer: nothing can be proven now.
            return .rejected(.failed)
        }
        let argument = Cryptkeyarg2(remotename: netname, remotekey: Array(clientKey.hex.utf8) + [0], deskey: wrappedKey)
        guard case let .keySuccess(plain)? = try? await keyserver.perform({ try await $0.keyDecryptPk(argument) }) else {
            return .rejected(.badCredential)
        }
        let conversationKey = SecretBytes(copying: plain)
        guard let opened = try? AuthDHSeal.openFullname(conversationKey: conversationKey, encryptedWindow: encryptedWindow, verifier: verifier) else {
            return .rejected(.failed)
        }
        // The window verifier is what shows the key was right.
        guard opened.windowVerifier == opened.window &- 1 else { return .rejected(.badCredential) }
        // Expanded once here, outside the lock, for every nickname call of the conversation.
        guard let schedule = try? SunDES.Schedule(key: conversationKey) else { return .rejected(.badCredential) }
        if opened.timestamp.microseconds >= 1_000_000 { return .rejected(.badVerifier) }
        let window = min(opened.window, limits.maximumWindow)
        let nowMicros = Self.microseconds(now())
        if !isTimely(opened.timestamp, window: window, now: nowMicros) { return .rejected(.badCredential) }
        // Who the handlers are told the caller is, looked up once for the conversation
        // (getpwuid and getgrouplist read files or ask NSS: not work for every call).
        let caller = caller(netname)
        return state.withLockedValue { state -> RPCAuthDecision in
            // A conversation we know (same key, same netname): a stamp not later than its
            // last is a replay.
            let known = state.conversations.find(netname: netname, conversationKey: conversationKey)
            if let known, let slot = state.conversations[known], !(slot.lastStamp < opened.timestamp) {
                SecureRPCMetrics.dhReplays.increment()
                return .rejected(.rejectedCredential)
            }
            // Whether or not its conversation is still here: each fullname is accepted once
            // while its stamp is inside the window. Checked and recorded under the same lock
            // as the slot, so N copies arriving at once give exactly one acceptance.
            let expiry = Self.microseconds(of: opened.timestamp) + Int64(window) * 1_000_000
            switch state.replays.insert(.init(netname: netname, stamp: opened.timestamp), expiresAt: expiry, now: nowMicros) {
            case .fresh: break
            case .replay:
                SecureRPCMetrics.dhReplays.increment()
                return .rejected(.rejectedCredential)
            case .full: return .rejected(.failed)
            }
            let conversation = state.conversations.admit(existing: known, netname: netname, conversationKey: conversationKey,
                                                         schedule: schedule, clientKey: clientKey, caller: caller, window: window,
                                                         stamp: opened.timestamp, now: nowMicros)
            let reply = AuthDHSeal.replyVerifier(schedule: schedule, timestamp: opened.timestamp, nickname: conversation.handle)
            proven = true
            return .accepted(RPCAcceptedCall(caller: caller, replyVerifier: OpaqueAuth(flavor: .dh, body: reply), arguments: call.arguments))
        }
    }

    /// The proven caller as handlers see it. unix.UID@<our domain> names a local user: its
    /// uid, gid and groups go with it.
    private func caller(_ netname: String) -> RPCCaller {
        var caller = RPCCaller(flavor: .dh, isVerified: true, netname: netname, mechanism: "dh192-des")
        if let localDomain, let credentials = unixCredentials(netname, localDomain) {
            caller.uid = credentials.uid
            caller.gid = credentials.gid
            caller.gids = credentials.gids
        }
        return caller
    }
}
