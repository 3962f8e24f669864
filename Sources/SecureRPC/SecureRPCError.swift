// Failures of authenticated calls that happen before anything is sent, in words a user can
// act on.

/// Why an authenticated call could not be made.
public enum SecureRPCError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The keyserver holds no secret key for this user: run `keylogin`.
    case notLoggedIn(String)
    /// The keyserver answered something else than success.
    case keyserverRefused(String)
    /// The server no longer accepts this principal's key (revoked, removed or rotated in the
    /// directory): run `keylogin` with the current key.
    case keyChangedOrRevoked(String)
    /// The AUTH_DH client was asked to take its time from a host that gave none.
    case clockSyncFailed(host: String, reason: String)

    public var description: String {
        switch self {
        case let .notLoggedIn(netname): return "\(netname) is not logged in to the keyserver (run keylogin)"
        case let .keyserverRefused(why): return "the keyserver refused: \(why)"
        case let .keyChangedOrRevoked(netname): return "the key of \(netname) was changed or revoked: run keylogin"
        case let .clockSyncFailed(host, reason):
            return "cannot read the time of \(host) (neither rpcbind GETTIME nor the RFC 868 time service answered: \(reason))"
        }
    }
}
