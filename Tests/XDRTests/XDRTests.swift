// Golden-byte tests for every XDR item (vectors.md §7 and RFC 4506 examples) and the
// bounds every decoder must enforce before it allocates.

import NIOCore
import XCTest
@testable import XDR

private func hex(_ buffer: ByteBuffer) -> String {
    buffer.readableBytesView.map { String(format: "%02x", $0) }.joined()
}

private func buffer(_ hex: String) -> ByteBuffer {
    let clean = hex.filter { !$0.isWhitespace }
    var bytes: [UInt8] = []
    var index = clean.startIndex
    while index < clean.endIndex {
        let next = clean.index(index, offsetBy: 2)
        bytes.append(UInt8(clean[index..<next], radix: 16)!)
        index = next
    }
    return ByteBuffer(bytes: bytes)
}

private enum Color: Int32, XDREnum { case red = 0, green = 1, blue = 7 }

/// A union with a default arm, as the RPC language allows.
private enum Shape: XDRCodable, Equatable {
    case circle(radius: UInt32)
    case named(String)
    case other(discriminant: Int32)

    init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        let d = try buffer.readXDRInt32()
        switch d {
        case 1: self = .circle(radius: try buffer.readXDRUInt32())
        case 2: self = .named(try buffer.readXDRString(maxLength: 16))
        default: self = .other(discriminant: d)
        }
    }

    func encode(into buffer: inout ByteBuffer) {
        switch self {
        case let .circle(radius): buffer.writeXDR(Int32(1)); buffer.writeXDR(radius)
        case let .named(name): buffer.writeXDR(Int32(2)); buffer.writeXDR(name)
        case let .other(d): buffer.writeXDR(d)
        }
    }
}

final class XDRGoldenTests: XCTestCase {
    func testIntegers() throws {
        var b = ByteBuffer()
        b.writeXDR(Int32(-1)); b.writeXDR(UInt32(0x01020304)); b.writeXDR(Int64(-2)); b.writeXDR(UInt64(1 << 40))
        XCTAssertEqual(hex(b), "ffffffff" + "01020304" + "fffffffffffffffe" + "0000010000000000")
        XCTAssertEqual(try b.readXDRInt32(), -1)
        XCTAssertEqual(try b.readXDRUInt32(), 0x01020304)
        XCTAssertEqual(try b.readXDRInt64(), -2)
        XCTAssertEqual(try b.readXDRUInt64(), 1 << 40)
        XCTAssertEqual(b.readableBytes, 0)
    }

    func testBool() throws {
        var b = ByteBuffer()
        b.writeXDR(true); b.writeXDR(false)
        XCTAssertEqual(hex(b), "0000000100000000")
        XCTAssertEqual(try b.readXDRBool(), true)
        XCTAssertEqual(try b.readXDRBool(), false)
        var bad = buffer("00000002")
        XCTAssertThrowsError(try bad.readXDRBool()) { XCTAssertEqual($0 as? XDRError, .invalidBool(2)) }
    }

    func testFloatingPoint() throws {
        var b = ByteBuffer()
        b.writeXDR(Float(1.5)); b.writeXDR(Double(-2.25))
        XCTAssertEqual(hex(b), "3fc00000" + "c002000000000000")
        XCTAssertEqual(try b.readXDRFloat(), 1.5)
        XCTAssertEqual(try b.readXDRDouble(), -2.25)
    }

    func testEnum() throws {
        XCTAssertEqual(hex(Color.blue.xdrEncoded()), "00000007")
        XCTAssertEqual(try buffer("00000001").decodeXDRExactly(Color.self), .green)
        XCTAssertThrowsError(try buffer("00000003").decodeXDRExactly(Color.self)) {
            XCTAssertEqual($0 as? XDRError, .invalidEnumValue(type: "Color", value: 3))
        }
    }

    func testStringAndOpaqueGolden() throws {
        var b = ByteBuffer()
        b.writeXDR("abc")
        XCTAssertEqual(hex(b), "0000000361626300")
        XCTAssertEqual(try b.readXDRString(maxLength: 3), "abc")

        var fixed = ByteBuffer()
        fixed.writeXDRFixedOpaque([1, 2, 3, 4, 5] as [UInt8])
        XCTAssertEqual(hex(fixed), "0102030405000000")
        XCTAssertEqual(try fixed.readXDRFixedOpaqueBytes(count: 5), [1, 2, 3, 4, 5])
        XCTAssertEqual(fixed.readableBytes, 0)

        for n in 0...8 {
            var v = ByteBuffer()
            v.writeXDROpaque([UInt8](repeating: 0xAB, count: n))
            XCTAssertEqual(v.readableBytes, xdrOpaqueSize(n))
            XCTAssertEqual(v.readableBytes % 4, 0)
            XCTAssertEqual(try v.readXDROpaqueBytes(maxLength: 8), [UInt8](repeating: 0xAB, count: n))
            XCTAssertEqual(v.readableBytes, 0)
        }
    }

    func testOpaqueIsZeroCopySlice() throws {
        var b = buffer("00000004 deadbeef 00000001")
        let slice = try b.readXDROpaque(maxLength: 4)
        XCTAssertEqual(hex(slice), "deadbeef")
        XCTAssertEqual(try b.readXDRUInt32(), 1)
    }

    func testArraysAndOptionals() throws {
        var b = ByteBuffer()
        b.writeXDRArray([UInt32(1), 2, 3])
        b.writeXDROptional(UInt32(9)) { $0.writeXDR($1) }
        b.writeXDROptional(UInt32?.none) { $0.writeXDR($1) }
        b.writeXDRLinkedList(["a", "bc"]) { $0.writeXDR($1) }
        XCTAssertEqual(hex(b), "00000003 00000001 00000002 00000003 00000001 00000009 00000000"
            .replacingOccurrences(of: " ", with: "") + "00000001 00000001 61000000 00000001 00000002 62630000 00000000"
            .replacingOccurrences(of: " ", with: ""))
        XCTAssertEqual(try b.readXDRArray(of: UInt32.self, maxCount: 3), [1, 2, 3])
        XCTAssertEqual(try b.readXDROptional { (b: inout ByteBuffer) throws(XDRError) in try b.readXDRUInt32() }, 9)
        XCTAssertNil(try b.readXDROptional { (b: inout ByteBuffer) throws(XDRError) in try b.readXDRUInt32() })
        XCTAssertEqual(try b.readXDRLinkedList(maxCount: 2) { (b: inout ByteBuffer) throws(XDRError) in try b.readXDRString(maxLength: 2) }, ["a", "bc"])
        XCTAssertEqual(b.readableBytes, 0)
    }

    func testUnionWithDefaultArm() throws {
        for shape in [Shape.circle(radius: 3), .named("hi"), .other(discriminant: 99)] {
            XCTAssertEqual(try shape.xdrEncoded().decodeXDRExactly(Shape.self), shape)
        }
        XCTAssertEqual(hex(Shape.named("hi").xdrEncoded()), "00000002" + "00000002" + "68690000")
    }

    func testVoid() throws {
        XCTAssertEqual(XDRVoid().xdrEncoded().readableBytes, 0)
        XCTAssertEqual(try ByteBuffer().decodeXDRExactly(XDRVoid.self), XDRVoid())
    }
}

final class XDRBoundsTests: XCTestCase {
    func testTruncatedPrimitives() {
        var b = buffer("000000")
        XCTAssertThrowsError(try b.readXDRUInt32()) { XCTAssertEqual($0 as? XDRError, .truncated(needed: 4, available: 3)) }
        var h = buffer("00000000 000000")
        XCTAssertThrowsError(try h.readXDRUInt64()) { XCTAssertEqual($0 as? XDRError, .truncated(needed: 8, available: 7)) }
    }

    func testStringLongerThanMaximum() {
        var b = buffer("00000004 61626364")
        XCTAssertThrowsError(try b.readXDRString(maxLength: 3)) {
            XCTAssertEqual($0 as? XDRError, .lengthExceedsMaximum(length: 4, maximum: 3))
        }
        XCTAssertEqual(b.readerIndex, 0, "a failed read leaves the buffer where it was")
    }

    func testLengthLargerThanTheRecordIsRejectedBeforeAllocating() {
        // A 4 GiB string claim in an 8-byte buffer.
        var b = buffer("ffffffff 61626364")
        XCTAssertThrowsError(try b.readXDROpaqueBytes()) {
            XCTAssertEqual($0 as? XDRError, .truncated(needed: Int(UInt32.max) + 1, available: 4))
        }
        var s = buffer("00000005 61626364")
        XCTAssertThrowsError(try s.readXDRString()) {
            XCTAssertEqual($0 as? XDRError, .truncated(needed: 8, available: 4))
        }
    }

    func testArrayCountLargerThanTheBytesLeft() {
        var b = buffer("7fffffff 00000001")
        XCTAssertThrowsError(try b.readXDRArray(of: UInt32.self)) {
            XCTAssertEqual($0 as? XDRError, .truncated(needed: 0x7fffffff * 4, available: 4))
        }
        var c = buffer("00000003 00000001 00000002 00000003")
        XCTAssertThrowsError(try c.readXDRArray(of: UInt32.self, maxCount: 2)) {
            XCTAssertEqual($0 as? XDRError, .lengthExceedsMaximum(length: 3, maximum: 2))
        }
    }

    func testFixedArrayAndOpaqueNeedTheirBytes() {
        var b = buffer("00000001")
        XCTAssertThrowsError(try b.readXDRFixedArray(count: 2) { (b: inout ByteBuffer) throws(XDRError) in try b.readXDRUInt32() })
        var o = buffer("01020304 05")
        XCTAssertThrowsError(try o.readXDRFixedOpaque(count: 5)) {
            XCTAssertEqual($0 as? XDRError, .truncated(needed: 8, available: 5))
        }
    }

    func testLinkedListIsBoundedAndIterative() {
        var long = ByteBuffer()
        long.writeXDRLinkedList(0..<200_000) { $0.writeXDR(UInt32($1)) }
        var copy = long
        let items = try? copy.readXDRLinkedList(maxCount: 200_000) { (b: inout ByteBuffer) throws(XDRError) in try b.readXDRUInt32() }
        XCTAssertEqual(items?.count, 200_000)
        XCTAssertThrowsError(try long.readXDRLinkedList(maxCount: 10) { (b: inout ByteBuffer) throws(XDRError) in try b.readXDRUInt32() })
    }

    func testInvalidUTF8String() {
        var b = buffer("00000002 c3280000")
        XCTAssertThrowsError(try b.readXDRString()) { XCTAssertEqual($0 as? XDRError, .invalidString) }
    }

    func testStringsAreAcceptedExactlyWhenTheyAreValidUTF8() throws {
        // Valid: ASCII (with a NUL), two-, three- and four-byte sequences, U+FFFD itself.
        for text in ["", "host-1", "a\u{0}b", "héllo", "日本語", "𝄞 clef", "\u{FFFD}", "naïve\u{10FFFF}"] {
            var b = ByteBuffer()
            b.writeXDR(text)
            XCTAssertEqual(try b.readXDRString(), text)
            XCTAssertEqual(b.readableBytes, 0)
        }
        // Invalid: a lone continuation byte, an overlong encoding, an encoded surrogate, a
        // sequence cut short (at the end and in the middle), a byte that never occurs, a
        // code point past U+10FFFF. Each is refused and leaves the reader where it was.
        let invalid: [[UInt8]] = [
            [0x80], [0x61, 0xBF], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80],
            [0xE6, 0x97], [0xE6, 0x97, 0x61], [0xF0, 0x9D, 0x84], [0xFF], [0x61, 0xFE, 0x62],
            [0xF4, 0x90, 0x80, 0x80], [0xC3],
        ]
        for bytes in invalid {
            var b = ByteBuffer()
            b.writeXDROpaque(bytes)
            XCTAssertThrowsError(try b.readXDRString(), "\(bytes)") { XCTAssertEqual($0 as? XDRError, .invalidString) }
            XCTAssertEqual(b.readerIndex, 0)
        }
    }

    func testTrailingBytes() {
        XCTAssertThrowsError(try buffer("00000001 00000002").decodeXDRExactly(UInt32.self)) {
            XCTAssertEqual($0 as? XDRError, .trailingBytes(count: 4))
        }
    }

    func testNonZeroPaddingIsAcceptedLikeLibtirpc() throws {
        var b = buffer("00000001 61ffffff")
        XCTAssertEqual(try b.readXDRString(maxLength: 4), "a")
    }
}
