// Recursive-descent parser for the RPC language (RFC 5531 §12, which extends the XDR
// language of RFC 4506 §6), plus the rpcgen spellings found in real `.x` files: `unsigned`
// alone, `char`/`short`/`long`, `struct foo` as a type reference, `string` as a procedure
// argument, several procedure arguments, and enum members without a value. Every error
// says what was expected and where; nothing is generated from a file that fails to parse.

/// Parses one preprocessed `.x` text.
public struct Parser {
    private var tokens: [Token]
    private var position = 0
    private var passThrough: [PassThroughLine]
    /// Anonymous inline `struct {…}`/`enum {…}`/`union …` types, given names and hoisted to
    /// the top level ahead of the definition that used them.
    private var hoisted: [Definition] = []

    /// Tokenizes `text`; `file` names it in error messages.
    public init(text: String, file: String) throws(XDRGenError) {
        var lexer = Lexer(text: text, file: file)
        self.tokens = try lexer.tokenize()
        self.passThrough = lexer.passThrough
    }

    public static func parse(text: String, file: String) throws(XDRGenError) -> Specification {
        var parser = try Parser(text: text, file: file)
        return try parser.parseSpecification()
    }

    // MARK: token helpers

    private var current: Token { tokens[position] }

    private mutating func next() -> Token {
        let token = tokens[position]
        if position < tokens.count - 1 { position += 1 }
        return token
    }

    private func isPunctuation(_ c: Character) -> Bool {
        if case .punctuation(c) = current.kind { return true }
        return false
    }

    private func isKeyword(_ word: String) -> Bool {
        if case .identifier(word) = current.kind { return true }
        return false
    }

    private mutating func accept(_ c: Character) -> Bool {
        if isPunctuation(c) { _ = next(); return true }
        return false
    }

    private mutating func acceptKeyword(_ word: String) -> Bool {
        if isKeyword(word) { _ = next(); return true }
        return false
    }

    private func unexpected(_ expected: String) -> XDRGenError {
        XDRGenError("expected \(expected), found \(current.quoted)", at: current.location)
    }

    private mutating func expect(_ c: Character, _ context: String = "") throws(XDRGenError) {
        guard accept(c) else { throw unexpected("'\(c)'\(context.isEmpty ? "" : " " + context)") }
    }

    private mutating func expectKeyword(_ word: String) throws(XDRGenError) {
        guard acceptKeyword(word) else { throw unexpected("'\(word)'") }
    }

    private static let reserved: Set<String> = [
        "bool", "case", "const", "default", "double", "quadruple", "enum", "float", "hyper", "int",
        "opaque", "string", "struct", "switch", "typedef", "union", "unsigned", "void", "program", "version",
    ]

    private mutating func identifier(_ what: String) throws(XDRGenError) -> (String, SourceLocation) {
        if case let .identifier(name) = current.kind, !Self.reserved.contains(name) {
            let location = next().location
            return (name, location)
        }
        throw unexpected(what)
    }

    // MARK: grammar

    public mutating func parseSpecification() throws(XDRGenError) -> Specification {
        var definitions: [Definition] = []
        while current.kind != .endOfInput {
            let definition = try parseDefinition()
            definitions.append(contentsOf: hoisted)
            hoisted.removeAll()
            // `typedef struct foo foo;` is a C habit that means nothing in XDR.
            if case let .typedef(field) = definition, case let .plain(.named(target, _)) = field.declaration, target == field.name {
                continue
            }
            definitions.append(definition)
        }
        return Specification(definitions: definitions, passThrough: passThrough)
    }

    private mutating func parseDefinition() throws(XDRGenError) -> Definition {
        if acceptKeyword("const") {
            let (name, nameLocation) = try identifier("a constant name")
            try expect("=", "after the constant name")
            let value: Value
            if case let .string(text) = current.kind {
                value = .text(text, next().location)
            } else {
                value = try parseValue()
            }
            try expect(";", "after the constant definition")
            return .constant(name: name, value: value, location: nameLocation)
        }
        if acceptKeyword("typedef") {
            let field = try parseDeclaration(context: nil)
            try expect(";", "after the typedef")
            return .typedef(field)
        }
        if acceptKeyword("enum") {
            let (name, nameLocation) = try identifier("an enum name")
            let members = try parseEnumBody()
            try expect(";", "after the enum definition")
            return .enumeration(name: name, members: members, location: nameLocation)
        }
        if acceptKeyword("struct") {
            let (name, nameLocation) = try identifier("a struct name")
            let fields = try parseStructBody(context: name)
            try expect(";", "after the struct definition")
            return .structure(name: name, fields: fields, location: nameLocation)
        }
        if acceptKeyword("union") {
            let (name, nameLocation) = try identifier("a union name")
            let body = try parseUnionBody(context: name)
            try expect(";", "after the union definition")
            return .union(name: name, body: body, location: nameLocation)
        }
        if acceptKeyword("program") {
            return .program(try parseProgram())
        }
        throw unexpected("a definition ('const', 'typedef', 'enum', 'struct', 'union' or 'program')")
    }

    private mutating func parseValue() throws(XDRGenError) -> Value {
        let negative = accept("-")
        if case let .number(value, _) = current.kind {
            _ = next()
            return .literal(negative ? -value : value)
        }
        if !negative, case let .identifier(name) = current.kind, !Self.reserved.contains(name) {
            let location = next().location
            return .named(name, location)
        }
        throw unexpected("a number or constant name")
    }

    private mutating func parseEnumBody() throws(XDRGenError) -> [EnumMember] {
        try expect("{", "to open the enum body")
        var members: [EnumMember] = []
        repeat {
            let (name, location) = try identifier("an enum member name")
            let value: Value
            if accept("=") {
                value = try parseValue()
            } else if let previous = members.last {
                // rpcgen numbers an unvalued member one past the previous, as C does.
                guard case let .literal(n) = previous.value else {
                    throw XDRGenError("enum member '\(name)' needs an explicit value (the previous one is symbolic)", at: location)
                }
                value = .literal(n + 1)
            } else {
                value = .literal(0)
            }
            members.append(EnumMember(name: name, value: value, location: location))
        } while accept(",")
        try expect("}", "or ',' in the enum body")
        return members
    }

    private mutating func parseStructBody(context: String) throws(XDRGenError) -> [Field] {
        try expect("{", "to open the struct body")
        var fields: [Field] = []
        repeat {
            let field = try parseDeclaration(context: context)
            if case .void = field.declaration {
                throw XDRGenError("a struct member cannot be void", at: field.location)
            }
            fields.append(field)
            try expect(";", "after the struct member")
        } while !isPunctuation("}") && current.kind != .endOfInput
        try expect("}", "to close the struct body")
        return fields
    }

    private mutating func parseUnionBody(context: String) throws(XDRGenError) -> UnionBody {
        try expectKeyword("switch")
        try expect("(", "after 'switch'")
        let discriminant = try parseDeclaration(context: context)
        try expect(")", "after the discriminant")
        try expect("{", "to open the union body")
        var arms: [UnionArm] = []
        var defaultArm: UnionArm?
        while true {
            if acceptKeyword("case") {
                var values: [Value] = []
                var locations: [SourceLocation] = []
                repeat {
                    locations.append(current.location)
                    values.append(try parseValue())
                    try expect(":", "after the case value")
                } while acceptKeyword("case")
                let field = try parseArmDeclaration(context: context)
                arms.append(UnionArm(labelValues: values, labelLocations: locations, field: field))
            } else if isKeyword("default") {
                let location = next().location
                guard defaultArm == nil else { throw XDRGenError("a union has at most one default arm", at: location) }
                try expect(":", "after 'default'")
                defaultArm = UnionArm(labelValues: [], labelLocations: [], field: try parseArmDeclaration(context: context))
            } else {
                break
            }
        }
        guard !arms.isEmpty || defaultArm != nil else { throw unexpected("'case' or 'default' in the union body") }
        try expect("}", "to close the union body")
        return UnionBody(discriminant: discriminant, arms: arms, defaultArm: defaultArm)
    }

    private mutating func parseArmDeclaration(context: String) throws(XDRGenError) -> Field? {
        let field = try parseDeclaration(context: context)
        try expect(";", "after the union arm")
        if case .void = field.declaration { return nil }
        return field
    }

    /// `declaration` of RFC 4506 §6.3. `context` names the enclosing type, used to name
    /// inline anonymous types.
    private mutating func parseDeclaration(context: String?) throws(XDRGenError) -> Field {
        let location = current.location
        if acceptKeyword("void") {
            return Field(name: "", declaration: .void, location: location)
        }
        if acceptKeyword("opaque") {
            let (name, nameLocation) = try identifier("a name after 'opaque'")
            if accept("[") {
                let count = try parseValue()
                try expect("]", "after the opaque size")
                return Field(name: name, declaration: .fixedOpaque(count: count), location: nameLocation)
            }
            guard accept("<") else { throw unexpected("'[' or '<' after the opaque name") }
            let maximum = isPunctuation(">") ? nil : try parseValue()
            try expect(">", "after the opaque maximum")
            return Field(name: name, declaration: .variableOpaque(maximum: maximum), location: nameLocation)
        }
        if acceptKeyword("string") {
            let (name, nameLocation) = try identifier("a name after 'string'")
            guard accept("<") else { throw unexpected("'<' after the string name (strings are variable-length)") }
            let maximum = isPunctuation(">") ? nil : try parseValue()
            try expect(">", "after the string maximum")
            return Field(name: name, declaration: .string(maximum: maximum), location: nameLocation)
        }
        var inlineBody: ((String) -> Definition)?
        let type = try parseTypeSpecifier(inline: &inlineBody)
        if accept("*") {
            let (name, nameLocation) = try identifier("a name after '*'")
            let field = Field(name: name, declaration: .optional(type), location: nameLocation)
            return hoist(field, inlineBody, context: context)
        }
        let (name, nameLocation) = try identifier("a declaration name")
        let declaration: Declaration
        if accept("[") {
            let count = try parseValue()
            try expect("]", "after the array size")
            declaration = .fixedArray(type, count: count)
        } else if accept("<") {
            let maximum = isPunctuation(">") ? nil : try parseValue()
            try expect(">", "after the array maximum")
            declaration = .variableArray(type, maximum: maximum)
        } else {
            declaration = .plain(type)
        }
        return hoist(Field(name: name, declaration: declaration, location: nameLocation), inlineBody, context: context)
    }

    /// Gives an inline anonymous type the name `context_field` and rewrites the field to
    /// refer to it.
    private mutating func hoist(_ field: Field, _ inlineBody: ((String) -> Definition)?, context: String?) -> Field {
        guard let inlineBody else { return field }
        let name = context.map { "\($0)_\(field.name)" } ?? field.name
        hoisted.append(inlineBody(name))
        var field = field
        let named = TypeSpecifier.named(name, field.location)
        switch field.declaration {
        case .plain: field.declaration = .plain(named)
        case let .fixedArray(_, count): field.declaration = .fixedArray(named, count: count)
        case let .variableArray(_, maximum): field.declaration = .variableArray(named, maximum: maximum)
        case .optional: field.declaration = .optional(named)
        default: break
        }
        return field
    }

    private mutating func parseTypeSpecifier(inline: inout ((String) -> Definition)?) throws(XDRGenError) -> TypeSpecifier {
        let location = current.location
        if acceptKeyword("unsigned") {
            if acceptKeyword("int") { return .unsignedInt }
            if acceptKeyword("hyper") { return .unsignedHyper }
            if acceptKeyword("long") || acceptKeyword("short") || acceptKeyword("char") { return .cInteger(signed: false) }
            return .unsignedInt
        }
        if acceptKeyword("int") { return .int }
        if acceptKeyword("hyper") { return .hyper }
        if acceptKeyword("float") { return .float }
        if acceptKeyword("double") { return .double }
        if acceptKeyword("quadruple") { return .quadruple }
        if acceptKeyword("bool") { return .bool }
        if acceptKeyword("long") || acceptKeyword("short") || acceptKeyword("char") { return .cInteger(signed: true) }
        for keyword in ["struct", "union", "enum"] where acceptKeyword(keyword) {
            if case let .identifier(name) = current.kind, !Self.reserved.contains(name) {
                let nameLocation = next().location
                return .named(name, nameLocation)
            }
            // An inline anonymous type; its name is only known once the field name is read.
            switch keyword {
            case "struct":
                let fields = try parseStructBody(context: "anonymous")
                inline = { name in .structure(name: name, fields: fields, location: location) }
            case "union":
                let body = try parseUnionBody(context: "anonymous")
                inline = { name in .union(name: name, body: body, location: location) }
            default:
                let members = try parseEnumBody()
                inline = { name in .enumeration(name: name, members: members, location: location) }
            }
            return .named("", location)
        }
        if case let .identifier(name) = current.kind, !Self.reserved.contains(name) {
            _ = next()
            return .named(name, location)
        }
        throw unexpected("a type")
    }

    private mutating func parseProgram() throws(XDRGenError) -> Program {
        let (name, location) = try identifier("a program name")
        try expect("{", "to open the program body")
        var versions: [ProgramVersion] = []
        repeat {
            try expectKeyword("version")
            let (versionName, versionLocation) = try identifier("a version name")
            try expect("{", "to open the version body")
            var procedures: [Procedure] = []
            repeat {
                procedures.append(try parseProcedure())
            } while !isPunctuation("}") && current.kind != .endOfInput
            try expect("}", "to close the version body")
            try expect("=", "and the version number after the version body")
            let number = try parseValue()
            try expect(";", "after the version number")
            versions.append(ProgramVersion(name: versionName, number: number, procedures: procedures, location: versionLocation))
        } while isKeyword("version")
        try expect("}", "to close the program body")
        try expect("=", "and the program number after the program body")
        let number = try parseValue()
        try expect(";", "after the program number")
        return Program(name: name, number: number, versions: versions, location: location)
    }

    /// A procedure's result or argument: a type, `void`, or rpcgen's bare `string`.
    private mutating func parseProcedureType() throws(XDRGenError) -> Declaration {
        if acceptKeyword("void") { return .void }
        if acceptKeyword("string") { return .string(maximum: nil) }
        if acceptKeyword("opaque") { throw XDRGenError("a procedure argument or result cannot be bare 'opaque'; use a typedef", at: tokens[position - 1].location) }
        var inline: ((String) -> Definition)?
        let type = try parseTypeSpecifier(inline: &inline)
        if inline != nil { throw XDRGenError("a procedure argument or result cannot be an inline type; define it first", at: tokens[position - 1].location) }
        return .plain(type)
    }

    private mutating func parseProcedure() throws(XDRGenError) -> Procedure {
        let result = try parseProcedureType()
        let (name, location) = try identifier("a procedure name")
        try expect("(", "after the procedure name")
        var arguments: [Declaration] = []
        repeat {
            let argument = try parseProcedureType()
            if argument != .void { arguments.append(argument) }
        } while accept(",")
        try expect(")", "after the procedure arguments")
        try expect("=", "and the procedure number")
        let number = try parseValue()
        try expect(";", "after the procedure number")
        return Procedure(name: name, number: number, result: result, arguments: arguments, location: location)
    }
}
