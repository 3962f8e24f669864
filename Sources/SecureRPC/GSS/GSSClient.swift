// The client side of RPCSEC_GSS with the srpc-dh mechanism. The first call makes the
// context (one INIT round trip on the client's own connection; concurrent first calls share
// it); later calls take a fresh sequence number each — a retransmission too, as RFC 2203
// §5.3.3.1 asks — so a reply may carry the verifier of any number sent for its xid. The
// context is renewed before it expires or its numbers run out, and at once when the server
// says it lost it (CREDPROBLEM/CTXPROBLEM); close() destroys it on the server. The client
// never lowers the group or service it was given: a server that will not do them is an error.
// A server that ends the context because the user's key was revoked or replaced refuses the
// new INIT; after a context had worked, that is reported as SecureRPCError.keyChangedOrRevoked.

import Foundation
import KeyCrypto
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XDR

/// Why an RPCSEC_GSS context could not be made.
public enum GSSClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server refused the INIT token.
    case contextRefused(major: UInt32, minor: UInt32)
    /// The server's INIT reply did not prove that it holds the server's key.
    case serverNotAuthenticated(String)
    /// Something other than a context came back.
    case unexpectedReply(String)

    public var description: String {
        switch self {
        case let .contextRefused(major, minor):
            let reason = GSSMinorStatus(rawValue: minor).map { "\($0)" } ?? "minor status \(minor)"
            return "the server refused the RPCSEC_GSS context (major 0x\(String(major, radix: 16))): \(reason)"
        case let .serverNotAuthenticated(why): return "the server did not prove its identity: \(why)"
        case let .unexpectedReply(why): return "unexpected RPCSEC_GSS context reply: \(why)"
        }
    }
}

/// Makes RPCSEC_GSS calls with the srpc-dh mechanism.
public final class GSSClient: RPCClientAuthenticator {
    public var flavor: AuthFlavor { .rpcsecGSS }
    public var freshCredentialsPerTransmission: Bool { true }

    /// An established context, as the client holds it.
    public final class Context: Sendable {
        public let handle: [UInt8]
        public let group: GSSGroup
        let keys: GSSSessionKeys
        public let sequenceWindow: UInt32
        /// When the client stops using it (the server's lifetime minus a margin).
        public let renewAfter: TimeInterval
        let nextSequence = NIOLockedValueBox<UInt32>(1)
        /// When the client last saw its user logged in to the keyserver.
        let loginSeen: NIOLockedValueBox<TimeInterval>

        init(handle: [UInt8], group: GSSGroup, keys: GSSSessionKeys, sequenceWindow: UInt32, renewAfter: TimeInterval, loginSeen: TimeInterval) {
            self.loginSeen = NIOLockedValueBox(loginSeen)
            self.handle = handle
            self.group = group
            self.keys = keys
            self.sequenceWindow = sequenceWindow
            self.renewAfter = renewAfter
        }

        /// The session keys, for tests that show what an eavesdropper could do with them.
        @_spi(Testing) public var sessionKeysForTesting: GSSSessionKeys { keys }
    }

    private struct State {
        var context: Context?
        var pending: Task<Context, any Error>?
        /// Sequence numbers sent per xid beyond the first (retransmissions), for matching
        /// replies; oldest xid first.
        var sent: [UInt32: [UInt32]] = [:]
        var sentOrder: [UInt32] = []
        /// A context was made with this server before: the user's key worked then.
        var hadContext = false
    }

    public let clientNetname: String
    public let serverNetname: String
    /// The server's long-term key as given at creation (later contexts ask `serverKey`).
    public let serverPublicKey: DHPublicKey
    /// Where each new context takes the server's current key from: the directory, normally,
    /// so a long-lived client follows a server's key rotation at its next context.
    private let serverKey: @Sendable () throws -> DHPublicKey?
    public let group: GSSGroup
    public let service: GSSService
    private let keyserver: KeyServerClient
    private let now: @Sendable () -> TimeInterval
    private let state = NIOLockedValueBox(State())
    /// A context is used no longer than its user stays logged in: the keyserver is asked
    /// again when this much time has passed since it last said so (keylogout takes effect
    /// within this time, at the cost of one keyserver call per interval).
    public let loginCheckInterval: TimeInterval
    /// Renew this long before the server's lifetime ends.
    static let renewalMargin: TimeInterval = 60
    /// Renew well before the sequence numbers reach MAXSEQ.
    static let sequenceLimit: UInt32 = SRPCDH.maxSequence - 0x10000

    /// - Parameters:
    ///   - clientNetname: the caller's principal, logged in to `keyserver`.
    ///   - serverNetname: the server's principal.
    ///   - serverPublicKey: the server's long-term key of the group to use (from the directory).
    ///   - refreshServerKey: looks the server's key of this group up again for each new
    ///     context (after a rotation the old one no longer works); nil keeps `serverPublicKey`.
    ///   - keyserver: this host's keyserver, where the client's user is logged in.
    ///   - service: how each call is protected (none, integrity, privacy); never lowered.
    ///   - loginCheckInterval: how often the keyserver is asked again whether the user is
    ///     still logged in.
    ///   - now: the clock (seconds since 1970), injected by tests.
    public init(clientNetname: String, serverNetname: String, serverPublicKey: DHPublicKey, service: GSSService = .privacy,
                keyserver: KeyServerClient, loginCheckInterval: TimeInterval = 30,
                refreshServerKey: (@Sendable () throws -> DHPublicKey?)? = nil,
                now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 }) throws {
        guard let group = GSSGroup.allCases.first(where: { $0.dhGroup == serverPublicKey.group }) else {
            throw SecureRPCSetupError.weakGroup(serverPublicKey.group.rawValue)
        }
        self.clientNetname = clientNetname
        self.serverNetname = serverNetname
        self.serverPublicKey = serverPublicKey
        self.serverKey = refreshServerKey ?? { serverPublicKey }
        self.group = group
        self.service = service
        self.keyserver = keyserver
        self.loginCheckInterval = loginCheckInterval
        self.now = now
    }

    /// The context in use, if one has been made.
    public var currentContext: Context? { state.withLockedValue { $0.context } }

    // MARK: calls

    public func prepare(_ header: RPCCallHeader, arguments: ByteBuffer) async throws -> RPCPreparedCall {
        guard let context = currentContext else { throw GSSClientError.unexpectedReply("no context: call through RPCClient") }
        return try prepare(header, arguments: arguments, context: context, retransmission: header.transmission > 0)
    }

    public func prepare(_ header: RPCCallHeader, arguments: ByteBuffer, client: RPCClient) async throws -> RPCPreparedCall {
        try prepare(header, arguments: arguments, context: try await establishedContext(client), retransmission: header.transmission > 0)
    }

    private func prepare(_ header: RPCCallHeader, arguments: ByteBuffer, context: Context, retransmission: Bool = false) throws -> RPCPreparedCall {
        let sequence = context.nextSequence.withLockedValue { value -> UInt32 in
            defer { value &+= 1 }
            return value
        }
        let credential = GSSCredential(procedure: .rpcsecGssData, sequence: sequence, service: service, handle: context.handle).opaqueAuth
        let headerBytes = RPCCall.headerBytesForChecksum(xid: header.xid, program: header.program, version: header.version,
                                                         procedure: header.procedure, credential: credential)
        let verifier = OpaqueAuth(flavor: .rpcsecGSS, body: ByteBuffer(bytes: SRPCDH.mic(context.keys.clientToServer, .callHeader, headerBytes)))
        let wrapped = try SRPCDH.wrap(arguments, sequence: sequence, service: service, keys: context.keys.clientToServer, clientToServer: true)
        if retransmission { record(xid: header.xid, sequence: sequence) }
        let service = self.service
        return RPCPreparedCall(credential: credential, verifier: verifier, arguments: wrapped) { [weak self] verifier, results in
            // The reply answers this transmission (the usual case) or a retransmission of it.
            let matches = { (candidate: UInt32) in
                SRPCDH.verifyMIC(context.keys.serverToClient, .replySequence, sequence: candidate, tag: verifier.body)
            }
            let matched: UInt32?
            if verifier.flavor != .rpcsecGSS {
                matched = nil
            } else if matches(sequence) {
                matched = sequence
                self?.forget(xid: header.xid)
            } else {
                matched = self?.takeSequences(for: header.xid).first(where: matches)
            }
            guard let matched else {
                throw RPCClientError.replyVerificationFailed("the RPCSEC_GSS reply verifier does not match any sequence number sent")
            }
            do {
                return try SRPCDH.unwrap(results, sequence: matched, service: service, keys: context.keys.serverToClient, clientToServer: false)
            } catch {
                throw RPCClientError.replyVerificationFailed("\(error)")
            }
        }
    }

    /// Replies are matched against every sequence number sent for their xid; calls that never
    /// got a reply are forgotten oldest first beyond `maximumRemembered` xids.
    private static let maximumRemembered = 8192

    private func record(xid: UInt32, sequence: UInt32) {
        state.withLockedValue { state in
            if state.sent[xid] == nil {
                state.sentOrder.append(xid)
                if state.sentOrder.count > 2 * Self.maximumRemembered {
                    // Drop the order entries of xids already answered, then the oldest others.
                    state.sentOrder.removeAll { state.sent[$0] == nil }
                    while state.sentOrder.count > Self.maximumRemembered {
                        state.sent[state.sentOrder.removeFirst()] = nil
                    }
                }
            }
            state.sent[xid, default: []].append(sequence)
        }
    }

    private func takeSequences(for xid: UInt32) -> [UInt32] {
        state.withLockedValue { $0.sent.removeValue(forKey: xid) ?? [] }
    }

    private func forget(xid: UInt32) {
        state.withLockedValue { state in
            if !state.sent.isEmpty { state.sent[xid] = nil }
        }
    }

    public func refresh(after status: AuthStatus) async -> Bool {
        guard status == .gssCredentialProblem || status == .gssContextProblem else { return false }
        // The server lost or ended the context: make a new one on the next attempt.
        state.withLockedValue { $0.context = nil }
        return true
    }

    public func clientWillClose(_ client: RPCClient) async {
        let context = state.withLockedValue { state -> Context? in
            defer { state.context = nil }
            return state.context
        }
        guard let context else { return }
        await destroy(context, via: client)
    }

    /// RPCSEC_GSS_DESTROY, best effort: a server that does not answer forgets the context
    /// when its lease ends.
    private func destroy(_ context: Context, via client: RPCClient) async {
        _ = try? await client.call(program: client.program, version: client.version, procedure: 0, arguments: ByteBuffer(),
                                   timeout: .seconds(2), authenticator: GSSDestroyCall(context: context))
    }

    // MARK: context creation

    private func establishedContext(_ client: RPCClient) async throws -> Context {
        enum Next {
            case ready(Context)
            case wait(Task<Context, any Error>)
        }
        let nowSeconds = now()
        let next: Next = state.withLockedValue { state in
            if let context = state.context, nowSeconds < context.renewAfter,
               context.nextSequence.withLockedValue({ $0 }) < Self.sequenceLimit {
                return .ready(context)
            }
            if let pending = state.pending { return .wait(pending) }
            let task = Task { try await self.establish(client) }
            state.pending = task
            return .wait(task)
        }
        switch next {
        case let .ready(context):
            if nowSeconds - context.loginSeen.withLockedValue({ $0 }) >= loginCheckInterval {
                try await checkLogin(context, client)
            }
            return context
        case let .wait(task):
            do {
                let context = try await task.value
                state.withLockedValue { state in
                    state.hadContext = true
                    if state.pending == task {
                        state.pending = nil
                        state.context = context
                    }
                }
                return context
            } catch {
                state.withLockedValue { state in
                    if state.pending == task { state.pending = nil }
                }
                throw error
            }
        }
    }

    /// Asks the keyserver whether the user is still logged in; if not, destroys the context
    /// on the server and fails the call.
    private func checkLogin(_ context: Context, _ client: RPCClient) async throws {
        let answer = try await keyserver.performStrong { try await $0.keyxPublic(group.keyserverMechanism) }
        if case .keySuccess = answer {
            context.loginSeen.withLockedValue { $0 = now() }
            return
        }
        // Logged out (or refused): K_ss leased before must not make the next context.
        keyserver.forgetAllKss()
        let current = state.withLockedValue { state -> Bool in
            guard state.context === context else { return false }
            state.context = nil
            return true
        }
        if current { await destroy(context, via: client) }
        if case .default(discriminant: .keyNosecret) = answer { throw SecureRPCError.notLoggedIn(clientNetname) }
        throw SecureRPCError.keyserverRefused("\(answer)")
    }

    /// A server that says it is busy with other set-ups (GSS_S_FAILURE / busy) is asked
    /// again this many times, after 25, 50, 100 ms (plus up to as much again at random).
    static let busyRetries = 3

    private func establish(_ client: RPCClient) async throws -> Context {
        var attempt = 0
        var leaseAllowed = true
        while true {
            do {
                return try await establishOnce(client, leaseAllowed: leaseAllowed)
            } catch let GSSClientError.contextRefused(_, minor) where minor == GSSMinorStatus.busy.rawValue && attempt < Self.busyRetries {
                let wait = 25 << attempt
                attempt += 1
                try await Task.sleep(for: .milliseconds(wait + Int.random(in: 0...wait)))
            } catch is LeasedKssRefused where leaseAllowed {
                // Our key changed while the keyserver's lease on the old K_ss lasted: once
                // more with K_ss fresh from the keyserver.
                leaseAllowed = false
            }
        }
    }

    /// The server did not accept the INIT's authenticator made with a leased K_ss.
    private struct LeasedKssRefused: Error {}

    private func establishOnce(_ client: RPCClient, leaseAllowed: Bool) async throws -> Context {
        // K_ss from our keyserver: proves the INIT comes from the holder of our secret key.
        guard let serverPublicKey = try serverKey(), serverPublicKey.group == group.dhGroup else {
            throw SecureRPCSetupError.unknownServer(serverNetname, mechanism: group.rawValue)
        }
        let kssArgument = KeyxDeriveArg(mechanism: group.keyserverMechanism, peer: serverPublicKey.bytes,
                                        info: SRPCDH.kssInfo(group: group, client: clientNetname, server: serverNetname))
        if !leaseAllowed { keyserver.forgetKss(kssArgument) }
        let kss: SecretBytes, kssFromLease: Bool
        switch try await keyserver.kss(kssArgument) {
        case let .key(key, fromLease):
            (kss, kssFromLease) = (key, fromLease)
        case .refused(.keyNosecret):
            throw SecureRPCError.notLoggedIn(clientNetname)
        case let .refused(status):
            throw SecureRPCError.keyserverRefused("\(status)")
        }

        let ephemeral = EphemeralKeyReserve.shared.take(group.dhGroup)
        let body = SrpcDhInitBody(
            tokenVersion: SRPCDH.tokenVersion, group: group.wire, client: clientNetname, server: serverNetname,
            clientEphemeral: ephemeral.publicKey.bytes, timestamp: UInt64(max(0, now() * 1_000_000)),
            nonce: RandomBytes.array(count: 16)
        )
        let token = try SRPCDH.sealAuthenticator(kss: kss, body: body)
        let initCall = GSSInitCall()
        let results = try await client.call(
            program: client.program, version: client.version, procedure: 0,
            arguments: RpcGssInitArg(gssToken: Array(token.xdrEncoded().readableBytesView)).xdrEncoded(),
            authenticator: initCall
        )
        let result: RpcGssInitRes
        do {
            result = try results.decodeXDRExactly(RpcGssInitRes.self)
        } catch {
            throw GSSClientError.unexpectedReply("init result: \(error)")
        }
        guard result.gssMajor == GSSMajorStatus.complete else {
            // The key worked for an earlier context; now the server's directory has none for
            // us, or another one (the authenticator, made with the key our keyserver holds,
            // fails): it was revoked or replaced since. Say so, in words that tell what to do.
            let minor = GSSMinorStatus(rawValue: result.gssMinor)
            if minor == .badAuthenticator, kssFromLease { throw LeasedKssRefused() }
            if minor == .unknownClient || minor == .badAuthenticator, state.withLockedValue({ $0.hadContext }) {
                throw SecureRPCError.keyChangedOrRevoked(clientNetname)
            }
            throw GSSClientError.contextRefused(major: result.gssMajor, minor: result.gssMinor)
        }
        let reply: SrpcDhReplyToken
        do {
            reply = try ByteBuffer(bytes: result.gssToken).decodeXDRExactly(SrpcDhReplyToken.self)
        } catch {
            throw GSSClientError.unexpectedReply("reply token: \(error)")
        }
        // The group is echoed and covered by the confirmation: a reply for another group
        // (a downgrade) cannot verify.
        guard reply.body.tokenVersion == SRPCDH.tokenVersion, GSSGroup(wire: reply.body.group) == group else {
            throw GSSClientError.serverNotAuthenticated("the reply names another token version or group")
        }
        guard let serverEphemeral = try? DHPublicKey(group: group.dhGroup, bytes: reply.body.serverEphemeral) else {
            throw GSSClientError.serverNotAuthenticated("invalid ephemeral public key")
        }
        let shared = try ephemeral.sharedSecret(with: serverEphemeral)
        let transcript = SRPCDH.transcript(initToken: token, replyBody: reply.body)
        let keys = SRPCDH.sessionKeys(kss: kss, ephemeralShared: shared, clientNonce: body.nonce, serverNonce: reply.body.nonce, transcript: transcript)
        guard SecretBytes.constantTimeEqual(SRPCDH.confirmation(keys: keys, transcript: transcript), reply.confirmation) else {
            throw GSSClientError.serverNotAuthenticated("the confirmation tag does not verify")
        }
        guard let verifier = initCall.replyVerifier,
              verifier.flavor == .rpcsecGSS,
              SRPCDH.verifyMIC(keys.serverToClient, .sequenceWindow, sequence: result.seqWindow, tag: verifier.body) else {
            throw GSSClientError.serverNotAuthenticated("the reply verifier over the sequence window does not verify")
        }
        guard result.handle.count > 0, result.seqWindow > 0 else {
            throw GSSClientError.unexpectedReply("empty handle or sequence window")
        }
        let lifetime = TimeInterval(reply.body.lifetime)
        let established = now()
        return Context(handle: result.handle, group: group, keys: keys, sequenceWindow: result.seqWindow,
                       renewAfter: established + max(lifetime - Self.renewalMargin, lifetime / 2), loginSeen: established)
    }
}

/// The credential of an INIT call: no handle, AUTH_NONE verifier. Keeps the reply's
/// verifier, which the client checks once it has the session keys.
final class GSSInitCall: RPCClientAuthenticator {
    var flavor: AuthFlavor { .rpcsecGSS }
    private let verifier = NIOLockedValueBox<OpaqueAuth?>(nil)

    var replyVerifier: OpaqueAuth? { verifier.withLockedValue { $0 } }

    func prepare(_ header: RPCCallHeader, arguments: ByteBuffer) async throws -> RPCPreparedCall {
        let credential = GSSCredential(procedure: .rpcsecGssInit, sequence: 0, service: .none, handle: []).opaqueAuth
        return RPCPreparedCall(credential: credential, verifier: .none, arguments: arguments) { [verifier] replyVerifier, results in
            verifier.withLockedValue { $0 = replyVerifier }
            return results
        }
    }
}

/// DESTROY: the context's next sequence number and header MIC, procedure NULL.
struct GSSDestroyCall: RPCClientAuthenticator {
    var flavor: AuthFlavor { .rpcsecGSS }
    let context: GSSClient.Context

    func prepare(_ header: RPCCallHeader, arguments: ByteBuffer) async throws -> RPCPreparedCall {
        let sequence = context.nextSequence.withLockedValue { value -> UInt32 in
            defer { value &+= 1 }
            return value
        }
        let credential = GSSCredential(procedure: .rpcsecGssDestroy, sequence: sequence, service: .none, handle: context.handle).opaqueAuth
        let headerBytes = RPCCall.headerBytesForChecksum(xid: header.xid, program: header.program, version: header.version,
                                                         procedure: header.procedure, credential: credential)
        let verifier = OpaqueAuth(flavor: .rpcsecGSS, body: ByteBuffer(bytes: SRPCDH.mic(context.keys.clientToServer, .callHeader, headerBytes)))
        return RPCPreparedCall(credential: credential, verifier: verifier, arguments: arguments)
    }
}
