// Record reassembly without sockets: every split point, multi-fragment records, and the caps.

import NIOCore
import XCTest
@testable import ONCRPC

final class RecordMarkingTests: XCTestCase {
    private func mark(_ length: Int, last: Bool) -> [UInt8] {
        withUnsafeBytes(of: (UInt32(length) | (last ? 0x8000_0000 : 0)).bigEndian, Array.init)
    }

    func testSplitAtEveryByteBoundary() throws {
        let payload: [UInt8] = Array(0..<40)
        let stream = mark(40, last: true) + payload + mark(3, last: false) + [1, 2, 3] + mark(1, last: true) + [4]
        for split in 0...stream.count {
            var decoder = RecordMarkingDecoder()
            var buffer = ByteBuffer(bytes: stream[..<split])
            var records: [[UInt8]] = []
            while let record = try decoder.nextRecord(from: &buffer) { records.append(Array(record.readableBytesView)) }
            var rest = ByteBuffer(buffer.readableBytesView)
            rest.writeBytes(stream[split...])
            while let record = try decoder.nextRecord(from: &rest) { records.append(Array(record.readableBytesView)) }
            XCTAssertEqual(records, [payload, [1, 2, 3, 4]], "split at \(split)")
        }
    }

    func testARecordStreamFedEveryWayGivesTheSameRecords() throws {
        // The stream the connection handlers frame with: bytes appended in pieces of every
        // size give the same records, a piece ending inside a record leaves it partial, and
        // discarding drops the half record whole.
        let payload: [UInt8] = Array(0..<40)
        let stream = mark(40, last: true) + payload + mark(3, last: false) + [1, 2, 3] + mark(1, last: true) + [4]
        for piece in 1...stream.count {
            var records = RecordStream(maximumRecordSize: 1 << 20)
            var out: [[UInt8]] = []
            var offset = 0
            while offset < stream.count {
                let end = min(stream.count, offset + piece)
                records.append(ByteBuffer(bytes: stream[offset..<end]))
                while let record = try records.nextRecord() { out.append(Array(record.readableBytesView)) }
                XCTAssertEqual(records.hasPartialRecord, end < stream.count && end != 44, "piece \(piece), at \(end)")
                offset = end
            }
            XCTAssertEqual(out, [payload, [1, 2, 3, 4]], "piece \(piece)")
        }
        var records = RecordStream(maximumRecordSize: 1 << 20)
        records.append(ByteBuffer(bytes: mark(3, last: false) + [9, 9, 9] + mark(5, last: true) + [1]))
        XCTAssertNil(try records.nextRecord())
        XCTAssertTrue(records.hasPartialRecord)
        records.discard()
        XCTAssertFalse(records.hasPartialRecord)
        records.append(ByteBuffer(bytes: stream))
        XCTAssertEqual(try records.nextRecord().map { Array($0.readableBytesView) }, payload)
    }

    func testEmptyLastFragmentEndsARecord() throws {
        var decoder = RecordMarkingDecoder()
        var buffer = ByteBuffer(bytes: mark(2, last: false) + [9, 9] + mark(0, last: true))
        XCTAssertEqual(try decoder.nextRecord(from: &buffer).map { Array($0.readableBytesView) }, [9, 9])
    }

    func testTooLargeIsRejectedFromTheHeader() {
        var decoder = RecordMarkingDecoder(maximumRecordSize: 100)
        var buffer = ByteBuffer(bytes: mark(101, last: true))
        XCTAssertThrowsError(try decoder.nextRecord(from: &buffer)) {
            XCTAssertEqual($0 as? RecordMarkingError, .recordTooLarge(declared: 101, maximum: 100))
        }
        var growing = RecordMarkingDecoder(maximumRecordSize: 100)
        var fragments = ByteBuffer(bytes: mark(60, last: false) + [UInt8](repeating: 0, count: 60) + mark(60, last: true))
        XCTAssertThrowsError(try growing.nextRecord(from: &fragments)) {
            XCTAssertEqual($0 as? RecordMarkingError, .recordTooLarge(declared: 120, maximum: 100))
        }
    }

    func testTooManyFragments() {
        var decoder = RecordMarkingDecoder()
        var stream: [UInt8] = []
        for _ in 0...RecordMarkingDecoder.maximumFragments { stream += mark(0, last: false) }
        var buffer = ByteBuffer(bytes: stream)
        XCTAssertThrowsError(try decoder.nextRecord(from: &buffer)) {
            XCTAssertEqual($0 as? RecordMarkingError, .tooManyFragments(maximum: RecordMarkingDecoder.maximumFragments))
        }
    }
}
