// Replays the ONCRPC fuzz corpus (Tests/Fuzz/corpus/oncrpc: seeds, what libFuzzer grew and
// any crasher it found) through the same body the libFuzzer target `fuzz-oncrpc` runs. A crasher file added there becomes a
// regression test automatically; named cases below pin the ones found so far.

import Foundation
import NIOCore
import XCTest
@_spi(Fuzzing) import ONCRPC
import XDR

final class FuzzRegressionTests: XCTestCase {
    private static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/corpus/oncrpc")

    func testCorpusReplaysCleanly() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).sorted()
        XCTAssertGreaterThanOrEqual(files.count, 100, "the corpus is present")
        for name in files {
            let data = try Data(contentsOf: Self.corpus.appendingPathComponent(name))
            data.withUnsafeBytes { DecoderFuzzing.run($0) }
        }
    }

    /// Found by libFuzzer: a denied reply (AUTH_ERROR) followed by extra bytes decoded as if
    /// the bytes were not there and so did not round-trip. Such replies are now garbage.
    func testDeniedReplyWithTrailingBytesIsGarbage() throws {
        let data = try Data(contentsOf: Self.corpus.appendingPathComponent("crash-denied-reply-trailing-bytes"))
        data.withUnsafeBytes { DecoderFuzzing.run($0) }
        XCTAssertThrowsError(try RPCReply.decode(ByteBuffer(bytes: data))) { error in
            guard case RPCMessageError.garbageReply(xid: 9, _)? = error as? RPCMessageError else { return XCTFail("\(error)") }
        }
    }

    /// Found by libFuzzer: non-zero XDR padding (accepted, as libtirpc does) made the byte-exact
    /// round-trip check of the fuzz body fail; the body now compares decoded values.
    func testNonZeroPaddingIsAcceptedAndRoundTripsByValue() throws {
        let data = try Data(contentsOf: Self.corpus.appendingPathComponent("crash-authsys-nonzero-padding"))
        data.withUnsafeBytes { DecoderFuzzing.run($0) }
        let parameters = try ByteBuffer(bytes: data).decodeXDRExactly(AuthSysParameters.self)
        XCTAssertEqual(parameters.machineName, "\u{0}")
        XCTAssertEqual(parameters.uid, 0)
    }

    func testEdgeInputs() {
        let inputs: [[UInt8]] = [
            [],
            [0x80, 0, 0, 0],                              // empty last fragment
            [0x7f, 0xff, 0xff, 0xff],                     // huge non-last fragment
            [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2],         // call cut after rpcvers
            [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],  // opaque_auth length 2^32-1
        ]
        for input in inputs {
            input.withUnsafeBytes { DecoderFuzzing.run($0) }
        }
    }
}
