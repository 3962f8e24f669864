// What a server refused, dropped or closed to protect itself: counters anyone may read
// (tests, benchmarks, operators), and for each kind of event at most one log line per
// interval with a count, however fast the events come (ATTACKS.md #5: garbage on the port
// gets one rate-limited line, not one per connection). Shared by every handler of one
// server, on any event loop, so it takes a lock; the lock is held only to count.
// Log metadata carries addresses and counts, never message bytes.

import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Counters of what an ``RPCServer`` refused, dropped or closed to protect itself, since it
/// started. Read them with ``RPCServer/statistics``.
public struct RPCServerStatistics: Sendable, Equatable {
    /// Connections closed on accept because `maximumConnections` were open.
    public var connectionsRefusedServerFull = 0
    /// Connections closed on accept because their address (TCP) or uid (unix socket)
    /// already held as many as one peer may.
    public var connectionsRefusedPeerFull = 0
    /// Connections closed on accept because their address opened connections faster than
    /// `connectionRatePerAddress` allows.
    public var connectionsRefusedPeerRate = 0
    /// Connections closed because a record, once begun, did not complete within
    /// `recordDeadline` (slowloris).
    public var connectionsClosedRecordDeadline = 0
    /// Connections closed after a framing error: a record over the size limit or with too
    /// many fragments (for example an HTTP request on the RPC port).
    public var connectionsClosedFramingError = 0
    /// Connections closed after an authentication flavor refused a call and asked for the
    /// connection to go (a source over its handshake rate, ``RPCAuthDecision/disconnecting(_:)``).
    public var connectionsClosedRateLimited = 0
    /// Failed accept() calls (EMFILE, ENFILE, ENOBUFS, ENOMEM); each pauses accepting for a
    /// moment instead of retrying at once.
    public var acceptErrors = 0
    /// Datagrams received on the UDP sockets.
    public var udpDatagramsReceived = 0
    /// UDP calls dropped because their socket had `maximumUDPCallsInFlight` calls running.
    public var udpCallsDroppedInFlightLimit = 0
    /// The most UDP calls one socket had in flight at once.
    public var udpCallsInFlightHighWater = 0

    public init() {}
}

/// The kinds of event that are logged at most once per interval.
enum RPCServerEvent: CaseIterable, Sendable {
    case refusedServerFull
    case refusedPeerFull
    case refusedPeerRate
    case recordDeadline
    case framingError
    case acceptError
    case udpInFlightLimit
    case rateLimitedDisconnect

    var message: Logger.Message {
        switch self {
        case .refusedServerFull: return "connections refused: the server holds its maximum of connections"
        case .refusedPeerFull: return "connections refused: one peer holds its maximum of connections"
        case .refusedPeerRate: return "connections refused: one address opens connections faster than its rate"
        case .recordDeadline: return "connections closed: a record did not complete within the record deadline"
        case .framingError: return "connections closed: not ONC RPC record marking (garbage or oversized record)"
        case .acceptError: return "accepting connections failed; pausing accepts"
        case .udpInFlightLimit: return "UDP calls dropped: the socket has its maximum of calls in flight"
        case .rateLimitedDisconnect: return "connections closed: a source over its handshake rate was refused"
        }
    }

    var level: Logger.Level {
        switch self {
        case .refusedServerFull, .refusedPeerFull, .refusedPeerRate, .acceptError, .udpInFlightLimit: return .warning
        case .recordDeadline, .framingError, .rateLimitedDisconnect: return .notice
        }
    }
}

/// Statistics and rate-limited event logs of one server.
final class RPCServerMonitor: Sendable {
    private struct State {
        var statistics = RPCServerStatistics()
        var limiters: [RPCServerEvent: LogRateLimiter]
        /// Kinds with a flush timer pending, so a burst schedules one timer, not one per event.
        var flushScheduled: Set<RPCServerEvent> = []
    }

    let logger: Logger
    private let interval: TimeAmount
    private let timers: any EventLoopGroup
    private let state: NIOLockedValueBox<State>

    init(logger: Logger, interval: TimeAmount, timers: any EventLoopGroup) {
        self.logger = logger
        self.interval = interval
        self.timers = timers
        var limiters: [RPCServerEvent: LogRateLimiter] = [:]
        for event in RPCServerEvent.allCases { limiters[event] = LogRateLimiter(interval: interval) }
        self.state = NIOLockedValueBox(State(limiters: limiters))
    }

    var statistics: RPCServerStatistics { state.withLockedValue { $0.statistics } }

    /// Updates counters that have no log line (hot paths: one short lock).
    func count(_ update: (inout RPCServerStatistics) -> Void) {
        state.withLockedValue { update(&$0.statistics) }
    }

    /// Counts an event and logs it, folded into at most one line per interval. `detail`
    /// describes this occurrence (a remote address, an error); a line shows the latest.
    func record(_ event: RPCServerEvent, detail: @autoclosure () -> Logger.Metadata = [:],
                update: (inout RPCServerStatistics) -> Void) {
        let now = NIODeadline.now()
        let (count, flushAt) = state.withLockedValue { state -> (Int?, NIODeadline?) in
            update(&state.statistics)
            let count = state.limiters[event]!.record(now: now)
            guard count == nil, !state.flushScheduled.contains(event), let quietUntil = state.limiters[event]!.quietUntil else {
                return (count, nil)
            }
            state.flushScheduled.insert(event)
            return (nil, quietUntil)
        }
        if let count {
            write(event, count: count, detail: detail())
        } else if let flushAt {
            // The events folded in this interval are reported when it ends, even if no
            // further event comes to carry them.
            timers.next().scheduleTask(deadline: flushAt) { [weak self] in
                self?.flush(event, now: .now(), force: false)
            }
        }
    }

    /// Writes every count not reported yet (at shutdown).
    func flushAll() {
        for event in RPCServerEvent.allCases { flush(event, now: .now(), force: true) }
    }

    private func flush(_ event: RPCServerEvent, now: NIODeadline, force: Bool) {
        let count = state.withLockedValue { state -> Int? in
            state.flushScheduled.remove(event)
            return state.limiters[event]!.flush(now: now, force: force)
        }
        if let count { write(event, count: count, detail: [:]) }
    }

    private func write(_ event: RPCServerEvent, count: Int, detail: Logger.Metadata) {
        var metadata = detail
        metadata["count"] = "\(count)"
        metadata["interval"] = "\(interval)"
        logger.log(level: event.level, event.message, metadata: metadata)
    }
}
