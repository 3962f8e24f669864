// Replays the fuzz corpora of the SecureRPC and KeyServer decoder families
// (Tests/Fuzz/corpus/{authdh,gss,keyserver}: seeds, what libFuzzer grew, and any crasher it
// found) through the same bodies the libFuzzer targets of Fuzz/ run. A crasher file dropped
// into a family's folder becomes a regression test; named cases below pin the ones found so
// far and say what each one was.

import Foundation
import ONCRPC
@_spi(Fuzzing) import KeyServer
@_spi(Fuzzing) import SecureRPC
import XCTest

final class FuzzRegressionTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/corpus")

    /// Every input of one family's corpus through its body; returns how many there were.
    @discardableResult
    static func replay(_ family: String, _ body: (UnsafeRawBufferPointer) -> Void) throws -> Int {
        let folder = corpus.appendingPathComponent(family)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        for name in files {
            try Data(contentsOf: folder.appendingPathComponent(name)).withUnsafeBytes { body($0) }
        }
        return files.count
    }

    /// Runs `body` over one named input of `family`'s corpus.
    static func replay(_ family: String, _ name: String, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        try Data(contentsOf: corpus.appendingPathComponent(family).appendingPathComponent(name)).withUnsafeBytes { body($0) }
    }

    func testAuthDHCorpusReplaysCleanly() throws {
        XCTAssertGreaterThanOrEqual(try Self.replay("authdh", AuthDHDecoderFuzzing.run), 5, "the corpus is present")
    }

    func testGSSCorpusReplaysCleanly() throws {
        XCTAssertGreaterThanOrEqual(try Self.replay("gss", GSSDecoderFuzzing.run), 7, "the corpus is present")
    }

    func testKeyServerCorpusReplaysCleanly() throws {
        XCTAssertGreaterThanOrEqual(try Self.replay("keyserver", KeyServerDecoderFuzzing.run), 10, "the corpus is present")
    }

    /// Found by fuzz-gss (2026-12-02): 401 bytes made the GSS body trap in
    /// `OpaqueAuth.init`, whose precondition allows at most 400 bytes of body. A credential
    /// only ever reaches `GSSCredential.decode` as an opaque_auth body, which decoding has
    /// already bounded to 400 bytes; the body now offers it only such bodies, and this one
    /// is not a credential.
    func testGSSCredentialOver400BytesIsNotOffered() throws {
        try Self.replay("gss", "crash-gss-credential-over-400-bytes", GSSDecoderFuzzing.run)
        let data = try Data(contentsOf: Self.corpus.appendingPathComponent("gss/crash-gss-credential-over-400-bytes"))
        XCTAssertEqual(data.count, Int(OpaqueAuth.maximumBodyLength) + 1)
    }
}
