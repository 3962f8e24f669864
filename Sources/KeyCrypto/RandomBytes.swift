// Random bytes from the system CSPRNG, eight per request. `UInt8.random(in:)` asks the kernel
// (getrandom) once per byte — 0.32 µs each here — and an RPCSEC_GSS context set-up made about
// 130 such requests for its nonces, handle and exponents; drawing whole UInt64 words from the
// same generator makes it about 19 (strace -c over rpcbench gss).

/// Bytes from `SystemRandomNumberGenerator` (the kernel's getrandom), eight per request.
public enum RandomBytes {
    /// Fills `bytes` with random bytes.
    public static func fill(_ bytes: UnsafeMutableRawBufferPointer) {
        var generator = SystemRandomNumberGenerator()
        var offset = 0
        while offset < bytes.count {
            var word = generator.next()
            let take = min(8, bytes.count - offset)
            withUnsafeBytes(of: &word) { bytes.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: take) }
            // The word may have been a secret exponent's bytes: leave none on the stack.
            withUnsafeMutableBytes(of: &word) { SecretBytes.wipe($0) }
            offset += take
        }
    }

    /// `count` random bytes, for nonces and handles (secrets go into ``SecretBytes/random(count:)``).
    public static func array(count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }
}
