// The keyserver's Diffie-Hellman work for swift-metrics (keyserverd exports it on --metrics):
// shared secrets computed (a modular exponentiation each) and answers from its cache, for the
// legacy dh192-des keys and the strong ffdhe groups.

import CoreMetrics

enum KeyServerMetrics {
    static let legacyDerives = Counter(label: "keyserver_derives_total", dimensions: [("mechanism", "dh192-des")])
    static let legacyHits = Counter(label: "keyserver_derive_cache_hits_total", dimensions: [("mechanism", "dh192-des")])
    static let strongDerives = Counter(label: "keyserver_derives_total", dimensions: [("mechanism", "ffdhe")])
    static let strongHits = Counter(label: "keyserver_derive_cache_hits_total", dimensions: [("mechanism", "ffdhe")])
}
