// The server side of RPCSEC_GSS with the srpc-dh mechanism. Context creation (INIT) waits
// for the keyserver and does two modular exponentiations, so it runs off the event loop;
// DATA and DESTROY calls are decided on the event loop: a context lookup, one HMAC over
// the header, the sequence window, and the unwrap of the body. Order and statuses follow
// RFC 2203 §5.3.3 and Linux's svcauth_gss (PROTOCOL.md §7): unknown handle or bad header
// MIC → RPCSEC_GSS_CREDPROBLEM; expired context or seq ≥ MAXSEQ → RPCSEC_GSS_CTXPROBLEM;
// a sequence number seen before or below the window → no reply at all; a body whose
// checksum or encryption does not verify → GARBAGE_ARGS. Every `keyRecheckInterval` a DATA
// call of each context goes off the loop instead, to look the client's key up again: a key
// revoked or replaced ends the context (CREDPROBLEM; the client's new INIT is then refused).
//
// Trust: an INIT is the peer's word until its authenticator opens under K_ss. Before that the
// server only decodes (bounded), checks the names' syntax (nothing unchecked is logged or
// looked up), and asks HandshakeAdmission — then pays for the lookup, the keyserver call and
// the AEAD. Context and replay tables are bounded overall and per client netname.

import Foundation
import KeyCrypto
import KeyDirectory
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
        /// Contexts held at once; beyond this one is dropped (its client gets
        /// RPCSEC_GSS_CREDPROBLEM once and makes a new one): the least recently used of a
        /// client over its share if there is one, else the least recently used of all.
        public var maximumContexts = 4096
        /// Contexts one client netname may hold; nil: a quarter of `maximumContexts`. A
        /// client making more loses its own least recently used context, nobody else's.
        public var maximumContextsPerClient: Int?
        /// The sequence window advertised to clients (a multiple of 64).
        public var sequenceWindow: UInt32 = SRPCDH.defaultSequenceWindow
        /// How far an INIT timestamp may be from the server's clock, either way.
        public var clockSkew: TimeInterval = 300
        /// Verified INIT tokens remembered for replay detection, each until its timestamp
        /// is `clockSkew` old (16 bytes each; 300 INITs/s need about 93,000).
        public var maximumRememberedTokens = 200_000
        /// The share of them one client netname may hold (it is refused beyond, alone).
        public var maximumRememberedTokensPerClient = 20_000
        /// How often a context's client key is looked up again in the directory (on the
        /// next DATA call after this much time): a key revoked or replaced ends the
        /// context within this time plus one call.
        public var keyRecheckInterval: TimeInterval = 30
        /// Limits on INITs before they cost a directory lookup, a keyserver call or a
        /// modular exponentiation (see ``HandshakeAdmission``).
        public var admission = HandshakeAdmission.Limits()
        /// Netnames `unix.UID@localDomain` are mapped to the local user's uid and groups.
        public var localDomain: String?

        public init(serverNetname: String) {
            self.serverNetname = serverNetname
        }

        var contextsPerClient: Int { max(1, maximumContextsPerClient ?? maximumContexts / 4) }
    }

    /// Counters for tests and metrics.
    public struct Statistics: Sendable, Equatable {
        public var contextsCreated = 0
        public var contextsDestroyed = 0
        public var contextsEvicted = 0
        /// Of the evicted, those dropped because their client was over its share.
        public var contextsEvictedOverQuota = 0
        /// Contexts ended because their client's key was revoked or replaced.
        public var contextsEndedByKeyChange = 0
        /// Directory look-ups made to re-check live contexts' client keys.
        public var keyRechecks = 0
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
        /// The client's long-term key the context was made with (re-checked against the
        /// directory every `keyRecheckInterval`).
        let clientKey: DHPublicKey
        /// The caller as handlers see it, per service (made once, not per call).
        let callers: [RPCCaller]

        init(handle: [UInt8], client: String, group: GSSGroup, keys: GSSSessionKeys, expires: TimeInterval,
             clientKey: DHPublicKey, caller: RPCCaller) {
            self.handle = handle
            self.client = client
            self.group = group
            self.keys = keys
            self.expires = expires
            self.clientKey = clientKey
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
        /// When the client's key was last found unchanged in the directory.
        var keyCheckedAt: TimeInterval
        /// A call is looking the key up now; others go on meanwhile.
        var keyRecheckRunning = false

        init(context: Context, window: GSSSequenceWindow, lastUsed: UInt64, keyCheckedAt: TimeInterval) {
            self.context = context
            self.window = window
            self.lastUsed = lastUsed
            self.keyCheckedAt = keyCheckedAt
        }
    }

    private struct State {
        /// Every context, least recently used first.
        var contexts = LRUTable<[UInt8], Slot>()
        /// Handles per client netname: the quota and `destroyContexts(of:)`.
        var byClient: [String: Set<[UInt8]>] = [:]
        var clock: UInt64 = 0
        var replay: GSSReplayCache
        var statistics = Statistics()
        var refusalLog = RefusalLog()

        @discardableResult
        mutating func remove(_ handle: [UInt8]) -> Slot? {
            guard let slot = contexts.remove(handle) else { return nil }
            SecureRPCMetrics.gssContexts.record(contexts.count)
            let client = slot.context.client
            if byClient[client]?.remove(handle) != nil, byClient[client]?.isEmpty == true { byClient[client] = nil }
            return slot
        }
    }

    public let configuration: Configuration
    private let keyserver: KeyServerClient
    /// Clients' public keys: the directory file, the site's directory service, or a closure.
    private let keys: any PublicKeySource
    private let now: @Sendable () -> TimeInterval
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    /// Bounds INITs before they cost anything (the AUTH_DH fullname path can share the type).
    public let admission: HandshakeAdmission

    /// - Parameters:
    ///   - configuration: the server's netname, groups, limits.
    ///   - keyserver: this host's keyserver, as the server process's uid.
    ///   - logger: where refusals and context events go.
    ///   - now: the clock (seconds since 1970), injected by tests.
    ///   - publicKey: the directory lookup of a client's public key of a group; also asked
    ///     again for live contexts every `keyRecheckInterval` (nil: revoked or gone).
    public convenience init(configuration: Configuration, keyserver: KeyServerClient,
                            logger: Logger = Logger(label: "securerpc.gss"),
                            now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 },
                            publicKey: @escaping @Sendable (String, GSSGroup) -> DHPublicKey?) {
        self.init(configuration: configuration, keyserver: keyserver, logger: logger, now: now,
                  keys: ClosurePublicKeySource { netname, mechanism in
                      GSSGroup(rawValue: mechanism.rawValue).flatMap { publicKey(netname, $0) }
                  })
    }

    /// - Parameters:
    ///   - configuration: the server's netname, groups, limits.
    ///   - keyserver: this host's keyserver, as the server process's uid.
    ///   - logger: where refusals and context events go.
    ///   - now: the clock (seconds since 1970), injected by tests.
    ///   - keys: where clients' public keys come from (a local directory file, or the site's
    ///     directory service through `NetworkKeyLookup`). Asked at every INIT and again for
    ///     live contexts every `keyRecheckInterval`; when it reports a changed principal
    ///     (the directory's change feed), that principal's contexts are checked at once.
    public init(configuration: Configuration, keyserver: KeyServerClient,
                logger: Logger = Logger(label: "securerpc.gss"),
                now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 },
                keys: any PublicKeySource) {
        precondition(configuration.sequenceWindow >= 64 && configuration.sequenceWindow % 64 == 0)
        self.configuration = configuration
        self.keyserver = keyserver
        self.keys = keys
        self.now = now
        self.logger = logger
        state = NIOLockedValueBox(State(replay: GSSReplayCache(lifetime: configuration.clockSkew,
                                                               capacity: configuration.maximumRememberedTokens,
                                                               perClientCapacity: configuration.maximumRememberedTokensPerClient)))
        admission = HandshakeAdmission(limits: configuration.admission, now: now)
        keys.observeChanges { [weak self] netname in
            guard let self, let netname else { return }
            Task { await self.recheckContexts(of: netname) }
        }
    }

    /// The directory says `client`'s keys changed: end its contexts made with a key that is
    /// no longer the directory's (now, not at the next re-check). A lookup that fails keeps
    /// them: the regular re-check tries again.
    public func recheckContexts(of client: String) async {
        let groups: Set<GSSGroup> = state.withLockedValue { state in
            Set((state.byClient[client] ?? []).compactMap { state.contexts[$0]?.context.group })
        }
        for group in groups {
            let current: DHPublicKey?
            do {
                current = try await keys.fetchPublicKey(netname: client, mechanism: group.dhGroup)
            } catch {
                continue
            }
            endContexts(of: client, group: group, keptKey: current)
        }
    }

    @discardableResult
    private func endContexts(of client: String, group: GSSGroup, keptKey: DHPublicKey?) -> Int {
        let ended: Int = state.withLockedValue { state in
            var ended = 0
            for handle in state.byClient[client] ?? [] {
                guard let other = state.contexts[handle]?.context, other.group == group, other.clientKey != keptKey else { continue }
                state.remove(handle)
                ended += 1
            }
            state.statistics.contextsEndedByKeyChange += ended
            return ended
        }
        if ended > 0 {
            logger.notice("RPCSEC_GSS contexts ended: the client's key was revoked or replaced", metadata: [
                "client": "\(client)", "group": "\(group)", "contexts": "\(ended)",
                "key": "\(keptKey == nil ? "revoked or gone" : "replaced")",
            ])
        }
        return ended
    }

    public var statistics: Statistics { state.withLockedValue { $0.statistics } }
    public var contextCount: Int { state.withLockedValue { $0.contexts.count } }
    /// Contexts `client` holds now.
    public func contextCount(of client: String) -> Int { state.withLockedValue { $0.byClient[client]?.count ?? 0 } }
    /// INIT tokens remembered now (replay detection).
    public var rememberedTokenCount: Int { state.withLockedValue { $0.replay.count } }

    // MARK: DATA and DESTROY (on the event loop)

    public func authenticateImmediately(_ call: RPCCall, context: RPCCallContext) -> RPCAuthDecision? {
        switch Self.decodeCredential(call) {
        case let .refused(status):
            return .rejected(status)
        case let .credential(credential):
            switch credential.procedure {
            case .rpcsecGssInit: return initImmediately(call, context: context)
            case .rpcsecGssContinueInit: return nil
            case .rpcsecGssData, .rpcsecGssDestroy:
                // nil: the client's key is due for a look-up, which must not block the loop.
                switch dataOrDestroy(call, credential, recheck: .defer) {
                case let .decided(decision): return decision
                case .recheck: return nil
                }
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

    private enum DataStep {
        case decided(RPCAuthDecision)
        /// The context's client key must be looked up before the call is decided.
        case recheck(Context)
    }

    /// What to do when a context's client key is due for a look-up.
    private enum RecheckMode {
        /// Answer `.recheck` (the event loop: the look-up happens off it).
        case `defer`
        /// Answer `.recheck` and mark the look-up as running, so concurrent calls go on meanwhile.
        case start
        /// Decide now (the look-up just happened).
        case skip
    }

    /// Decides a DATA or DESTROY call, or answers `.recheck` when the context's client key
    /// is due for a look-up. The header MIC is verified first, so only a holder of the
    /// context can make the server look anything up.
    private func dataOrDestroy(_ call: RPCCall, _ credential: GSSCredential, recheck: RecheckMode) -> DataStep {
        let nowSeconds = now()
        let sequence = credential.sequence
        let recheckInterval = configuration.keyRecheckInterval
        // Header MIC and window under the lock: the window must see each number once.
        enum Lookup { case found(Context), decided(RPCAuthDecision), recheck(Context) }
        let found: Lookup = state.withLockedValue { state in
            guard let position = state.contexts.position(of: credential.handle) else { return .decided(.rejected(.gssCredentialProblem)) }
            let slot = state.contexts.value(at: position)
            let context = slot.context
            guard call.verifier.flavor == .rpcsecGSS,
                  SRPCDH.verifyMIC(context.keys.clientToServer, .callHeader, call.headerBytes, tag: call.verifier.body) else {
                return .decided(.rejected(.gssCredentialProblem))
            }
            if nowSeconds >= context.expires {
                state.remove(credential.handle)
                return .decided(.rejected(.gssContextProblem))
            }
            if sequence >= SRPCDH.maxSequence { return .decided(.rejected(.gssContextProblem)) }
            if recheck != .skip, nowSeconds - slot.keyCheckedAt >= recheckInterval, !slot.keyRecheckRunning {
                if recheck == .start { slot.keyRecheckRunning = true }
                return .recheck(context)
            }
            guard slot.window.accept(sequence) else {
                state.statistics.replaysDropped += 1
                SecureRPCMetrics.gssReplays.increment()
                return .decided(.drop)
            }
            state.clock += 1
            slot.lastUsed = state.clock
            state.contexts.touch(at: position)
            if credential.procedure == .rpcsecGssDestroy {
                state.remove(credential.handle)
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
            return .decided(decision)
        case let .recheck(value):
            return .recheck(value)
        case let .found(value):
            context = value
        }
        let replyVerifier = SRPCDH.verifier(context.keys.serverToClient, .replySequence, sequence: sequence)

        if credential.procedure == .rpcsecGssDestroy {
            logger.debug("RPCSEC_GSS context destroyed", metadata: ["client": "\(context.client)"])
            return .decided(.handled(verifier: replyVerifier, .success(ByteBuffer())))
        }
        let arguments: ByteBuffer
        do {
            arguments = try SRPCDH.unwrap(call.arguments, sequence: sequence, service: credential.service,
                                          keys: context.keys.clientToServer, clientToServer: true)
        } catch {
            state.withLockedValue { $0.statistics.bodiesRefused += 1 }
            logger.info("RPCSEC_GSS body refused", metadata: ["xid": "\(call.xid)", "client": "\(context.client)", "error": "\(error)"])
            return .decided(.handled(verifier: replyVerifier, .garbageArguments))
        }
        let caller = context.caller(credential.service)
        let wrapper: (any RPCResultWrapper)? = credential.service == .none ? nil
            : GSSResultWrapper(keys: context.keys.serverToClient, sequence: sequence, service: credential.service)
        return .decided(.accepted(RPCAcceptedCall(caller: caller, replyVerifier: replyVerifier, arguments: arguments, resultWrapper: wrapper)))
    }

    /// DATA or DESTROY off the event loop: re-checks the client's key when due, then decides.
    private func dataOrDestroyRechecking(_ call: RPCCall, _ credential: GSSCredential) async -> RPCAuthDecision {
        switch dataOrDestroy(call, credential, recheck: .start) {
        case let .decided(decision):
            return decision
        case let .recheck(context):
            let current: DHPublicKey?
            do {
                current = try await keys.fetchPublicKey(netname: context.client, mechanism: context.group.dhGroup)
            } catch {
                // The source cannot answer (the directory is unreachable beyond its
                // serve-stale window): it cannot vouch for a change either. Keep the context
                // and ask again after the interval.
                current = context.clientKey
                logger.notice("RPCSEC_GSS key re-check deferred: no answer from the key source", metadata: [
                    "client": "\(context.client)", "error": "\(error)",
                ])
            }
            let nowSeconds = now()
            let unchanged: Bool = state.withLockedValue { state in
                state.statistics.keyRechecks += 1
                if let slot = state.contexts[context.handle] { slot.keyRecheckRunning = false }
                guard current == context.clientKey else { return false }
                state.contexts[context.handle]?.keyCheckedAt = nowSeconds
                return true
            }
            // Every context of this client and group made with another key than the
            // directory's now ends, not just this one.
            if !unchanged, endContexts(of: context.client, group: context.group, keptKey: current) > 0 {
                return .rejected(.gssCredentialProblem)
            }
            // Unchanged (or the context went meanwhile): decide as usual.
            switch dataOrDestroy(call, credential, recheck: .skip) {
            case let .decided(decision): return decision
            case .recheck: return .rejected(.gssCredentialProblem)  // .skip never answers this
            }
        }
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
            return await dataOrDestroyRechecking(call, credential)
        case .rpcsecGssContinueInit:
            guard call.procedure == 0, call.verifier.flavor == .none else { return .rejected(.badCredential) }
            return refuse(GSSMajorStatus.failure, .notSingleRoundTrip, detail: "CONTINUE_INIT")
        case .rpcsecGssInit:
            return await initContext(call, from: context)
        }
    }

    /// A failed INIT's answer. `detail` goes to the log: it holds only values this server
    /// checked or chose (netnames only once they passed NetnameSyntax), never raw peer text.
    /// Anyone can make the server refuse INITs, so at most `RefusalLog.linesPerWindow` lines
    /// are written per `RefusalLog.window`; the rest are counted and the count is logged.
    private func refuse(_ major: UInt32, _ minor: GSSMinorStatus, detail: @autoclosure () -> String) -> RPCAuthDecision {
        let nowSeconds = now()
        let (write, unlogged) = state.withLockedValue { state in
            state.statistics.initRefused += 1
            return state.refusalLog.take(now: nowSeconds)
        }
        SecureRPCMetrics.gssInitRefused(minor)
        if minor == .replayedToken { SecureRPCMetrics.gssInitReplays.increment() }
        if unlogged > 0 {
            logger.notice("RPCSEC_GSS context refusals not logged (too many)", metadata: [
                "count": "\(unlogged)", "window": "\(Int(RefusalLog.window)) s",
            ])
        }
        if write { logger.info("RPCSEC_GSS context refused", metadata: ["reason": "\(minor)", "detail": "\(detail())"]) }
        let result = RpcGssInitRes(handle: [], gssMajor: major, gssMinor: minor.rawValue, seqWindow: 0, gssToken: [])
        return .handled(verifier: .none, .success(result.xdrEncoded()))
    }

    /// An INIT turned away by admission. A source over its rate also loses its connection:
    /// answering refusals on an open connection costs the server a decode and a reply per
    /// INIT, as fast as the source can pipeline them (docs/RELIABILITY.md, the bad-INIT flood).
    private func refuseAdmission(_ refusal: HandshakeAdmission.Refusal, client: String) -> RPCAuthDecision {
        let answer = refuse(GSSMajorStatus.failure, Self.minor(refusal), detail: "\(client): \(refusal)")
        return refusal == .addressRate ? .disconnecting(answer) : answer
    }

    /// Bounds the log lines of refused INITs: so many per window, then a count.
    struct RefusalLog {
        static let window: TimeInterval = 10
        static let linesPerWindow = 20
        private var windowStart = -TimeInterval.infinity
        private var written = 0
        private var unlogged = 0

        /// Whether to write this refusal's line, and how many went unlogged in the window
        /// that just ended (to be reported now).
        mutating func take(now: TimeInterval) -> (write: Bool, unloggedBefore: Int) {
            var report = 0
            if now - windowStart >= Self.window || now < windowStart {
                report = unlogged
                windowStart = now
                written = 0
                unlogged = 0
            }
            guard written < Self.linesPerWindow else {
                unlogged += 1
                return (false, report)
            }
            written += 1
            return (true, report)
        }
    }

    /// An INIT that passed the cheap checks.
    private struct CheckedInit {
        let token: SrpcDhInitToken
        let group: GSSGroup
        let clientEphemeral: DHPublicKey
        let now: TimeInterval
    }

    /// Decoding, names, version, group, server name, clock, ephemeral key: everything about
    /// an INIT that costs microseconds. The event loop runs it (so a flood of bad INITs is
    /// answered there, without a task each) and the async path again before the costly part.
    private func checkInit(_ call: RPCCall) -> Result<CheckedInit, DecidedInit> {
        // Procedure NULL, AUTH_NONE verifier (RFC 2203 §5.2.2).
        guard call.procedure == 0, call.verifier.flavor == .none else { return .failure(.decided(.rejected(.badCredential))) }
        guard let argument = try? call.arguments.decodeXDRExactly(RpcGssInitArg.self) else {
            return .failure(.decided(.handled(verifier: .none, .garbageArguments)))
        }
        guard let token = try? ByteBuffer(bytes: argument.gssToken).decodeXDRExactly(SrpcDhInitToken.self) else {
            return .failure(.refused(GSSMajorStatus.defectiveToken, .malformedToken, detail: "INIT token"))
        }
        let body = token.body
        // Names first: nothing below may log, look up or map a name a peer made up freely
        // (a newline in it would forge log lines; a second '@' could pass for a local user).
        if let problem = NetnameSyntax.problem(body.client) {
            return .failure(.refused(GSSMajorStatus.badName, .malformedName, detail: "client netname: \(problem)"))
        }
        if let problem = NetnameSyntax.problem(body.server) {
            return .failure(.refused(GSSMajorStatus.badName, .malformedName, detail: "server netname: \(problem)"))
        }
        guard body.tokenVersion == SRPCDH.tokenVersion else {
            return .failure(.refused(GSSMajorStatus.defectiveToken, .badTokenVersion, detail: "version \(body.tokenVersion)"))
        }
        let group = GSSGroup(wire: body.group)
        guard configuration.groups.contains(group) else {
            return .failure(.refused(GSSMajorStatus.badMech, .groupNotAccepted, detail: "\(group) from \(body.client)"))
        }
        guard body.server == configuration.serverNetname else {
            return .failure(.refused(GSSMajorStatus.badName, .wrongServer, detail: "token for \(body.server)"))
        }
        let nowSeconds = now()
        let stamp = Double(body.timestamp) / 1_000_000
        guard abs(stamp - nowSeconds) <= configuration.clockSkew else {
            return .failure(.refused(GSSMajorStatus.oldToken, .clockSkew, detail: "\(body.client) is \(Int(stamp - nowSeconds)) s off"))
        }
        guard let clientEphemeral = try? DHPublicKey(group: group.dhGroup, bytes: body.clientEphemeral) else {
            return .failure(.refused(GSSMajorStatus.defectiveToken, .badEphemeralKey, detail: "from \(body.client)"))
        }
        return .success(CheckedInit(token: token, group: group, clientEphemeral: clientEphemeral, now: nowSeconds))
    }

    /// How an INIT ends before a context is made.
    private enum DecidedInit: Error {
        case decided(RPCAuthDecision)
        case refused(UInt32, GSSMinorStatus, detail: String)
    }

    private func answer(_ decided: DecidedInit) -> RPCAuthDecision {
        switch decided {
        case let .decided(decision): return decision
        case let .refused(major, minor, detail): return refuse(major, minor, detail: detail)
        }
    }

    private static func minor(_ refusal: HandshakeAdmission.Refusal) -> GSSMinorStatus {
        switch refusal {
        case .busy: return .busy
        case .addressRate: return .addressRateLimited
        case .principalRate: return .principalRateLimited
        }
    }

    /// INIT on the event loop: refuses at once what the cheap checks or the admission limits
    /// refuse; nil sends the rest to `initContext` off the loop.
    private func initImmediately(_ call: RPCCall, context callContext: RPCCallContext) -> RPCAuthDecision? {
        switch checkInit(call) {
        case let .failure(decided):
            return answer(decided)
        case let .success(checked):
            // A peek: the async path takes the tokens (or is refused after all).
            guard let refusal = admission.wouldRefuse(context: callContext, principal: checked.token.body.client) else { return nil }
            return refuseAdmission(refusal, client: checked.token.body.client)
        }
    }

    private func initContext(_ call: RPCCall, from callContext: RPCCallContext) async -> RPCAuthDecision {
        let started = DispatchTime.now().uptimeNanoseconds
        let checked: CheckedInit
        switch checkInit(call) {
        case let .failure(decided): return answer(decided)
        case let .success(value): checked = value
        }
        let token = checked.token, body = token.body, group = checked.group
        let clientEphemeral = checked.clientEphemeral, nowSeconds = checked.now
        // Everything above was cheap; what follows costs a directory lookup, a keyserver call
        // (a modexp on a cache miss) and an AEAD open before the caller is proven.
        let ticket: HandshakeAdmission.Ticket
        switch admission.admit(context: callContext, principal: body.client) {
        case let .refused(why):
            return refuseAdmission(why, client: body.client)
        case let .admitted(admitted):
            ticket = admitted
        }
        var proven = false
        defer { admission.finish(ticket, proven: proven) }

        let clientStatic: DHPublicKey
        do {
            guard let found = try await keys.fetchPublicKey(netname: body.client, mechanism: group.dhGroup) else {
                return refuse(GSSMajorStatus.defectiveCredential, .unknownClient, detail: "\(body.client) \(group)")
            }
            clientStatic = found
        } catch {
            return refuse(GSSMajorStatus.failure, .unknownClient, detail: "\(body.client) \(group): the key directory did not answer (\(error))")
        }
        let kssArgument = KeyxDeriveArg(mechanism: group.keyserverMechanism, peer: clientStatic.bytes,
                                        info: SRPCDH.kssInfo(group: group, client: body.client, server: configuration.serverNetname))
        var kss: SecretBytes
        var opened: Bool
        switch await serverKss(kssArgument, group: group) {
        case let .failure(refusal): return answer(refusal)
        case let .success((key, fromLease)):
            kss = key
            opened = SRPCDH.openAuthenticator(kss: kss, token: token)
            if fromLease, !opened {
                // Our key may have changed while the keyserver's lease on the old K_ss
                // lasted: the authenticator decides with K_ss fresh from the keyserver.
                keyserver.forgetKss(kssArgument)
                switch await serverKss(kssArgument, group: group) {
                case let .failure(refusal): return answer(refusal)
                case let .success((fresh, _)):
                    kss = fresh
                    opened = SRPCDH.openAuthenticator(kss: kss, token: token)
                }
            }
        }
        guard opened else {
            return refuse(GSSMajorStatus.badSig, .badAuthenticator, detail: "from \(body.client)")
        }
        // Only a verified token enters the replay cache, so nobody can block another
        // client's INIT by sending its nonce first.
        switch rememberToken(client: body.client, timestampMicroseconds: body.timestamp, nonce: body.nonce, now: nowSeconds) {
        case .fresh:
            break
        case .replay:
            return refuse(GSSMajorStatus.duplicateToken, .replayedToken, detail: "from \(body.client)")
        case .full:
            return refuse(GSSMajorStatus.failure, .replayCacheFull, detail: "from \(body.client)")
        case .clientFull:
            return refuse(GSSMajorStatus.failure, .replayCacheFull, detail: "\(body.client) holds its whole share")
        }
        proven = true

        let ephemeral = EphemeralKeyReserve.shared.take(group.dhGroup)
        guard let ephemeralShared = try? ephemeral.sharedSecret(with: clientEphemeral) else {
            return refuse(GSSMajorStatus.defectiveToken, .badEphemeralKey, detail: "from \(body.client)")
        }
        let replyBody = SrpcDhReplyBody(
            tokenVersion: SRPCDH.tokenVersion, group: group.wire, serverEphemeral: ephemeral.publicKey.bytes,
            nonce: RandomBytes.array(count: 16), lifetime: UInt32(configuration.contextLifetime)
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
        let handle = RandomBytes.array(count: 16)
        let context = Context(handle: handle, client: body.client, group: group, keys: keys,
                              expires: nowSeconds + configuration.contextLifetime, clientKey: clientStatic, caller: caller)
        let evicted = insert(context, now: nowSeconds)
        if evicted > 0 { logger.debug("RPCSEC_GSS contexts evicted (table or client share full)", metadata: ["count": "\(evicted)"]) }
        logger.debug("RPCSEC_GSS context created", metadata: ["client": "\(body.client)", "group": "\(group)"])
        let result = RpcGssInitRes(handle: handle, gssMajor: GSSMajorStatus.complete, gssMinor: 0,
                                   seqWindow: configuration.sequenceWindow, gssToken: Array(replyToken.xdrEncoded().readableBytesView))
        let verifier = OpaqueAuth(flavor: .rpcsecGSS, body: ByteBuffer(bytes: SRPCDH.mic(keys.serverToClient, .sequenceWindow, sequence: configuration.sequenceWindow)))
        SecureRPCMetrics.gssHandshakeDuration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
        return .handled(verifier: verifier, .success(result.xdrEncoded()))
    }

    /// K_ss between this server and the client key in `argument`, from the keyserver or a
    /// lease on its earlier answer (`fromLease`).
    private func serverKss(_ argument: KeyxDeriveArg, group: GSSGroup) async -> Result<(SecretBytes, fromLease: Bool), DecidedInit> {
        do {
            switch try await keyserver.kss(argument) {
            case let .key(key, fromLease): return .success((key, fromLease))
            case .refused:
                return .failure(.refused(GSSMajorStatus.noCred, .serverNotLoggedIn, detail: "\(configuration.serverNetname) \(group)"))
            }
        } catch {
            logger.error("keyserver unavailable for RPCSEC_GSS", metadata: ["error": "\(error)"])
            return .failure(.refused(GSSMajorStatus.noCred, .serverNotLoggedIn, detail: "\(error)"))
        }
    }

    /// The replay-cache step of INIT, for a verified token (tests drive it with a clock).
    func rememberToken(client: String, timestampMicroseconds: UInt64, nonce: [UInt8], now nowSeconds: TimeInterval) -> GSSReplayCache.Verdict {
        state.withLockedValue { state in
            state.replay.insert(client: client, timestampMicroseconds: timestampMicroseconds, nonce: nonce, now: nowSeconds)
        }
    }

    /// Adds a new context; returns how many were evicted to make room. A client over its
    /// share loses its own least recently used context; otherwise, when the table is full,
    /// the least recently used of all goes (O(1): the table keeps LRU order).
    private func insert(_ context: Context, now nowSeconds: TimeInterval) -> Int {
        let perClient = configuration.contextsPerClient
        return state.withLockedValue { state in
            state.clock += 1
            state.contexts.insert(context.handle, Slot(context: context, window: GSSSequenceWindow(size: configuration.sequenceWindow),
                                                       lastUsed: state.clock, keyCheckedAt: nowSeconds))
            state.byClient[context.client, default: []].insert(context.handle)
            state.statistics.contextsCreated += 1
            SecureRPCMetrics.gssContextsCreated.increment()
            var evicted = 0
            // The client's share: scan only its own contexts (at most its share + 1).
            while let mine = state.byClient[context.client], mine.count > perClient {
                var oldest: (handle: [UInt8], used: UInt64)?
                for handle in mine where handle != context.handle {
                    if let used = state.contexts[handle]?.lastUsed, used < oldest?.used ?? .max { oldest = (handle, used) }
                }
                guard let oldest else { break }
                state.remove(oldest.handle)
                evicted += 1
                state.statistics.contextsEvictedOverQuota += 1
            }
            while state.contexts.count > configuration.maximumContexts, let oldest = state.contexts.oldest {
                state.remove(oldest.key)
                evicted += 1
            }
            state.statistics.contextsEvicted += evicted
            SecureRPCMetrics.gssContexts.record(state.contexts.count)
            return evicted
        }
    }

    /// Forgets every context of `client` at once (after its key was revoked, say; contexts
    /// also end by themselves within `keyRecheckInterval` of a revocation or key change).
    public func destroyContexts(of client: String) {
        state.withLockedValue { state in
            for handle in state.byClient[client] ?? [] { state.remove(handle) }
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
