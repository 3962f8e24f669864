// The one type for secret material: DH secret exponents, shared secrets, DES and AEAD keys,
// passwords. Trusts nothing about its users: it wipes itself when freed, never prints its
// contents, and compares in constant time.

#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Secret bytes that wipe themselves and never appear in logs or descriptions.
///
/// ```swift
/// let key = SecretBytes.random(count: 32)
/// key.withUnsafeBytes { bytes in /* use */ }
/// print(key)   // "SecretBytes(32 bytes, redacted)"
/// ```
public final class SecretBytes: @unchecked Sendable {
    // Immutable after init except for the wipe in deinit, so sharing across threads is safe.
    private let storage: UnsafeMutableRawBufferPointer

    /// The number of bytes.
    public let count: Int

    /// `count` zero bytes.
    public init(count: Int) {
        precondition(count >= 0)
        self.count = count
        // Never a zero-byte allocation, so the pointer is always valid.
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        if SecretBytesTracking.enabled.load(ordering: .relaxed) { SecretBytesTracking.allocated(count) }
    }

    /// A copy of `bytes`. Wipe the source yourself if it was secret.
    public convenience init<Bytes: Collection>(copying bytes: Bytes) where Bytes.Element == UInt8 {
        self.init(count: bytes.count)
        var index = 0
        for byte in bytes {
            storage[index] = byte
            index += 1
        }
    }

    /// Fills a new secret by writing into its bytes.
    public convenience init(count: Int, initializer: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        self.init(count: count)
        try initializer(UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// `count` bytes from the system CSPRNG.
    public static func random(count: Int) -> SecretBytes {
        SecretBytes(count: count) { RandomBytes.fill($0) }
    }

    deinit {
        Self.wipe(storage)
        if SecretBytesTracking.enabled.load(ordering: .relaxed) { SecretBytesTracking.released(count, wiped: storage) }
        storage.deallocate()
    }

    /// Reads the bytes. Do not let the pointer escape.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// A copy as an array, for APIs that need one (wipe it with `SecretBytes.wipe` after use).
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// Constant-time equality: the time depends on the length only.
    public static func constantTimeEqual(_ a: SecretBytes, _ b: SecretBytes) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in constantTimeEqual(x, y) } }
    }

    /// Constant-time comparison of two byte regions of public length.
    public static func constantTimeEqual(_ x: UnsafeRawBufferPointer, _ y: UnsafeRawBufferPointer) -> Bool {
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    /// Constant-time comparison of two byte arrays of public length.
    public static func constantTimeEqual(_ x: [UInt8], _ y: [UInt8]) -> Bool {
        x.withUnsafeBytes { a in y.withUnsafeBytes { b in constantTimeEqual(a, b) } }
    }

    /// Overwrites memory with zeros in a way the optimiser may not remove.
    public static func wipe(_ bytes: UnsafeMutableRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        #if canImport(Glibc)
        explicit_bzero(base, bytes.count)
        #else
        memset_s(base, bytes.count, 0, bytes.count)
        #endif
    }

    /// Wipes an array in place (for temporary copies of secrets).
    public static func wipe(_ array: inout [UInt8]) {
        array.withUnsafeMutableBytes { wipe($0) }
    }

    /// Zeroes the storage `array` lies in, wherever else it is referenced from: for a secret
    /// decoded from a message (a KEY_SET argument) that the caller holds as a `let` and will
    /// not read again. `var copy = array; wipe(&copy)` would not do: the write makes a
    /// copy-on-write copy and zeroes that, leaving the original intact.
    public static func wipeStorage(of array: [UInt8]) {
        array.withUnsafeBytes { wipe(UnsafeMutableRawBufferPointer(mutating: $0)) }
    }
}

extension SecretBytes: Equatable {
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool { constantTimeEqual(lhs, rhs) }
}

extension SecretBytes: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "SecretBytes(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["count": count]) }
}

/// Test hook: counts live SecretBytes by size, so a test can show that no secret of a given
/// kind (an ephemeral exponent, a Diffie-Hellman value) outlives the code that made it, and
/// that what is released has been zeroed. Off unless a test turns it on.
@_spi(Testing)
public enum SecretBytesTracking {
    static let enabled = Atomic<Bool>(false)
    private static let live = Mutex<[Int: Int]>([:])
    private static let notZeroed = Atomic<Int>(0)

    public static func start() {
        live.withLock { $0 = [:] }
        notZeroed.store(0, ordering: .relaxed)
        enabled.store(true, ordering: .relaxed)
    }

    public static func stop() { enabled.store(false, ordering: .relaxed) }

    /// Secrets of `count` bytes made since `start()` and not yet released.
    public static func live(count: Int) -> Int { live.withLock { $0[count, default: 0] } }

    /// Secrets released without having been zeroed first (must stay 0).
    public static var releasedNotZeroed: Int { notZeroed.load(ordering: .relaxed) }

    static func allocated(_ count: Int) { live.withLock { $0[count, default: 0] += 1 } }

    static func released(_ count: Int, wiped storage: UnsafeMutableRawBufferPointer) {
        if storage.contains(where: { $0 != 0 }) { notZeroed.add(1, ordering: .relaxed) }
        live.withLock { $0[count, default: 0] -= 1 }
    }
}
