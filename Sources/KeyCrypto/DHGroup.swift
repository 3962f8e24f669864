// The Diffie-Hellman groups by name: Sun's 192-bit group (base 3) for the legacy AUTH_DES
// mechanism, and the RFC 7919 FFDHE groups (base 2) for the strong mechanism. The primes are
// public constants, checked by tests (PROTOCOL.md §8.1, vectors.md §9).

import CGMP

/// A group name as stored in the directory and named in policies.
public enum DHGroupName: String, CaseIterable, Sendable, Codable {
    case dh192des = "dh192-des"
    case ffdhe2048
    case ffdhe3072
    case ffdhe4096

    /// The default for new keys and the strong mechanism.
    public static let `default`: DHGroupName = .ffdhe3072

    public init(parsing text: String) throws(KeyCryptoError) {
        guard let name = DHGroupName(rawValue: text.lowercased()) else { throw .unknownGroup(text) }
        self = name
    }
}

/// A finite-field Diffie-Hellman group.
public struct DHGroup: Sendable {
    public let name: DHGroupName
    /// The prime modulus as big-endian bytes.
    public let primeBytes: [UInt8]
    public let generator: UInt
    /// Bytes in a public key or shared secret (the size of p).
    public var byteLength: Int { primeBytes.count }
    /// Hex digits in a public key's text form.
    public var publicKeyHexLength: Int { byteLength * 2 }
    /// Bits in a freshly generated secret exponent: RFC 7919 §5.2's guidance of at least
    /// twice the group's security strength (225, 275, 325 bits, as OpenSSL uses for these
    /// groups). The legacy group uses full-size exponents below q.
    public let exponentBits: Int

    public static func named(_ name: DHGroupName) -> DHGroup {
        switch name {
        case .dh192des: return dh192des
        case .ffdhe2048: return ffdhe2048
        case .ffdhe3072: return ffdhe3072
        case .ffdhe4096: return ffdhe4096
        }
    }

    static let dh192des = DHGroup(name: .dh192des, primeHex: "d4a0ba0250b6fd2ec626e7efd637df76c716e22d0944b88b", generator: 3, exponentBits: 192)

    static let ffdhe2048 = DHGroup(name: .ffdhe2048, primeHex: """
        FFFFFFFF FFFFFFFF ADF85458 A2BB4A9A AFDC5620 273D3CF1 D8B9C583 CE2D3695
        A9E13641 146433FB CC939DCE 249B3EF9 7D2FE363 630C75D8 F681B202 AEC4617A
        D3DF1ED5 D5FD6561 2433F51F 5F066ED0 85636555 3DED1AF3 B557135E 7F57C935
        984F0C70 E0E68B77 E2A689DA F3EFE872 1DF158A1 36ADE735 30ACCA4F 483A797A
        BC0AB182 B324FB61 D108A94B B2C8E3FB B96ADAB7 60D7F468 1D4F42A3 DE394DF4
        AE56EDE7 6372BB19 0B07A7C8 EE0A6D70 9E02FCE1 CDF7E2EC C03404CD 28342F61
        9172FE9C E98583FF 8E4F1232 EEF28183 C3FE3B1B 4C6FAD73 3BB5FCBC 2EC22005
        C58EF183 7D1683B2 C6F34A26 C1B2EFFA 886B4238 61285C97 FFFFFFFF FFFFFFFF
        """, generator: 2, exponentBits: 225)

    static let ffdhe3072 = DHGroup(name: .ffdhe3072, primeHex: """
        FFFFFFFF FFFFFFFF ADF85458 A2BB4A9A AFDC5620 273D3CF1 D8B9C583 CE2D3695
        A9E13641 146433FB CC939DCE 249B3EF9 7D2FE363 630C75D8 F681B202 AEC4617A
        D3DF1ED5 D5FD6561 2433F51F 5F066ED0 85636555 3DED1AF3 B557135E 7F57C935
        984F0C70 E0E68B77 E2A689DA F3EFE872 1DF158A1 36ADE735 30ACCA4F 483A797A
        BC0AB182 B324FB61 D108A94B B2C8E3FB B96ADAB7 60D7F468 1D4F42A3 DE394DF4
        AE56EDE7 6372BB19 0B07A7C8 EE0A6D70 9E02FCE1 CDF7E2EC C03404CD 28342F61
        9172FE9C E98583FF 8E4F1232 EEF28183 C3FE3B1B 4C6FAD73 3BB5FCBC 2EC22005
        C58EF183 7D1683B2 C6F34A26 C1B2EFFA 886B4238 611FCFDC DE355B3B 6519035B
        BC34F4DE F99C0238 61B46FC9 D6E6C907 7AD91D26 91F7F7EE 598CB0FA C186D91C
        AEFE1309 85139270 B4130C93 BC437944 F4FD4452 E2D74DD3 64F2E21E 71F54BFF
        5CAE82AB 9C9DF69E E86D2BC5 22363A0D ABC52197 9B0DEADA 1DBF9A42 D5C4484E
        0ABCD06B FA53DDEF 3C1B20EE 3FD59D7C 25E41D2B 66C62E37 FFFFFFFF FFFFFFFF
        """, generator: 2, exponentBits: 275)

    static let ffdhe4096 = DHGroup(name: .ffdhe4096, primeHex: """
        FFFFFFFF FFFFFFFF ADF85458 A2BB4A9A AFDC5620 273D3CF1 D8B9C583 CE2D3695
        A9E13641 146433FB CC939DCE 249B3EF9 7D2FE363 630C75D8 F681B202 AEC4617A
        D3DF1ED5 D5FD6561 2433F51F 5F066ED0 85636555 3DED1AF3 B557135E 7F57C935
        984F0C70 E0E68B77 E2A689DA F3EFE872 1DF158A1 36ADE735 30ACCA4F 483A797A
        BC0AB182 B324FB61 D108A94B B2C8E3FB B96ADAB7 60D7F468 1D4F42A3 DE394DF4
        AE56EDE7 6372BB19 0B07A7C8 EE0A6D70 9E02FCE1 CDF7E2EC C03404CD 28342F61
        9172FE9C E98583FF 8E4F1232 EEF28183 C3FE3B1B 4C6FAD73 3BB5FCBC 2EC22005
        C58EF183 7D1683B2 C6F34A26 C1B2EFFA 886B4238 611FCFDC DE355B3B 6519035B
        BC34F4DE F99C0238 61B46FC9 D6E6C907 7AD91D26 91F7F7EE 598CB0FA C186D91C
        AEFE1309 85139270 B4130C93 BC437944 F4FD4452 E2D74DD3 64F2E21E 71F54BFF
        5CAE82AB 9C9DF69E E86D2BC5 22363A0D ABC52197 9B0DEADA 1DBF9A42 D5C4484E
        0ABCD06B FA53DDEF 3C1B20EE 3FD59D7C 25E41D2B 669E1EF1 6E6F52C3 164DF4FB
        7930E9E4 E58857B6 AC7D5F42 D69F6D18 7763CF1D 55034004 87F55BA5 7E31CC7A
        7135C886 EFB4318A ED6A1E01 2D9E6832 A907600A 918130C4 6DC778F9 71AD0038
        092999A3 33CB8B7A 1A1DB93D 7140003C 2A4ECEA9 F98D0ACC 0A8291CD CEC97DCF
        8EC9B55A 7F88A46B 4DB5A851 F44182E1 C68A007E 5E655F6A FFFFFFFF FFFFFFFF
        """, generator: 2, exponentBits: 325)

    private init(name: DHGroupName, primeHex: String, generator: UInt, exponentBits: Int) {
        self.name = name
        let p = BigNum(hex: primeHex)
        self.primeBytes = p.bytes(width: (p.bitWidth + 7) / 8)
        self.generator = generator
        self.exponentBits = exponentBits
    }

    /// The prime as a number (a fresh object: BigNum is not thread-safe).
    func prime() -> BigNum { BigNum(bytes: primeBytes) }
}
