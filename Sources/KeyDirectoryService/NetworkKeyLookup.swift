// Public keys for a host without the directory file: answers from keydird (through
// DirectoryClient, so every answer is bound to the pinned directory key), kept in a
// PublicKeyCache, and dropped as soon as the directory's change feed names the principal.
// While no directory answers, cached answers are served up to the serve-stale window; after
// that a lookup fails with an error that names the directory servers. Change observers
// (servers) hear every netname the feed names, so they can end that principal's sessions.

import Foundation
import KeyCrypto
import KeyDirectory
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC

/// A `PublicKeySource` backed by the site's directory servers.
///
/// ```swift
/// let lookup = NetworkKeyLookup(directory: DirectoryClient(site: site, caller: caller), settings: site.cacheSettings)
/// lookup.startChangeFeed()
/// let key = try await lookup.fetchPublicKey(netname: "unix.1001@example.org", mechanism: .ffdhe3072)
/// ```
public final class NetworkKeyLookup: PublicKeySource {
    /// Counters for tests, the benchmark and metrics.
    public struct Statistics: Sendable, Equatable {
        public var directoryLookups = 0
        public var cacheHits = 0
        public var staleAnswers = 0
        public var failures = 0
        public var invalidations = 0
        public var feedPolls = 0
        /// The newest change serial seen.
        public var serial: UInt64 = 0
    }

    private struct State {
        var cache: PublicKeyCache
        var statistics = Statistics()
        var observers: [@Sendable (String?) -> Void] = []
        var feedStarted = false
    }

    public let directory: DirectoryClient
    public let changePollInterval: TimeInterval
    private let now: @Sendable () -> TimeInterval
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    private let feed = NIOLockedValueBox<Task<Void, Never>?>(nil)

    public init(directory: DirectoryClient, settings: PublicKeyCache.Settings = .init(), changePollInterval: TimeInterval = 10,
                now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 },
                logger: Logger = Logger(label: "securerpc.lookup")) {
        self.directory = directory
        self.changePollInterval = changePollInterval
        self.now = now
        self.logger = logger
        self.state = NIOLockedValueBox(State(cache: PublicKeyCache(settings: settings)))
    }

    deinit {
        feed.withLockedValue { $0?.cancel() }
    }

    public var statistics: Statistics { state.withLockedValue { $0.statistics } }

    // MARK: PublicKeySource

    public func fetchPublicKey(netname: String, mechanism: DHGroupName) async throws -> DHPublicKey? {
        let time = now()
        let cached = state.withLockedValue { state -> PublicKeyCache.Answer in
            let answer = state.cache.answer(netname: netname, mechanism: mechanism, now: time)
            if case .fresh = answer { state.statistics.cacheHits += 1 }
            return answer
        }
        if case let .fresh(key) = cached {
            DirectoryMetrics.cacheHits.increment()
            return key
        }
        do {
            let key = try await askDirectory(netname: netname, mechanism: mechanism)
            state.withLockedValue { state in
                state.cache.store(netname: netname, mechanism: mechanism, key: key, now: self.now())
                state.statistics.directoryLookups += 1
            }
            DirectoryMetrics.directoryAnswers.increment()
            return key
        } catch {
            if let outage = error as? DirectoryClientError, case let .stale(key) = cached, Self.isOutage(outage) {
                state.withLockedValue { $0.statistics.staleAnswers += 1 }
                DirectoryMetrics.staleAnswers.increment()
                logger.notice("directory unreachable: serving a cached key", metadata: ["netname": "\(netname)", "error": "\(error)"])
                return key
            }
            // Every failure counts, a reply the RPCSEC_GSS layer refused (changed or replayed
            // on the way) as much as a refusal: a forged answer is never served, not even
            // from the stale cache.
            state.withLockedValue { $0.statistics.failures += 1 }
            DirectoryMetrics.failures.increment()
            if case RPCClientError.replyVerificationFailed = error {
                logger.warning("a directory reply failed verification: refused", metadata: ["netname": "\(netname)", "error": "\(error)"])
            }
            throw error
        }
    }

    public func cachedPublicKey(netname: String, mechanism: DHGroupName) -> DHPublicKey?? {
        let time = now()
        return state.withLockedValue { state in
            switch state.cache.answer(netname: netname, mechanism: mechanism, now: time) {
            case let .fresh(key), let .stale(key): return .some(key)
            case .miss: return .none
            }
        }
    }

    public func observeChanges(_ handler: @escaping @Sendable (String?) -> Void) {
        state.withLockedValue { $0.observers.append(handler) }
    }

    // MARK: the change feed

    /// Starts polling the directory's change feed every `changePollInterval` seconds (once;
    /// later calls do nothing). The first poll learns the current serial.
    public func startChangeFeed() {
        let start = state.withLockedValue { state -> Bool in
            defer { state.feedStarted = true }
            return !state.feedStarted
        }
        guard start else { return }
        let interval = changePollInterval
        let task = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                await self.pollChanges()
                try? await Task.sleep(nanoseconds: UInt64(interval * 1_000_000_000))
            }
        }
        feed.withLockedValue { $0 = task }
    }

    public func stopChangeFeed() {
        feed.withLockedValue { task in
            task?.cancel()
            task = nil
        }
    }

    /// One poll of the feed: invalidates what changed and tells the observers. Public for
    /// tests and for a host that wants to catch up at once.
    public func pollChanges() async {
        let since = state.withLockedValue { $0.statistics.serial }
        let answer: KdChangesRes
        do {
            answer = try await directory.call { try await $0.kdChanges(since) }
        } catch {
            logger.debug("change feed poll failed", metadata: ["error": "\(error)"])
            return
        }
        let (named, everything, observers) = state.withLockedValue { state -> ([String], Bool, [@Sendable (String?) -> Void]) in
            state.statistics.feedPolls += 1
            DirectoryMetrics.lastFeedPoll.record(self.now())
            let first = state.statistics.serial == 0
            state.statistics.serial = max(state.statistics.serial, answer.serial)
            // The first poll learns where the feed stands. Answers cached before it could
            // predate a change the feed will never name: drop them (nothing to tell observers).
            if first {
                state.cache.invalidateAll()
                return ([], false, state.observers)
            }
            // The feed lost track (the directory keeps a bounded history): drop everything,
            // and tell observers that any principal may have changed.
            if !answer.complete {
                state.cache.invalidateAll()
                state.statistics.invalidations += 1
                return ([], true, state.observers)
            }
            var names: [String] = []
            for change in answer.changes where !names.contains(change.netname) {
                names.append(change.netname)
                state.cache.invalidate(netname: change.netname)
                state.statistics.invalidations += 1
            }
            return (names, false, state.observers)
        }
        if everything {
            for observer in observers { observer(nil) }
        }
        for netname in named {
            logger.info("directory change: cached keys dropped", metadata: ["netname": "\(netname)"])
            for observer in observers { observer(netname) }
        }
    }

    // MARK: helpers

    private func askDirectory(netname: String, mechanism: DHGroupName) async throws -> DHPublicKey? {
        let argument = KdLookupArg(netname: netname, mechanism: mechanism.rawValue)
        let result = try await directory.call { try await $0.kdLookup(argument) }
        switch result {
        case let .kdOk(hex):
            guard let key = try? DHPublicKey(group: mechanism, hex: hex) else {
                throw DirectoryClientError.refused(server: directory.currentServer?.description ?? "directory", status: "KD_INVALID",
                                                   message: "the directory returned an invalid \(mechanism.rawValue) key for \(netname)")
            }
            return key
        case .default(discriminant: .kdNotFound):
            return nil
        case let .default(discriminant: status):
            throw DirectoryClientError.refused(server: directory.currentServer?.description ?? "directory", status: "\(status)", message: "")
        }
    }

    static func isOutage(_ error: DirectoryClientError) -> Bool {
        if case .unreachable = error { return true }
        return false
    }
}
