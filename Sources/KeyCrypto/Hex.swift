// Hexadecimal text for keys: strict parsing (only 0-9a-fA-F, exact length) because the
// classic xcrypt code's lenient decoder let garbage through.

enum Hex {
    static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String, expectedLength: Int? = nil) throws(KeyCryptoError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        if let expectedLength, utf8.count != expectedLength {
            throw .invalidHex(expectedLength: expectedLength, reason: "got \(utf8.count) digits")
        }
        guard utf8.count % 2 == 0 else { throw .invalidHex(expectedLength: expectedLength, reason: "odd number of digits") }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let high = value(utf8[i]), let low = value(utf8[i + 1]) else {
                throw .invalidHex(expectedLength: expectedLength, reason: "not a hex digit at position \(i)")
            }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
