// What the verifiers count for swift-metrics (the daemons export them on --metrics).
// Instruments are made on first use and kept, so a program bootstraps its metrics backend
// before it serves (MetricsEndpoint.start does); labels are fixed sets, never peer input.

import CoreMetrics
import NIOConcurrencyHelpers

enum SecureRPCMetrics {
    /// RPCSEC_GSS contexts set up.
    static let gssContextsCreated = Counter(label: "securerpc_gss_contexts_created_total")
    /// RPCSEC_GSS contexts held now.
    static let gssContexts = Gauge(label: "securerpc_gss_contexts")
    /// From an INIT's arrival to its answer, for INITs that made a context.
    static let gssHandshakeDuration = Timer(label: "securerpc_gss_handshake_duration_seconds")
    /// Replays refused: a DATA sequence number seen before or behind the window (gss), an
    /// INIT token seen before (gss_init), an AUTH_DH fullname credential seen before (dh).
    static let gssReplays = Counter(label: "securerpc_replays_refused_total", dimensions: [("flavor", "rpcsec_gss")])
    static let gssInitReplays = Counter(label: "securerpc_replays_refused_total", dimensions: [("flavor", "rpcsec_gss_init")])
    static let dhReplays = Counter(label: "securerpc_replays_refused_total", dimensions: [("flavor", "dh")])

    private static let refusals = NIOLockedValueBox<[GSSMinorStatus: Counter]>([:])

    /// An RPCSEC_GSS INIT refused, by the mechanism's minor status (a closed set).
    static func gssInitRefused(_ minor: GSSMinorStatus) {
        refusals.withLockedValue { counters in
            if let counter = counters[minor] { return counter }
            let made = Counter(label: "securerpc_gss_init_refused_total", dimensions: [("reason", label(minor))])
            counters[minor] = made
            return made
        }.increment()
    }

    /// The minor status as a label: its case name in snake case.
    static func label(_ minor: GSSMinorStatus) -> String {
        switch minor {
        case .none: return "none"
        case .badTokenVersion: return "bad_token_version"
        case .groupNotAccepted: return "group_not_accepted"
        case .wrongServer: return "wrong_server"
        case .unknownClient: return "unknown_client"
        case .clockSkew: return "clock_skew"
        case .badAuthenticator: return "bad_authenticator"
        case .replayedToken: return "replayed_token"
        case .serverNotLoggedIn: return "server_not_logged_in"
        case .badEphemeralKey: return "bad_ephemeral_key"
        case .replayCacheFull: return "replay_cache_full"
        case .malformedToken: return "malformed_token"
        case .notSingleRoundTrip: return "not_single_round_trip"
        case .malformedName: return "malformed_name"
        case .busy: return "busy"
        case .addressRateLimited: return "address_rate_limited"
        case .principalRateLimited: return "principal_rate_limited"
        }
    }
}
