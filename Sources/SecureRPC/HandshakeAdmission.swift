// Admission control for handshakes that cost the server work before the caller is proven: an
// RPCSEC_GSS INIT (directory lookup, keyserver derive — a modexp on a cache miss — then an
// AEAD open) and, later, an AUTH_DH fullname credential (the same lookup and keyserver call).
// Trusts nothing about the caller: the address is what the socket says (loopback and LAN
// peers can be many users behind one address), the principal is only claimed. Three limits,
// checked in this order, each answered at once and without any lookup:
//   1. handshakes in progress at once (per server, and per source within that): the
//      backstop that bounds total work, and that one source cannot take all of;
//   2. a token bucket per source address (IPv4 address, IPv6 /64, or peer uid on a unix socket);
//   3. a token bucket per claimed principal.
// A handshake that ends by proving its caller gives its two tokens back: the buckets meter
// *unproven* handshakes, so an honest client making many contexts is never slowed, while a
// flood of bad INITs empties its own address's bucket within `burst` packets. Bucket tables
// are bounded LRU tables; an entry is forgotten once its bucket would be full again, and
// when a table is full its least recently used entry goes (that key starts again with a full
// bucket — the concurrency bound still holds).

import Foundation
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC

/// Decides, before any expensive step, whether an unauthenticated handshake may proceed.
///
/// ```swift
/// let admission = HandshakeAdmission()
/// switch admission.admit(context: callContext, principal: claimedNetname) {
/// case let .refused(why):
///     return cheapRefusal(why)               // no lookup, no keyserver call
/// case let .admitted(ticket):
///     let proven = await expensiveHandshake()
///     admission.finish(ticket, proven: proven)
/// }
/// ```
public final class HandshakeAdmission: Sendable {
    /// A sustained rate with a burst allowance.
    public struct Rate: Sendable, Equatable {
        public var perSecond: Double
        public var burst: Double

        public init(perSecond: Double, burst: Double) {
            precondition(perSecond > 0 && burst >= 1)
            self.perSecond = perSecond
            self.burst = burst
        }

        /// No limit at all (for benchmarks and tests of other things).
        public static let unlimited = Rate(perSecond: .greatestFiniteMagnitude, burst: .greatestFiniteMagnitude)
    }

    /// The limits. Only unproven handshakes use up tokens (a proven one gives its tokens
    /// back), but every handshake holds one while it is in progress, so a burst is also how
    /// many handshakes one address or principal can have in flight at once.
    public struct Limits: Sendable, Equatable {
        /// Handshakes between admission and verdict at once; beyond it, `busy`.
        public var maximumConcurrent = 64
        /// Of those, how many one source may hold; nil: a quarter of `maximumConcurrent`.
        /// Without it one address could hold every slot with its burst, and every other
        /// client would be told `busy` while the flood's handshakes wait on the keyserver.
        public var maximumConcurrentPerSource: Int?

        var concurrentPerSource: Int { max(1, maximumConcurrentPerSource ?? maximumConcurrent / 4) }
        /// A whole host (every user on it) shares one address: 200 at once, 50 failures a second.
        public var perAddress = Rate(perSecond: 50, burst: 200)
        /// One principal: 100 at once (a client opening many connections), 10 failures a second.
        public var perPrincipal = Rate(perSecond: 10, burst: 100)
        /// Addresses and principals tracked; the least recently seen is forgotten beyond it.
        public var maximumAddresses = 4096
        public var maximumPrincipals = 16_384

        public init() {}

        /// Nothing refused (benchmarks; tests of other things).
        public static var unlimited: Limits {
            var limits = Limits()
            limits.maximumConcurrent = .max
            limits.maximumConcurrentPerSource = .max
            limits.perAddress = .unlimited
            limits.perPrincipal = .unlimited
            return limits
        }
    }

    /// Why a handshake was not admitted.
    public enum Refusal: Sendable, Equatable, CustomStringConvertible {
        /// Too many handshakes in progress.
        case busy
        /// The source address used up its unproven handshakes for now.
        case addressRate
        /// The claimed principal used up its unproven handshakes for now.
        case principalRate

        public var description: String {
            switch self {
            case .busy: return "too many handshakes in progress"
            case .addressRate: return "too many unproven handshakes from this address"
            case .principalRate: return "too many unproven handshakes for this principal"
            }
        }
    }

    /// An admitted handshake: hand it back to ``finish(_:proven:)`` exactly once.
    public struct Ticket: Sendable {
        fileprivate let address: String?
        fileprivate let principal: String
    }

    public enum Decision: Sendable {
        case admitted(Ticket)
        case refused(Refusal)
    }

    /// Counters for tests and metrics.
    public struct Statistics: Sendable, Equatable {
        public var admitted = 0
        public var refusedBusy = 0
        public var refusedAddress = 0
        public var refusedPrincipal = 0
        /// Handshakes in progress now.
        public var inProgress = 0
        /// Entries in the address and principal tables now.
        public var trackedAddresses = 0
        public var trackedPrincipals = 0
    }

    private struct State {
        var inProgress = 0
        /// Handshakes in progress per source (entries only while one is: at most
        /// `maximumConcurrent` of them).
        var inProgressBySource: [String: Int] = [:]
        var addresses: TokenBucketTable<String>
        var principals: TokenBucketTable<String>
        var statistics = Statistics()
    }

    public let limits: Limits
    private let now: @Sendable () -> TimeInterval
    private let state: NIOLockedValueBox<State>

    public init(limits: Limits = Limits(), now: @escaping @Sendable () -> TimeInterval = { Date().timeIntervalSince1970 }) {
        precondition(limits.maximumAddresses > 0 && limits.maximumPrincipals > 0)
        self.limits = limits
        self.now = now
        state = NIOLockedValueBox(State(addresses: TokenBucketTable(perSecond: limits.perAddress.perSecond, burst: limits.perAddress.burst, capacity: limits.maximumAddresses),
                                        principals: TokenBucketTable(perSecond: limits.perPrincipal.perSecond, burst: limits.perPrincipal.burst, capacity: limits.maximumPrincipals)))
    }

    public var statistics: Statistics {
        state.withLockedValue { state in
            var statistics = state.statistics
            statistics.inProgress = state.inProgress
            statistics.trackedAddresses = state.addresses.count
            statistics.trackedPrincipals = state.principals.count
            return statistics
        }
    }

    /// The key a call's source is metered under: the IPv4 address, the IPv6 /64 (one host
    /// commonly holds a whole /64), the peer uid of a unix-socket caller, or nil when none is
    /// known (no address bucket then; the other limits still apply).
    public static func sourceKey(_ context: RPCCallContext) -> String? {
        if let peer = context.peer { return "uid \(peer.uid)" }
        switch context.remoteAddress {
        case let .v4(address)?:
            return "ip \(UInt32(bigEndian: address.address.sin_addr.s_addr))"
        case let .v6(address)?:
            let prefix = withUnsafeBytes(of: address.address.sin6_addr) { Array($0.prefix(8)) }
            return "ip6 " + prefix.map { String($0, radix: 16) }.joined(separator: ":")
        default:
            return nil
        }
    }

    /// Admits a handshake from `context`'s source claiming `principal`, or says why not.
    public func admit(context: RPCCallContext, principal: String) -> Decision {
        admit(source: Self.sourceKey(context), principal: principal)
    }

    /// As ``admit(context:principal:)``, with the source key already made.
    public func admit(source: String?, principal: String) -> Decision {
        let nowSeconds = now()
        return state.withLockedValue { state in
            guard state.inProgress < limits.maximumConcurrent,
                  source.map({ state.inProgressBySource[$0, default: 0] < limits.concurrentPerSource }) ?? true else {
                state.statistics.refusedBusy += 1
                return .refused(.busy)
            }
            if let source, !state.addresses.take(source, now: nowSeconds) {
                state.statistics.refusedAddress += 1
                return .refused(.addressRate)
            }
            guard state.principals.take(principal, now: nowSeconds) else {
                // The address paid for a handshake that will not happen.
                if let source { state.addresses.giveBack(source, now: nowSeconds) }
                state.statistics.refusedPrincipal += 1
                return .refused(.principalRate)
            }
            state.inProgress += 1
            if let source { state.inProgressBySource[source, default: 0] += 1 }
            state.statistics.admitted += 1
            return .admitted(Ticket(address: source, principal: principal))
        }
    }

    /// Would ``admit(context:principal:)`` refuse now? Takes nothing: a cheap early answer
    /// (on an event loop, say) for what is almost certainly refused; whatever it lets
    /// through still goes through `admit`.
    public func wouldRefuse(context: RPCCallContext, principal: String) -> Refusal? {
        let source = Self.sourceKey(context)
        let nowSeconds = now()
        return state.withLockedValue { state in
            if state.inProgress >= limits.maximumConcurrent
                || source.map({ state.inProgressBySource[$0, default: 0] >= limits.concurrentPerSource }) ?? false {
                state.statistics.refusedBusy += 1
                return .busy
            }
            if let source, !state.addresses.hasToken(source, now: nowSeconds) {
                state.statistics.refusedAddress += 1
                return .addressRate
            }
            if !state.principals.hasToken(principal, now: nowSeconds) {
                state.statistics.refusedPrincipal += 1
                return .principalRate
            }
            return nil
        }
    }

    /// Ends an admitted handshake. `proven`: the caller proved the principal it claimed (its
    /// tokens go back, so honest volume is not metered).
    public func finish(_ ticket: Ticket, proven: Bool) {
        let nowSeconds = now()
        state.withLockedValue { state in
            state.inProgress -= 1
            if let address = ticket.address {
                let left = state.inProgressBySource[address, default: 1] - 1
                state.inProgressBySource[address] = left > 0 ? left : nil
            }
            guard proven else { return }
            if let address = ticket.address { state.addresses.giveBack(address, now: nowSeconds) }
            state.principals.giveBack(ticket.principal, now: nowSeconds)
        }
    }
}
