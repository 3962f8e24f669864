// Failures of authenticated calls that happen before anything is sent, in words a user can
// act on.

/// Why an authenticated call could not be made.
public enum SecureRPCError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The keyserver holds no secret key for this user: run `keylogin`.
    case notLoggedIn(String)
    /// The keyserver answered something else than success.
    case keyserverRefused(String)
    /// The server ended this user's context and refuses a new one: the user's key was revoked
    /// or replaced in the directory (`keyadmin revoke`, `chkey`) since the context was made,
    /// and the keyserver still holds the old one.
    case keyChangedOrRevoked(String)

    public var description: String {
        switch self {
        case let .notLoggedIn(netname): return "\(netname) is not logged in to the keyserver (run keylogin)"
        case let .keyserverRefused(why): return "the keyserver refused: \(why)"
        case let .keyChangedOrRevoked(netname): return "the key of \(netname) was changed or revoked: run keylogin"
        }
    }
}
