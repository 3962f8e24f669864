// The server's calls as swift-metrics counters, for whatever backend the program bootstraps
// (the daemons export Prometheus text on --metrics; without a bootstrap they cost a no-op).
// Labels come from what the server serves, never from what a peer sends: a program, procedure
// or flavor the server does not know is counted as "other", so a peer cannot grow the set of
// time series (each is memory in the exporter for as long as the process lives).

import CoreMetrics
import NIOConcurrencyHelpers

/// How a call ended, as a label.
enum RPCCallOutcome: String, Sendable {
    case success
    case garbageArguments = "garbage_args"
    case systemError = "system_err"
    case programUnavailable = "prog_unavail"
    case programMismatch = "prog_mismatch"
    case procedureUnavailable = "proc_unavail"
    case authError = "auth_error"
    case dropped
    case undecodable
}

/// `securerpc_calls_total{program, version, procedure, flavor, status}` and
/// `securerpc_auth_failures_total{flavor, reason}`. Counters are made once per label set and
/// kept: making one asks the factory, which takes its own lock and allocates.
final class RPCCallMetrics: Sendable {
    /// A call some of whose numbers the server does not serve. Numbers only, so that finding
    /// its counter hashes 16 bytes and no strings: the labels are made from them once, with
    /// the counter.
    private struct CallKey: Hashable {
        /// Each number, or `UInt64.max` for "other".
        var program: UInt64
        var version: UInt64
        var procedure: UInt64
        /// The flavor's label index (`flavorNames`) in the high byte, the outcome's in the low.
        var flavorAndOutcome: UInt16
    }
    private struct ProcedureNumbers: Hashable {
        var program: UInt32
        var version: UInt32
        var procedure: UInt32
    }
    private struct FailureKey: Hashable {
        var flavor: String
        var reason: String
    }

    /// The factory counters are made with; nil for the one the process bootstrapped.
    private let factory: (any MetricsFactory)?
    /// Calls whose three numbers are all served are counted in their procedure's
    /// `RPCProcedureCounters` (the dispatcher keeps it beside the handler, so a served call
    /// finds its counter without hashing); every label set has exactly one home.
    private let procedures = NIOLockedValueBox<[ProcedureNumbers: RPCProcedureCounters]>([:])
    private let calls = NIOLockedValueBox<[CallKey: Counter]>([:])
    private let failures = NIOLockedValueBox<[FailureKey: Counter]>([:])

    init(factory: (any MetricsFactory)? = nil) {
        self.factory = factory
    }

    /// The counters of one served procedure (made on first request, then the same object).
    func counters(program: UInt32, version: UInt32, procedure: UInt32) -> RPCProcedureCounters {
        let numbers = ProcedureNumbers(program: program, version: version, procedure: procedure)
        return procedures.withLockedValue { table in
            if let existing = table[numbers] { return existing }
            let made = RPCProcedureCounters(program: program, version: version, procedure: procedure, factory: factory)
            table[numbers] = made
            return made
        }
    }

    /// Counts one call. Pass nil for a number the server does not serve (flavors outside the
    /// four served ones are "other" whatever the caller passes).
    func call(program: UInt32?, version: UInt32?, procedure: UInt32?, flavor: AuthFlavor?, _ outcome: RPCCallOutcome) {
        if let program, let version, let procedure {
            counters(program: program, version: version, procedure: procedure).increment(flavor: flavor, outcome)
            return
        }
        let flavorIndex = Self.flavorIndex(of: flavor)
        let key = CallKey(program: program.map(UInt64.init) ?? .max, version: version.map(UInt64.init) ?? .max,
                          procedure: procedure.map(UInt64.init) ?? .max,
                          flavorAndOutcome: UInt16(flavorIndex) << 8 | UInt16(Self.outcomeIndex(of: outcome)))
        counter(in: calls, key) {
            Self.makeCallCounter(program: program, version: version, procedure: procedure, flavorIndex: flavorIndex, outcome,
                                 factory: factory)
        }.increment()
    }

    fileprivate static func makeCallCounter(program: UInt32?, version: UInt32?, procedure: UInt32?, flavorIndex: Int,
                                            _ outcome: RPCCallOutcome, factory: (any MetricsFactory)?) -> Counter {
        makeCounter("securerpc_calls_total", factory: factory, [
            ("program", program.map { "\($0)" } ?? "other"),
            ("version", version.map { "\($0)" } ?? "other"),
            ("procedure", procedure.map { "\($0)" } ?? "other"),
            ("flavor", Self.flavorNames[flavorIndex]),
            ("status", outcome.rawValue),
        ])
    }

    private static func makeCounter(_ label: String, factory: (any MetricsFactory)?, _ dimensions: [(String, String)]) -> Counter {
        if let factory { return Counter(label: label, dimensions: dimensions, factory: factory) }
        return Counter(label: label, dimensions: dimensions)
    }

    /// Counts a refused authentication (the reason is one of RFC 5531's or RFC 2203's).
    func authenticationFailed(flavor: AuthFlavor?, _ status: AuthStatus) {
        let key = FailureKey(flavor: Self.name(of: flavor), reason: Self.name(of: status))
        counter(in: failures, key) {
            Self.makeCounter("securerpc_auth_failures_total", factory: factory, [("flavor", key.flavor), ("reason", key.reason)])
        }.increment()
    }

    private func counter<Key: Hashable>(in table: NIOLockedValueBox<[Key: Counter]>, _ key: Key, make: () -> Counter) -> Counter {
        table.withLockedValue { counters in
            if let existing = counters[key] { return existing }
            let made = make()
            counters[key] = made
            return made
        }
    }

    static func name(of flavor: AuthFlavor?) -> String {
        flavorNames[flavorIndex(of: flavor)]
    }

    fileprivate static let flavorNames = ["other", "none", "sys", "dh", "rpcsec_gss"]

    fileprivate static func flavorIndex(of flavor: AuthFlavor?) -> Int {
        guard let flavor else { return 0 }
        switch flavor {
        case .none: return 1
        case .sys: return 2
        case .dh: return 3
        case .rpcsecGSS: return 4
        default: return 0
        }
    }

    fileprivate static let outcomeCount = 9

    fileprivate static func outcomeIndex(of outcome: RPCCallOutcome) -> UInt8 {
        switch outcome {
        case .success: return 0
        case .garbageArguments: return 1
        case .systemError: return 2
        case .programUnavailable: return 3
        case .programMismatch: return 4
        case .procedureUnavailable: return 5
        case .authError: return 6
        case .dropped: return 7
        case .undecodable: return 8
        }
    }

    static func name(of status: AuthStatus) -> String {
        switch status {
        case .badCredential: return "badcred"
        case .rejectedCredential: return "rejectedcred"
        case .badVerifier: return "badverf"
        case .rejectedVerifier: return "rejectedverf"
        case .tooWeak: return "tooweak"
        case .invalidResponse: return "invalidresp"
        case .failed: return "failed"
        case .gssCredentialProblem: return "gss_credproblem"
        case .gssContextProblem: return "gss_ctxproblem"
        default: return "other"
        }
    }
}

/// The call counters of one served procedure, one per flavor and outcome, found by index.
final class RPCProcedureCounters: Sendable {
    private let program: UInt32
    private let version: UInt32
    private let procedure: UInt32
    private let factory: (any MetricsFactory)?
    private let counters: NIOLockedValueBox<[Counter?]>

    fileprivate init(program: UInt32, version: UInt32, procedure: UInt32, factory: (any MetricsFactory)?) {
        self.program = program
        self.version = version
        self.procedure = procedure
        self.factory = factory
        self.counters = NIOLockedValueBox(Array(repeating: nil, count: RPCCallMetrics.flavorNames.count * RPCCallMetrics.outcomeCount))
    }

    func increment(flavor: AuthFlavor?, _ outcome: RPCCallOutcome) {
        let flavorIndex = RPCCallMetrics.flavorIndex(of: flavor)
        let index = flavorIndex * RPCCallMetrics.outcomeCount + Int(RPCCallMetrics.outcomeIndex(of: outcome))
        counters.withLockedValue { counters in
            if let existing = counters[index] { return existing }
            let made = RPCCallMetrics.makeCallCounter(program: program, version: version, procedure: procedure,
                                                      flavorIndex: flavorIndex, outcome, factory: factory)
            counters[index] = made
            return made
        }.increment()
    }
}
