// The protocols user types adopt to be encoded as XDR. Decoding reads from an
// untrusted ByteBuffer and must be total: it either consumes exactly the item or
// throws an XDRError, never traps and never allocates from an unchecked length.

import NIOCore

/// A value that can write itself as XDR (RFC 4506).
public protocol XDREncodable {
    /// Appends the XDR encoding of `self` to `buffer`.
    func encode(into buffer: inout ByteBuffer)
}

/// A value that can read itself from XDR (RFC 4506).
///
/// Conformers read with the bounded `ByteBuffer.readXDR…` methods, which throw before
/// allocating when a length is larger than its maximum or than the bytes that are left.
public protocol XDRDecodable {
    /// Reads one value from the front of `buffer`, advancing its reader index.
    init(xdr buffer: inout ByteBuffer) throws(XDRError)
}

/// A value that is both ``XDREncodable`` and ``XDRDecodable``.
///
/// ```swift
/// struct Point: XDRCodable {
///     var x: Int32, y: Int32
///     init(x: Int32, y: Int32) { self.x = x; self.y = y }
///     init(xdr buffer: inout ByteBuffer) throws(XDRError) {
///         x = try buffer.readXDRInt32()
///         y = try buffer.readXDRInt32()
///     }
///     func encode(into buffer: inout ByteBuffer) {
///         buffer.writeXDR(x)
///         buffer.writeXDR(y)
///     }
/// }
/// ```
public typealias XDRCodable = XDREncodable & XDRDecodable

/// The XDR void type: zero bytes on the wire.
public struct XDRVoid: XDRCodable, Sendable, Hashable {
    public init() {}
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {}
    public func encode(into buffer: inout ByteBuffer) {}
}

/// An enum whose cases are XDR enum values. Conformers get encoding and a decoder that
/// rejects values the enum does not declare.
///
/// ```swift
/// enum Color: Int32, XDREnum { case red = 0, green = 1 }
/// ```
public protocol XDREnum: XDRCodable, RawRepresentable where RawValue == Int32 {}

extension XDREnum {
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        let raw = try buffer.readXDRInt32()
        guard let value = Self(rawValue: raw) else {
            throw .invalidEnumValue(type: String(describing: Self.self), value: raw)
        }
        self = value
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeXDR(rawValue)
    }
}

// Fixed-size primitives encode the same way everywhere, so they conform directly.
// Variable-length types (String, [UInt8], arrays) deliberately do not: each use site
// must name its maximum.

extension Int32: XDRCodable {
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) { self = try buffer.readXDRInt32() }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(self) }
}

extension UInt32: XDRCodable {
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) { self = try buffer.readXDRUInt32() }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(self) }
}

extension Int64: XDRCodable {
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) { self = try buffer.readXDRInt64() }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(self) }
}

extension UInt64: XDRCodable {
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) { self = try buffer.readXDRUInt64() }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(self) }
}

extension Bool: XDRCodable {
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) { self = try buffer.readXDRBool() }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(self) }
}

extension Float: XDRCodable {
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) { self = try buffer.readXDRFloat() }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(self) }
}

extension Double: XDRCodable {
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) { self = try buffer.readXDRDouble() }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(self) }
}
