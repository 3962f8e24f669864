// The client side of AUTH_DH: a conversation key from the keyserver (KEY_GEN), wrapped for
// the server by the keyserver (KEY_ENCRYPT_PK: this process never sees a secret key), a
// fullname credential on the first call, the nickname after the server's first reply, the
// reply verifier checked on every call, and a fresh fullname after AUTH_REJECTEDCRED/VERF.

import Foundation
import KeyCrypto
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC

/// AUTH_DH credentials for calls to one server principal.
public final class AuthDHClient: RPCClientAuthenticator {
    public var flavor: AuthFlavor { .dh }

    public let clientNetname: String
    public let serverNetname: String
    public let serverPublicKey: DHPublicKey
    /// Seconds a credential stays valid at the server (sent encrypted in the fullname call).
    public let window: UInt32
    private let keyserver: KeyServerClient
    private let state = NIOLockedValueBox(State())

    private struct State {
        var conversationKey: SecretBytes?
        var wrappedKey: [UInt8]?
        var nickname: [UInt8]?
        /// Seconds to add to the local clock (server time − local time).
        var clockOffset: Int64 = 0
        var lastStamp = AuthDHTimestamp(seconds: 0, microseconds: 0)
    }

    public init(clientNetname: String, serverNetname: String, serverPublicKey: DHPublicKey,
                keyserver: KeyServerClient, window: UInt32 = 60, clockOffset: Int64 = 0) {
        precondition(serverPublicKey.group == .dh192des, "AUTH_DH uses the dh192-des group")
        self.clientNetname = clientNetname
        self.serverNetname = serverNetname
        self.serverPublicKey = serverPublicKey
        self.keyserver = keyserver
        self.window = window
        state.withLockedValue { $0.clockOffset = clockOffset }
    }

    /// Measures the server's clock through its rpcbind (GETTIME) and uses the difference.
    public func synchroniseClock(with rpcbind: RPCBindClient) async throws {
        let serverTime = try await rpcbind.getTime()
        let offset = Int64(serverTime) - Int64(Date().timeIntervalSince1970)
        state.withLockedValue { $0.clockOffset = offset }
    }

    public func prepare(_ header: RPCCallHeader, arguments: ByteBuffer) async throws -> RPCPreparedCall {
        let (conversationKey, wrapped) = try await session()
        let (stamp, nickname) = state.withLockedValue { state -> (AuthDHTimestamp, [UInt8]?) in
            let now = Date().timeIntervalSince1970 + Double(state.clockOffset)
            var stamp = AuthDHTimestamp(seconds: UInt32(clamping: Int64(now)), microseconds: UInt32(now.truncatingRemainder(dividingBy: 1) * 1_000_000))
            // Strictly increasing, so a server never sees our own calls as replays.
            if !(state.lastStamp < stamp) {
                stamp = state.lastStamp.microseconds >= 999_999
                    ? AuthDHTimestamp(seconds: state.lastStamp.seconds + 1, microseconds: 0)
                    : AuthDHTimestamp(seconds: state.lastStamp.seconds, microseconds: state.lastStamp.microseconds + 1)
            }
            state.lastStamp = stamp
            return (stamp, state.nickname)
        }
        let credential: AuthDHCredential
        let verifier: [UInt8]
        if let nickname {
            credential = .nickname(nickname)
            verifier = try AuthDHSeal.nickname(conversationKey: conversationKey, timestamp: stamp)
        } else {
            let sealed = try AuthDHSeal.fullname(conversationKey: conversationKey, timestamp: stamp, window: window)
            credential = .fullname(netname: clientNetname, wrappedKey: wrapped, encryptedWindow: sealed.encryptedWindow)
            verifier = sealed.verifier
        }
        let state = self.state
        return RPCPreparedCall(
            credential: credential.opaqueAuth,
            verifier: OpaqueAuth(flavor: .dh, body: ByteBuffer(bytes: verifier)),
            arguments: arguments,
            validateReply: { replyVerifier, results in
                guard replyVerifier.flavor == .dh,
                      let nickname = AuthDHSeal.checkReply(conversationKey: conversationKey, verifier: Array(replyVerifier.body.readableBytesView), sent: stamp)
                else {
                    throw RPCClientError.authError(.invalidResponse)
                }
                state.withLockedValue { $0.nickname = nickname }
                return results
            }
        )
    }

    /// AUTH_REJECTEDCRED / AUTH_REJECTEDVERF (stale nickname, server restart, replay window):
    /// go back to a fullname credential with the same conversation key, as Sun clients do.
    public func refresh(after status: AuthStatus) async -> Bool {
        switch status {
        case .rejectedCredential, .rejectedVerifier, .badCredential, .badVerifier:
            state.withLockedValue { $0.nickname = nil }
            return true
        default:
            return false
        }
    }

    private func session() async throws -> (SecretBytes, [UInt8]) {
        if let existing = state.withLockedValue({ state -> (SecretBytes, [UInt8])? in
            guard let key = state.conversationKey, let wrapped = state.wrappedKey else { return nil }
            return (key, wrapped)
        }) {
            return existing
        }
        let generated = try await keyserver.perform { try await $0.keyGen() }
        let argument = Cryptkeyarg2(remotename: serverNetname, remotekey: Array(serverPublicKey.hex.utf8) + [0], deskey: generated)
        let result = try await keyserver.perform { try await $0.keyEncryptPk(argument) }
        guard case let .keySuccess(wrapped) = result else {
            if case .default(discriminant: .keyNosecret) = result { throw SecureRPCError.notLoggedIn(clientNetname) }
            throw SecureRPCError.keyserverRefused("\(result)")
        }
        let key = SecretBytes(copying: generated)
        state.withLockedValue { state in
            state.conversationKey = key
            state.wrappedKey = wrapped
        }
        return (key, wrapped)
    }
}
