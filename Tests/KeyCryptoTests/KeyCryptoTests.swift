// Known answers from shared/reference/vectors.md §1-4, 6, 9, and property tests for every
// group, the sealed-key format and peer-key validation.

import XCTest
@testable import KeyCrypto

private func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }
private func bytes(_ text: String) -> [UInt8] { try! Hex.decode(text.filter { !$0.isWhitespace }) }
private func secret(_ text: String) -> SecretBytes { SecretBytes(copying: bytes(text)) }
private func password(_ text: String) -> SecretBytes { SecretBytes(copying: Array(text.utf8)) }

final class DESVectorTests: XCTestCase {
    // vectors.md §1
    func testDESECBAndCBC() throws {
        let plain = bytes("4e6f772069732074 68652074696d6520 666f7220616c6c20")
        XCTAssertEqual(hex(try SunDES.ecbEncrypt(key: secret("0123456789abcdef"), plain)), "3fa40e8a984d48156a271787ab8883f9893d51ec4b563b53")
        XCTAssertEqual(hex(try SunDES.cbcEncrypt(key: secret("0123456789abcdef"), iv: bytes("1234567890abcdef"), plain)),
                       "e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6")
        XCTAssertEqual(try SunDES.cbcDecrypt(key: secret("0123456789abcdef"), iv: bytes("1234567890abcdef"),
                                             bytes("e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6")), plain)
        XCTAssertEqual(hex(try SunDES.ecbEncrypt(key: secret("133457799bbcdff1"), bytes("0123456789abcdef"))), "85e813540f0ab405")
        XCTAssertEqual(hex(try SunDES.ecbEncrypt(key: secret("0e329232ea6d0d73"), bytes("8787878787878787"))), "0000000000000000")
        XCTAssertThrowsError(try SunDES.ecbEncrypt(key: secret("0123456789abcdef"), [1, 2, 3]))
        XCTAssertThrowsError(try SunDES.ecbEncrypt(key: secret("0123"), bytes("0123456789abcdef")))
    }

    // vectors.md §1 again, through a schedule kept for a conversation (AUTH_DH nicknames).
    func testAKeptScheduleGivesTheSameBlocks() throws {
        let plain = bytes("4e6f772069732074 68652074696d6520 666f7220616c6c20")
        let schedule = try SunDES.Schedule(key: secret("0123456789abcdef"))
        XCTAssertEqual(hex(try SunDES.ecbEncrypt(schedule: schedule, plain)), "3fa40e8a984d48156a271787ab8883f9893d51ec4b563b53")
        XCTAssertEqual(try SunDES.ecbDecrypt(schedule: schedule, bytes("3fa40e8a984d48156a271787ab8883f9893d51ec4b563b53")), plain)
        // Used many times, it stays the same schedule.
        for _ in 0..<3 {
            XCTAssertEqual(hex(try SunDES.ecbEncrypt(schedule: schedule, bytes("0123456789abcdef"))),
                           hex(try SunDES.ecbEncrypt(key: secret("0123456789abcdef"), bytes("0123456789abcdef"))))
        }
        XCTAssertThrowsError(try SunDES.ecbEncrypt(schedule: schedule, [1, 2, 3]))
        XCTAssertThrowsError(try SunDES.Schedule(key: secret("0123")))
        XCTAssertFalse("\(schedule)".contains("0123456789"), "a schedule never prints key bytes")
    }

    // vectors.md §2
    func testSunParity() {
        XCTAssertEqual(hex(SunDES.setParity(bytes("00ff80817f9cfe3a"))), "017f01017f1c7f3b")
        for value in 0...255 {
            let p = SunDES.setParity(UInt8(value))
            XCTAssertEqual(p & 0x80, 0)
            XCTAssertEqual(p.nonzeroBitCount % 2, 1)
        }
        let key = SunDES.randomKey()
        key.withUnsafeBytes { for b in $0 { XCTAssertEqual(b & 0x80, 0); XCTAssertEqual(b.nonzeroBitCount % 2, 1) } }
    }
}

final class LegacyDHVectorTests: XCTestCase {
    let alice = "053346dd92b7562f80e5431672a175aeb567818bab69c742"
    let bob = "1d3c043748cab5dac980040b71efd18e260d3f2caa4db5d4"

    // vectors.md §3
    func testSunGroupKeysAndCommonKey() throws {
        let a = try DHPrivateKey(group: .dh192des, secretHex: alice)
        let b = try DHPrivateKey(group: .dh192des, secretHex: bob)
        XCTAssertEqual(a.publicKey.hex, "b48fa79715f69ba0753524064a5c870c420ade8a4985f154")
        XCTAssertEqual(b.publicKey.hex, "8e0b2820f8a2f8723516d436dbd385d969236ab58d1ee6c6")
        let ab = try a.sharedSecret(with: b.publicKey)
        let ba = try b.sharedSecret(with: a.publicKey)
        XCTAssertEqual(ab, ba)
        XCTAssertEqual(hex(ab.copyBytes()), "0aaf28cbd263e2eea389a5b125f761b4640dc360eb43f235")
        let desKey = try SunDES.desKey(fromCommonKey: ab)
        XCTAssertEqual(hex(desKey.copyBytes()), "3461762531250823")
        XCTAssertNotEqual(hex(desKey.copyBytes()), "a289a4b025f761b5", "the in-order, conventional-parity variant must not match")
        XCTAssertEqual(a.secretHex, alice)
    }

    // vectors.md §4
    func testConversationKeyWrapping() throws {
        let desKey = secret("3461762531250823")
        let conversation = SecretBytes(copying: SunDES.setParity(bytes("3a5c7e9102b4d6f8")))
        XCTAssertEqual(hex(conversation.copyBytes()), "3b5d7f1002345779")
        let wrapped = try SunDES.wrapConversationKey(conversation, under: desKey)
        XCTAssertEqual(hex(wrapped), "371fc957f1dd4736")
        XCTAssertEqual(try SunDES.unwrapConversationKey(wrapped, under: desKey), conversation)
    }

    // vectors.md §6
    func testPasswd2DES() {
        XCTAssertEqual(hex(Passwd2DES.key(password: password("")).copyBytes()), "0101010101010101")
        XCTAssertEqual(hex(Passwd2DES.key(password: password("hunter22")).copyBytes()), "516b5d684a646464")
        XCTAssertEqual(hex(Passwd2DES.key(password: password("correct horse")).copyBytes()), "1601010201466840")
    }

    func testXEncryptXDecryptAndPublicKeyLine() throws {
        let key = try DHPrivateKey(group: .dh192des, secretHex: alice)
        let encrypted = try XCrypt.encryptSecret(key, password: password("hunter22"))
        XCTAssertEqual(encrypted, "873aa09960c95a013464b8ba3c5c5ab9025692e9f1e4ca902ba459dd0a1bac71")
        let opened = try XCrypt.decryptSecret(encrypted, password: password("hunter22"))
        XCTAssertEqual(opened.secretHex, alice)
        XCTAssertEqual(opened.publicKey, key.publicKey)
        XCTAssertThrowsError(try XCrypt.decryptSecret(encrypted, password: password("hunter23"))) {
            XCTAssertEqual($0 as? KeyCryptoError, .wrongPassword)
        }
        let line = "unix.1001@example.com b48fa79715f69ba0753524064a5c870c420ade8a4985f154:873aa09960c95a013464b8ba3c5c5ab9025692e9f1e4ca902ba459dd0a1bac71"
        let entry = PublicKeyEntry(netname: "unix.1001@example.com", publicKey: key.publicKey, encryptedSecret: encrypted)
        XCTAssertEqual(entry.line, line)
        XCTAssertEqual(try PublicKeyEntry(line: line), entry)
        XCTAssertEqual(try PublicKeyEntry(line: line.uppercased().replacingOccurrences(of: "UNIX.1001@EXAMPLE.COM", with: "unix.1001@example.com")), entry)
        for bad in ["unix.1 abc:def", "unix.1", "unix.1 " + String(line.split(separator: " ")[1].prefix(48)),
                    "unix.1 zz8fa79715f69ba0753524064a5c870c420ade8a4985f154:873aa09960c95a013464b8ba3c5c5ab9025692e9f1e4ca902ba459dd0a1bac71"] {
            XCTAssertThrowsError(try PublicKeyEntry(line: bad), bad)
        }
    }
}

final class StrongGroupTests: XCTestCase {
    // vectors.md §9 and PROTOCOL.md §8.1 (ffdhe4096 was checked against the RFC 7919 formula
    // with e to 5000 bits, X = 5736041, and p and (p-1)/2 tested prime with sympy).
    func testGroupPrimes() {
        let expected: [DHGroupName: (bits: Int, head: String, generator: UInt)] = [
            .dh192des: (192, "d4a0ba0250b6fd2e", 3),
            .ffdhe2048: (2048, "ffffffffffffffffadf85458a2bb4a9a", 2),
            .ffdhe3072: (3072, "ffffffffffffffffadf85458a2bb4a9a", 2),
            .ffdhe4096: (4096, "ffffffffffffffffadf85458a2bb4a9a", 2),
        ]
        for (name, facts) in expected {
            let group = DHGroup.named(name)
            let p = group.prime()
            XCTAssertEqual(p.bitWidth, facts.bits, "\(name)")
            XCTAssertTrue(hex(group.primeBytes).hasPrefix(facts.head), "\(name)")
            XCTAssertEqual(group.generator, facts.generator)
            XCTAssertTrue(p.isProbablePrime(rounds: 10), "\(name) p is prime")
            XCTAssertTrue(p.shiftedRight(1).isProbablePrime(rounds: 10), "\(name) (p-1)/2 is prime: a safe prime")
        }
        XCTAssertEqual(hex(DHGroup.named(.ffdhe2048).primeBytes).suffix(32), "886b423861285c97ffffffffffffffff")
        XCTAssertEqual(hex(DHGroup.named(.ffdhe3072).primeBytes).suffix(32), "25e41d2b66c62e37ffffffffffffffff")
        XCTAssertEqual(hex(DHGroup.named(.ffdhe4096).primeBytes).suffix(24), "5e655f6affffffffffffffff")
    }

    func testRandomPairsAgreeInEveryGroup() throws {
        for name in DHGroupName.allCases {
            for _ in 0..<3 {
                let a = DHPrivateKey.generate(group: name), b = DHPrivateKey.generate(group: name)
                XCTAssertEqual(try a.sharedSecret(with: b.publicKey), try b.sharedSecret(with: a.publicKey), "\(name)")
                XCTAssertEqual(a.publicKey.bytes.count, DHGroup.named(name).byteLength)
                XCTAssertNotEqual(a.publicKey, b.publicKey)
            }
        }
    }

    func testFixedBaseCombMatchesPowmSec() throws {
        for name in [DHGroupName.ffdhe2048, .ffdhe3072, .ffdhe4096] {
            let table = try XCTUnwrap(FixedBaseTable.table(for: name))
            for _ in 0..<3 {
                let key = DHPrivateKey.generate(group: name)
                let x = key.secret.withUnsafeBytes { BigNum(bytes: $0) }
                let slow = BigNum.powSecret(BigNum(2), x, DHGroup.named(name).prime()).bytes(width: DHGroup.named(name).byteLength)
                XCTAssertEqual(table.power(key.secret), slow, "\(name)")
                XCTAssertLessThanOrEqual(x.bitWidth, DHGroup.named(name).exponentBits)
            }
            // Edge exponents: 2, and all ones.
            let two = SecretBytes(copying: [2])
            XCTAssertEqual(hex(table.power(two)).suffix(2), "04")
        }
    }

    /// A shared secret is raised with the group's exponent size (225 bits for ffdhe2048)
    /// rather than the limbs' width when the key allows it. Both ways must give peer^x mod p
    /// exactly (checked against GMP's public mpz_powm): exponents of exactly the group's size
    /// (top bit set), tiny ones, and an imported key wider than the group's size.
    func testSharedSecretsWithTheGroupsExponentSizeMatchPublicPowm() throws {
        for name in [DHGroupName.ffdhe2048, .ffdhe3072, .ffdhe4096] {
            let group = DHGroup.named(name), p = group.prime()
            let peer = DHPrivateKey.generate(group: name).publicKey
            let bits = group.exponentBits
            var exponents: [[UInt8]] = [[2], [0xff, 0xff]]
            // Exactly `bits` bits: the top one set, the rest random.
            var exact = RandomBytes.array(count: (bits + 7) / 8)
            exact[0] = (exact[0] & UInt8(0xff >> (8 * exact.count - bits))) | UInt8(1 << ((bits - 1) % 8))
            exponents.append(exact)
            // Wider than the group's size (an imported key): half the prime's width.
            var wide = RandomBytes.array(count: group.byteLength / 2)
            wide[0] |= 0x80
            exponents.append(wide)
            for bytes in exponents {
                let key = try DHPrivateKey(group: name, secret: SecretBytes(copying: bytes))
                let x = BigNum(bytes: bytes)
                let expected = BigNum.powPublic(BigNum(bytes: peer.bytes), x, p).bytes(width: group.byteLength)
                XCTAssertEqual(try key.sharedSecret(with: peer).copyBytes(), expected, "\(name), \(x.bitWidth)-bit exponent")
            }
        }
    }

    func testMalformedPeerKeysAreRejected() {
        for name in DHGroupName.allCases {
            let group = DHGroup.named(name)
            let width = group.byteLength
            let p = group.prime()
            var zero = [UInt8](repeating: 0, count: width)
            var one = zero; one[width - 1] = 1
            let pMinusOne = p.minus(1).bytes(width: width)
            let pItself = group.primeBytes
            let above = [UInt8](repeating: 0xff, count: width)
            for (label, candidate) in [("0", zero), ("1", one), ("p-1", pMinusOne), ("p", pItself), (">= p", above),
                                       ("short", Array(pMinusOne.dropFirst())), ("long", [0] + one)] {
                XCTAssertThrowsError(try DHPublicKey(group: name, bytes: candidate), "\(name) \(label)") { error in
                    guard case .invalidPublicKey? = error as? KeyCryptoError else { return XCTFail("\(error)") }
                }
            }
            zero[width - 1] = 2
            XCTAssertNoThrow(try DHPublicKey(group: name, bytes: zero), "2 is a valid element")
            XCTAssertThrowsError(try DHPublicKey(group: name, hex: "xyz"))
        }
        let a = DHPrivateKey.generate(group: .ffdhe2048)
        let b = DHPrivateKey.generate(group: .ffdhe3072)
        XCTAssertThrowsError(try a.sharedSecret(with: b.publicKey), "keys of different groups")
    }
}

final class SealedKeyTests: XCTestCase {
    func testSealOpenAndEachFailureHasItsOwnError() throws {
        for name in DHGroupName.allCases {
            let key = DHPrivateKey.generate(group: name)
            let sealed = try SealedSecretKey.seal(key, password: password("s3cret"), parameters: .testing)
            let parsed = try SealedSecretKey(encoded: sealed.encoded)
            XCTAssertEqual(parsed.group, name)
            let opened = try parsed.open(password: password("s3cret"))
            XCTAssertEqual(opened.publicKey, key.publicKey)
            XCTAssertEqual(opened.secret, key.secret)

            XCTAssertThrowsError(try parsed.open(password: password("s3cret!"))) {
                XCTAssertEqual($0 as? KeyCryptoError, .wrongPassword)
            }
            for position in [0, 7, 20, sealed.encoded.count / 2, sealed.encoded.count - 20, sealed.encoded.count - 1] {
                var flipped = sealed.encoded
                flipped[position] ^= 0x01
                XCTAssertThrowsError(try SealedSecretKey(encoded: flipped).open(password: password("s3cret")), "flip at \(position)") { error in
                    let e = error as? KeyCryptoError
                    XCTAssertTrue(e == .corrupted || e == .notASealedKey || e == .unsupportedVersion(0), "flip at \(position): \(error)")
                    XCTAssertNotEqual(e, .wrongPassword)
                }
            }
            for length in [0, 5, 30, sealed.encoded.count - 1] {
                XCTAssertThrowsError(try SealedSecretKey(encoded: Array(sealed.encoded.prefix(length)))) {
                    XCTAssertEqual($0 as? KeyCryptoError, .truncated, "length \(length)")
                }
            }
        }
    }

    func testHostileParametersAreRefusedBeforeAnyWork() throws {
        let key = DHPrivateKey.generate(group: .ffdhe2048)
        let sealed = try SealedSecretKey.seal(key, password: password("pw"), parameters: .testing)
        var hostile = Array(sealed.encoded.dropLast(16))
        hostile[8] = 30   // log2 N = 30: 128 GiB
        hostile += StrongCrypto.sha256(hostile).prefix(16)
        XCTAssertThrowsError(try SealedSecretKey(encoded: hostile)) { error in
            guard case .unacceptableParameters? = error as? KeyCryptoError else { return XCTFail("\(error)") }
        }
        var future = sealed.encoded
        future[6] = 2
        XCTAssertThrowsError(try SealedSecretKey(encoded: future)) { XCTAssertEqual($0 as? KeyCryptoError, .unsupportedVersion(2)) }
    }

    func testDefaultParametersAreRecordedInTheBlob() throws {
        let key = DHPrivateKey.generate(group: .dh192des)
        let sealed = try SealedSecretKey.seal(key, password: password("pw"))
        XCTAssertEqual(sealed.parameters, .default)
        XCTAssertEqual(try SealedSecretKey(encoded: sealed.encoded).open(password: password("pw")).secret, key.secret)
    }
}

final class SecretHygieneTests: XCTestCase {
    func testSecretsNeverPrint() throws {
        let key = DHPrivateKey.generate(group: .ffdhe2048)
        let hexSecret = key.secretHex
        for text in ["\(key)", "\(key.secret)", String(reflecting: key.secret), String(describing: key), "\(String(reflecting: key))"] {
            XCTAssertFalse(text.contains(hexSecret.suffix(16)), text)
        }
        var dumped = ""
        dump(key.secret, to: &dumped)
        XCTAssertFalse(dumped.contains(hexSecret.suffix(16)))
        XCTAssertEqual("\(key.secret)", "SecretBytes(256 bytes, redacted)")
    }

    func testConstantTimeEquality() {
        XCTAssertEqual(secret("0011"), secret("0011"))
        XCTAssertNotEqual(secret("0011"), secret("0012"))
        XCTAssertNotEqual(secret("0011"), secret("001100"))
    }

    func testHKDFAndAEAD() throws {
        // RFC 5869 test case 1.
        let okm = StrongCrypto.hkdf(inputKeyMaterial: secret("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
                                    salt: bytes("000102030405060708090a0b0c"), info: bytes("f0f1f2f3f4f5f6f7f8f9"), outputByteCount: 42)
        XCTAssertEqual(hex(okm.copyBytes()), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let key = SecretBytes.random(count: 32)
        for aead in StrongCrypto.AEAD.allCases {
            let nonce = [UInt8](repeating: 7, count: 12)
            let sealed = try StrongCrypto.seal(aead, key: key, nonce: nonce, plaintext: Array("args".utf8), authenticating: [1, 2])
            XCTAssertEqual(try StrongCrypto.open(aead, key: key, nonce: nonce, sealed: sealed, authenticating: [1, 2]), Array("args".utf8))
            var tampered = sealed
            tampered[0] ^= 1
            XCTAssertThrowsError(try StrongCrypto.open(aead, key: key, nonce: nonce, sealed: tampered, authenticating: [1, 2]))
            XCTAssertThrowsError(try StrongCrypto.open(aead, key: key, nonce: nonce, sealed: sealed, authenticating: [1, 3]))
        }
        let tag = StrongCrypto.hmac(key: key, [1, 2, 3])
        XCTAssertTrue(StrongCrypto.verifyHMAC(key: key, [1, 2, 3], tag: tag))
        XCTAssertFalse(StrongCrypto.verifyHMAC(key: key, [1, 2, 4], tag: tag))
    }
}

/// RandomBytes draws eight bytes per request: every byte of a buffer of any length is drawn
/// (none left as it was), and two draws differ.
final class RandomBytesTests: XCTestCase {
    func testEveryByteOfAnyLengthIsDrawn() {
        for count in [0, 1, 7, 8, 9, 12, 16, 29, 41, 64] {
            // Each position is zero in one draw with probability 1/256: in 40 draws, every
            // position is non-zero at least once unless it is never written.
            var seenNonZero = [Bool](repeating: false, count: count)
            for _ in 0..<40 {
                let bytes = RandomBytes.array(count: count)
                XCTAssertEqual(bytes.count, count)
                for (i, byte) in bytes.enumerated() where byte != 0 { seenNonZero[i] = true }
            }
            XCTAssertEqual(seenNonZero.filter { !$0 }.count, 0, "\(count) bytes: a position was never drawn")
        }
        XCTAssertNotEqual(RandomBytes.array(count: 16), RandomBytes.array(count: 16))
        // The buffer is written whole, whatever it held.
        var buffer = [UInt8](repeating: 0xAA, count: 13)
        var changed = [Bool](repeating: false, count: 13)
        for _ in 0..<40 {
            buffer.withUnsafeMutableBytes { RandomBytes.fill($0) }
            for (i, byte) in buffer.enumerated() where byte != 0xAA { changed[i] = true }
        }
        XCTAssertTrue(changed.allSatisfy { $0 })
        XCTAssertEqual(SecretBytes.random(count: 41).count, 41)
    }
}
