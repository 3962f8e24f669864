// The server side of RPCSEC_GSS with the srpc-dh mechanism. Context creation (INIT) waits
// for the keyserver and does two modular exponentiations, so it runs off the event loop;
// DATA and DESTROY calls are decided on the event loop: a context lookup, one HMAC over
// the header, the sequence window, and the unwrap of the body. Order and statuses follow
// RFC 2203 §5.3.3 and Linux's svcauth_gss (PROTOCOL.md §7): unknown handle or bad header
// MIC → RPCSEC_GSS_CREDPROBLEM; expired context or seq ≥ MAXSEQ → RPCSEC_GSS_CTXPROBLEM;
// a sequence number seen before or below the window → no reply at all; a body whose
// checksum or encryption does not verify → GARBAGE_ARGS.

import Foundation
import KeyCrypto
import KeyServer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XDR

/// Verifies RPCSEC_GSS calls made with the srpc-dh mechanism.
public final class GSSServer: RPCServerAuthenticator {
    public var flavor: AuthFlavor { .rpcsecGSS }

    /// What the server accepts and how much it holds.
    public struct Configuration: Sendable {
        /// The server's own netname: INIT tokens must name it, and the keyserver answers
        /// for this process's uid, which must be logged in under this name.
        public var serverNetname: String
        /// Groups a client may create a context with.
        public var groups: Set<GSSGroup> = [.ffdhe2048, .ffdhe3072, .ffdhe4096]
        /// How long a context lives before the client must make a new one.
        public var contextLifetime: TimeInterval = 8 * 3600
        /// Contexts held at once; the least recently used is dropped beyond this (its
        /// client gets RPCSEC_GSS_CREDPROBLEM once and makes a new one).
        public var maximumContexts = 4096
        /// The sequence window advertised to clients (a multiple of 64).
        public var sequenceWindow: UInt32 = SRPCDH.defaultSequenceWindow
        /// How far an INIT timestamp may be from the server's clock, either way.
        public var clockSkew: TimeInterval = 300
        /// INIT tokens remembered for replay detection (each for 2 × clockSkew).
        public var maximumRememberedTokens = 100_000
        /// Netnames `unix.UID@localDomain` are mapped to the local user's uid and groups.
        public var localDomain: String?

        public init(serverNetname: String) {
            self.serverNetname = serverNetname
        }
    }

    /// Counters for tests and metrics.
    public struct Statistics: Sendable, Equatable {
        public var contextsCreated = 0
        public var contextsDestroyed = 0
        public var contextsEvicted = 0
        public var initRefused = 0
        /// DATA calls dropped because their sequence number was seen before or too old.
        public var replaysDropped = 0
        public var bodiesRefused = 0
    }

    final class Context: Sendable {
        let handle: [UInt8]
        let client: String
        let group: GSSGroup
        let keys: GSSSessionKeys
        let expires: TimeInterval
        /// The caller as handlers see it, per service (made once, not per call).
        let callers: [RPCCaller]

        init(handle: [UInt8], client: String, group: GSSGroup, keys: GSSSessionKeys, expires: TimeInterval, caller: RPCCaller) {
            self.handle = handle
            self.client = client
            self.group = group
            self.keys = keys
            self.expires = expires
            callers = GSSService.allCases.map { service in
                var variant = caller
                variant.mechanism = "\(SRPCDH.mechanismName) \(group)/\(service)"
                variant.protection = service.protection
                return variant
            }
        }

        func caller(_ service: GSSService) -> RPCCaller {
            switch service {
            case .none: return callers[0]
            case .integrity: return callers[1]
            case .privacy: return callers[2]
            }
        }
    }

    /// A context's mutable part. A class, so a call updates the window in place (the lock
    /// guards it) instead of copying the bitmap out of the table and back.
    private final class Slot: @unchecked Sendable {  // only touched under `state`'s lock
        let context: Context
        var window: GSSSequenceWindow
        var lastUsed: UInt64

        init(context: Context, window: GSSSequenceWindow, lastUsed: UInt64) {
            self.context = context
            self.window = window
            self.lastUsed = lastUsed
        }
    }

    private struct TokenKey: Hashable {
        var client: String
        var timestamp: UInt64
        var nonce: [UInt8]
    }

    private struct State {
        var contexts: [[UInt8]: Slot] = [:]
        var clock: UInt64 = 0
        var seenTokens: [TokenKey: TimeInterval] = [:]
        var pruneAt = 1024
        var statistics = Statistics()
    }

    public let configuration: Configuration
    private let keyserver: KeyServerClient
    private let publicKey: @Sendable (String, GSSGroup) -> DHPublicKey?
    private let now: @Sendable () -> TimeInterval
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    /// - Parameters:
    ///   - keyserver: this host's keyserver, as the server process's uid.
    ///   - publicKey: the directory lookup of a client's public key of a group.
    public init(configuration: Configuration, keyserver: KeyServerClient,
                logger: Logger = Logger(label: "securerpc.gss"),
                now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 },
                publicKey: @escaping @Sendable (String, GSSGroup) -> DHPublicKey?) {
        precondition(configuration.sequenceWindow >= 64 && configuration.sequenceWindow % 64 == 0)
        self.configuration = configuration
        self.keyserver = keyserver
        self.publicKey = publicKey
        self.now = now
        self.logger = logger
    }

    public var statistics: Statistics { state.withLockedValue { $0.statistics } }
    public var contextCount: Int { state.withLockedValue { $0.contexts.count } }

    // MARK: DATA and DESTROY (on the event loop)

    public func authenticateImmediately(_ call: RPCCall, context: RPCCallContext) -> RPCAuthDecision? {
        switch Self.decodeCredential(call) {
        case let .refused(status):
            return .rejected(status)
        case let .credential(credential):
            switch credential.procedure {
            case .rpcsecGssInit, .rpcsecGssContinueInit: return nil
            case .rpcsecGssData, .rpcsecGssDestroy: return dataOrDestroy(call, credential)
            }
        }
    }

    private enum DecodedCredential {
        case credential(GSSCredential)
        case refused(AuthStatus)
    }

    /// Another version → AUTH_REJECTEDCRED (RFC 2203 erratum 4067); not a credential → AUTH_BADCRED.
    private static func decodeCredential(_ call: RPCCall) -> DecodedCredential {
        do {
            return .credential(try GSSCredential.decode(call.credential))
        } catch .unsupportedVersion {
            return .refused(.rejectedCredential)
        } catch {
            return .refused(.badCredential)
        }
    }

    private func dataOrDestroy(_ call: RPCCall, _ credential: GSSCredential) -> RPCAuthDecision {
        let nowSeconds = now()
        let sequence = credential.sequence
        // Header MIC and window under the lock: the window must see each number once.
        enum Lookup { case found(Context), decided(RPCAuthDecision) }
        let found: Lookup = state.withLockedValue { state in
            guard let slot = state.contexts[credential.handle] else { return .decided(.rejected(.gssCredentialProblem)) }
            let context = slot.context
            guard call.verifier.flavor == .rpcsecGSS,
                  SRPCDH.verifyMIC(context.keys.clientToServer, .callHeader, call.headerBytes, tag: call.verifier.body) else {
                return .decided(.rejected(.gssCredentialProblem))
            }
            if nowSeconds >= context.expires {
                state.contexts[credential.handle] = nil
                return .decided(.rejected(.gssContextProblem))
            }
            if sequence >= SRPCDH.maxSequence { return .decided(.rejected(.gssContextProblem)) }
            guard slot.window.accept(sequence) else {
                state.statistics.replaysDropped += 1
                return .decided(.drop)
            }
            state.clock += 1
            slot.lastUsed = state.clock
            if credential.procedure == .rpcsecGssDestroy {
                state.contexts[credential.handle] = nil
                state.statistics.contextsDestroyed += 1
            }
            return .found(context)
        }
        let context: Context
        switch found {
        case let .decided(decision):
            if case .drop = decision {
                logger.debug("RPCSEC_GSS call dropped: sequence number seen before or below the window", metadata: ["xid": "\(call.xid)", "seq": "\(sequence)"])
            }
            return decision
        case let .found(value):
            context = value
        }
        let replyVerifier = SRPCDH.verifier(context.keys.serverToClient, .replySequence, sequence: sequence)

        if credential.procedure == .rpcsecGssDestroy {
            logger.debug("RPCSEC_GSS context destroyed", metadata: ["client": "\(context.client)"])
            return .handled(verifier: replyVerifier, .success(ByteBuffer()))
        }
        let arguments: ByteBuffer
        do {
            arguments = try SRPCDH.unwrap(call.arguments, sequence: sequence, service: credential.service,
                                          keys: context.keys.clientToServer, clientToServer: true)
        } catch {
            state.withLockedValue { $0.statistics.bodiesRefused += 1 }
            logger.info("RPCSEC_GSS body refused", metadata: ["xid": "\(call.xid)", "client": "\(context.client)", "error": "\(error)"])
            return .handled(verifier: replyVerifier, .garbageArguments)
        }
        let caller = context.caller(credential.service)
        let wrapper: (any RPCResultWrapper)? = credential.service == .none ? nil
            : GSSResultWrapper(keys: context.keys.serverToClient, sequence: sequence, service: credential.service)
        return .accepted(RPCAcceptedCall(caller: caller, replyVerifier: replyVerifier, arguments: arguments, resultWrapper: wrapper))
    }

    // MARK: INIT (off the event loop)

    public func authenticate(_ call: RPCCall, context: RPCCallContext) async -> RPCAuthDecision {
        let credential: GSSCredential
        switch Self.decodeCredential(call) {
        case let .refused(status):
            return .rejected(status)
        case let .credential(decoded):
            credential = decoded
        }
        switch credential.procedure {
        case .rpcsecGssData, .rpcsecGssDestroy:
            return dataOrDestroy(call, credential)
        case .rpcsecGssContinueInit:
            guard call.procedure == 0, call.verifier.flavor == .none else { return .rejected(.badCredential) }
            return refuse(GSSMajorStatus.failure, .notSingleRoundTrip, detail: "CONTINUE_INIT")
        case .rpcsecGssInit:
            // Procedure NULL, AUTH_NONE verifier (RFC 2203 §5.2.2).
            guard call.procedure == 0, call.verifier.flavor == .none else { return .rejected(.badCredential) }
            guard let argument = try? call.arguments.decodeXDRExactly(RpcGssInitArg.self) else {
                return .handled(verifier: .none, .garbageArguments)
            }
            return await initContext(token: argument.gssToken)
        }
    }

    private func refuse(_ major: UInt32, _ minor: GSSMinorStatus, detail: String) -> RPCAuthDecision {
        state.withLockedValue { $0.statistics.initRefused += 1 }
        logger.info("RPCSEC_GSS context refused", metadata: ["reason": "\(minor)", "detail": "\(detail)"])
        let result = RpcGssInitRes(handle: [], gssMajor: major, gssMinor: minor.rawValue, seqWindow: 0, gssToken: [])
        return .handled(verifier: .none, .success(result.xdrEncoded()))
    }

    private func initContext(token tokenBytes: [UInt8]) async -> RPCAuthDecision {
        guard let token = try? ByteBuffer(bytes: tokenBytes).decodeXDRExactly(SrpcDhInitToken.self) else {
            return refuse(GSSMajorStatus.defectiveToken, .malformedToken, detail: "INIT token")
        }
        let body = token.body
        guard body.tokenVersion == SRPCDH.tokenVersion else {
            return refuse(GSSMajorStatus.defectiveToken, .badTokenVersion, detail: "version \(body.tokenVersion)")
        }
        let group = GSSGroup(wire: body.group)
        guard configuration.groups.contains(group) else {
            return refuse(GSSMajorStatus.badMech, .groupNotAccepted, detail: "\(group) from \(body.client)")
        }
        guard body.server == configuration.serverNetname else {
            return refuse(GSSMajorStatus.badName, .wrongServer, detail: "token for \(body.server)")
        }
        let nowSeconds = now()
        let stamp = Double(body.timestamp) / 1_000_000
        guard abs(stamp - nowSeconds) <= configuration.clockSkew else {
            return refuse(GSSMajorStatus.oldToken, .clockSkew, detail: "\(body.client) is \(Int(stamp - nowSeconds)) s off")
        }
        guard let clientStatic = publicKey(body.client, group) else {
            return refuse(GSSMajorStatus.defectiveCredential, .unknownClient, detail: "\(body.client) \(group)")
        }
        guard let clientEphemeral = try? DHPublicKey(group: group.dhGroup, bytes: body.clientEphemeral) else {
            return refuse(GSSMajorStatus.defectiveToken, .badEphemeralKey, detail: "from \(body.client)")
        }
        let info = SRPCDH.kssInfo(group: group, client: body.client, server: configuration.serverNetname)
        let derived: KeyxDeriveRes
        do {
            derived = try await keyserver.performStrong {
                try await $0.keyxDerive(KeyxDeriveArg(mechanism: group.keyserverMechanism, peer: clientStatic.bytes, info: info))
            }
        } catch {
            logger.error("keyserver unavailable for RPCSEC_GSS", metadata: ["error": "\(error)"])
            return refuse(GSSMajorStatus.noCred, .serverNotLoggedIn, detail: "\(error)")
        }
        guard case let .keySuccess(kssBytes) = derived else {
            return refuse(GSSMajorStatus.noCred, .serverNotLoggedIn, detail: "\(configuration.serverNetname) \(group)")
        }
        var kssCopy = kssBytes
        let kss = SecretBytes(copying: kssCopy)
        SecretBytes.wipe(&kssCopy)
        guard SRPCDH.openAuthenticator(kss: kss, token: token) else {
            return refuse(GSSMajorStatus.badSig, .badAuthenticator, detail: "from \(body.client)")
        }
        // Only a verified token enters the replay cache, so nobody can block another
        // client's INIT by sending its nonce first.
        let replay: GSSMinorStatus? = state.withLockedValue { state in
            let key = TokenKey(client: body.client, timestamp: body.timestamp, nonce: body.nonce)
            if state.seenTokens.count >= state.pruneAt {
                state.seenTokens = state.seenTokens.filter { $0.value > nowSeconds }
                state.pruneAt = max(1024, state.seenTokens.count * 2)
            }
            if let until = state.seenTokens[key], until > nowSeconds { return .replayedToken }
            if state.seenTokens.count >= configuration.maximumRememberedTokens { return .replayCacheFull }
            state.seenTokens[key] = stamp + 2 * configuration.clockSkew
            return nil
        }
        if let replay {
            return refuse(replay == .replayedToken ? GSSMajorStatus.duplicateToken : GSSMajorStatus.failure, replay, detail: "from \(body.client)")
        }

        let ephemeral = DHPrivateKey.generate(group: group.dhGroup)
        guard let ephemeralShared = try? ephemeral.sharedSecret(with: clientEphemeral) else {
            return refuse(GSSMajorStatus.defectiveToken, .badEphemeralKey, detail: "from \(body.client)")
        }
        let replyBody = SrpcDhReplyBody(
            tokenVersion: SRPCDH.tokenVersion, group: group.wire, serverEphemeral: ephemeral.publicKey.bytes,
            nonce: (0..<16).map { _ in UInt8.random(in: 0...255) }, lifetime: UInt32(configuration.contextLifetime)
        )
        let transcript = SRPCDH.transcript(initToken: token, replyBody: replyBody)
        let keys = SRPCDH.sessionKeys(kss: kss, ephemeralShared: ephemeralShared, clientNonce: body.nonce,
                                      serverNonce: replyBody.nonce, transcript: transcript)
        // `ephemeral` and `ephemeralShared` are SecretBytes-backed and wiped when they go
        // out of scope here: nothing that could recompute the session keys outlives INIT.
        let replyToken = SrpcDhReplyToken(body: replyBody, confirmation: SRPCDH.confirmation(keys: keys, transcript: transcript))

        var caller = RPCCaller(flavor: .rpcsecGSS, isVerified: true, netname: body.client,
                               mechanism: "\(SRPCDH.mechanismName) \(group)", keyExchangeBits: group.bits)
        if let localDomain = configuration.localDomain,
           let credentials = KeyServerService.unixCredentials(netname: body.client, domain: localDomain) {
            caller.uid = credentials.uid
            caller.gid = credentials.gid
            caller.gids = credentials.gids
        }
        let handle = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let context = Context(handle: handle, client: body.client, group: group, keys: keys,
                              expires: nowSeconds + configuration.contextLifetime, caller: caller)
        let evicted: Int = state.withLockedValue { state in
            state.clock += 1
            state.contexts[handle] = Slot(context: context, window: GSSSequenceWindow(size: configuration.sequenceWindow), lastUsed: state.clock)
            state.statistics.contextsCreated += 1
            var evicted = 0
            while state.contexts.count > configuration.maximumContexts,
                  let oldest = state.contexts.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                state.contexts[oldest] = nil
                evicted += 1
            }
            state.statistics.contextsEvicted += evicted
            return evicted
        }
        if evicted > 0 { logger.debug("RPCSEC_GSS contexts evicted (table full)", metadata: ["count": "\(evicted)"]) }
        logger.debug("RPCSEC_GSS context created", metadata: ["client": "\(body.client)", "group": "\(group)"])
        let result = RpcGssInitRes(handle: handle, gssMajor: GSSMajorStatus.complete, gssMinor: 0,
                                   seqWindow: configuration.sequenceWindow, gssToken: Array(replyToken.xdrEncoded().readableBytesView))
        let verifier = OpaqueAuth(flavor: .rpcsecGSS, body: ByteBuffer(bytes: SRPCDH.mic(keys.serverToClient, .sequenceWindow, sequence: configuration.sequenceWindow)))
        return .handled(verifier: verifier, .success(result.xdrEncoded()))
    }

    /// Forgets every context of `client` (after its key was revoked, say).
    public func destroyContexts(of client: String) {
        state.withLockedValue { state in
            state.contexts = state.contexts.filter { $0.value.context.client != client }
        }
    }
}

/// Wraps one call's results for integrity or privacy under the server-to-client keys.
struct GSSResultWrapper: RPCResultWrapper {
    let keys: GSSDirectionKeys
    let sequence: UInt32
    let service: GSSService

    func wrap(into reply: inout ByteBuffer, encodeResults: (inout ByteBuffer) -> Void) throws {
        try SRPCDH.wrap(into: &reply, sequence: sequence, service: service, keys: keys, clientToServer: false, encodeBody: encodeResults)
    }
}
