// The libcrypto per-message primitives against independent implementations: RFC 4231's
// HMAC-SHA256 test cases, swift-crypto's HMAC and AES-GCM on random inputs of every size
// class, in-place use, and refusal of any changed ciphertext or tag.

import Crypto
import Foundation
import KeyCrypto
import XCTest

final class MessageCryptoTests: XCTestCase {
    private func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    /// The prefix byte is part of the message: prefix ‖ rest = the RFC's data.
    private func hmac(_ key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        let prepared = PreparedHMAC(key: SecretBytes(copying: key))
        return message.dropFirst().withUnsafeBytes { prepared.authenticate(prefix: message[0], $0) }
    }

    func testRFC4231Vectors() {
        // Test case 1: key 0x0b × 20, "Hi There".
        XCTAssertEqual(hmac(Array(repeating: 0x0b, count: 20), Array("Hi There".utf8)),
                       bytes("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"))
        // Test case 2: key "Jefe", "what do ya want for nothing?".
        XCTAssertEqual(hmac(Array("Jefe".utf8), Array("what do ya want for nothing?".utf8)),
                       bytes("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
        // Test case 3: key 0xaa × 20, 0xdd × 50.
        XCTAssertEqual(hmac(Array(repeating: 0xaa, count: 20), Array(repeating: 0xdd, count: 50)),
                       bytes("773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"))
    }

    func testHMACMatchesSwiftCryptoAndVerifies() {
        for length in [0, 1, 55, 56, 63, 64, 65, 1000, 4096, 65_537] {
            let key = (0..<32).map { _ in UInt8.random(in: 0...255) }
            let data = (0..<length).map { _ in UInt8.random(in: 0...255) }
            let prepared = PreparedHMAC(key: SecretBytes(copying: key))
            let ours = data.withUnsafeBytes { prepared.authenticate(prefix: 7, $0) }
            let reference = Array(HMAC<SHA256>.authenticationCode(for: [7] + data, using: SymmetricKey(data: key)))
            XCTAssertEqual(ours, reference, "length \(length)")
            XCTAssertTrue(data.withUnsafeBytes { d in ours.withUnsafeBytes { prepared.verify(prefix: 7, d, tag: $0) } })
            var wrong = ours
            wrong[length % 32] ^= 1
            XCTAssertFalse(data.withUnsafeBytes { d in wrong.withUnsafeBytes { prepared.verify(prefix: 7, d, tag: $0) } })
            XCTAssertFalse(data.withUnsafeBytes { d in ours.withUnsafeBytes { prepared.verify(prefix: 8, d, tag: $0) } })
            XCTAssertFalse(data.withUnsafeBytes { d in ours.dropLast().withUnsafeBytes { prepared.verify(prefix: 7, d, tag: $0) } })
        }
    }

    func testAESGCMMatchesSwiftCryptoInPlaceAndRefusesChanges() throws {
        for length in [0, 1, 15, 16, 17, 4096, 65_537] {
            let key = (0..<32).map { _ in UInt8.random(in: 0...255) }
            let nonce = (0..<12).map { _ in UInt8.random(in: 0...255) }
            let plain = (0..<length).map { _ in UInt8.random(in: 0...255) }
            let prepared = try PreparedAES256GCM(key: SecretBytes(copying: key))
            var buffer = plain
            var tag = [UInt8](repeating: 0, count: 16)
            try buffer.withUnsafeMutableBytes { data in
                try tag.withUnsafeMutableBytes { try prepared.seal(nonce: nonce, UnsafeRawBufferPointer(data), into: data, tag: $0) }
            }
            let reference = try AES.GCM.seal(plain, using: SymmetricKey(data: key), nonce: AES.GCM.Nonce(data: nonce))
            XCTAssertEqual(buffer, Array(reference.ciphertext), "length \(length)")
            XCTAssertEqual(tag, Array(reference.tag))

            func open(_ ciphertext: [UInt8], _ tag: [UInt8]) -> [UInt8]? {
                var out = [UInt8](repeating: 0xff, count: ciphertext.count)
                let ok = ciphertext.withUnsafeBytes { c in tag.withUnsafeBytes { t in out.withUnsafeMutableBytes {
                    prepared.open(nonce: nonce, c, tag: t, into: $0)
                } } }
                if !ok { XCTAssertTrue(out.allSatisfy { $0 == 0 }, "a refused plaintext is wiped") }
                return ok ? out : nil
            }
            XCTAssertEqual(open(buffer, tag), plain)
            if length > 0 {
                var changed = buffer
                changed[length / 2] ^= 0x80
                XCTAssertNil(open(changed, tag))
            }
            var badTag = tag
            badTag[15] ^= 1
            XCTAssertNil(open(buffer, badTag))
        }
    }

    func testGMACMatchesSwiftCryptoAndRefusesChanges() throws {
        for length in [0, 1, 16, 4096, 65_537] {
            let key = (0..<32).map { _ in UInt8.random(in: 0...255) }
            let nonce = (0..<12).map { _ in UInt8.random(in: 0...255) }
            let data = (0..<length).map { _ in UInt8.random(in: 0...255) }
            let prepared = try PreparedAES256GCM(key: SecretBytes(copying: key))
            var tag = [UInt8](repeating: 0, count: 16)
            try data.withUnsafeBytes { d in try tag.withUnsafeMutableBytes { try prepared.authenticate(nonce: nonce, d, into: $0) } }
            let reference = try AES.GCM.seal([UInt8](), using: SymmetricKey(data: key), nonce: AES.GCM.Nonce(data: nonce), authenticating: data)
            XCTAssertEqual(tag, Array(reference.tag), "length \(length)")
            let verify = { (d: [UInt8], t: [UInt8], n: [UInt8]) in
                d.withUnsafeBytes { db in t.withUnsafeBytes { prepared.verify(nonce: n, db, tag: $0) } }
            }
            XCTAssertTrue(verify(data, tag, nonce))
            var otherNonce = nonce
            otherNonce[11] ^= 1
            XCTAssertFalse(verify(data, tag, otherNonce))
            if length > 0 {
                var changed = data
                changed[length - 1] ^= 1
                XCTAssertFalse(verify(changed, tag, nonce))
            }
        }
    }

    /// One pooled key used by many threads at once gives what a key made fresh for each
    /// message gives, also after a failed open.
    func testPooledKeyMatchesAFreshKeyUnderConcurrencyAndAfterAFailedOpen() throws {
        let key = SecretBytes.random(count: 32)
        let prepared = try PreparedAES256GCM(key: key)
        let data = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        DispatchQueue.concurrentPerform(iterations: 400) { index in
            let nonce = [UInt8](repeating: 0, count: 8) + withUnsafeBytes(of: UInt32(index).bigEndian, Array.init)
            var ours = data, reference = data
            var ourTag = [UInt8](repeating: 0, count: 16), referenceTag = [UInt8](repeating: 0, count: 16)
            try! ours.withUnsafeMutableBytes { d in try ourTag.withUnsafeMutableBytes { try prepared.seal(nonce: nonce, UnsafeRawBufferPointer(d), into: d, tag: $0) } }
            try! reference.withUnsafeMutableBytes { d in try referenceTag.withUnsafeMutableBytes { try PreparedAES256GCM(key: key).seal(nonce: nonce, UnsafeRawBufferPointer(d), into: d, tag: $0) } }
            XCTAssertEqual(ours, reference)
            XCTAssertEqual(ourTag, referenceTag)
            // A wrong tag first, then the right one: the pooled context still works.
            var plain = [UInt8](repeating: 0, count: data.count)
            var badTag = ourTag
            badTag[0] ^= 1
            let refused = ours.withUnsafeBytes { c in badTag.withUnsafeBytes { t in plain.withUnsafeMutableBytes { prepared.open(nonce: nonce, c, tag: t, into: $0) } } }
            XCTAssertFalse(refused)
            let opened = ours.withUnsafeBytes { c in ourTag.withUnsafeBytes { t in plain.withUnsafeMutableBytes { prepared.open(nonce: nonce, c, tag: t, into: $0) } } }
            XCTAssertTrue(opened)
            XCTAssertEqual(plain, data)
            var gmac = [UInt8](repeating: 0, count: 16), referenceGMAC = [UInt8](repeating: 0, count: 16)
            try! data.withUnsafeBytes { d in try gmac.withUnsafeMutableBytes { try prepared.authenticate(nonce: nonce, d, into: $0) } }
            try! data.withUnsafeBytes { d in try referenceGMAC.withUnsafeMutableBytes { try PreparedAES256GCM(key: key).authenticate(nonce: nonce, d, into: $0) } }
            XCTAssertEqual(gmac, referenceGMAC)
            XCTAssertTrue(data.withUnsafeBytes { d in gmac.withUnsafeBytes { prepared.verify(nonce: nonce, d, tag: $0) } })
        }
    }
}
