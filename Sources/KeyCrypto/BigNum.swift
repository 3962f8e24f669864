// A minimal big-number type over GMP (libgmp) for Diffie-Hellman. Secret exponents only
// ever go through `mpz_powm_sec` (constant time); plain `mpz_powm` is for public exponents.
// GMP's allocator is replaced once, before first use, by one that wipes every block it
// frees, so limbs that held secrets do not survive in freed memory.

import CGMP

/// Makes sure the wiping allocator is in place before any GMP allocation.
enum GMPSetup {
    static let installed: Bool = {
        srpc_gmp_install_wiping_allocator()
        return true
    }()
}

/// An arbitrary-precision non-negative integer. Not thread-safe; not Sendable.
final class BigNum {
    var value = __mpz_struct()

    init() {
        _ = GMPSetup.installed
        __gmpz_init(&value)
    }

    /// From big-endian bytes.
    convenience init(bytes: UnsafeRawBufferPointer) {
        self.init()
        if let base = bytes.baseAddress, bytes.count > 0 {
            __gmpz_import(&value, bytes.count, 1, 1, 1, 0, base)
        }
    }

    convenience init(bytes: [UInt8]) {
        self.init()
        bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress, raw.count > 0 { __gmpz_import(&value, raw.count, 1, 1, 1, 0, base) }
        }
    }

    /// From hexadecimal text (spaces allowed, for printed primes).
    convenience init(hex: String) {
        self.init()
        let clean = hex.filter { !$0.isWhitespace }
        let status = __gmpz_set_str(&value, clean, 16)
        precondition(status == 0, "invalid hex constant")
    }

    convenience init(_ small: UInt) {
        self.init()
        __gmpz_set_ui(&value, small)
    }

    deinit {
        __gmpz_clear(&value)
    }

    /// Number of significant bits.
    var bitWidth: Int { srpc_mpz_sgn(&value) == 0 ? 0 : Int(__gmpz_sizeinbase(&value, 2)) }

    /// Number of limbs in use.
    var limbCount: Int { Int(abs(value._mp_size)) }

    func compare(_ other: BigNum) -> Int { Int(__gmpz_cmp(&value, &other.value)) }
    func compare(_ small: UInt) -> Int { Int(__gmpz_cmp_ui(&value, small)) }

    /// Big-endian bytes, left-padded to `width` (the value must fit).
    func bytes(width: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width)
        exportBytes(into: &out)
        return out
    }

    /// Writes big-endian bytes, left-padded, into `destination`.
    func exportBytes(into destination: inout [UInt8]) {
        destination.withUnsafeMutableBytes { exportBytes(into: $0) }
    }

    func exportBytes(into destination: UnsafeMutableRawBufferPointer) {
        let needed = (bitWidth + 7) / 8
        precondition(needed <= destination.count, "number wider than its field")
        SecretBytes.wipe(destination)
        guard needed > 0 else { return }
        var written = 0
        __gmpz_export(destination.baseAddress! + (destination.count - needed), &written, 1, 1, 1, 0, &value)
    }

    /// `base ^ exponent mod modulus` in constant time (for secret exponents). The modulus
    /// must be odd and the exponent positive.
    static func powSecret(_ base: BigNum, _ exponent: BigNum, _ modulus: BigNum) -> BigNum {
        let result = BigNum()
        __gmpz_powm_sec(&result.value, &base.value, &exponent.value, &modulus.value)
        return result
    }

    /// `base ^ exponent mod modulus` for a public exponent.
    static func powPublic(_ base: BigNum, _ exponent: BigNum, _ modulus: BigNum) -> BigNum {
        let result = BigNum()
        __gmpz_powm(&result.value, &base.value, &exponent.value, &modulus.value)
        return result
    }

    /// `self - small`.
    func minus(_ small: UInt) -> BigNum {
        let result = BigNum()
        __gmpz_sub_ui(&result.value, &value, small)
        return result
    }

    /// `self / 2^bits` (floor).
    func shiftedRight(_ bits: Int) -> BigNum {
        let result = BigNum()
        __gmpz_fdiv_q_2exp(&result.value, &value, mp_bitcnt_t(bits))
        return result
    }

    func isProbablePrime(rounds: Int32 = 30) -> Bool {
        __gmpz_probab_prime_p(&value, rounds) > 0
    }

    /// The limbs, least significant first, padded with zeros to `count`.
    func limbs(count: Int) -> [mp_limb_t] {
        precondition(limbCount <= count)
        var out = [mp_limb_t](repeating: 0, count: count)
        for i in 0..<limbCount { out[i] = value._mp_d[i] }
        return out
    }
}
