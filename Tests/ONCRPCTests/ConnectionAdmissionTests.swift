// Connection admission on its own: the global cap, the per-address and per-uid caps below
// it, the uids exempt from the per-uid cap, and how a peer is derived from an address.

import NIOCore
import XCTest
@testable import ONCRPC

final class ConnectionAdmissionTests: XCTestCase {
    func testPerPeerCapsBelowTheGlobalOne() {
        var admission = ConnectionAdmission(maximumConnections: 10, maximumPerAddress: 3, maximumPerUID: 2, exemptUIDs: [0])
        let a = ConnectionPeer.ipv4(0x7f00_0001), b = ConnectionPeer.ipv4(0x7f00_0002)
        XCTAssertEqual((0..<5).map { _ in admission.admit(a) }, [nil, nil, nil, .peerFull, .peerFull])
        XCTAssertNil(admission.admit(b), "another address is not held back by the first")
        XCTAssertEqual((0..<3).map { _ in admission.admit(.uid(1001)) }, [nil, nil, .peerFull])
        XCTAssertNil(admission.admit(.uid(1002)))
        XCTAssertNil(admission.admit(.uid(0)), "root is exempt from the per-uid cap")
        XCTAssertNil(admission.admit(.uid(0)))
        XCTAssertEqual(admission.total, 9)
        XCTAssertNil(admission.admit(nil), "a connection without a known peer counts only globally")
        XCTAssertEqual(admission.admit(.uid(0)), .serverFull, "exempt uids still count towards the global cap")
        // Releasing frees the peer's slot, and the table forgets peers with no connection.
        admission.release(a)
        XCTAssertEqual(admission.count(for: a), 2)
        XCTAssertNil(admission.admit(a))
        for _ in 0..<3 { admission.release(a) }
        XCTAssertEqual(admission.count(for: a), 0)
        XCTAssertEqual(admission.total, 7)
    }

    func testConnectionRatePerAddress() {
        var admission = ConnectionAdmission(maximumConnections: 100, maximumPerAddress: 50, maximumPerUID: 50, exemptUIDs: [],
                                            rate: ConnectionRate(perSecond: 2, burst: 3))
        let a = ConnectionPeer.ipv4(0x7f00_0002), b = ConnectionPeer.ipv4(0x7f00_0003)
        // Opened and closed at once, as churn does: the burst, then refused.
        var outcomes: [ConnectionAdmission.Refusal?] = []
        for _ in 0..<5 {
            let refusal = admission.admit(a, now: 1000)
            if refusal == nil { admission.release(a) }
            outcomes.append(refusal)
        }
        XCTAssertEqual(outcomes, [nil, nil, nil, .peerRate, .peerRate])
        XCTAssertNil(admission.admit(b, now: 1000), "another address has its own rate")
        XCTAssertEqual(admission.admit(a, now: 1000.4), .peerRate, "0.8 of a token after 0.4 s")
        XCTAssertNil(admission.admit(a, now: 1000.5), "one token after 0.5 s at 2 per second")
        // Local users are capped by count only.
        for _ in 0..<10 {
            XCTAssertNil(admission.admit(.uid(1001), now: 1000))
            admission.release(.uid(1001))
        }
    }

    func testPeerOfAnAddress() throws {
        XCTAssertEqual(ConnectionPeer(remote: try SocketAddress(ipAddress: "10.1.2.3", port: 99)), .ipv4(0x0a01_0203))
        XCTAssertEqual(ConnectionPeer(remote: try SocketAddress(ipAddress: "::ffff:10.1.2.3", port: 99)), .ipv4(0x0a01_0203),
                       "an IPv4 client on a dual-stack socket is its IPv4 address")
        // One IPv6 host owns its /64: addresses that differ only below it are one peer.
        let x = ConnectionPeer(remote: try SocketAddress(ipAddress: "2001:db8:1:2::1", port: 1))
        let y = ConnectionPeer(remote: try SocketAddress(ipAddress: "2001:db8:1:2:ffff:ffff:ffff:ffff", port: 2))
        let z = ConnectionPeer(remote: try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1))
        XCTAssertEqual(x, .ipv6Prefix(0x2001_0db8_0001_0002))
        XCTAssertEqual(x, y)
        XCTAssertNotEqual(x, z)
        XCTAssertEqual(x.map { "\($0)" }, "2001:db8:1:2::/64")
        XCTAssertEqual("\(ConnectionPeer.ipv4(0x0a01_0203))", "10.1.2.3")
        XCTAssertEqual("\(ConnectionPeer.uid(4001))", "uid 4001")
        XCTAssertNil(ConnectionPeer(remote: try SocketAddress(unixDomainSocketPath: "/tmp/x")))
        XCTAssertNil(ConnectionPeer(remote: nil))
    }
}
