// Opaque data and strings (RFC 4506 §4.9-4.11). Variable-length reads take a maximum
// and check the declared length against it and against the bytes left before they
// slice or copy anything. Padding is written as zeros; on reading its content is not
// checked, matching libtirpc, so peers that leave junk there still interoperate.

import NIOCore

/// Padding needed after `length` bytes to reach a multiple of four.
@inlinable
public func xdrPadding(_ length: Int) -> Int {
    (4 - (length & 3)) & 3
}

/// Size on the wire of a variable-length opaque or string of `length` bytes.
@inlinable
public func xdrOpaqueSize(_ length: Int) -> Int {
    4 + length + xdrPadding(length)
}

extension ByteBuffer {
    // MARK: reading

    /// Reads fixed-length opaque data of `count` bytes (plus padding) as a slice that
    /// shares storage with `self` (no copy).
    @inlinable
    public mutating func readXDRFixedOpaque(count: Int) throws(XDRError) -> ByteBuffer {
        precondition(count >= 0)
        let total = count + xdrPadding(count)
        try self.xdrRequire(total)
        let slice = self.readSlice(length: count)!
        self.moveReaderIndex(forwardBy: total - count)
        return slice
    }

    /// Reads fixed-length opaque data as an array of bytes.
    @inlinable
    public mutating func readXDRFixedOpaqueBytes(count: Int) throws(XDRError) -> [UInt8] {
        let slice = try self.readXDRFixedOpaque(count: count)
        return Array(slice.readableBytesView)
    }

    /// Reads the length word of a variable-length item and checks it against `maxLength`
    /// and against the bytes left (including padding). Leaves the reader after the length.
    @inlinable
    mutating func readXDRCheckedLength(maxLength: UInt32) throws(XDRError) -> Int {
        let start = self.readerIndex
        let length = try self.readXDRUInt32()
        guard length <= maxLength else {
            self.moveReaderIndex(to: start)
            throw .lengthExceedsMaximum(length: length, maximum: maxLength)
        }
        let count = Int(length)
        let needed = count + xdrPadding(count)
        if self.readableBytes < needed {
            let available = self.readableBytes
            self.moveReaderIndex(to: start)
            throw .truncated(needed: needed, available: available)
        }
        return count
    }

    /// Reads variable-length opaque data `opaque<maxLength>` as a slice that shares storage
    /// with `self` (no copy).
    @inlinable
    public mutating func readXDROpaque(maxLength: UInt32 = .max) throws(XDRError) -> ByteBuffer {
        let count = try self.readXDRCheckedLength(maxLength: maxLength)
        let slice = self.readSlice(length: count)!
        self.moveReaderIndex(forwardBy: xdrPadding(count))
        return slice
    }

    /// Reads variable-length opaque data `opaque<maxLength>` as an array of bytes.
    @inlinable
    public mutating func readXDROpaqueBytes(maxLength: UInt32 = .max) throws(XDRError) -> [UInt8] {
        let count = try self.readXDRCheckedLength(maxLength: maxLength)
        let bytes = self.readBytes(length: count)!
        self.moveReaderIndex(forwardBy: xdrPadding(count))
        return bytes
    }

    /// Reads `string<maxLength>`. The bytes must be valid UTF-8 (ASCII in practice).
    @inlinable
    public mutating func readXDRString(maxLength: UInt32 = .max) throws(XDRError) -> String {
        let start = self.readerIndex
        let count = try self.readXDRCheckedLength(maxLength: maxLength)
        guard let string = self.withUnsafeReadableBytes({ Self.validUTF8String(UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }) else {
            self.moveReaderIndex(to: start)
            throw .invalidString
        }
        self.moveReaderIndex(forwardBy: count + xdrPadding(count))
        return string
    }

    /// The string those bytes spell if they are valid UTF-8, else nil.
    ///
    /// `String(validating:as:)` over a buffer view takes the standard library's generic path
    /// (about 900 instructions for a 9-byte host name, most of it instantiating metadata),
    /// close to 4 % of the server's user-space work for an AUTH_SYS call. Decoding from
    /// contiguous bytes is the non-generic path; it repairs invalid input rather than
    /// refusing it, so anything that is not ASCII is compared with what was decoded: valid
    /// UTF-8 decodes to the same bytes, and a repair always changes them (a replacement
    /// character stands where bytes that could not have spelled it were).
    @usableFromInline
    static func validUTF8String(_ bytes: UnsafeRawBufferPointer) -> String? {
        let string = String(decoding: bytes, as: UTF8.self)
        var combined: UInt8 = 0
        for byte in bytes { combined |= byte }
        if combined < 0x80 { return string }
        return string.utf8.elementsEqual(bytes) ? string : nil
    }

    // MARK: writing

    /// Writes fixed-length opaque data: the bytes, then zero padding. The caller guarantees
    /// the count equals the declared size.
    @inlinable
    public mutating func writeXDRFixedOpaque<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let written = self.writeBytes(bytes)
        self.writeXDRPadding(written)
    }

    /// Writes fixed-length opaque data from a buffer's readable bytes.
    @inlinable
    public mutating func writeXDRFixedOpaque(_ bytes: ByteBuffer) {
        var copy = bytes
        let written = self.writeBuffer(&copy)
        self.writeXDRPadding(written)
    }

    /// Writes variable-length opaque data: length, bytes, zero padding.
    @inlinable
    public mutating func writeXDROpaque<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        precondition(bytes.count <= UInt32.max, "XDR opaque longer than 2^32-1 bytes")
        self.writeXDR(UInt32(bytes.count))
        self.writeXDRFixedOpaque(bytes)
    }

    /// Writes variable-length opaque data from a buffer's readable bytes.
    @inlinable
    public mutating func writeXDROpaque(_ bytes: ByteBuffer) {
        precondition(bytes.readableBytes <= UInt32.max, "XDR opaque longer than 2^32-1 bytes")
        self.writeXDR(UInt32(bytes.readableBytes))
        self.writeXDRFixedOpaque(bytes)
    }

    /// Writes an XDR string (length, UTF-8 bytes, zero padding; no NUL terminator).
    @inlinable
    public mutating func writeXDR(_ string: String) {
        self.writeXDROpaque(string.utf8)
    }

    @inlinable
    mutating func writeXDRPadding(_ written: Int) {
        switch xdrPadding(written) {
        case 1: self.writeInteger(UInt8(0))
        case 2: self.writeInteger(UInt16(0))
        case 3: self.writeInteger(UInt16(0)); self.writeInteger(UInt8(0))
        default: break
        }
    }
}
