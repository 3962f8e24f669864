// Checks a parsed specification and indexes it for the generator: every referenced type
// and constant must exist, names must be unique, sizes must be non-negative, and each wire
// name gets exactly one Swift name. Errors point at the offending use.

/// A checked specification with names resolved.
struct SymbolTable {
    /// Constants as written; resolved on use, so a constant may name one defined later
    /// (rpcb_prot.x uses procedure numbers before its program definition).
    var constants: [String: Value] = ["TRUE": .literal(1), "FALSE": .literal(0)]
    /// Enum member name → (enum name, value as written); members are also constants.
    var enumMembers: [String: (type: String, value: Value)] = [:]
    var types: [String: Definition] = [:]
    /// Wire type name → Swift type name.
    var swiftTypeNames: [String: String] = [:]
    /// Structs of the shape `struct s { …; s *next; }`, generated as list items.
    var listNodes: Set<String> = []
    var typeScope = NameScope(reserved: Naming.reservedTypeNames)
    /// Types used but defined elsewhere (like rpcgen, which calls `xdr_<name>` for any
    /// unknown name); the generated code expects an XDRCodable Swift type of the
    /// UpperCamelCase name.
    var externalTypes: Set<String> = []

    /// Names the C library behind rpcgen defines, so `.x` files use them without a
    /// definition: the C integer typedefs (one XDR word, or two for 64-bit ones) and
    /// `netobj` (opaque<MAX_NETOBJ_SZ>, MAX_NETOBJ_SZ = 1024 in <rpc/xdr.h>).
    static let builtinTypes: [String: Declaration] = {
        var table: [String: Declaration] = [:]
        for name in ["u_char", "u_short", "u_int", "u_long", "uint8_t", "uint16_t", "uint32_t", "u_int8_t", "u_int16_t", "u_int32_t", "rpcprog_t", "rpcvers_t", "rpcproc_t", "rpcport_t"] {
            table[name] = .plain(.unsignedInt)
        }
        for name in ["int8_t", "int16_t", "int32_t", "rpc_inline_t"] { table[name] = .plain(.int) }
        for name in ["uint64_t", "u_int64_t", "u_quad_t", "u_longlong_t"] { table[name] = .plain(.unsignedHyper) }
        for name in ["int64_t", "quad_t", "longlong_t"] { table[name] = .plain(.hyper) }
        table["netobj"] = .variableOpaque(maximum: .literal(1024))
        // xdr_des_block writes the 8-byte DES block as fixed opaque (key_prot.x).
        table["des_block"] = .fixedOpaque(count: .literal(8))
        // xdr_netbuf writes the buffer as opaque<> (rpcb_prot.x returns `struct netbuf`).
        table["netbuf"] = .variableOpaque(maximum: nil)
        return table
    }()

    /// Constants from the libtirpc headers that interface files use without defining.
    static let builtinConstants: [String: Value] = [
        "MAXNETNAMELEN": .literal(255),  // <rpc/auth.h>
        "MAX_NETOBJ_SZ": .literal(1024), // <rpc/xdr.h>
    ]

    /// String constants (`const NAME = "text";`).
    var stringConstants: [String: String] = [:]

    init(_ specification: Specification, externalTypes: Set<String> = []) throws(XDRGenError) {
        self.externalTypes = externalTypes
        var seen: [String: SourceLocation] = [:]
        for definition in specification.definitions {
            if case .program = definition { continue }
            let name = definition.name
            if let previous = seen[name] {
                throw XDRGenError("'\(name)' is already defined at \(previous)", at: definition.location)
            }
            seen[name] = definition.location
            switch definition {
            case let .constant(name, value, _):
                if case let .text(text, _) = value {
                    stringConstants[name] = text
                } else {
                    constants[name] = value
                }
            case let .enumeration(enumName, members, _):
                types[enumName] = definition
                for member in members {
                    if let previous = seen[member.name], member.name != enumName {
                        throw XDRGenError("'\(member.name)' is already defined at \(previous)", at: member.location)
                    }
                    seen[member.name] = member.location
                    enumMembers[member.name] = (enumName, member.value)
                }
            default:
                types[name] = definition
            }
        }
        for definition in specification.definitions {
            guard case .program = definition else {
                if types[definition.name] != nil {
                    swiftTypeNames[definition.name] = typeScope.claim(Naming.upperCamel(definition.name))
                }
                continue
            }
        }
        // Program, version and procedure names are constants too (rpcgen #defines them, and
        // files use them, e.g. rpcb_prot.x's `RPCBPROC_CALLIT`).
        for case let .program(program) in specification.definitions {
            constants[program.name] = constants[program.name] ?? program.number
            for version in program.versions {
                constants[version.name] = constants[version.name] ?? version.number
                for procedure in version.procedures {
                    constants[procedure.name] = constants[procedure.name] ?? procedure.number
                }
            }
        }
        // `%#define NAME 123` lines define constants for the C side that some files then
        // use in declarations (nlm_prot.x's LM_MAXSTRLEN); honour the plain numeric ones.
        for line in specification.passThrough {
            let words = line.text.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count == 3, words[0] == "#define", constants[String(words[1])] == nil, enumMembers[String(words[1])] == nil else { continue }
            // A number, a known name, or `NAME+1` / `NAME-1` (nlm_prot.x's MAXNAMELEN).
            let expression = String(words[2])
            let operands = expression.split(separator: "+", maxSplits: 1).map(String.init)
            func term(_ text: String) -> Int64? {
                if let number = Self.parseNumber(text) { return number }
                guard let first = text.first, first.isLetter || first == "_" else { return nil }
                return try? resolve(.named(text, line.location))
            }
            if operands.count == 2, let a = term(operands[0]), let b = term(operands[1]) {
                constants[String(words[1])] = .literal(a &+ b)
            } else if let value = term(expression) {
                constants[String(words[1])] = .literal(value)
            }
        }
        for (name, value) in Self.builtinConstants where constants[name] == nil && enumMembers[name] == nil {
            constants[name] = value
        }
        for (name, member) in enumMembers {
            let value = try resolve(member.value)
            guard value >= Int64(Int32.min), value <= Int64(Int32.max) else {
                throw XDRGenError("enum value \(value) of '\(name)' does not fit a 32-bit int", at: seen[name])
            }
        }
        for definition in specification.definitions {
            try check(definition)
            // A list node points to itself from its last member only; anything else that
            // refers back (a tree's `left` and `right`) is not a list.
            if case let .structure(name, fields, _) = definition, let last = fields.last,
               case let .optional(.named(target, _)) = underlying(last.declaration), target == name,
               !fields.dropLast().contains(where: { field in
                   switch underlying(field.declaration) {
                   case let .optional(.named(other, _)), let .plain(.named(other, _)): return other == name
                   default: return false
                   }
               }) {
                listNodes.insert(name)
            }
        }
        try checkNoInlineCycles()
    }

    static func parseNumber(_ text: String) -> Int64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16).map { Int64(bitPattern: $0) } }
        return Int64(text)
    }

    /// Rejects types that would contain themselves inline in Swift (through plain members
    /// or non-list optionals). Arrays and lists break the cycle, so only these edges count.
    func checkNoInlineCycles() throws(XDRGenError) {
        func inlineTargets(_ name: String) -> [(String, Field)] {
            var fields: [Field] = []
            switch types[name] {
            case let .structure(structName, members, _)?:
                fields = listNodes.contains(structName) ? Array(members.dropLast()) : members
            case let .union(_, body, _)?:
                fields = (body.arms + (body.defaultArm.map { [$0] } ?? [])).compactMap(\.field)
            case let .typedef(field)?:
                fields = [field]
            default: break
            }
            return fields.compactMap { field in
                switch underlying(field.declaration) {
                case let .plain(.named(target, _)): return (target, field)
                case let .optional(.named(target, _)):
                    return listNodes.contains(target) ? nil : (target, field)
                default: return nil
                }
            }
        }
        for start in types.keys.sorted() {
            // Reversed so members are explored in declaration order (the first offender is reported).
            var stack = Array(inlineTargets(start).reversed())
            var visited = Set<String>()
            while let (target, field) = stack.popLast() {
                if target == start {
                    throw XDRGenError(
                        "'\(start)' contains itself through '\(field.name)'; recursive types are supported as linked lists only (`struct \(start) { …; \(start) *next; }` with the pointer last)",
                        at: field.location)
                }
                if visited.insert(target).inserted { stack += inlineTargets(target).reversed() }
            }
        }
    }

    /// The value of a number or named constant.
    func resolve(_ value: Value, depth: Int = 0) throws(XDRGenError) -> Int64 {
        switch value {
        case let .literal(n): return n
        case let .named(name, location):
            guard depth < 64 else { throw XDRGenError("constant '\(name)' is defined in terms of itself", at: location) }
            if let constant = constants[name] { return try resolve(constant, depth: depth + 1) }
            if let member = enumMembers[name] { return try resolve(member.value, depth: depth + 1) }
            if stringConstants[name] != nil {
                throw XDRGenError("'\(name)' is a string constant; a number is needed here", at: location)
            }
            throw XDRGenError("unknown constant '\(name)'", at: location)
        case let .text(_, location):
            throw XDRGenError("a string is not a number", at: location)
        }
    }

    /// A size or bound: a non-negative value that fits 32 bits.
    func resolveSize(_ value: Value, at location: SourceLocation) throws(XDRGenError) -> Int64 {
        let n = try resolve(value)
        guard n >= 0, n <= Int64(UInt32.max) else {
            throw XDRGenError("size \(n) must be between 0 and 2^32-1", at: location)
        }
        return n
    }

    private func checkType(_ type: TypeSpecifier) throws(XDRGenError) {
        if case let .named(name, location) = type, types[name] == nil, Self.builtinTypes[name] == nil, !externalTypes.contains(name) {
            throw XDRGenError("unknown type '\(name)' (define it, or declare it external with --external \(name))", at: location)
        }
    }

    private func checkDeclaration(_ declaration: Declaration, at location: SourceLocation) throws(XDRGenError) {
        switch declaration {
        case let .plain(type), let .optional(type): try checkType(type)
        case let .fixedArray(type, count):
            try checkType(type)
            _ = try resolveSize(count, at: location)
        case let .variableArray(type, maximum):
            try checkType(type)
            if let maximum { _ = try resolveSize(maximum, at: location) }
        case let .fixedOpaque(count): _ = try resolveSize(count, at: location)
        case let .variableOpaque(maximum), let .string(maximum):
            if let maximum { _ = try resolveSize(maximum, at: location) }
        case .void: break
        }
    }

    private func check(_ definition: Definition) throws(XDRGenError) {
        switch definition {
        case .constant, .enumeration: break
        case let .typedef(field):
            if case .void = field.declaration { throw XDRGenError("a typedef cannot be void", at: field.location) }
            try checkDeclaration(field.declaration, at: field.location)
        case let .structure(_, fields, _):
            var names = Set<String>()
            for field in fields {
                guard names.insert(field.name).inserted else {
                    throw XDRGenError("duplicate member '\(field.name)'", at: field.location)
                }
                try checkDeclaration(field.declaration, at: field.location)
            }
        case let .union(_, body, _):
            try checkDeclaration(body.discriminant.declaration, at: body.discriminant.location)
            _ = try discriminantKind(body.discriminant)
            var labels: [Int64: SourceLocation] = [:]
            for arm in body.arms + (body.defaultArm.map { [$0] } ?? []) {
                if let field = arm.field { try checkDeclaration(field.declaration, at: field.location) }
                for (value, location) in arm.labels {
                    let n = try resolve(value)
                    if let previous = labels[n] {
                        throw XDRGenError("case value \(n) already has an arm at \(previous)", at: location)
                    }
                    labels[n] = location
                }
            }
        case let .program(program):
            _ = try resolve(program.number)
            var versionNumbers = Set<Int64>()
            for version in program.versions {
                guard versionNumbers.insert(try resolve(version.number)).inserted else {
                    throw XDRGenError("duplicate version number", at: version.location)
                }
                var procedureNumbers = Set<Int64>()
                for procedure in version.procedures {
                    guard procedureNumbers.insert(try resolve(procedure.number)).inserted else {
                        throw XDRGenError("duplicate procedure number", at: procedure.location)
                    }
                    try checkDeclaration(procedure.result, at: procedure.location)
                    for argument in procedure.arguments { try checkDeclaration(argument, at: procedure.location) }
                }
            }
        }
    }

    /// Looks through typedefs to the declaration a name finally stands for.
    func underlying(_ declaration: Declaration) -> Declaration {
        var current = declaration
        var hops = 0
        while case let .plain(.named(name, _)) = current, hops < 64 {
            if case let .typedef(field)? = types[name] {
                current = field.declaration
            } else if types[name] == nil, let builtin = Self.builtinTypes[name] {
                current = builtin
            } else {
                break
            }
            hops += 1
        }
        return current
    }

    enum DiscriminantKind: Equatable {
        case int(signed: Bool)
        case bool
        case enumeration(String)
    }

    /// What a union switches on: RFC 4506 allows int, unsigned int and enums (bool is an enum).
    func discriminantKind(_ field: Field) throws(XDRGenError) -> DiscriminantKind {
        switch underlying(field.declaration) {
        case .plain(.int), .plain(.cInteger(signed: true)): return .int(signed: true)
        case .plain(.unsignedInt), .plain(.cInteger(signed: false)): return .int(signed: false)
        case .plain(.bool): return .bool
        case let .plain(.named(name, _)):
            if case .enumeration? = types[name] { return .enumeration(name) }
        default: break
        }
        throw XDRGenError("a union discriminant must be int, unsigned int, bool or an enum", at: field.location)
    }
}
