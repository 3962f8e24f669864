// A host's lookups in the site's directory for swift-metrics (the daemons export them on
// --metrics): how lookups were answered, and when the change feed last answered, from which
// an operator reads how stale the cache may be (time() - the gauge; a revocation reaches
// this host within one poll after that).

import CoreMetrics

enum DirectoryMetrics {
    static let cacheHits = Counter(label: "securerpc_directory_lookups_total", dimensions: [("answer", "cache")])
    static let directoryAnswers = Counter(label: "securerpc_directory_lookups_total", dimensions: [("answer", "directory")])
    static let staleAnswers = Counter(label: "securerpc_directory_lookups_total", dimensions: [("answer", "stale_cache")])
    static let failures = Counter(label: "securerpc_directory_lookups_total", dimensions: [("answer", "failed")])
    /// Seconds since 1970 of the change feed's last answer.
    static let lastFeedPoll = Gauge(label: "securerpc_directory_feed_last_answer_timestamp_seconds")
}
