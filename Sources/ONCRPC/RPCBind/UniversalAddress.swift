// Universal addresses (RFC 1833 §2.2 / RFC 5665): how rpcbind writes a transport address as
// text. IPv4 `h1.h2.h3.h4.p1.p2`, IPv6 `<textual address>.p1.p2`, port = p1 * 256 + p2.
// Parsing takes text from rpcbind replies, so every part is checked.

import NIOCore

/// Conversion between `SocketAddress` and universal address strings.
public enum UniversalAddress {
    /// The universal address of an IP socket address; nil for unix sockets.
    public static func format(_ address: SocketAddress) -> String? {
        guard let ip = address.ipAddress, let port = address.port, (0...65535).contains(port) else { return nil }
        return "\(ip).\(port >> 8).\(port & 0xff)"
    }

    /// Parses a universal address for an IP transport. Returns nil when malformed.
    public static func parse(_ text: String) -> SocketAddress? {
        // The last two dot-separated fields are the port; the rest is the IP address.
        guard let lastDot = text.lastIndex(of: ".") else { return nil }
        let beforeLast = text[..<lastDot]
        guard let secondDot = beforeLast.lastIndex(of: ".") else { return nil }
        let host = String(text[..<secondDot])
        guard let high = UInt16(text[text.index(after: secondDot)..<lastDot]), high <= 255,
              let low = UInt16(text[text.index(after: lastDot)...]), low <= 255,
              !host.isEmpty
        else { return nil }
        return try? SocketAddress(ipAddress: host, port: Int(high) << 8 | Int(low))
    }

    /// The rpcbind netid for a transport over an address family.
    public static func netid(for transport: RPCTransport, address: SocketAddress) -> String {
        let base = transport.rawValue
        return address.protocol == .inet6 ? base + "6" : base
    }
}
