// The parsed form of an interface definition: what the RPC language says, with the source
// location of every name so later checks can point at it. No Swift concerns live here.

/// A number or the name of a constant or enum member, as written.
public enum Value: Sendable, Equatable {
    case literal(Int64)
    case named(String, SourceLocation)
    /// A string constant (`const NAME = "text";`), usable only as a constant.
    case text(String, SourceLocation)
}

/// A type as written in a declaration, before typedefs are looked through.
public indirect enum TypeSpecifier: Sendable, Equatable {
    case int, unsignedInt, hyper, unsignedHyper, float, double, quadruple, bool
    /// rpcgen's C-flavoured integer spellings (`char`, `short`, `long` and unsigned forms),
    /// each one XDR word on the wire.
    case cInteger(signed: Bool)
    /// A type defined elsewhere (`foo`, `struct foo`, `enum foo`, `union foo`).
    case named(String, SourceLocation)
}

/// One declaration (RFC 4506 §6.3 `declaration`).
public enum Declaration: Sendable, Equatable {
    case plain(TypeSpecifier)
    case fixedArray(TypeSpecifier, count: Value)
    /// `T name<max>`; `max` nil for `<>`.
    case variableArray(TypeSpecifier, maximum: Value?)
    case fixedOpaque(count: Value)
    case variableOpaque(maximum: Value?)
    case string(maximum: Value?)
    case optional(TypeSpecifier)
    case void
}

/// A named declaration: a struct field, union arm, or typedef.
public struct Field: Sendable, Equatable {
    public var name: String
    public var declaration: Declaration
    public var location: SourceLocation
}

public struct EnumMember: Sendable, Equatable {
    public var name: String
    public var value: Value
    public var location: SourceLocation
}

public struct UnionArm: Sendable, Equatable {
    /// Case labels sharing this arm (`case A: case B: T x;`); empty for `default`.
    public var labels: [(Value, SourceLocation)] { zip(labelValues, labelLocations).map { ($0, $1) } }
    public var labelValues: [Value]
    public var labelLocations: [SourceLocation]
    /// nil when the arm is `void`.
    public var field: Field?
}

public struct UnionBody: Sendable, Equatable {
    public var discriminant: Field
    public var arms: [UnionArm]
    public var defaultArm: UnionArm?
}

public struct Procedure: Sendable, Equatable {
    public var name: String
    public var number: Value
    /// `.void` for a void result.
    public var result: Declaration
    /// Empty for `(void)`.
    public var arguments: [Declaration]
    public var location: SourceLocation
}

public struct ProgramVersion: Sendable, Equatable {
    public var name: String
    public var number: Value
    public var procedures: [Procedure]
    public var location: SourceLocation
}

public struct Program: Sendable, Equatable {
    public var name: String
    public var number: Value
    public var versions: [ProgramVersion]
    public var location: SourceLocation
}

/// One top-level definition.
public enum Definition: Sendable, Equatable {
    case constant(name: String, value: Value, location: SourceLocation)
    case typedef(Field)
    case enumeration(name: String, members: [EnumMember], location: SourceLocation)
    case structure(name: String, fields: [Field], location: SourceLocation)
    case union(name: String, body: UnionBody, location: SourceLocation)
    case program(Program)

    public var name: String {
        switch self {
        case let .constant(name, _, _), let .enumeration(name, _, _), let .structure(name, _, _), let .union(name, _, _):
            return name
        case let .typedef(field): return field.name
        case let .program(program): return program.name
        }
    }

    public var location: SourceLocation {
        switch self {
        case let .constant(_, _, location), let .enumeration(_, _, location), let .structure(_, _, location), let .union(_, _, location):
            return location
        case let .typedef(field): return field.location
        case let .program(program): return program.location
        }
    }
}

/// A whole parsed file.
public struct Specification: Sendable, Equatable {
    public var definitions: [Definition]
    /// `%` lines, which rpcgen copies into C output and we ignore.
    public var passThrough: [PassThroughLine]
}
