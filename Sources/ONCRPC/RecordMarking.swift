// TCP record marking (RFC 5531 §11): each record is sent as fragments with a 4-byte
// header (bit 31 = last fragment, bits 0-30 = fragment length). The decoder is a small
// state machine that trusts nothing it reads: the running record size is checked against
// the configured maximum from each fragment header, before any payload is buffered.

import NIOCore

/// Errors from record reassembly. Any of them ends the connection: after a bad header the
/// byte stream can no longer be resynchronised.
public enum RecordMarkingError: Error, Equatable, Sendable {
    /// The record would grow past the configured maximum.
    case recordTooLarge(declared: Int, maximum: Int)
    /// Too many fragments in one record (a stream of tiny fragments is a CPU attack).
    case tooManyFragments(maximum: Int)
}

/// Sent down the pipeline by ``RecordMarkingDecoder`` when the first bytes of a record have
/// arrived but the record is not complete: from then until the record is passed on, the
/// record is open. Once per record, and only for records that do not arrive whole in one
/// read. A server can use it to give an open record a deadline, so that a peer trickling
/// bytes cannot keep a half record (and its connection) forever (``RPCServer`` frames its
/// connections with ``RecordMarkingDecoder/nextRecord(from:)`` and does the same there).
public struct RecordMarkingOpenRecordEvent: Sendable, Equatable {
    public init() {}
}

/// Reassembles records from a TCP byte stream.
///
/// A record that arrives as a single fragment is passed on as a slice of the receive
/// buffer, without a copy; multi-fragment records are joined in one buffer. When a read
/// ends inside a record, a ``RecordMarkingOpenRecordEvent`` goes down the pipeline first.
public struct RecordMarkingDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    /// Default cap on one record: 1 MiB.
    public static let defaultMaximumRecordSize = 1 << 20
    /// Cap on fragments per record.
    public static let maximumFragments = 4096

    let maximumRecordSize: Int
    private var partialRecord: ByteBuffer?
    private var fragmentCount = 0
    /// Whether the record now being received was announced with a
    /// ``RecordMarkingOpenRecordEvent``.
    private var reportedOpenRecord = false

    public init(maximumRecordSize: Int = RecordMarkingDecoder.defaultMaximumRecordSize) {
        precondition(maximumRecordSize > 0 && maximumRecordSize <= Int(Int32.max))
        self.maximumRecordSize = maximumRecordSize
    }

    /// True while part of a record has been received.
    public var hasPartialRecord: Bool { partialRecord != nil }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let record = try self.nextRecord(from: &buffer) else {
            if !reportedOpenRecord && (buffer.readableBytes > 0 || partialRecord != nil) {
                reportedOpenRecord = true
                context.fireUserInboundEventTriggered(RecordMarkingOpenRecordEvent())
            }
            return .needMoreData
        }
        reportedOpenRecord = false
        context.fireChannelRead(Self.wrapInboundOut(record))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A half record at EOF is dropped: there is no one to answer.
        while try self.decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }

    /// Takes one whole record from the front of `buffer` if it is all there; socket-free so
    /// it can be tested on its own.
    public mutating func nextRecord(from buffer: inout ByteBuffer) throws(RecordMarkingError) -> ByteBuffer? {
        while true {
            guard let header = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
                return nil
            }
            let isLast = header & 0x8000_0000 != 0
            let length = Int(header & 0x7fff_ffff)
            let soFar = partialRecord?.readableBytes ?? 0
            if soFar + length > maximumRecordSize {
                throw .recordTooLarge(declared: soFar + length, maximum: maximumRecordSize)
            }
            guard buffer.readableBytes >= 4 + length else { return nil }
            buffer.moveReaderIndex(forwardBy: 4)
            let fragment = buffer.readSlice(length: length)!
            if isLast {
                if var record = partialRecord {
                    var fragment = fragment
                    record.writeBuffer(&fragment)
                    partialRecord = nil
                    fragmentCount = 0
                    return record
                }
                return fragment
            }
            fragmentCount += 1
            if fragmentCount > Self.maximumFragments {
                throw .tooManyFragments(maximum: Self.maximumFragments)
            }
            var fragmentCopy = fragment
            if partialRecord == nil {
                partialRecord = ByteBuffer()
            }
            partialRecord!.writeBuffer(&fragmentCopy)
        }
    }
}

/// Records from a TCP byte stream for a channel handler that frames its own reads (the
/// server's connection handler and the client's): what reads deliver is appended, whole
/// records are taken off the front, and the tail of a record still arriving is kept.
struct RecordStream {
    private var decoder: RecordMarkingDecoder
    /// Bytes read that do not yet make a whole record.
    private var unframed: ByteBuffer?

    init(maximumRecordSize: Int) {
        decoder = RecordMarkingDecoder(maximumRecordSize: maximumRecordSize)
    }

    /// Part of a record has arrived and the rest has not.
    var hasPartialRecord: Bool { unframed != nil || decoder.hasPartialRecord }

    /// Adds what one read delivered.
    mutating func append(_ bytes: ByteBuffer) {
        if var earlier = unframed.take() {
            var bytes = bytes
            earlier.writeBuffer(&bytes)
            unframed = earlier
        } else {
            unframed = bytes
        }
    }

    /// The next whole record, or nil until more bytes come. After an error the stream
    /// cannot be resynchronised: the connection must close.
    mutating func nextRecord() throws(RecordMarkingError) -> ByteBuffer? {
        guard var bytes = unframed.take() else { return nil }
        let record = try decoder.nextRecord(from: &bytes)
        if bytes.readableBytes > 0 {
            // Keep the tail only; compact a mostly consumed buffer rather than let it grow.
            if record == nil, bytes.readerIndex >= bytes.capacity / 2 { bytes.discardReadBytes() }
            unframed = bytes
        }
        return record
    }

    /// Drops a half record (at EOF there is no one to answer).
    mutating func discard() {
        unframed = nil
        decoder = RecordMarkingDecoder(maximumRecordSize: decoder.maximumRecordSize)
    }
}

/// Helpers for the 4 bytes that frame an outgoing message.
///
/// Outgoing messages are built with four bytes reserved at the front, so TCP can fill in
/// the record mark and UDP can skip it, and either way the message goes out in one write.
public enum RPCFraming {
    /// Starts a message buffer with room for the record mark.
    @inlinable
    public static func startMessage(allocator: ByteBufferAllocator, capacity: Int) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: capacity + 4)
        buffer.writeInteger(UInt32(0))
        return buffer
    }

    /// Turns a message started with ``startMessage(allocator:capacity:)`` into one TCP record
    /// (a single last fragment).
    @inlinable
    public static func finishRecord(_ buffer: inout ByteBuffer) {
        let length = buffer.readableBytes - 4
        precondition(length >= 0 && length <= 0x7fff_ffff)
        let mark = UInt32(length) | 0x8000_0000
        // Already framed (a message framed when it was made, sent again): reading the mark
        // does not copy a buffer that others also hold; writing it would.
        if buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) == mark { return }
        buffer.setInteger(mark, at: buffer.readerIndex, endianness: .big)
    }

    /// Turns a message started with ``startMessage(allocator:capacity:)`` into a datagram.
    @inlinable
    public static func finishDatagram(_ buffer: inout ByteBuffer) {
        buffer.moveReaderIndex(forwardBy: 4)
    }
}
