// HandshakeAdmission on its own, with an injected clock and no sockets: each row of the table
// is a step (who asks, when) and the decision expected. Then the properties that keep it
// bounded: tables forget full buckets and never grow past their cap, a proven handshake gives
// its tokens back, a principal refusal refunds the address, the concurrency bound releases.
// LRUTable, which keeps both the limiter's tables and the GSS context table in order, first.

import Foundation
import NIOCore
import ONCRPC
import XCTest
@testable import SecureRPC

final class LRUTableTests: XCTestCase {
    func testOrderTouchRemoveAndReuse() {
        var table = LRUTable<String, Int>()
        for (i, key) in ["a", "b", "c", "d"].enumerated() { table.insert(key, i) }
        XCTAssertEqual(table.oldest?.key, "a")
        table.touch(at: table.position(of: "a")!)
        XCTAssertEqual(table.oldest?.key, "b")
        XCTAssertEqual(table.remove("c"), 2)
        table.insert("e", 4)  // reuses c's node
        var order: [String] = []
        table.forEach { key, _ in order.append(key) }
        XCTAssertEqual(order, ["b", "d", "a", "e"])
        XCTAssertEqual(table.removeOldest()?.key, "b")
        table.modify(at: table.position(of: "d")!) { $0 = 40 }
        XCTAssertEqual(table["d"], 40)
        table.insert("d", 41)  // replaces and touches
        order = []
        table.forEach { key, value in order.append("\(key)\(value)") }
        XCTAssertEqual(order, ["a0", "e4", "d41"])
        while table.removeOldest() != nil {}
        XCTAssertTrue(table.isEmpty)
        XCTAssertNil(table.oldest)
        table.insert("z", 9)
        XCTAssertEqual(table.oldest?.key, "z")
    }

    func testMatchesANaiveModelUnderRandomOperations() {
        var table = LRUTable<Int, Int>()
        var model: [(key: Int, value: Int)] = []  // oldest first
        var generator = SystemRandomNumberGenerator()
        for step in 0..<20_000 {
            let key = Int.random(in: 0..<64, using: &generator)
            switch Int.random(in: 0..<4, using: &generator) {
            case 0:
                table.insert(key, step)
                model.removeAll { $0.key == key }
                model.append((key, step))
            case 1:
                XCTAssertEqual(table.remove(key), model.first { $0.key == key }?.value)
                model.removeAll { $0.key == key }
            case 2:
                if let position = table.position(of: key) {
                    table.touch(at: position)
                    let entry = model.first { $0.key == key }!
                    model.removeAll { $0.key == key }
                    model.append(entry)
                } else {
                    XCTAssertFalse(model.contains { $0.key == key })
                }
            default:
                XCTAssertEqual(table.removeOldest()?.key, model.first?.key)
                if !model.isEmpty { model.removeFirst() }
            }
            XCTAssertEqual(table.count, model.count)
            XCTAssertEqual(table.oldest?.key, model.first?.key)
        }
    }
}

final class HandshakeAdmissionTests: XCTestCase {
    private func limits(concurrent: Int = 100, address: HandshakeAdmission.Rate, principal: HandshakeAdmission.Rate,
                        addresses: Int = 100, principals: Int = 100) -> HandshakeAdmission.Limits {
        var limits = HandshakeAdmission.Limits()
        limits.maximumConcurrent = concurrent
        limits.perAddress = address
        limits.perPrincipal = principal
        limits.maximumAddresses = addresses
        limits.maximumPrincipals = principals
        return limits
    }

    /// The table: (seconds since start, source, principal, outcome, proven when admitted).
    func testTokenBucketsTable() {
        enum Outcome: Equatable { case ok, busy, address, principal }
        let clock = ClockBox(1_000)
        let admission = HandshakeAdmission(limits: limits(address: .init(perSecond: 1, burst: 3), principal: .init(perSecond: 0.5, burst: 2)),
                                           now: { clock.now })
        let rows: [(at: TimeInterval, source: String?, principal: String, expect: Outcome, proven: Bool)] = [
            (0, "A", "p1", .ok, false),
            (0, "A", "p1", .ok, false),
            (0, "A", "p1", .principal, false),   // p1's burst (2) used up; A's token refunded
            (0, "A", "p2", .ok, false),          // A: third token
            (0, "A", "p3", .address, false),     // A's burst (3) used up
            (0, "B", "p3", .ok, false),          // another address is not affected
            (0.5, "A", "p4", .address, false),   // half a token back: not enough
            (1, "A", "p4", .ok, true),           // one token back; proven: gives it back again
            (1, "A", "p5", .ok, false),          // ... so A still has one
            (1, "A", "p6", .address, false),
            (4, "A", "p1", .ok, false),          // p1 refilled (0.5/s for 4 s), A too
            (4, nil, "p1", .ok, false),          // no address known: only the principal bucket
            (4, nil, "p1", .principal, false),
        ]
        for (index, row) in rows.enumerated() {
            clock.set(1_000 + row.at)
            let decision = admission.admit(source: row.source, principal: row.principal)
            let outcome: Outcome
            switch decision {
            case let .admitted(ticket):
                outcome = .ok
                admission.finish(ticket, proven: row.proven)
            case .refused(.busy): outcome = .busy
            case .refused(.addressRate): outcome = .address
            case .refused(.principalRate): outcome = .principal
            }
            XCTAssertEqual(outcome, row.expect, "row \(index): \(row)")
        }
        let statistics = admission.statistics
        XCTAssertEqual(statistics.admitted, 8)
        XCTAssertEqual(statistics.refusedAddress, 3)
        XCTAssertEqual(statistics.refusedPrincipal, 2)
        XCTAssertEqual(statistics.inProgress, 0)
    }

    func testProvenHandshakesAreNeverMetered() {
        let clock = ClockBox(0)
        let admission = HandshakeAdmission(limits: limits(address: .init(perSecond: 1, burst: 2), principal: .init(perSecond: 1, burst: 2)),
                                           now: { clock.now })
        // 1,000 honest set-ups in the same instant from one address and principal.
        for _ in 0..<1_000 {
            guard case let .admitted(ticket) = admission.admit(source: "A", principal: "p") else { return XCTFail("refused") }
            admission.finish(ticket, proven: true)
        }
        // But two in flight at once is the burst: the third waits for one to finish.
        guard case let .admitted(first) = admission.admit(source: "A", principal: "p"),
              case let .admitted(second) = admission.admit(source: "A", principal: "p") else { return XCTFail("refused") }
        guard case .refused(.addressRate) = admission.admit(source: "A", principal: "p") else { return XCTFail("admitted a third") }
        admission.finish(first, proven: true)
        admission.finish(second, proven: false)
        guard case let .admitted(third) = admission.admit(source: "A", principal: "p") else { return XCTFail("refused after a proven finish") }
        admission.finish(third, proven: false)
        guard case .refused = admission.admit(source: "A", principal: "p") else { return XCTFail("two failures must empty a burst of 2") }
    }

    func testConcurrencyBoundAndRelease() {
        let admission = HandshakeAdmission(limits: limits(concurrent: 3, address: .unlimited, principal: .unlimited))
        var tickets: [HandshakeAdmission.Ticket] = []
        for i in 0..<3 {
            guard case let .admitted(ticket) = admission.admit(source: "S\(i)", principal: "p\(i)") else { return XCTFail("refused \(i)") }
            tickets.append(ticket)
        }
        guard case .refused(.busy) = admission.admit(source: "T", principal: "q") else { return XCTFail("a fourth at once") }
        XCTAssertEqual(admission.statistics.inProgress, 3)
        admission.finish(tickets.removeFirst(), proven: false)
        guard case let .admitted(ticket) = admission.admit(source: "T", principal: "q") else { return XCTFail("a slot was freed") }
        tickets.append(ticket)
        for ticket in tickets { admission.finish(ticket, proven: false) }
        XCTAssertEqual(admission.statistics.inProgress, 0)
        XCTAssertEqual(admission.statistics.refusedBusy, 1)
    }

    func testOneSourceCannotHoldEverySlot() {
        // 8 at once, 2 per source (a quarter).
        let admission = HandshakeAdmission(limits: limits(concurrent: 8, address: .unlimited, principal: .unlimited))
        var flood: [HandshakeAdmission.Ticket] = []
        for i in 0..<10 {
            if case let .admitted(ticket) = admission.admit(source: "flooder", principal: "p\(i)") { flood.append(ticket) }
        }
        XCTAssertEqual(flood.count, 2)
        let flooderContext = RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil, peer: PeerCredentials(pid: 1, uid: 7, gid: 7))
        var held: [HandshakeAdmission.Ticket] = []
        for _ in 0..<2 { if case let .admitted(ticket) = admission.admit(context: flooderContext, principal: "r") { held.append(ticket) } }
        XCTAssertEqual(admission.wouldRefuse(context: flooderContext, principal: "r"), .busy, "the peek sees the per-source bound too")
        for ticket in held { admission.finish(ticket, proven: false) }
        guard case let .admitted(other) = admission.admit(source: "someone else", principal: "q") else { return XCTFail("another source is let in") }
        admission.finish(flood.removeFirst(), proven: false)
        guard case let .admitted(again) = admission.admit(source: "flooder", principal: "p") else { return XCTFail("a slot of its own was freed") }
        for ticket in flood + [other, again] { admission.finish(ticket, proven: false) }
        XCTAssertEqual(admission.statistics.inProgress, 0)
    }

    func testTablesStayBoundedAndForgetFullBuckets() {
        let clock = ClockBox(0)
        let admission = HandshakeAdmission(limits: limits(address: .init(perSecond: 10, burst: 5), principal: .init(perSecond: 10, burst: 5),
                                                          addresses: 50, principals: 80), now: { clock.now })
        // 10,000 sources and principals in the same instant: the tables stop at their caps.
        for i in 0..<10_000 {
            if case let .admitted(ticket) = admission.admit(source: "S\(i)", principal: "p\(i)") { admission.finish(ticket, proven: false) }
            XCTAssertLessThanOrEqual(admission.statistics.trackedAddresses, 50)
            XCTAssertLessThanOrEqual(admission.statistics.trackedPrincipals, 80)
        }
        XCTAssertEqual(admission.statistics.trackedAddresses, 50)
        // Half a second later every bucket (burst 5, 10/s; each used once) is full again:
        // the next admission forgets them all.
        clock.advance(0.5)
        if case let .admitted(ticket) = admission.admit(source: "new", principal: "new") { admission.finish(ticket, proven: false) }
        XCTAssertEqual(admission.statistics.trackedAddresses, 1)
        XCTAssertEqual(admission.statistics.trackedPrincipals, 1)
    }

    func testSourceKeys() throws {
        let v4 = RPCCallContext(transport: .tcp, remoteAddress: try SocketAddress(ipAddress: "127.0.0.2", port: 1), localAddress: nil)
        let v4b = RPCCallContext(transport: .udp, remoteAddress: try SocketAddress(ipAddress: "127.0.0.2", port: 999), localAddress: nil)
        let other = RPCCallContext(transport: .tcp, remoteAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 1), localAddress: nil)
        XCTAssertEqual(HandshakeAdmission.sourceKey(v4), HandshakeAdmission.sourceKey(v4b), "the port does not matter")
        XCTAssertNotEqual(HandshakeAdmission.sourceKey(v4), HandshakeAdmission.sourceKey(other))
        let a = RPCCallContext(transport: .tcp, remoteAddress: try SocketAddress(ipAddress: "2001:db8:1:2:aaaa::1", port: 1), localAddress: nil)
        let b = RPCCallContext(transport: .tcp, remoteAddress: try SocketAddress(ipAddress: "2001:db8:1:2:bbbb::9", port: 1), localAddress: nil)
        let c = RPCCallContext(transport: .tcp, remoteAddress: try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1), localAddress: nil)
        XCTAssertEqual(HandshakeAdmission.sourceKey(a), HandshakeAdmission.sourceKey(b), "one /64 is one source")
        XCTAssertNotEqual(HandshakeAdmission.sourceKey(a), HandshakeAdmission.sourceKey(c))
        let unix = RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil, peer: PeerCredentials(pid: 1, uid: 1001, gid: 1))
        XCTAssertEqual(HandshakeAdmission.sourceKey(unix), "uid 1001")
        XCTAssertNil(HandshakeAdmission.sourceKey(RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil)))
    }
}
