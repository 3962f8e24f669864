// Where a piece of RPC-language source came from, and the one error type the parser and
// generator throw. Positions survive the C preprocessor because the lexer follows its
// `# line "file"` markers, so errors point at the file a person actually edits.

/// A position in an interface definition (`.x`) file; lines and columns count from 1.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// A problem in an interface definition, reported as `file:line:column: error: message`
/// (the form compilers use, so editors and Xcode jump to it).
public struct XDRGenError: Error, Sendable, Equatable, CustomStringConvertible {
    public var location: SourceLocation?
    public var message: String

    public init(_ message: String, at location: SourceLocation?) {
        self.message = message
        self.location = location
    }

    public var description: String {
        if let location {
            return "\(location): error: \(message)"
        }
        return "error: \(message)"
    }
}
