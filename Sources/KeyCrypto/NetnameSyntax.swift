// What a netname may look like, checked before a netname that came from the network is used,
// logged or mapped to a local user. Shared by the directory, the keyserver and both
// authentication flavors, so "well formed" means one thing everywhere. Trusts nothing: the
// input is whatever a peer put in a credential or token.

/// The syntax of Secure RPC netnames: `unix.NAME@DOMAIN`.
public enum NetnameSyntax {
    /// MAXNETNAMELEN in the C headers.
    public static let maximumLength = 255

    /// Why `netname` is not a well-formed netname, or nil when it is: at most 255 bytes,
    /// printable ASCII without spaces, `unix.` then a non-empty name, exactly one `@`, then a
    /// non-empty domain.
    public static func problem(_ netname: String) -> String? {
        let bytes = netname.utf8
        guard bytes.count <= maximumLength else { return "longer than \(maximumLength) bytes" }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return "only printable ASCII without spaces" }
        guard netname.hasPrefix("unix."), bytes.lazy.filter({ $0 == UInt8(ascii: "@") }).count == 1,
              let at = netname.firstIndex(of: "@"),
              netname.index(netname.startIndex, offsetBy: 5) < at, netname.index(after: at) < netname.endIndex else {
            return "expected unix.NAME@DOMAIN"
        }
        return nil
    }

    public static func isWellFormed(_ netname: String) -> Bool { problem(netname) == nil }

    /// The uid `unix.UID@domain` names, when `netname` is well formed, belongs to `domain`
    /// and its name part is a decimal uid; nil otherwise (host names, other domains, and
    /// anything malformed, such as a second `@`, never map to a local user).
    public static func localUID(_ netname: String, domain: String) -> UInt32? {
        guard isWellFormed(netname), netname.hasSuffix("@" + domain) else { return nil }
        let name = netname.dropFirst(5).prefix { $0 != "@" }
        guard name.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return UInt32(name)
    }
}
