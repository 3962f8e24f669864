// Arrays, optional-data and linked lists (RFC 4506 §4.12-4.19). Element counts are checked
// against their maximum and against the smallest size an element can take before the
// result array reserves any capacity, so a count of 2^32-1 in a 12-byte message is an
// error, not an allocation.

import NIOCore

extension ByteBuffer {
    // MARK: reading

    /// Reads a fixed-length array `T[count]`.
    ///
    /// - Parameters:
    ///   - count: the number of elements the XDR definition fixes.
    ///   - minimumElementSize: the fewest bytes one element occupies on the wire (4 for every
    ///     XDR type except `void` and empty structs), used to reject impossible counts.
    ///   - readElement: reads one element.
    @inlinable
    public mutating func readXDRFixedArray<T>(
        count: Int,
        minimumElementSize: Int = 4,
        _ readElement: (inout ByteBuffer) throws(XDRError) -> T
    ) throws(XDRError) -> [T] {
        precondition(count >= 0)
        if minimumElementSize > 0 {
            let (needed, overflow) = count.multipliedReportingOverflow(by: minimumElementSize)
            if overflow { throw .truncated(needed: .max, available: self.readableBytes) }
            try self.xdrRequire(needed)
        }
        var result: [T] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            result.append(try readElement(&self))
        }
        return result
    }

    /// Reads a variable-length array `T<maxCount>`: a count, then that many elements.
    @inlinable
    public mutating func readXDRArray<T>(
        maxCount: UInt32 = .max,
        minimumElementSize: Int = 4,
        _ readElement: (inout ByteBuffer) throws(XDRError) -> T
    ) throws(XDRError) -> [T] {
        let count = try self.readXDRUInt32()
        guard count <= maxCount else {
            throw .lengthExceedsMaximum(length: count, maximum: maxCount)
        }
        if minimumElementSize > 0 {
            let (needed, overflow) = Int(count).multipliedReportingOverflow(by: minimumElementSize)
            if overflow || self.readableBytes < needed {
                throw .truncated(needed: overflow ? .max : needed, available: self.readableBytes)
            }
        } else if count > 1 << 20 {
            // Zero-sized elements cost no input bytes; cap them anyway.
            throw .lengthExceedsMaximum(length: count, maximum: 1 << 20)
        }
        var result: [T] = []
        result.reserveCapacity(Int(count))
        for _ in 0..<count {
            result.append(try readElement(&self))
        }
        return result
    }

    /// Reads a variable-length array of a decodable type.
    @inlinable
    public mutating func readXDRArray<T: XDRDecodable>(
        of type: T.Type,
        maxCount: UInt32 = .max,
        minimumElementSize: Int = 4
    ) throws(XDRError) -> [T] {
        try self.readXDRArray(maxCount: maxCount, minimumElementSize: minimumElementSize) {
            (buffer: inout ByteBuffer) throws(XDRError) -> T in try T(xdr: &buffer)
        }
    }

    /// Reads optional-data `T *`: a bool, then the value if it is TRUE.
    @inlinable
    public mutating func readXDROptional<T>(
        _ readValue: (inout ByteBuffer) throws(XDRError) -> T
    ) throws(XDRError) -> T? {
        guard try self.readXDRBool() else { return nil }
        return try readValue(&self)
    }

    /// Reads a linked list written as a chain of optional-data (`struct node { T item;
    /// node *next; }`, the RPC language's way to send lists) iteratively into an array, so a
    /// long chain cannot exhaust the stack. `readItem` reads the fields before `next`.
    @inlinable
    public mutating func readXDRLinkedList<T>(
        maxCount: Int,
        _ readItem: (inout ByteBuffer) throws(XDRError) -> T
    ) throws(XDRError) -> [T] {
        var result: [T] = []
        while try self.readXDRBool() {
            guard result.count < maxCount else {
                throw .lengthExceedsMaximum(length: UInt32(clamping: result.count + 1), maximum: UInt32(clamping: maxCount))
            }
            result.append(try readItem(&self))
        }
        return result
    }

    // MARK: writing

    /// Writes a fixed-length array; the caller guarantees the declared count.
    @inlinable
    public mutating func writeXDRFixedArray<S: Sequence>(_ elements: S, _ writeElement: (inout ByteBuffer, S.Element) -> Void) {
        for element in elements { writeElement(&self, element) }
    }

    /// Writes a variable-length array: count, then the elements.
    @inlinable
    public mutating func writeXDRArray<C: Collection>(_ elements: C, _ writeElement: (inout ByteBuffer, C.Element) -> Void) {
        precondition(elements.count <= UInt32.max)
        self.writeXDR(UInt32(elements.count))
        for element in elements { writeElement(&self, element) }
    }

    /// Writes a variable-length array of encodable values.
    @inlinable
    public mutating func writeXDRArray<C: Collection>(_ elements: C) where C.Element: XDREncodable {
        self.writeXDRArray(elements) { buffer, element in element.encode(into: &buffer) }
    }

    /// Writes optional-data: FALSE, or TRUE and the value.
    @inlinable
    public mutating func writeXDROptional<T>(_ value: T?, _ writeValue: (inout ByteBuffer, T) -> Void) {
        if let value {
            self.writeXDR(true)
            writeValue(&self, value)
        } else {
            self.writeXDR(false)
        }
    }

    /// Writes a linked list as a chain of optional-data (see ``readXDRLinkedList(maxCount:_:)``).
    @inlinable
    public mutating func writeXDRLinkedList<S: Sequence>(_ items: S, _ writeItem: (inout ByteBuffer, S.Element) -> Void) {
        for item in items {
            self.writeXDR(true)
            writeItem(&self, item)
        }
        self.writeXDR(false)
    }
}

extension ByteBuffer {
    /// Decodes exactly one value from the whole readable region of a buffer: the message must
    /// be consumed exactly, so trailing bytes are an error.
    @inlinable
    public func decodeXDRExactly<T: XDRDecodable>(_ type: T.Type = T.self) throws(XDRError) -> T {
        var copy = self
        let value = try T(xdr: &copy)
        if copy.readableBytes != 0 {
            throw .trailingBytes(count: copy.readableBytes)
        }
        return value
    }
}

extension XDREncodable {
    /// The XDR encoding of `self` in a new buffer.
    @inlinable
    public func xdrEncoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64)
        self.encode(into: &buffer)
        return buffer
    }
}
