// How one declaration is represented in Swift and read and written on the wire: the
// Swift type, a decode expression and an encode statement, built on the bounded readers
// of the XDR module. Every variable-length item gets a maximum: the declared one, or for
// `<>` the configured cap (by default the RPC record maximum), never an unchecked length.
// Lists (`struct s { …; s *next; }`) are read iteratively, so hostile chains cannot
// exhaust the stack.

/// Swift representation and wire code for one declaration.
struct Codec {
    var swiftType: String
    /// Decode expression reading from the `inout ByteBuffer` named by the argument.
    var decode: (_ buffer: String) -> String
    /// Encode statement writing the value expression to the buffer.
    var encode: (_ value: String, _ buffer: String) -> String
    /// The fewest bytes a value takes on the wire (used to reject impossible counts).
    var minimumSize: Int
    /// Whether the Swift type is itself XDRCodable with this wire form (generated types and
    /// fixed-size primitives), so it can be handed to the runtime without a wrapper.
    var isCodable = false
}

extension SwiftGenerator {
    /// A fresh name for a closure's buffer parameter, so nested closures never shadow.
    func closureBuffer() -> String {
        closureCounter.value += 1
        return "b\(closureCounter.value)"
    }

    func bound(_ value: Value?, at location: SourceLocation) throws(XDRGenError) -> Int64 {
        guard let value else { return Int64(options.unboundedMaximum) }
        return try symbols.resolveSize(value, at: location)
    }

    func codec(for type: TypeSpecifier, at location: SourceLocation) throws(XDRGenError) -> Codec {
        func primitive(_ swift: String, _ reader: String, size: Int = 4) -> Codec {
            Codec(swiftType: swift, decode: { "try \($0).\(reader)()" }, encode: { "\($1).writeXDR(\($0))" }, minimumSize: size, isCodable: true)
        }
        switch type {
        case .int, .cInteger(signed: true): return primitive("Int32", "readXDRInt32")
        case .unsignedInt, .cInteger(signed: false): return primitive("UInt32", "readXDRUInt32")
        case .hyper: return primitive("Int64", "readXDRInt64", size: 8)
        case .unsignedHyper: return primitive("UInt64", "readXDRUInt64", size: 8)
        case .float: return primitive("Float", "readXDRFloat")
        case .double: return primitive("Double", "readXDRDouble", size: 8)
        case .bool: return primitive("Bool", "readXDRBool")
        case .quadruple:
            // Swift has no portable 128-bit float: keep the 16 bytes as they are.
            return Codec(
                swiftType: "[UInt8]",
                decode: { "try \($0).readXDRFixedOpaqueBytes(count: 16)" },
                encode: { "precondition(\($0).count == 16, \"a quadruple is 16 bytes\"); \($1).writeXDRFixedOpaque(\($0))" },
                minimumSize: 16
            )
        case let .named(name, location):
            if symbols.types[name] == nil, let builtin = SymbolTable.builtinTypes[name] {
                return try codec(for: builtin, at: location)
            }
            if symbols.types[name] == nil, symbols.externalTypes.contains(name) {
                let swiftName = Naming.upperCamel(name)
                return Codec(swiftType: swiftName, decode: { "try \(swiftName)(xdr: &\($0))" }, encode: { "\($0).encode(into: &\($1))" }, minimumSize: 0, isCodable: true)
            }
            guard let definition = symbols.types[name], let swiftName = symbols.swiftTypeNames[name] else {
                throw XDRGenError("unknown type '\(name)'", at: location)
            }
            switch definition {
            case let .typedef(field):
                var inner = try codec(for: field.declaration, at: field.location)
                inner.swiftType = swiftName
                return inner
            case .structure where symbols.listNodes.contains(name):
                // A list node by value is a non-empty list: the first item's fields, then the
                // rest of the chain.
                return Codec(
                    swiftType: "[\(swiftName)]",
                    decode: { "try \(swiftName).readXDRChain(from: &\($0))" },
                    encode: { "\(swiftName).writeXDRChain(\($0), into: &\($1))" },
                    minimumSize: 4
                )
            default:
                return Codec(
                    swiftType: swiftName,
                    decode: { "try \(swiftName)(xdr: &\($0))" },
                    encode: { "\($0).encode(into: &\($1))" },
                    minimumSize: minimumSize(ofType: name),
                    isCodable: true
                )
            }
        }
    }

    func codec(for declaration: Declaration, at location: SourceLocation) throws(XDRGenError) -> Codec {
        switch declaration {
        case let .plain(type):
            return try codec(for: type, at: location)
        case .void:
            return Codec(swiftType: "Void", decode: { _ in "()" }, encode: { _, _ in "" }, minimumSize: 0)
        case let .string(maximum):
            let max = try bound(maximum, at: location)
            return Codec(swiftType: "String", decode: { "try \($0).readXDRString(maxLength: \(max))" }, encode: { "\($1).writeXDR(\($0))" }, minimumSize: 4)
        case let .variableOpaque(maximum):
            let max = try bound(maximum, at: location)
            return Codec(swiftType: "[UInt8]", decode: { "try \($0).readXDROpaqueBytes(maxLength: \(max))" }, encode: { "\($1).writeXDROpaque(\($0))" }, minimumSize: 4)
        case let .fixedOpaque(count):
            let n = try symbols.resolveSize(count, at: location)
            return Codec(
                swiftType: "[UInt8]",
                decode: { "try \($0).readXDRFixedOpaqueBytes(count: \(n))" },
                encode: { "precondition(\($0).count == \(n), \"fixed-length opaque must be \(n) bytes\"); \($1).writeXDRFixedOpaque(\($0))" },
                minimumSize: min(Int(n) + xdrPad(Int(n)), Self.sizeHintLimit)
            )
        case let .fixedArray(type, count):
            let n = try symbols.resolveSize(count, at: location)
            let element = try codec(for: type, at: location)
            return Codec(
                swiftType: "[\(element.swiftType)]",
                decode: { buffer in
                    let b = closureBuffer()
                    return "try \(buffer).readXDRFixedArray(count: \(n), minimumElementSize: \(element.minimumSize)) { (\(b): inout ByteBuffer) throws(XDRError) -> \(element.swiftType) in \(element.decode(b)) }"
                },
                encode: { value, buffer in
                    let b = closureBuffer()
                    return "precondition(\(value).count == \(n), \"fixed-length array must have \(n) elements\"); \(buffer).writeXDRFixedArray(\(value)) { \(b), element in \(element.encode("element", b)) }"
                },
                minimumSize: clampedProduct(Int(n), element.minimumSize)
            )
        case let .variableArray(type, maximum):
            let max = try bound(maximum, at: location)
            let element = try codec(for: type, at: location)
            return Codec(
                swiftType: "[\(element.swiftType)]",
                decode: { buffer in
                    let b = closureBuffer()
                    return "try \(buffer).readXDRArray(maxCount: \(max), minimumElementSize: \(element.minimumSize)) { (\(b): inout ByteBuffer) throws(XDRError) -> \(element.swiftType) in \(element.decode(b)) }"
                },
                encode: { value, buffer in
                    let b = closureBuffer()
                    return "\(buffer).writeXDRArray(\(value)) { \(b), element in \(element.encode("element", b)) }"
                },
                minimumSize: 4
            )
        case let .optional(type):
            if let node = listNode(type) {
                let swiftName = symbols.swiftTypeNames[node]!
                let max = options.unboundedMaximum
                return Codec(
                    swiftType: "[\(swiftName)]",
                    decode: { buffer in
                        let b = closureBuffer()
                        return "try \(buffer).readXDRLinkedList(maxCount: \(max)) { (\(b): inout ByteBuffer) throws(XDRError) -> \(swiftName) in try \(swiftName)(xdrItem: &\(b)) }"
                    },
                    encode: { value, buffer in
                        let b = closureBuffer()
                        return "\(buffer).writeXDRLinkedList(\(value)) { \(b), item in item.encodeItem(into: &\(b)) }"
                    },
                    minimumSize: 4
                )
            }
            let inner = try codec(for: type, at: location)
            return Codec(
                swiftType: "\(inner.swiftType)?",
                decode: { buffer in
                    let b = closureBuffer()
                    return "try \(buffer).readXDROptional { (\(b): inout ByteBuffer) throws(XDRError) -> \(inner.swiftType) in \(inner.decode(b)) }"
                },
                encode: { value, buffer in
                    let b = closureBuffer()
                    return "\(buffer).writeXDROptional(\(value)) { \(b), present in \(inner.encode("present", b)) }"
                },
                minimumSize: 4
            )
        }
    }

    /// The list-node struct a pointer type refers to, looking through typedefs.
    func listNode(_ type: TypeSpecifier) -> String? {
        guard case let .named(name, _) = type else { return nil }
        if symbols.listNodes.contains(name) { return name }
        if case let .typedef(field)? = symbols.types[name], case let .plain(inner) = field.declaration {
            return listNode(inner)
        }
        return nil
    }

    /// The list-node struct a declaration stands for when it is a pointer to one (directly
    /// or through typedefs: `typedef node *list; list next;`).
    func listPointerTarget(_ declaration: Declaration) -> String? {
        if case let .optional(type) = symbols.underlying(declaration) { return listNode(type) }
        return nil
    }

    func xdrPad(_ n: Int) -> Int { (4 - (n & 3)) & 3 }

    /// Sizes are at most 2^32-1 each, but nested fixed arrays multiply them; the runtime
    /// multiplies count by minimum element size again, so keep the hint at 2^30 (far above
    /// any record) to rule out overflow there and here.
    static let sizeHintLimit = 1 << 30

    func clampedProduct(_ a: Int, _ b: Int) -> Int {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? Self.sizeHintLimit : min(product, Self.sizeHintLimit)
    }

    /// The fewest bytes a named type occupies; cycles (only possible through pointers,
    /// which take 4 bytes anyway) count as 4.
    func minimumSize(ofType name: String, visiting: Set<String> = []) -> Int {
        if visiting.contains(name) { return 4 }
        let visiting = visiting.union([name])
        guard let definition = symbols.types[name] else { return 4 }
        switch definition {
        case .enumeration: return 4
        case let .typedef(field): return minimumSize(of: field.declaration, visiting: visiting)
        case let .structure(_, fields, _):
            return fields.reduce(0) { min($0 + minimumSize(of: $1.declaration, visiting: visiting), Self.sizeHintLimit) }
        case let .union(_, body, _):
            let arms = (body.arms + (body.defaultArm.map { [$0] } ?? [])).map { arm in
                arm.field.map { minimumSize(of: $0.declaration, visiting: visiting) } ?? 0
            }
            return 4 + (arms.min() ?? 0)
        default: return 4
        }
    }

    func minimumSize(of declaration: Declaration, visiting: Set<String>) -> Int {
        switch declaration {
        case .void: return 0
        case let .plain(type):
            switch type {
            case .hyper, .unsignedHyper, .double: return 8
            case .quadruple: return 16
            case let .named(name, _): return minimumSize(ofType: name, visiting: visiting)
            default: return 4
            }
        case let .fixedOpaque(count):
            let n = Int((try? symbols.resolve(count)) ?? 0)
            return min(n + xdrPad(n), Self.sizeHintLimit)
        case let .fixedArray(type, count):
            let n = Int((try? symbols.resolve(count)) ?? 0)
            return clampedProduct(n, minimumSize(of: .plain(type), visiting: visiting))
        default: return 4
        }
    }
}
