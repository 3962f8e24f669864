// The client side of AUTH_DH: a conversation key from the keyserver (KEY_GEN), wrapped for
// the server by the keyserver (KEY_ENCRYPT_PK: this process never sees a secret key), a
// fullname credential on the first call, the nickname after the server's first reply, the
// reply verifier checked on every call, and a fresh fullname after AUTH_REJECTEDCRED/VERF.
// It trusts its keyserver and the server's public key it was given; a server that refuses
// the fresh fullname of a client it had accepted before is taken to mean that the client's
// key changed or was revoked, and the caller is told so (SecureRPCError.keyChangedOrRevoked).

import Foundation
import KeyCrypto
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
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
        /// `conversationKey` expanded for DES once, not twice per call.
        var schedule: SunDES.Schedule?
        var wrappedKey: [UInt8]?
        /// The server's nickname for this conversation and the credential that carries it,
        /// made once per nickname rather than once per call.
        var nickname: (handle: UInt32, credential: OpaqueAuth)?
        /// Seconds to add to the local clock (server time − local time).
        var clockOffset: Int64 = 0
        var lastStamp = AuthDHTimestamp(seconds: 0, microseconds: 0)
        /// A fullname call of ours was accepted once: our key was good then.
        var established = false
        /// The fullname call now on its way (fullname calls hold the transmission order
        /// until their reply, so there is at most one per RPCClient).
        var pendingFullname: AuthDHTimestamp?
        /// A fullname of an established client was refused while pending: unless that
        /// fullname's reply proves otherwise (it clears this), the next call fails with
        /// `keyChangedOrRevoked` instead of trying again with the same key.
        var keyRefused = false
    }

    /// `timeHost`: a host whose clock the timestamps follow, measured as
    /// ``synchroniseClock(host:rpcbindPort:timePort:timeout:)`` does before each new
    /// conversation (libtirpc's `authdes_seccreate` takes such a time host); nil: this host's
    /// clock plus `clockOffset`.
    public init(clientNetname: String, serverNetname: String, serverPublicKey: DHPublicKey,
                keyserver: KeyServerClient, window: UInt32 = 60, clockOffset: Int64 = 0, timeHost: AuthDHTimeHost? = nil) {
        precondition(serverPublicKey.group == .dh192des, "AUTH_DH uses the dh192-des group")
        self.clientNetname = clientNetname
        self.serverNetname = serverNetname
        self.serverPublicKey = serverPublicKey
        self.keyserver = keyserver
        self.window = window
        self.timeHost = timeHost
        state.withLockedValue { $0.clockOffset = clockOffset }
    }

    public let timeHost: AuthDHTimeHost?

    /// Seconds added to the local clock in timestamps (server time − local time).
    public var clockOffset: Int64 { state.withLockedValue { $0.clockOffset } }

    /// Measures the server host's clock as Sun clients do (PROTOCOL.md §3.8): rpcbind
    /// version 3 GETTIME over TCP first, the RFC 868 time service (TCP) second; the offset in
    /// whole seconds is added to every timestamp from then on.
    public func synchroniseClock(host: String, rpcbindPort: Int = 111, timePort: Int = 37,
                                 timeout: TimeAmount = .seconds(5)) async throws {
        let serverTime: Int64
        do {
            let rpcbind = RPCBindClient(address: try SocketAddress.makeAddressResolvingHost(host, port: rpcbindPort), transport: .tcp, timeout: timeout)
            do {
                serverTime = Int64(try await rpcbind.getTime(version: 3))
                await rpcbind.close()
            } catch {
                await rpcbind.close()
                throw error
            }
        } catch {
            serverTime = try await Self.rfc868Time(host: host, port: timePort, timeout: timeout)
        }
        let offset = serverTime - Int64(Date().timeIntervalSince1970)
        state.withLockedValue { $0.clockOffset = offset }
    }

    /// RFC 868 over TCP: the server sends 4 bytes, seconds since 1900, and closes.
    static func rfc868Time(host: String, port: Int, timeout: TimeAmount) async throws -> Int64 {
        final class Collector: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            var bytes = ByteBuffer()
            let done: EventLoopPromise<ByteBuffer>
            init(done: EventLoopPromise<ByteBuffer>) { self.done = done }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                var chunk = Self.unwrapInboundIn(data)
                bytes.writeBuffer(&chunk)
                if bytes.readableBytes >= 4 { done.succeed(bytes); context.close(promise: nil) }
            }
            func channelInactive(context: ChannelHandlerContext) { done.fail(ChannelError.eof) }
            func errorCaught(context: ChannelHandlerContext, error: any Error) { done.fail(error); context.close(promise: nil) }
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: ByteBuffer.self)
        let timer = loop.scheduleTask(in: timeout) { done.fail(RPCClientError.timedOut(milliseconds: timeout.nanoseconds / 1_000_000)) }
        // However this ends (a refused connect never reaches the handler), the promise is
        // completed: NIO traps on a promise left pending. A second completion is ignored.
        defer {
            timer.cancel()
            done.fail(ChannelError.eof)
        }
        let channel = try await ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(done: done)) }
            }
            .connect(to: try SocketAddress.makeAddressResolvingHost(host, port: port)).get()
        defer { channel.close(promise: nil) }
        var reply = try await done.futureResult.get()
        guard let since1900 = reply.readInteger(endianness: .big, as: UInt32.self) else { throw ChannelError.eof }
        // 70 years and 17 leap days between 1900 and 1970.
        return Int64(since1900) - 2_208_988_800
    }

    /// Timestamps must reach the server in increasing order.
    public var requiresOrderedTransmission: Bool { true }

    public func prepare(_ header: RPCCallHeader, arguments: ByteBuffer) async throws -> RPCPreparedCall {
        let refused = state.withLockedValue { state -> Bool in
            guard state.keyRefused else { return false }
            // Report it once; the next call starts over from the keyserver (after keylogin
            // it holds the new key, and the call goes through).
            state.keyRefused = false
            state.nickname = nil
            state.conversationKey = nil
            state.schedule = nil
            state.wrappedKey = nil
            return true
        }
        if refused { throw SecureRPCError.keyChangedOrRevoked(clientNetname) }
        let (conversationKey, schedule, wrapped) = try await session()
        let (stamp, nickname) = state.withLockedValue { state -> (AuthDHTimestamp, OpaqueAuth?) in
            let stamp = Self.nextStamp(&state)
            if state.nickname == nil { state.pendingFullname = stamp }
            return (stamp, state.nickname?.credential)
        }
        if let nickname {
            return nicknameCall(credential: nickname, stamp: stamp, conversationKey: conversationKey, schedule: schedule, arguments: arguments)
        }
        let sealed = try AuthDHSeal.fullname(conversationKey: conversationKey, timestamp: stamp, window: window)
        var prepared = call(credential: AuthDHCredential.fullname(netname: clientNetname, wrappedKey: wrapped, encryptedWindow: sealed.encryptedWindow).opaqueAuth,
                            verifier: ByteBuffer(bytes: sealed.verifier), stamp: stamp, conversationKey: conversationKey, schedule: schedule,
                            arguments: arguments)
        // Until the server has answered a fullname call there is no nickname; concurrent
        // fullname calls would be verified in parallel on the server and could overtake
        // each other there. Let them wait for this one.
        prepared.holdsOrderUntilReply = true
        return prepared
    }

    /// A nickname call when the conversation has its nickname and nothing else is pending
    /// (one lock, no waiting); nil sends the caller through `prepare`.
    public func prepareImmediately(_ header: RPCCallHeader, arguments: ByteBuffer) throws -> RPCPreparedCall? {
        let ready = state.withLockedValue { state -> (AuthDHTimestamp, OpaqueAuth, SecretBytes, SunDES.Schedule)? in
            guard !state.keyRefused, let nickname = state.nickname, let key = state.conversationKey, let schedule = state.schedule else { return nil }
            return (Self.nextStamp(&state), nickname.credential, key, schedule)
        }
        guard let (stamp, credential, conversationKey, schedule) = ready else { return nil }
        return nicknameCall(credential: credential, stamp: stamp, conversationKey: conversationKey, schedule: schedule, arguments: arguments)
    }

    /// The next timestamp: now on the (offset) clock, strictly later than the last one, so a
    /// server never sees our own calls as replays.
    private static func nextStamp(_ state: inout State) -> AuthDHTimestamp {
        let now = Date().timeIntervalSince1970 + Double(state.clockOffset)
        var stamp = AuthDHTimestamp(seconds: UInt32(clamping: Int64(now)), microseconds: UInt32(now.truncatingRemainder(dividingBy: 1) * 1_000_000))
        if !(state.lastStamp < stamp) {
            stamp = state.lastStamp.microseconds >= 999_999
                ? AuthDHTimestamp(seconds: state.lastStamp.seconds + 1, microseconds: 0)
                : AuthDHTimestamp(seconds: state.lastStamp.seconds, microseconds: state.lastStamp.microseconds + 1)
        }
        state.lastStamp = stamp
        return stamp
    }

    private func nicknameCall(credential: OpaqueAuth, stamp: AuthDHTimestamp, conversationKey: SecretBytes, schedule: SunDES.Schedule,
                              arguments: ByteBuffer) -> RPCPreparedCall {
        call(credential: credential, verifier: AuthDHSeal.nicknameVerifier(schedule: schedule, timestamp: stamp), stamp: stamp,
             conversationKey: conversationKey, schedule: schedule, arguments: arguments)
    }

    /// The prepared call, whose reply check takes the nickname the server hands back.
    private func call(credential: OpaqueAuth, verifier: ByteBuffer, stamp: AuthDHTimestamp, conversationKey: SecretBytes,
                      schedule: SunDES.Schedule, arguments: ByteBuffer) -> RPCPreparedCall {
        let state = self.state
        return RPCPreparedCall(
            credential: credential,
            verifier: OpaqueAuth(flavor: .dh, body: verifier),
            arguments: arguments,
            validateReply: { replyVerifier, results in
                guard replyVerifier.flavor == .dh,
                      let handle = AuthDHSeal.checkReply(schedule: schedule, verifier: replyVerifier.body, sent: stamp)
                else {
                    throw RPCClientError.authError(.invalidResponse)
                }
                state.withLockedValue { state in
                    // Only for the key it was made with: a refresh may have replaced that
                    // key while this reply was on its way.
                    guard state.conversationKey === conversationKey else { return }
                    if state.nickname?.handle != handle {
                        state.nickname = (handle, AuthDHCredential.nickname(withUnsafeBytes(of: handle.bigEndian, Array.init)).opaqueAuth)
                    }
                    if state.pendingFullname == stamp {
                        state.pendingFullname = nil
                        state.established = true
                        state.keyRefused = false
                    }
                }
                return results
            }
        )
    }

    /// Stale nickname, server restart, replay window: go back to a fullname credential. After
    /// AUTH_REJECTEDCRED (the server saw this conversation's key replayed or stale, or ended
    /// the conversation because our key changed) a fresh conversation key is made; otherwise
    /// the same key is wrapped again, as Sun clients do. AUTH_BADCRED or AUTH_BADVERF while
    /// a fullname of a client the server had accepted before is pending means the server no
    /// longer takes our key: the next call reports that instead of guessing on.
    public func refresh(after status: AuthStatus) async -> Bool {
        switch status {
        case .rejectedCredential:
            state.withLockedValue { state in
                state.nickname = nil
                state.conversationKey = nil
                state.schedule = nil
                state.wrappedKey = nil
                state.pendingFullname = nil
            }
            return true
        case .badCredential, .badVerifier:
            state.withLockedValue { state in
                // The refused call may also be a nickname call sent before the pending
                // fullname; then that fullname's accepted reply clears `keyRefused` before
                // the next call is prepared (it holds the transmission order until then).
                if state.established && state.pendingFullname != nil { state.keyRefused = true }
                state.nickname = nil
            }
            return true
        case .rejectedVerifier:
            state.withLockedValue { $0.nickname = nil }
            return true
        default:
            return false
        }
    }

    private func session() async throws -> (SecretBytes, SunDES.Schedule, [UInt8]) {
        if let existing = state.withLockedValue({ state -> (SecretBytes, SunDES.Schedule, [UInt8])? in
            guard let key = state.conversationKey, let schedule = state.schedule, let wrapped = state.wrappedKey else { return nil }
            return (key, schedule, wrapped)
        }) {
            return existing
        }
        // A new conversation starts with a fullname whose stamp the server checks against
        // its clock: take the time host's time first (again for each conversation, as
        // libtirpc re-synchronises on refresh).
        if let timeHost {
            do {
                try await synchroniseClock(host: timeHost.host, rpcbindPort: timeHost.rpcbindPort, timePort: timeHost.timePort)
            } catch {
                throw SecureRPCError.clockSyncFailed(host: timeHost.host, reason: errorInWords(error))
            }
        }
        let generated = try await keyserver.perform { try await $0.keyGen() }
        let argument = Cryptkeyarg2(remotename: serverNetname, remotekey: Array(serverPublicKey.hex.utf8) + [0], deskey: generated)
        let result = try await keyserver.perform { try await $0.keyEncryptPk(argument) }
        guard case let .keySuccess(wrapped) = result else {
            if case .default(discriminant: .keyNosecret) = result { throw SecureRPCError.notLoggedIn(clientNetname) }
            throw SecureRPCError.keyserverRefused("\(result)")
        }
        let key = SecretBytes(copying: generated)
        let schedule = try SunDES.Schedule(key: key)
        state.withLockedValue { state in
            state.conversationKey = key
            state.schedule = schedule
            state.wrappedKey = wrapped
        }
        return (key, schedule, wrapped)
    }
}

/// Where an AUTH_DH client reads the time its stamps follow.
public struct AuthDHTimeHost: Sendable, Equatable {
    public var host: String
    /// rpcbind, asked first (version 3 GETTIME over TCP).
    public var rpcbindPort: Int
    /// The RFC 868 time service (TCP), asked when rpcbind does not answer.
    public var timePort: Int

    public init(host: String, rpcbindPort: Int = 111, timePort: Int = 37) {
        self.host = host
        self.rpcbindPort = rpcbindPort
        self.timePort = timePort
    }
}
