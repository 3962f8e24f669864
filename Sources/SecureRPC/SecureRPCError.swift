// Failures of authenticated calls that happen before anything is sent, in words a user can
// act on.

/// Why an authenticated call could not be made.
public enum SecureRPCError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The keyserver holds no secret key for this user: run `keylogin`.
    case notLoggedIn(String)
    /// The keyserver answered something else than success.
    case keyserverRefused(String)

    public var description: String {
        switch self {
        case let .notLoggedIn(netname): return "\(netname) is not logged in to the keyserver (run keylogin)"
        case let .keyserverRefused(why): return "the keyserver refused: \(why)"
        }
    }
}
