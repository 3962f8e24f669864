// A Logger whose lines are kept in memory, for tests that count what a server logs (one
// rate-limited line per flood, not one per event). Trusts nothing; it only records.

import Logging
import NIOConcurrencyHelpers

final class LogCapture: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let lines = NIOLockedValueBox<[Line]>([])

    /// A logger at `level` that records into this capture.
    func logger(level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: "capture") { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    var all: [Line] { lines.withLockedValue { $0 } }

    func lines(where predicate: (Line) -> Bool) -> [Line] { all.filter(predicate) }

    fileprivate func append(_ line: Line) { lines.withLockedValue { $0.append(line) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var flat: [String: String] = [:]
            for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { flat[key] = "\(value)" }
            capture.append(Line(level: event.level, message: "\(event.message)", metadata: flat))
        }
    }
}
