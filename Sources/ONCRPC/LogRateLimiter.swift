// Folds a stream of like events (refused connections, dropped datagrams, garbage on the
// port) into at most one log line per interval, each line carrying how many events it
// stands for. A flood must not turn into a flood of log lines: writing them costs the
// server more than refusing the connections did, and it buries everything else in the log.
// Pure bookkeeping on an injected clock; the caller owns the lock and the timer.

import NIOCore

struct LogRateLimiter: Sendable {
    let interval: TimeAmount
    /// Events not reported by a line yet.
    private(set) var pending = 0
    /// No line before this time (the previous line was written at `quietUntil - interval`).
    private(set) var quietUntil: NIODeadline?

    init(interval: TimeAmount) {
        self.interval = interval
    }

    /// Counts one event. Returns the count the line to write now reports (this event and
    /// the ones folded since the last line), or nil when this event waits for a later line;
    /// then `flush(now:)` at `quietUntil` reports it.
    mutating func record(now: NIODeadline) -> Int? {
        pending += 1
        if let quietUntil, now < quietUntil { return nil }
        return take(now: now)
    }

    /// The count of events still unreported, when a line may be written now (or `force`,
    /// at shutdown); nil when there is nothing to report or it is too early.
    mutating func flush(now: NIODeadline, force: Bool = false) -> Int? {
        guard pending > 0 else { return nil }
        if !force, let quietUntil, now < quietUntil { return nil }
        return take(now: now)
    }

    private mutating func take(now: NIODeadline) -> Int {
        let count = pending
        pending = 0
        quietUntil = now + interval
        return count
    }
}
