// RPCSEC_GSS bytes and pieces without a network: the credential layout of RFC 2203 §5,
// the integrity body layout of vectors.md §8, the sequence window against a replay table
// in the style of WireGuard's, and the unwrap errors.

import Crypto
import Foundation
import KeyCrypto
import NIOCore
import ONCRPC
import XCTest
import XDR
@_spi(Fuzzing) @testable import SecureRPC

private func hex(_ buffer: ByteBuffer) -> String { buffer.readableBytesView.map { String(format: "%02x", $0) }.joined() }

final class GSSWireTests: XCTestCase {
    private let keys = GSSDirectionKeys(mac: SecretBytes(copying: Array(repeating: UInt8(1), count: 32)),
                                        seal: SecretBytes(copying: Array(repeating: UInt8(2), count: 32)))

    func testCredentialLayout() throws {
        let credential = GSSCredential(procedure: .rpcsecGssData, sequence: 7, service: .integrity, handle: [0xaa, 0xbb, 0xcc])
        let auth = credential.opaqueAuth
        XCTAssertEqual(auth.flavor.rawValue, 6)
        // version 1, DATA 0, seq 7, integrity 2, handle<3> padded.
        XCTAssertEqual(hex(auth.body), "00000001" + "00000000" + "00000007" + "00000002" + "00000003aabbcc00")
        XCTAssertEqual(try GSSCredential.decode(auth), credential)
        // INIT with no handle: 20 bytes (PROTOCOL.md §7.2).
        XCTAssertEqual(GSSCredential(procedure: .rpcsecGssInit, sequence: 0, service: .none, handle: []).opaqueAuth.body.readableBytes, 20)
        // Trailing bytes, a bad service, an over-long handle: malformed.
        var trailing = auth.body
        trailing.writeInteger(UInt32(0))
        XCTAssertThrowsError(try GSSCredential.decode(OpaqueAuth(flavor: .rpcsecGSS, body: trailing)))
        var longHandle = ByteBuffer()
        longHandle.writeInteger(UInt32(1)); longHandle.writeInteger(UInt32(0)); longHandle.writeInteger(UInt32(1)); longHandle.writeInteger(UInt32(1))
        longHandle.writeXDROpaque(Array(repeating: UInt8(0), count: 65))
        XCTAssertEqual(failure(GSSCredential.DecodeError.self) { () throws(GSSCredential.DecodeError) in try GSSCredential.decode(OpaqueAuth(flavor: .rpcsecGSS, body: longHandle)) }, .malformed)
    }

    func testIntegrityBodyLayoutMatchesVectorsSection8() throws {
        var arguments = ByteBuffer()
        arguments.writeInteger(UInt32(1))
        let wrapped = try SRPCDH.wrap(arguments, sequence: 7, service: .integrity, keys: keys, clientToServer: true)
        // 00000008 | 00000007 00000001 | 00000010 <16-byte GMAC>
        XCTAssertEqual(hex(wrapped.getSlice(at: 0, length: 16)!), "00000008" + "00000007" + "00000001" + "00000010")
        XCTAssertEqual(wrapped.readableBytes, 16 + 16)
        // The checksum is AES-256-GCM's tag over databody_integ as associated data, nonce
        // (direction 1, 0, seq 7), checked against swift-crypto.
        let nonce: [UInt8] = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7]
        let reference = try AES.GCM.seal([UInt8](), using: SymmetricKey(data: Array(repeating: UInt8(2), count: 32)),
                                         nonce: AES.GCM.Nonce(data: nonce), authenticating: [0, 0, 0, 7, 0, 0, 0, 1] as [UInt8])
        XCTAssertEqual(Array(wrapped.getSlice(at: 16, length: 16)!.readableBytesView), Array(reference.tag))
        XCTAssertEqual(try SRPCDH.unwrap(wrapped, sequence: 7, service: .integrity, keys: keys, clientToServer: true), arguments)
    }

    func testUnwrapErrors() throws {
        var arguments = ByteBuffer()
        arguments.writeString("hello")
        for service in [GSSService.integrity, .privacy] {
            let wrapped = try SRPCDH.wrap(arguments, sequence: 9, service: service, keys: keys, clientToServer: true)
            XCTAssertEqual(try SRPCDH.unwrap(wrapped, sequence: 9, service: service, keys: keys, clientToServer: true), arguments)
            // The credential said 10: the body's 9 does not match (ATTACKS.md #21). The GCM
            // nonce depends on the number, so the checksum or decryption fails first.
            let expected: SRPCDH.UnwrapError = service == .integrity ? .badChecksum : .decryptionFailed
            XCTAssertEqual(failure(SRPCDH.UnwrapError.self) { () throws(SRPCDH.UnwrapError) in try SRPCDH.unwrap(wrapped, sequence: 10, service: service, keys: keys, clientToServer: true) }, expected)
            // The other direction's nonce: refused.
            XCTAssertNotNil(failure(SRPCDH.UnwrapError.self) { () throws(SRPCDH.UnwrapError) in try SRPCDH.unwrap(wrapped, sequence: 9, service: service, keys: keys, clientToServer: false) })
            var truncated = wrapped
            truncated.moveWriterIndex(to: truncated.writerIndex - 4)
            XCTAssertNotNil(failure(SRPCDH.UnwrapError.self) { () throws(SRPCDH.UnwrapError) in try SRPCDH.unwrap(truncated, sequence: 9, service: service, keys: keys, clientToServer: true) })
            XCTAssertEqual(failure(SRPCDH.UnwrapError.self) { () throws(SRPCDH.UnwrapError) in try SRPCDH.unwrap(ByteBuffer(), sequence: 9, service: service, keys: keys, clientToServer: true) }, .malformed)
        }
    }

    func testPrivacyNoncesNeverRepeatAcrossDirectionsOrNumbers() {
        var seen = Set<[UInt8]>()
        for sequence: UInt32 in [0, 1, 2, 255, 256, 65_535, 65_536, 0x7fff_ffff] {
            XCTAssertTrue(seen.insert(SRPCDH.bodyNonce(clientToServer: true, sequence: sequence)).inserted)
            XCTAssertTrue(seen.insert(SRPCDH.bodyNonce(clientToServer: false, sequence: sequence)).inserted)
        }
    }

    func testSequenceWindowReplayTable() {
        // In the style of WireGuard's replay test, with a 128-number window.
        var window = GSSSequenceWindow(size: 128)
        let steps: [(UInt32, Bool)] = [
            (0, true), (1, true), (1, false), (9, true), (8, true), (7, true), (7, false),
            (128, true), (127, true), (127, false), (1, false),       // 1 was seen; 128-128 = 0 is the edge
            (0, false),                                               // below the window now
            (200, true), (72, false), (73, true), (73, false),          // 200-128 = 72 is outside, 73 inside
            (199, true), (200, false), (1000, true), (872, false), (873, true),
            (2000, true), (1999, true), (1873, true), (1872, false),
            (0x7fff_ffff, true), (0x7fff_ff7f, false), (0x7fff_ff80, true), (0x7fff_ff80, false),
        ]
        for (index, (sequence, expected)) in steps.enumerated() {
            XCTAssertEqual(window.accept(sequence), expected, "step \(index): \(sequence)")
        }
        // A jump larger than the window clears it: everything in the new window is fresh.
        var jumpy = GSSSequenceWindow(size: 64)
        for s: UInt32 in 0..<64 { XCTAssertTrue(jumpy.accept(s)) }
        XCTAssertTrue(jumpy.accept(1000))
        for s: UInt32 in 937..<1000 { XCTAssertTrue(jumpy.accept(s), "\(s)") }
        XCTAssertFalse(jumpy.accept(936))
    }

    func testKssInfoFitsTheKeyserverBound() {
        let long = String(repeating: "x", count: 255)
        XCTAssertLessThanOrEqual(SRPCDH.kssInfo(group: .ffdhe4096, client: long, server: long).count, 256)
        // Bound to the pair and the group.
        XCTAssertNotEqual(SRPCDH.kssInfo(group: .ffdhe3072, client: "a", server: "b"), SRPCDH.kssInfo(group: .ffdhe3072, client: "b", server: "a"))
        XCTAssertNotEqual(SRPCDH.kssInfo(group: .ffdhe3072, client: "a", server: "b"), SRPCDH.kssInfo(group: .ffdhe2048, client: "a", server: "b"))
        XCTAssertNotEqual(SRPCDH.kssInfo(group: .ffdhe3072, client: "ab", server: "c"), SRPCDH.kssInfo(group: .ffdhe3072, client: "a", server: "bc"))
    }
}

/// The typed error a body throws, or nil.
private func failure<E: Error, T>(_ type: E.Type, _ body: () throws(E) -> T) -> E? {
    do { _ = try body(); return nil } catch { return error }
}

/// The GSS fuzz body over random and mutated inputs, as a property test in every run (the
/// libFuzzer target runs the same body for longer, docs/FUZZING.md; its corpus is replayed
/// by FuzzRegressionTests).
final class GSSDecoderFuzzingTests: XCTestCase {
    func testRandomAndMutatedInputsNeverTrap() throws {
        var seeds: [[UInt8]] = []
        let credential = GSSCredential(procedure: .rpcsecGssData, sequence: 7, service: .privacy, handle: Array(repeating: 9, count: 16))
        seeds.append(Array(credential.opaqueAuth.body.readableBytesView))
        let body = SrpcDhInitBody(tokenVersion: 1, group: .srpcDhFfdhe2048, client: "unix.1@x", server: "unix.2@x",
                                  clientEphemeral: Array(repeating: 5, count: 256), timestamp: 1, nonce: Array(repeating: 1, count: 16))
        seeds.append(Array(SrpcDhInitToken(body: body, authNonce: Array(repeating: 2, count: 12), authenticator: Array(repeating: 3, count: 40))
            .xdrEncoded().readableBytesView))
        seeds.append(Array(RpcGssInitRes(handle: [1, 2], gssMajor: 0, gssMinor: 0, seqWindow: 1024, gssToken: [4, 5, 6]).xdrEncoded().readableBytesView))
        var generator = SystemRandomNumberGenerator()
        // GSS_FUZZ_ROUNDS raises the count for a long local run.
        let rounds = ProcessInfo.processInfo.environment["GSS_FUZZ_ROUNDS"].flatMap(Int.init) ?? 3000
        for round in 0..<rounds {
            var input: [UInt8]
            if round % 3 == 0 {
                input = (0..<Int.random(in: 0...300, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                input = seeds[round % seeds.count]
                for _ in 0..<Int.random(in: 1...4, using: &generator) where !input.isEmpty {
                    input[Int.random(in: 0..<input.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
                if round % 5 == 0 { input = Array(input.prefix(Int.random(in: 0...input.count, using: &generator))) }
            }
            input.withUnsafeBytes { GSSDecoderFuzzing.run($0) }
        }
    }
}
