// A minimal big-number type over GMP (libgmp) for Diffie-Hellman. Secret exponents only
// ever go through `mpz_powm_sec` (constant time); plain `mpz_powm` is for public exponents.
// GMP's allocator is replaced once, before first use, by one that wipes every block it
// frees, so limbs that held secrets do not survive in freed memory.

import CGMP
import Synchronization

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
    /// must be odd, the base positive and the exponent below the modulus.
    ///
    /// Through `mpn_sec_powm` with a scratch area of our own, zeroed before it is freed:
    /// `mpz_powm_sec` puts its scratch (window tables of powers of the base, intermediate
    /// products) on the stack, where nothing wipes it.
    ///
    /// `exponentBits`, when given, is how many bits are processed: a public bound at or above
    /// the exponent's width (a group's exponent size). Without it, the exponent's limbs.
    static func powSecret(_ base: BigNum, _ exponent: BigNum, _ modulus: BigNum, exponentBits bound: Int? = nil) -> BigNum {
        let n = Int(abs(modulus.value._mp_size))
        let baseLimbs = Int(abs(base.value._mp_size))
        let exponentLimbs = Int(abs(exponent.value._mp_size))
        precondition(n > 0 && baseLimbs > 0 && exponentLimbs <= n, "powSecret: bad operands")
        // The exponent's own limbs, as mpz_powm_sec does: the modulus's full width made a
        // derive with a 225-bit ffdhe2048 exponent ~7× slower (keybench dh: 160/s against
        // 1,189/s). What this shows of the secret is its limb count, which the group fixes.
        // A bound narrower than the limbs (225 bits, not 256) saves the squarings in between.
        let limbBits = max(exponentLimbs, 1) * MemoryLayout<mp_limb_t>.size * 8
        if let bound { precondition(bound >= exponent.bitWidth && bound > 0 && bound <= n * MemoryLayout<mp_limb_t>.size * 8, "powSecret: bound below the exponent") }
        let exponentBits = mp_bitcnt_t(bound.map { min($0, limbBits) } ?? limbBits)
        var paddedExponent = [mp_limb_t](repeating: 0, count: n)
        var r = [mp_limb_t](repeating: 0, count: n)
        var scratch = [mp_limb_t](repeating: 0, count: Int(__gmpn_sec_powm_itch(mp_size_t(baseLimbs), exponentBits, mp_size_t(n))))
        defer {
            paddedExponent.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            r.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            scratch.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            if BigNumScratchTracking.enabled.load(ordering: .relaxed) {
                BigNumScratchTracking.record(zeroed: scratch.allSatisfy { $0 == 0 } && paddedExponent.allSatisfy { $0 == 0 })
            }
        }
        for i in 0..<exponentLimbs { paddedExponent[i] = exponent.value._mp_d[i] }
        __gmpn_sec_powm(&r, base.value._mp_d, mp_size_t(baseLimbs), paddedExponent, exponentBits,
                        modulus.value._mp_d, mp_size_t(n), &scratch)
        let result = BigNum()
        let destination = __gmpz_limbs_write(&result.value, mp_size_t(n))!
        for i in 0..<n { destination[i] = r[i] }
        __gmpz_limbs_finish(&result.value, mp_size_t(n))
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

/// Test hook: whether the constant-time exponentiation's scratch area and padded exponent
/// were zeroed before release. Off unless a test turns it on.
@_spi(Testing)
public enum BigNumScratchTracking {
    static let enabled = Atomic<Bool>(false)
    private static let zeroedCount = Atomic<Int>(0)
    private static let dirtyCount = Atomic<Int>(0)

    public static func start() {
        zeroedCount.store(0, ordering: .relaxed)
        dirtyCount.store(0, ordering: .relaxed)
        enabled.store(true, ordering: .relaxed)
    }

    public static func stop() { enabled.store(false, ordering: .relaxed) }

    static func record(zeroed: Bool) {
        if zeroed { zeroedCount.add(1, ordering: .relaxed) } else { dirtyCount.add(1, ordering: .relaxed) }
    }

    /// Exponentiations whose scratch was zeroed, and those whose scratch was not (must stay 0).
    public static var counts: (zeroed: Int, notZeroed: Int) {
        (zeroedCount.load(ordering: .relaxed), dirtyCount.load(ordering: .relaxed))
    }
}
