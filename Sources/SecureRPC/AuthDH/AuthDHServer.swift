// The server side of AUTH_DH, in the order and with the statuses of PROTOCOL.md §3.6 —
// except that a timestamp equal to the last one is refused too (Sun lets it through so
// retransmissions reach the duplicate request cache; ours runs before authentication). The
// client's public key comes from the directory, the conversation key from this host's
// keyserver (KEY_DECRYPT_PK); accepted conversations live in a bounded nickname table (LRU:
// eviction only makes a client resend its fullname). Nickname calls are decided on the
// event loop (DES only); fullname calls wait for the keyserver.

import Foundation
import KeyCrypto
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC

/// Verifies AUTH_DH calls.
public final class AuthDHServer: RPCServerAuthenticator {
    public var flavor: AuthFlavor { .dh }

    private struct Slot {
        var netname: String
        var conversationKey: SecretBytes
        var window: UInt32
        var lastStamp: AuthDHTimestamp
        var lastUsed: UInt64
    }

    private struct State {
        var slots: [Slot?]
        var clock: UInt64 = 0
    }

    private let keyserver: KeyServerClient
    private let publicKey: @Sendable (String) -> DHPublicKey?
    private let state: NIOLockedValueBox<State>
    private let now: @Sendable () -> TimeInterval
    private let localDomain: String?

    /// - Parameters:
    ///   - keyserver: this host's keyserver, as the server's own uid.
    ///   - publicKey: the directory lookup of a client's dh192-des public key by netname.
    ///   - cacheSize: nickname slots (Sun: 64; illumos: 128).
    ///   - localDomain: netnames `unix.UID@localDomain` are mapped to the local user's uid,
    ///     gid and groups (as netname2user does); nil maps none.
    public init(keyserver: KeyServerClient, cacheSize: Int = 128, localDomain: String? = nil,
                now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 },
                publicKey: @escaping @Sendable (String) -> DHPublicKey?) {
        self.keyserver = keyserver
        self.publicKey = publicKey
        self.now = now
        self.localDomain = localDomain
        self.state = NIOLockedValueBox(State(slots: Array(repeating: nil, count: cacheSize)))
    }

    public func authenticateImmediately(_ call: RPCCall, context: RPCCallContext) -> RPCAuthDecision? {
        guard let credential = try? AuthDHCredential.decode(call.credential.body) else { return .rejected(.badCredential) }
        guard case let .nickname(nickname) = credential else { return nil }
        let verifier = Array(call.verifier.body.readableBytesView)
        guard call.verifier.flavor == .dh, verifier.count == 12 else { return .rejected(.badVerifier) }
        let index = Int(nickname.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        let nowSeconds = now()
        return state.withLockedValue { state -> RPCAuthDecision in
            guard index < state.slots.count, var slot = state.slots[index] else { return .rejected(.badCredential) }
            guard let stamp = try? AuthDHSeal.openNickname(conversationKey: slot.conversationKey, verifier: verifier) else {
                return .rejected(.failed)
            }
            if stamp.microseconds >= 1_000_000 { return .rejected(.rejectedVerifier) }
            // Strictly newer than the last accepted call of this conversation: any repeat is
            // refused here (an exact UDP retransmission never gets this far: the duplicate
            // request cache answers it first).
            if !(slot.lastStamp < stamp) { return .rejected(.rejectedVerifier) }
            if nowSeconds - Double(slot.window) >= Double(stamp.seconds) { return .rejected(.rejectedVerifier) }
            guard let reply = try? AuthDHSeal.reply(conversationKey: slot.conversationKey, timestamp: stamp, nickname: nickname) else {
                return .rejected(.failed)
            }
            state.clock += 1
            slot.lastStamp = stamp
            slot.lastUsed = state.clock
            state.slots[index] = slot
            return .accepted(self.accepted(call, netname: slot.netname, reply: reply))
        }
    }

    public func authenticate(_ call: RPCCall, context: RPCCallContext) async -> RPCAuthDecision {
        if let decided = authenticateImmediately(call, context: context) { return decided }
        guard case let .fullname(netname, wrappedKey, encryptedWindow)? = try? AuthDHCredential.decode(call.credential.body) else {
            return .rejected(.badCredential)
        }
        let verifier = Array(call.verifier.body.readableBytesView)
        guard call.verifier.flavor == .dh, verifier.count == 12 else { return .rejected(.badVerifier) }
        guard let clientKey = publicKey(netname) else { return .rejected(.badCredential) }
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
        if opened.timestamp.microseconds >= 1_000_000 { return .rejected(.badVerifier) }
        if now() - Double(opened.window) >= Double(opened.timestamp.seconds) { return .rejected(.badCredential) }
        return state.withLockedValue { state -> RPCAuthDecision in
            // A conversation we know (same key, same netname): a stamp older than its last is a replay.
            var index = state.slots.firstIndex { slot in
                guard let slot else { return false }
                return slot.netname == netname && slot.conversationKey == conversationKey
            }
            if let found = index, let slot = state.slots[found], !(slot.lastStamp < opened.timestamp) {
                return .rejected(.rejectedCredential)
            }
            if index == nil {
                index = state.slots.firstIndex { $0 == nil }
                    ?? state.slots.indices.min { (state.slots[$0]?.lastUsed ?? 0) < (state.slots[$1]?.lastUsed ?? 0) }
            }
            let slotIndex = index!
            let nickname = withUnsafeBytes(of: UInt32(slotIndex).bigEndian, Array.init)
            guard let reply = try? AuthDHSeal.reply(conversationKey: conversationKey, timestamp: opened.timestamp, nickname: nickname) else {
                return .rejected(.failed)
            }
            state.clock += 1
            state.slots[slotIndex] = Slot(netname: netname, conversationKey: conversationKey, window: opened.window,
                                          lastStamp: opened.timestamp, lastUsed: state.clock)
            return .accepted(self.accepted(call, netname: netname, reply: reply))
        }
    }

    private func accepted(_ call: RPCCall, netname: String, reply: [UInt8]) -> RPCAcceptedCall {
        var caller = RPCCaller(flavor: .dh, isVerified: true, netname: netname, mechanism: "dh192-des")
        // unix.UID@<our domain> names a local user: hand the handler its uid and groups.
        if let localDomain, let credentials = KeyServerService.unixCredentials(netname: netname, domain: localDomain) {
            caller.uid = credentials.uid
            caller.gid = credentials.gid
            caller.gids = credentials.gids
        }
        return RPCAcceptedCall(caller: caller, replyVerifier: OpaqueAuth(flavor: .dh, body: ByteBuffer(bytes: reply)), arguments: call.arguments)
    }
}
