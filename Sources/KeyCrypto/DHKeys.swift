// Diffie-Hellman key pairs and shared secrets. Public keys from peers are untrusted and are
// validated (right length, 1 < y < p-1) before use; secret exponents stay in SecretBytes and
// only meet GMP through constant-time code (mpz_powm_sec, or the fixed-base comb below).

import CGMP

/// A validated public key: a group element as fixed-width big-endian bytes.
public struct DHPublicKey: Sendable, Hashable, CustomStringConvertible {
    public let group: DHGroupName
    /// Exactly `DHGroup.named(group).byteLength` bytes, big-endian.
    public let bytes: [UInt8]

    /// Validates a peer's key: exact length, and 1 < y < p-1. For the safe-prime groups this
    /// rules out the only small subgroup ({1, p-1}); it does not test y^q = 1, which costs a
    /// full exponentiation and guards only one bit of the secret.
    public init(group: DHGroupName, bytes: [UInt8]) throws(KeyCryptoError) {
        let parameters = DHGroup.named(group)
        guard bytes.count == parameters.byteLength else {
            throw .invalidPublicKey(group: group.rawValue, reason: "\(bytes.count) bytes, expected \(parameters.byteLength)")
        }
        let y = BigNum(bytes: bytes)
        let p = parameters.prime()
        if y.compare(1) <= 0 {
            throw .invalidPublicKey(group: group.rawValue, reason: "value is 0 or 1")
        }
        if y.compare(p) >= 0 {
            throw .invalidPublicKey(group: group.rawValue, reason: "value is not below the prime")
        }
        if y.compare(p.minus(1)) == 0 {
            throw .invalidPublicKey(group: group.rawValue, reason: "value is p-1")
        }
        self.group = group
        self.bytes = bytes
    }

    /// Parses the text form (lowercase or uppercase hex, exactly the group's width).
    public init(group: DHGroupName, hex: String) throws(KeyCryptoError) {
        try self.init(group: group, bytes: Hex.decode(hex, expectedLength: DHGroup.named(group).publicKeyHexLength))
    }

    /// Lowercase hex, left-padded to the group's width (the classic 48 digits for dh192-des).
    public var hex: String { Hex.encode(bytes) }

    public var description: String { "\(group.rawValue):\(hex.prefix(16))…" }
}

/// A key pair. The secret exponent never leaves as anything but `SecretBytes`.
public struct DHPrivateKey: Sendable, CustomStringConvertible {
    public let group: DHGroupName
    /// The secret exponent, big-endian, as wide as the group's prime.
    public let secret: SecretBytes
    public let publicKey: DHPublicKey

    /// A fresh key pair from the system CSPRNG.
    public static func generate(group: DHGroupName = .default) -> DHPrivateKey {
        let parameters = DHGroup.named(group)
        while true {
            let secret = randomExponent(parameters)
            if let key = try? DHPrivateKey(group: group, secret: secret) { return key }
        }
    }

    /// A key pair from a known secret exponent (big-endian, at most the prime's width).
    public init(group: DHGroupName, secret: SecretBytes) throws(KeyCryptoError) {
        let parameters = DHGroup.named(group)
        guard secret.count <= parameters.byteLength else {
            throw .invalidSecretKey(group: group.rawValue, reason: "wider than the prime")
        }
        let p = parameters.prime()
        let x = secret.withUnsafeBytes { BigNum(bytes: $0) }
        // 2 <= x < p-1 (the classic group stores x < p; p-1 and below are all usable).
        guard x.compare(2) >= 0, x.compare(p.minus(1)) < 0 else {
            throw .invalidSecretKey(group: group.rawValue, reason: "exponent out of range")
        }
        let y: [UInt8]
        if parameters.generator == 2, let table = FixedBaseTable.table(for: group), x.bitWidth <= table.exponentBits {
            y = table.power(secret)
        } else {
            y = BigNum.powSecret(BigNum(parameters.generator), x, p).bytes(width: parameters.byteLength)
        }
        self.group = group
        self.secret = SecretBytes(count: parameters.byteLength) { out in
            secret.withUnsafeBytes { input in
                out.baseAddress!.advanced(by: parameters.byteLength - input.count).copyMemory(from: input.baseAddress!, byteCount: input.count)
            }
        }
        self.publicKey = try DHPublicKey(group: group, bytes: y)
    }

    /// Parses a secret written as hex (the classic 48-digit form for dh192-des).
    public init(group: DHGroupName, secretHex: String) throws(KeyCryptoError) {
        var bytes = try Hex.decode(secretHex)
        defer { SecretBytes.wipe(&bytes) }
        try self.init(group: group, secret: SecretBytes(copying: bytes))
    }

    /// The secret as lowercase hex, for the classic publickey format. The string cannot be
    /// wiped: use only where the format demands text.
    public var secretHex: String { secret.withUnsafeBytes { Hex.encode($0) } }

    /// `peer ^ secret mod p`, fixed width, big-endian. The groups must match.
    public func sharedSecret(with peer: DHPublicKey) throws(KeyCryptoError) -> SecretBytes {
        guard peer.group == group else {
            throw .invalidPublicKey(group: peer.group.rawValue, reason: "peer key is for \(peer.group.rawValue), ours for \(group.rawValue)")
        }
        let parameters = DHGroup.named(group)
        let x = secret.withUnsafeBytes { BigNum(bytes: $0) }
        // Every key made here has an exponent of the group's size (225 bits for ffdhe2048):
        // raise with exactly that many bits, not the limbs' 256 (14-18 % fewer squarings).
        // Keys from elsewhere may be wider; they keep the limb width. Which of the two a key
        // is shows only whether it is of the usual size.
        let bound = x.bitWidth <= parameters.exponentBits ? parameters.exponentBits : nil
        let shared = BigNum.powSecret(BigNum(bytes: peer.bytes), x, parameters.prime(), exponentBits: bound)
        return SecretBytes(count: parameters.byteLength) { shared.exportBytes(into: $0) }
    }

    public var description: String { "DHPrivateKey(\(group.rawValue), public \(publicKey.hex.prefix(16))…, secret redacted)" }

    /// A uniformly random exponent: for the strong groups `exponentBits` bits; for the
    /// classic group a value below p (the caller's range check rejects the rare misses).
    private static func randomExponent(_ parameters: DHGroup) -> SecretBytes {
        let bits = parameters.exponentBits
        let byteCount = (bits + 7) / 8
        let random = SecretBytes.random(count: byteCount)
        return SecretBytes(count: byteCount) { out in
            random.withUnsafeBytes { out.copyMemory(from: $0) }
            let excess = byteCount * 8 - bits
            out[0] &= UInt8(0xff >> excess)
        }
    }
}

/// Fixed-base exponentiation for generator 2: a comb table of 2^(j * 16^i) mod p, computed
/// once per group from public values only. Key generation then costs one modular
/// multiplication per 4 exponent bits and no squarings. Constant time: each row's entry is
/// picked with `mpn_sec_tabselect` (reads the whole row), products use `mpn_sec_mul` and
/// `mpn_sec_div_r`, whose running time depends only on the operand sizes.
final class FixedBaseTable: Sendable {
    let exponentBits: Int
    private let limbs: Int
    private let rows: Int
    private let table: [mp_limb_t]        // rows × 16 entries × limbs
    private let prime: [mp_limb_t]
    private let byteLength: Int

    private static let tables: [DHGroupName: FixedBaseTable] = {
        var tables: [DHGroupName: FixedBaseTable] = [:]
        for name in [DHGroupName.ffdhe2048, .ffdhe3072, .ffdhe4096] {
            tables[name] = FixedBaseTable(DHGroup.named(name))
        }
        return tables
    }()

    static func table(for group: DHGroupName) -> FixedBaseTable? { tables[group] }

    private init(_ group: DHGroup) {
        let p = group.prime()
        limbs = p.limbCount
        exponentBits = group.exponentBits
        rows = (exponentBits + 3) / 4
        byteLength = group.byteLength
        prime = p.limbs(count: limbs)
        var entries: [mp_limb_t] = []
        entries.reserveCapacity(rows * 16 * limbs)
        var base = BigNum(group.generator)          // g^(16^i)
        let sixteen = BigNum(16)
        for _ in 0..<rows {
            var power = BigNum(1)                   // base^j
            for _ in 0..<16 {
                entries += power.limbs(count: limbs)
                let product = BigNum()
                __gmpz_mul(&product.value, &power.value, &base.value)
                let reduced = BigNum()
                __gmpz_mod(&reduced.value, &product.value, &p.value)
                power = reduced
            }
            base = BigNum.powPublic(base, sixteen, p)
        }
        table = entries
    }

    /// 2^x mod p for a secret x of at most `exponentBits` bits (big-endian bytes).
    func power(_ exponent: SecretBytes) -> [UInt8] {
        let n = limbs
        let scratchCount = max(Int(__gmpn_sec_mul_itch(n, n)), Int(__gmpn_sec_div_r_itch(2 * n, n)))
        var accumulator = [mp_limb_t](repeating: 0, count: n)
        accumulator[0] = 1
        var selected = [mp_limb_t](repeating: 0, count: n)
        var product = [mp_limb_t](repeating: 0, count: 2 * n)
        var scratch = [mp_limb_t](repeating: 0, count: scratchCount)
        defer {
            // Every buffer that saw the secret's nibbles or products of selected entries,
            // the mul/div scratch included, is zeroed with explicit_bzero (plain stores to
            // arrays about to be freed may be dropped).
            accumulator.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            selected.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            product.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            scratch.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            if BigNumScratchTracking.enabled.load(ordering: .relaxed) {
                BigNumScratchTracking.record(zeroed: scratch.allSatisfy { $0 == 0 } && product.allSatisfy { $0 == 0 })
            }
        }
        exponent.withUnsafeBytes { x in
            table.withUnsafeBufferPointer { table in
                prime.withUnsafeBufferPointer { prime in
                    for row in 0..<rows {
                        // Nibble `row` counted from the least significant end.
                        let byteIndex = x.count - 1 - row / 2
                        let byte = byteIndex >= 0 ? x[byteIndex] : 0
                        let nibble = row % 2 == 0 ? byte & 0x0f : byte >> 4
                        let rowStart = table.baseAddress! + row * 16 * n
                        __gmpn_sec_tabselect(&selected, rowStart, n, 16, mp_size_t(nibble))
                        __gmpn_sec_mul(&product, accumulator, n, selected, n, &scratch)
                        __gmpn_sec_div_r(&product, 2 * n, prime.baseAddress!, n, &scratch)
                        for i in 0..<n { accumulator[i] = product[i] }
                    }
                }
            }
        }
        // Limbs (least significant first) to big-endian bytes.
        var out = [UInt8](repeating: 0, count: byteLength)
        for i in 0..<byteLength {
            let bitOffset = 8 * (byteLength - 1 - i)
            out[i] = UInt8(truncatingIfNeeded: accumulator[bitOffset / 64] >> UInt64(bitOffset % 64))
        }
        return out
    }
}
