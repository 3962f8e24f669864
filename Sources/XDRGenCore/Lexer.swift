// Splits RPC-language text (RFC 5531 §12, RFC 4506 §6) into tokens with source locations.
// Input is untrusted text: every malformed character becomes an XDRGenError with its
// position. `%` lines (rpcgen's C pass-through) are collected, not interpreted; `#` line
// markers left by the C preprocessor move the reported position back to the original
// file; any other `#` directive means the file needed the preprocessor and did not get it.

/// One token of the RPC language.
public struct Token: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case identifier(String)
        /// An integer literal (decimal, 0x hex or 0 octal) with its spelling.
        case number(Int64, spelling: String)
        /// A double-quoted string (rpcgen allows string constants, e.g. key_prot.x's HEXMODULUS).
        case string(String)
        case punctuation(Character)
        case endOfInput
    }

    public var kind: Kind
    public var location: SourceLocation

    /// How the token reads in an error message.
    var quoted: String {
        switch kind {
        case let .identifier(name): return "'\(name)'"
        case let .number(_, spelling): return "'\(spelling)'"
        case let .punctuation(c): return "'\(c)'"
        case let .string(text): return "\"\(text)\""
        case .endOfInput: return "end of file"
        }
    }
}

/// A `%` pass-through line, kept so tools can report what was ignored.
public struct PassThroughLine: Sendable, Equatable {
    public var text: String
    public var location: SourceLocation
}

/// Tokenizes a whole file up front; files are small and the parser wants lookahead.
struct Lexer {
    private let bytes: [UInt8]
    private var index = 0
    private var file: String
    private var line = 1
    private var column = 1
    private(set) var passThrough: [PassThroughLine] = []

    init(text: String, file: String) {
        self.bytes = Array(text.utf8)
        self.file = file
    }

    private var location: SourceLocation { SourceLocation(file: file, line: line, column: column) }

    private func peek(_ offset: Int = 0) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    private mutating func advance() {
        if bytes[index] == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else {
            column += 1
        }
        index += 1
    }

    /// The rest of the current line (without the newline), consumed.
    private mutating func restOfLine() -> String {
        let start = index
        while let c = peek(), c != UInt8(ascii: "\n") { advance() }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    mutating func tokenize() throws(XDRGenError) -> [Token] {
        var tokens: [Token] = []
        var atLineStart = true
        while let c = peek() {
            if c == UInt8(ascii: "\n") {
                advance()
                atLineStart = true
                continue
            }
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") || c == 0x0C {
                advance()
                continue
            }
            if atLineStart && c == UInt8(ascii: "%") && column == 1 {
                let here = location
                advance()
                passThrough.append(PassThroughLine(text: restOfLine(), location: here))
                continue
            }
            if atLineStart && c == UInt8(ascii: "#") {
                try directive()
                continue
            }
            atLineStart = false
            if c == UInt8(ascii: "/") && peek(1) == UInt8(ascii: "*") {
                try skipBlockComment()
                continue
            }
            if c == UInt8(ascii: "/") && peek(1) == UInt8(ascii: "/") {
                _ = restOfLine()
                continue
            }
            let here = location
            if isIdentifierStart(c) {
                let start = index
                while let d = peek(), isIdentifierStart(d) || isDigit(d) { advance() }
                tokens.append(Token(kind: .identifier(String(decoding: bytes[start..<index], as: UTF8.self)), location: here))
                continue
            }
            if isDigit(c) {
                tokens.append(try number(at: here))
                continue
            }
            if c == UInt8(ascii: "\"") {
                advance()
                let start = index
                while let d = peek(), d != UInt8(ascii: "\""), d != UInt8(ascii: "\n") {
                    if d == UInt8(ascii: "\\"), peek(1) != nil, peek(1) != UInt8(ascii: "\n") { advance() }
                    advance()
                }
                guard peek() == UInt8(ascii: "\"") else {
                    throw XDRGenError("unterminated string (expected '\"' before the end of the line)", at: here)
                }
                let text = String(decoding: bytes[start..<index], as: UTF8.self)
                advance()
                tokens.append(Token(kind: .string(text), location: here))
                continue
            }
            if "{}()[]<>;,=:*-".utf8.contains(c) {
                advance()
                tokens.append(Token(kind: .punctuation(Character(Unicode.Scalar(c))), location: here))
                continue
            }
            let shown = c >= 0x20 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x\(String(c, radix: 16))"
            throw XDRGenError("unexpected character \(shown)", at: here)
        }
        tokens.append(Token(kind: .endOfInput, location: location))
        return tokens
    }

    private func isIdentifierStart(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || c == UInt8(ascii: "_")
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    private mutating func skipBlockComment() throws(XDRGenError) {
        let start = location
        advance(); advance()
        while let c = peek() {
            if c == UInt8(ascii: "*") && peek(1) == UInt8(ascii: "/") {
                advance(); advance()
                return
            }
            advance()
        }
        throw XDRGenError("unterminated comment (expected '*/' before end of file)", at: start)
    }

    private mutating func number(at here: SourceLocation) throws(XDRGenError) -> Token {
        let start = index
        while let d = peek(), isDigit(d) || isIdentifierStart(d) { advance() }
        let spelling = String(decoding: bytes[start..<index], as: UTF8.self)
        var digits = Substring(spelling)
        var radix = 10
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            digits = digits.dropFirst(2)
            radix = 16
        } else if digits.count > 1 && digits.hasPrefix("0") {
            digits = digits.dropFirst()
            radix = 8
        }
        // Constants up to 2^64-1 are allowed (unsigned hyper); they keep their bit pattern.
        guard !digits.isEmpty, let value = UInt64(digits, radix: radix) else {
            throw XDRGenError("malformed number '\(spelling)'", at: here)
        }
        return Token(kind: .number(Int64(bitPattern: value), spelling: spelling), location: here)
    }

    /// A `#` line: a preprocessor line marker (`# 12 "file.x" 2` or `#line 12 "file.x"`)
    /// moves the position; any other directive was meant for cpp.
    private mutating func directive() throws(XDRGenError) {
        let here = location
        advance()
        let text = restOfLine().trimmingSpaces()
        var rest = Substring(text)
        if rest.hasPrefix("line") { rest = rest.dropFirst(4) }
        rest = rest.drop(while: { $0 == " " || $0 == "\t" })
        let numberPart = rest.prefix(while: { $0.isASCII && $0.isNumber })
        if let newLine = Int(numberPart) {
            rest = rest.dropFirst(numberPart.count).drop(while: { $0 == " " || $0 == "\t" })
            if rest.hasPrefix("\""), let end = rest.dropFirst().firstIndex(of: "\"") {
                file = String(rest[rest.index(after: rest.startIndex)..<end])
            }
            // The marker names the number of the line that follows it.
            line = newLine - 1
            return
        }
        if text.isEmpty || rest.hasPrefix("pragma") || rest.hasPrefix("ident") { return }
        let word = rest.prefix(while: { $0.isLetter })
        throw XDRGenError("preprocessor directive '#\(word)' needs the C preprocessor (run xdrgen with --cpp)", at: here)
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return String(s)
    }
}
