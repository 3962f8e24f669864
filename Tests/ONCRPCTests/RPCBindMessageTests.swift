// rpcbind messages and universal addresses without a daemon: golden bytes from vectors.md §7.

import NIOCore
import XCTest
import XDR
@testable import ONCRPC

final class RPCBindMessageTests: XCTestCase {
    func testGetTimeCallGoldenBytes() {
        var buffer = ByteBuffer()
        RPCCall(xid: 0x1234_5678, program: 100_000, version: 3, procedure: 6).encode(into: &buffer)
        XCTAssertEqual(hexString(buffer), "12345678000000000000000200" + "0186a0000000030000000600000000000000000000000000000000")
        XCTAssertEqual(buffer.readableBytes, 40)
        var framed = RPCFraming.startMessage(allocator: ByteBufferAllocator(), capacity: 40)
        var copy = buffer
        framed.writeBuffer(&copy)
        RPCFraming.finishRecord(&framed)
        XCTAssertEqual(hexString(framed.getSlice(at: framed.readerIndex, length: 4)!), "80000028")
    }

    func testGetTimeReplyDecodes() throws {
        let reply = try RPCReply.decode(ByteBuffer(bytes: bytes(fromHex: "12345678 00000001 00000000 00000000 00000000 00000000 6553f100")))
        XCTAssertEqual(reply.xid, 0x1234_5678)
        guard case let .accepted(verifier, .success(results)) = reply.status else { return XCTFail("\(reply)") }
        XCTAssertEqual(verifier, .none)
        XCTAssertEqual(try results.decodeXDRExactly(UInt32.self), 1_700_000_000)
    }

    func testMappingGoldenBytes() throws {
        let mapping = RPCBindMapping(program: 100_003, version: 3, netid: "tcp", address: "127.0.0.1.8.1", owner: "0")
        let encoded = mapping.xdrEncoded()
        XCTAssertEqual(hexString(encoded),
            "000186a3" + "00000003" + "00000003" + "74637000" + "0000000d" + "3132372e302e302e312e382e31000000" + "00000001" + "30000000")
        XCTAssertEqual(try encoded.decodeXDRExactly(RPCBindMapping.self), mapping)
        let pmap = PortMapping(program: 100_003, version: 3, protocol: .udp, port: 2049)
        XCTAssertEqual(hexString(pmap.xdrEncoded()), "000186a3" + "00000003" + "00000011" + "00000801")
    }

    func testDumpListIsBounded() throws {
        var list = ByteBuffer()
        list.writeXDRLinkedList(0..<3) { buffer, i in
            RPCBindMapping(program: UInt32(i), version: 1, netid: "udp", address: "", owner: "").encode(into: &buffer)
        }
        XCTAssertEqual(try list.decodeXDRExactly(RPCBindMappingList.self).entries.map(\.program), [0, 1, 2])
        // A chain claiming an entry that is not there is an error, not a crash.
        var truncated = ByteBuffer()
        truncated.writeXDR(true)
        truncated.writeXDR(UInt32(1))
        XCTAssertThrowsError(try truncated.decodeXDRExactly(RPCBindMappingList.self))
    }

    func testUniversalAddresses() throws {
        XCTAssertEqual(UniversalAddress.format(try SocketAddress(ipAddress: "127.0.0.1", port: 2049)), "127.0.0.1.8.1")
        XCTAssertEqual(UniversalAddress.format(try SocketAddress(ipAddress: "10.1.2.3", port: 37)), "10.1.2.3.0.37")
        XCTAssertEqual(UniversalAddress.format(try SocketAddress(ipAddress: "::1", port: 111)), "::1.0.111")
        XCTAssertEqual(UniversalAddress.parse("127.0.0.1.8.1")?.port, 2049)
        XCTAssertEqual(UniversalAddress.parse("127.0.0.1.8.1")?.ipAddress, "127.0.0.1")
        XCTAssertEqual(UniversalAddress.parse("::1.0.111")?.port, 111)
        XCTAssertEqual(UniversalAddress.parse("fe80::1.4.1")?.ipAddress, "fe80::1")
        for bad in ["", "127.0.0.1", "127.0.0.1.8", "127.0.0.1.256.1", "127.0.0.1.1.x", ".1.1", "host.1.1", "1.2.3.4.-1.0"] {
            XCTAssertNil(UniversalAddress.parse(bad), bad)
        }
        XCTAssertEqual(UniversalAddress.netid(for: .udp, address: try SocketAddress(ipAddress: "::1", port: 1)), "udp6")
        XCTAssertEqual(UniversalAddress.netid(for: .tcp, address: try SocketAddress(ipAddress: "127.0.0.1", port: 1)), "tcp")
    }
}
