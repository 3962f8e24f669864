// Fixed-size XDR items (RFC 4506 §4.1-4.7): int, unsigned int, hyper, bool, float,
// double. All big-endian. Reads check the bytes left first and throw `.truncated`.

import NIOCore

extension ByteBuffer {
    @inlinable
    func xdrRequire(_ needed: Int) throws(XDRError) {
        if self.readableBytes < needed {
            throw .truncated(needed: needed, available: self.readableBytes)
        }
    }

    // MARK: reading

    /// Reads an XDR `unsigned int`.
    @inlinable
    public mutating func readXDRUInt32() throws(XDRError) -> UInt32 {
        guard let value = self.readInteger(endianness: .big, as: UInt32.self) else {
            throw .truncated(needed: 4, available: self.readableBytes)
        }
        return value
    }

    /// Reads an XDR `int`.
    @inlinable
    public mutating func readXDRInt32() throws(XDRError) -> Int32 {
        guard let value = self.readInteger(endianness: .big, as: Int32.self) else {
            throw .truncated(needed: 4, available: self.readableBytes)
        }
        return value
    }

    /// Reads an XDR `unsigned hyper`.
    @inlinable
    public mutating func readXDRUInt64() throws(XDRError) -> UInt64 {
        guard let value = self.readInteger(endianness: .big, as: UInt64.self) else {
            throw .truncated(needed: 8, available: self.readableBytes)
        }
        return value
    }

    /// Reads an XDR `hyper`.
    @inlinable
    public mutating func readXDRInt64() throws(XDRError) -> Int64 {
        guard let value = self.readInteger(endianness: .big, as: Int64.self) else {
            throw .truncated(needed: 8, available: self.readableBytes)
        }
        return value
    }

    /// Reads an XDR `bool`. Only 0 and 1 are accepted: libtirpc takes any non-zero value
    /// as TRUE, but a strict reader catches corrupt or misaligned data earlier.
    @inlinable
    public mutating func readXDRBool() throws(XDRError) -> Bool {
        let raw = try self.readXDRUInt32()
        switch raw {
        case 0: return false
        case 1: return true
        default: throw .invalidBool(raw)
        }
    }

    /// Reads an XDR `float` (IEEE 754 binary32, big-endian).
    @inlinable
    public mutating func readXDRFloat() throws(XDRError) -> Float {
        Float(bitPattern: try self.readXDRUInt32())
    }

    /// Reads an XDR `double` (IEEE 754 binary64, big-endian).
    @inlinable
    public mutating func readXDRDouble() throws(XDRError) -> Double {
        Double(bitPattern: try self.readXDRUInt64())
    }

    /// Reads an XDR enum into a ``XDREnum`` type, rejecting undeclared values.
    @inlinable
    public mutating func readXDR<T: XDRDecodable>(_ type: T.Type = T.self) throws(XDRError) -> T {
        try T(xdr: &self)
    }

    // MARK: writing

    @inlinable
    public mutating func writeXDR(_ value: UInt32) {
        self.writeInteger(value, endianness: .big)
    }

    @inlinable
    public mutating func writeXDR(_ value: Int32) {
        self.writeInteger(value, endianness: .big)
    }

    @inlinable
    public mutating func writeXDR(_ value: UInt64) {
        self.writeInteger(value, endianness: .big)
    }

    @inlinable
    public mutating func writeXDR(_ value: Int64) {
        self.writeInteger(value, endianness: .big)
    }

    /// Writes an XDR `bool` as exactly 0 or 1.
    @inlinable
    public mutating func writeXDR(_ value: Bool) {
        self.writeInteger(value ? 1 : 0, endianness: .big, as: UInt32.self)
    }

    @inlinable
    public mutating func writeXDR(_ value: Float) {
        self.writeInteger(value.bitPattern, endianness: .big)
    }

    @inlinable
    public mutating func writeXDR(_ value: Double) {
        self.writeInteger(value.bitPattern, endianness: .big)
    }

    /// Writes any ``XDREncodable`` value.
    @inlinable
    public mutating func writeXDR<T: XDREncodable>(_ value: T) {
        value.encode(into: &self)
    }
}
