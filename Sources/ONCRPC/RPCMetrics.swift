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
    private struct CallKey: Hashable {
        var program: UInt32?
        var version: UInt32?
        var procedure: UInt32?
        var flavor: String
        var outcome: RPCCallOutcome
    }
    private struct FailureKey: Hashable {
        var flavor: String
        var reason: String
    }

    private let calls = NIOLockedValueBox<[CallKey: Counter]>([:])
    private let failures = NIOLockedValueBox<[FailureKey: Counter]>([:])

    /// Counts one call. Pass nil for a number the server does not serve (flavors outside the
    /// four served ones are "other" whatever the caller passes).
    func call(program: UInt32?, version: UInt32?, procedure: UInt32?, flavor: AuthFlavor?, _ outcome: RPCCallOutcome) {
        let key = CallKey(program: program, version: version, procedure: procedure, flavor: Self.name(of: flavor), outcome: outcome)
        counter(in: calls, key) {
            Counter(label: "securerpc_calls_total", dimensions: [
                ("program", program.map { "\($0)" } ?? "other"),
                ("version", version.map { "\($0)" } ?? "other"),
                ("procedure", procedure.map { "\($0)" } ?? "other"),
                ("flavor", key.flavor),
                ("status", outcome.rawValue),
            ])
        }.increment()
    }

    /// Counts a refused authentication (the reason is one of RFC 5531's or RFC 2203's).
    func authenticationFailed(flavor: AuthFlavor?, _ status: AuthStatus) {
        let key = FailureKey(flavor: Self.name(of: flavor), reason: Self.name(of: status))
        counter(in: failures, key) {
            Counter(label: "securerpc_auth_failures_total", dimensions: [("flavor", key.flavor), ("reason", key.reason)])
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
        guard let flavor else { return "other" }
        switch flavor {
        case .none: return "none"
        case .sys: return "sys"
        case .dh: return "dh"
        case .rpcsecGSS: return "rpcsec_gss"
        default: return "other"
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
