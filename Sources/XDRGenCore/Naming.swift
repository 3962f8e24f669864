// Turns RPC-language names (`NFSPROC_GETATTR`, `nfs_fh`, `zo_type`) into Swift names
// (`getattr`, `NfsFh`, `zoType`) and keeps them legal: keywords are escaped, names that
// would shadow the standard library or our runtime get a trailing underscore, and
// duplicates inside one scope are made unique. The wire names stay in doc comments.

enum Naming {
    /// Words the Swift grammar reserves (escaped with backticks when used as names).
    static let keywords: Set<String> = [
        "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init",
        "inout", "internal", "let", "open", "operator", "private", "precedencegroup", "protocol", "public",
        "rethrows", "static", "struct", "subscript", "typealias", "var", "break", "case", "catch", "continue",
        "default", "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return",
        "throw", "switch", "where", "while", "Any", "as", "await", "false", "is", "nil", "self", "Self",
        "super", "throws", "true", "try", "Type", "Protocol", "consume", "copy", "discard", "borrowing",
        "consuming", "package", "async", "some", "any",
    ]

    /// Type names the generated code itself uses; a user type with one of these names
    /// would make the generated code refer to the wrong thing.
    static let reservedTypeNames: Set<String> = [
        "String", "Int", "Int8", "Int16", "Int32", "Int64", "UInt", "UInt8", "UInt16", "UInt32", "UInt64",
        "Bool", "Float", "Double", "Array", "Optional", "Void", "Error", "Never", "Sendable", "Hashable",
        "Equatable", "CaseIterable", "Character", "Result", "Set", "Dictionary", "Swift",
        "ByteBuffer", "TimeAmount", "XDR", "XDREncodable", "XDRDecodable", "XDRCodable", "XDREnum", "XDRVoid",
        "XDRError", "ONCRPC", "NIOCore", "RPCClient", "RPCRequest", "RPCProgram", "RPCTransport",
        "RPCClientError", "RPCClientAuthenticator", "RPCAuthorizationPolicy", "AllowAnyFlavor", "AuthNoneClient",
        "PreencodedResults", "Protocol", "Type", "Self", "Any",
    ]

    static func words(_ name: String) -> [String] {
        name.split(separator: "_").map(String.init).filter { !$0.isEmpty }
    }

    /// `nfs_fh` → `NfsFh`; `fileName` → `FileName`.
    static func upperCamel(_ name: String) -> String {
        let parts = words(name).map { word -> String in
            let normalized = isAllUppercase(word) ? word.lowercased() : word
            return normalized.prefix(1).uppercased() + normalized.dropFirst()
        }
        let joined = parts.joined()
        return joined.isEmpty ? "Unnamed" : joined
    }

    /// `RPCBPROC_GETADDR` → `rpcbprocGetaddr`; `zo_type` → `zoType`.
    static func lowerCamel(_ name: String) -> String {
        let upper = upperCamel(name)
        // Lower the leading run of capitals, as Swift does for acronyms (`URLSession` → `urlSession`).
        var chars = Array(upper)
        var i = 0
        while i < chars.count, chars[i].isUppercase {
            if i > 0, i + 1 < chars.count, chars[i + 1].isLowercase { break }
            chars[i] = Character(chars[i].lowercased())
            i += 1
        }
        return String(chars)
    }

    static func isAllUppercase(_ word: String) -> Bool {
        !word.contains(where: { $0.isLowercase })
    }

    /// A name as it may appear in Swift source: keywords in backticks.
    static func escaped(_ name: String) -> String {
        keywords.contains(name) ? "`\(name)`" : name
    }
}

/// Hands out names unique within one scope, remembering which wire name got which.
struct NameScope {
    private(set) var used: Set<String>

    init(reserved: Set<String> = []) {
        used = reserved
    }

    mutating func claim(_ candidate: String) -> String {
        var name = candidate
        while used.contains(name) { name += "_" }
        used.insert(name)
        return name
    }
}
