// Numbers fixed by RFC 5531 (ONC RPC v2): message types, reply statuses, authentication
// flavors and statuses. Flavors and auth statuses are open-ended on the wire (new ones
// appear in later RFCs), so they are structs over their raw value rather than enums.

/// The RPC protocol version this implementation speaks (RFC 5531 §8).
public let rpcProtocolVersion: UInt32 = 2

/// An authentication flavor number (RFC 5531 §8.2).
public struct AuthFlavor: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let none = AuthFlavor(rawValue: 0)
    /// AUTH_SYS, historically AUTH_UNIX.
    public static let sys = AuthFlavor(rawValue: 1)
    public static let short = AuthFlavor(rawValue: 2)
    /// AUTH_DH, historically AUTH_DES.
    public static let dh = AuthFlavor(rawValue: 3)
    public static let kerberos4 = AuthFlavor(rawValue: 4)
    public static let rpcsecGSS = AuthFlavor(rawValue: 6)

    public var description: String {
        switch self {
        case .none: return "AUTH_NONE"
        case .sys: return "AUTH_SYS"
        case .short: return "AUTH_SHORT"
        case .dh: return "AUTH_DH"
        case .kerberos4: return "AUTH_KERB4"
        case .rpcsecGSS: return "RPCSEC_GSS"
        default: return "flavor \(rawValue)"
        }
    }
}

/// Why a server refused a call's authentication (RFC 5531 §9, RFC 2203 §5.3.3.3).
public struct AuthStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let ok = AuthStatus(rawValue: 0)
    public static let badCredential = AuthStatus(rawValue: 1)
    public static let rejectedCredential = AuthStatus(rawValue: 2)
    public static let badVerifier = AuthStatus(rawValue: 3)
    public static let rejectedVerifier = AuthStatus(rawValue: 4)
    public static let tooWeak = AuthStatus(rawValue: 5)
    public static let invalidResponse = AuthStatus(rawValue: 6)
    public static let failed = AuthStatus(rawValue: 7)
    public static let gssCredentialProblem = AuthStatus(rawValue: 13)
    public static let gssContextProblem = AuthStatus(rawValue: 14)

    public var description: String {
        switch rawValue {
        case 0: return "AUTH_OK"
        case 1: return "AUTH_BADCRED (bad credential)"
        case 2: return "AUTH_REJECTEDCRED (client must begin a new session)"
        case 3: return "AUTH_BADVERF (bad verifier)"
        case 4: return "AUTH_REJECTEDVERF (verifier expired or replayed)"
        case 5: return "AUTH_TOOWEAK (rejected for security reasons)"
        case 6: return "AUTH_INVALIDRESP (bogus response verifier)"
        case 7: return "AUTH_FAILED (reason unknown)"
        case 13: return "RPCSEC_GSS_CREDPROBLEM"
        case 14: return "RPCSEC_GSS_CTXPROBLEM"
        default: return "auth status \(rawValue)"
        }
    }
}

/// `msg_type` (RFC 5531 §9).
public enum RPCMessageType: UInt32, Sendable {
    case call = 0
    case reply = 1
}

/// Wire values of `accept_stat`.
public enum AcceptStatusCode: UInt32, Sendable {
    case success = 0
    case programUnavailable = 1
    case programMismatch = 2
    case procedureUnavailable = 3
    case garbageArguments = 4
    case systemError = 5
}
