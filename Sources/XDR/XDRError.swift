// XDRError: every way an XDR decode can fail. Decoders throw these before they allocate,
// so a hostile length costs nothing; the RPC layer maps any of them to GARBAGE_ARGS.

/// A typed failure while decoding XDR (RFC 4506).
///
/// Every variable-length item is checked against both its declared maximum and the bytes
/// actually left in the buffer before any memory is reserved for it.
public enum XDRError: Error, Equatable, Sendable {
    /// Fewer bytes remain than the item needs.
    case truncated(needed: Int, available: Int)
    /// A length or element count is larger than the item's declared maximum.
    case lengthExceedsMaximum(length: UInt32, maximum: UInt32)
    /// A `bool` other than 0 or 1.
    case invalidBool(UInt32)
    /// An enum value that the type does not declare.
    case invalidEnumValue(type: String, value: Int32)
    /// A union discriminant with no arm and no default arm.
    case invalidDiscriminant(type: String, value: Int64)
    /// A string that is not valid UTF-8.
    case invalidString
    /// A structure nested or chained deeper than the decoder allows.
    case nestingTooDeep(limit: Int)
    /// Bytes were left over after a message that must be consumed exactly.
    case trailingBytes(count: Int)
}

extension XDRError: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .truncated(needed, available):
            return "XDR data truncated: needed \(needed) bytes, \(available) left"
        case let .lengthExceedsMaximum(length, maximum):
            return "XDR length \(length) exceeds the maximum \(maximum)"
        case let .invalidBool(value):
            return "XDR bool has value \(value) (must be 0 or 1)"
        case let .invalidEnumValue(type, value):
            return "XDR value \(value) is not a case of enum \(type)"
        case let .invalidDiscriminant(type, value):
            return "XDR union \(type) has no arm for discriminant \(value)"
        case .invalidString:
            return "XDR string is not valid UTF-8"
        case let .nestingTooDeep(limit):
            return "XDR data nests deeper than \(limit) levels"
        case let .trailingBytes(count):
            return "\(count) unexpected bytes after the XDR data"
        }
    }
}
