// Which connections a server accepts: a global cap, and below it a cap per peer, so that
// one client address (TCP) or one local user (unix socket) holding connections open cannot
// lock everybody else out. A TCP peer is its IPv4 address or its IPv6 /64 (one host usually
// owns a whole /64, so counting single IPv6 addresses would cap nothing); a unix-socket peer
// is the uid the kernel reports (SO_PEERCRED), which the caller cannot choose.
// Pure bookkeeping, socket-free; RPCServer holds it under its lock.

import Foundation
import NIOCore

/// Who a connection counts against for the per-peer connection caps.
enum ConnectionPeer: Hashable, Sendable {
    case ipv4(UInt32)
    case ipv6Prefix(UInt64)
    case uid(UInt32)

    /// The peer of a TCP connection from `address`; nil when it has no IP address.
    init?(remote address: SocketAddress?) {
        switch address {
        case let .v4(v4)?:
            self = .ipv4(UInt32(bigEndian: v4.address.sin_addr.s_addr))
        case let .v6(v6)?:
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            // An IPv4 client on a dual-stack socket (::ffff:a.b.c.d) is that IPv4 address.
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                self = .ipv4(bytes[12..<16].reduce(0) { $0 << 8 | UInt32($1) })
            } else {
                self = .ipv6Prefix(bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) })
            }
        default:
            return nil
        }
    }
}

extension ConnectionPeer {
    /// A TCP client address (not a local user).
    var isAddress: Bool {
        if case .uid = self { return false }
        return true
    }
}

extension ConnectionPeer: CustomStringConvertible {
    /// How logs name the peer: "10.1.2.3", "2001:db8:1:2::/64", "uid 4001".
    var description: String {
        switch self {
        case let .ipv4(address):
            return (0..<4).map { "\(address >> (24 - 8 * $0) & 0xff)" }.joined(separator: ".")
        case let .ipv6Prefix(prefix):
            let groups = (0..<4).map { String(prefix >> (48 - 16 * $0) & 0xffff, radix: 16) }
            return groups.joined(separator: ":") + "::/64"
        case let .uid(uid):
            return "uid \(uid)"
        }
    }
}

/// How fast one client address may open connections: `burst` at once, then `perSecond`.
public struct ConnectionRate: Sendable, Equatable {
    public var perSecond: Double
    public var burst: Double

    public init(perSecond: Double, burst: Double) {
        precondition(perSecond > 0 && burst >= 1, "a connection rate needs perSecond > 0 and burst >= 1")
        self.perSecond = perSecond
        self.burst = burst
    }
}

/// The connection counts of one server and the decision for each new connection.
struct ConnectionAdmission {
    enum Refusal: Equatable {
        /// `maximumConnections` are open.
        case serverFull
        /// This address or uid holds as many connections as one peer may.
        case peerFull
        /// This address opened connections faster than its rate.
        case peerRate
    }

    let maximumConnections: Int
    let maximumPerAddress: Int
    let maximumPerUID: Int
    /// Uids without a per-uid cap (they still count towards the global one).
    let exemptUIDs: Set<UInt32>
    private(set) var total = 0
    /// Open connections per peer; a peer leaves the table with its last connection, so the
    /// table never holds more than `maximumConnections` keys.
    private var perPeer: [ConnectionPeer: Int] = [:]

    /// New connections per TCP address (unix-socket peers are local users, capped by count).
    private var rates: TokenBucketTable<ConnectionPeer>

    init(maximumConnections: Int, maximumPerAddress: Int, maximumPerUID: Int, exemptUIDs: Set<UInt32>,
         rate: ConnectionRate = ConnectionRate(perSecond: .greatestFiniteMagnitude, burst: .greatestFiniteMagnitude)) {
        self.maximumConnections = maximumConnections
        self.maximumPerAddress = maximumPerAddress
        self.maximumPerUID = maximumPerUID
        self.exemptUIDs = exemptUIDs
        // As many addresses as the server can hold connections: a flood from more sources
        // than that forgets the quietest ones first.
        self.rates = TokenBucketTable(perSecond: rate.perSecond, burst: rate.burst, capacity: max(1, maximumConnections))
    }

    func count(for peer: ConnectionPeer) -> Int { perPeer[peer] ?? 0 }

    /// Counts the connection in, or says why not. A connection with no known peer counts
    /// only against the global cap.
    mutating func admit(_ peer: ConnectionPeer?, now: TimeInterval = 0) -> Refusal? {
        if total >= maximumConnections { return .serverFull }
        if let peer {
            let held = perPeer[peer] ?? 0
            if held >= limit(for: peer) { return .peerFull }
            if peer.isAddress, !rates.take(peer, now: now) { return .peerRate }
            perPeer[peer] = held + 1
        }
        total += 1
        return nil
    }

    /// Counts out a connection that `admit` let in.
    mutating func release(_ peer: ConnectionPeer?) {
        total -= 1
        if let peer, let held = perPeer[peer] {
            perPeer[peer] = held > 1 ? held - 1 : nil
        }
    }

    private func limit(for peer: ConnectionPeer) -> Int {
        switch peer {
        case .ipv4, .ipv6Prefix: return maximumPerAddress
        case let .uid(uid): return exemptUIDs.contains(uid) ? .max : maximumPerUID
        }
    }
}
