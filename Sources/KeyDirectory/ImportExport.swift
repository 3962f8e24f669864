// Import and export: the classic `/etc/publickey` format (dh192-des entries only) and a JSON
// document with every principal and key. Import files are untrusted text: the whole file is
// parsed and checked first, with the line number of the first bad line, so a bad file
// changes nothing; only then is it written, in one transaction. Line endings may be LF or
// CRLF (files edited on other systems); error texts name the line and the field, in words.

import Foundation
import KeyCrypto

/// The classic publickey file.
public enum PublicKeyFile {
    /// Parses a whole file. Blank lines and `#` comments are skipped; `+` lines (NIS
    /// includes) are refused, since they name no key. Each netname may appear once.
    public static func parse(_ text: String, now: Date = Date()) throws(DirectoryError) -> [(Principal, [KeyEntry])] {
        var result: [(Principal, [KeyEntry])] = []
        var seen: Set<String> = []
        var lineNumber = 0
        // Split on LF as a scalar: Swift's "\r\n" is one Character, so splitting Characters
        // on "\n" would take a CRLF file for one long line.
        for scalars in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = String(String.UnicodeScalarView(scalars))
            if line.hasSuffix("\r") { line.removeLast() }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if trimmed.hasPrefix("+") { throw .badImportLine(line: lineNumber, "NIS include lines (+) are not supported") }
            let entry: PublicKeyEntry
            do {
                entry = try PublicKeyEntry(line: trimmed)
            } catch {
                throw .badImportLine(line: lineNumber, "\(error)")
            }
            do {
                try Netname.validate(entry.netname)
            } catch {
                throw .badImportLine(line: lineNumber, "\(error)")
            }
            guard seen.insert(entry.netname).inserted else {
                throw .badImportLine(line: lineNumber, "\(entry.netname) appears twice")
            }
            let (kind, name, uid) = Netname.classify(entry.netname)
            let principal = Principal(netname: entry.netname, kind: kind, name: name, uid: uid, createdAt: now)
            let key = KeyEntry(netname: entry.netname, mechanism: .dh192des, publicKey: entry.publicKey.hex,
                               sealedSecret: Array(entry.encryptedSecret.utf8), createdAt: now)
            result.append((principal, [key]))
        }
        return result
    }

    /// Renders the active dh192-des keys, one line per principal, ordered by netname.
    public static func render(_ entries: [(Principal, [KeyEntry])]) -> String {
        var out = ""
        for (principal, keys) in entries.sorted(by: { $0.0.netname < $1.0.netname }) {
            guard let key = keys.first(where: { $0.mechanism == .dh192des && $0.state == .active }) else { continue }
            out += "\(principal.netname) \(key.publicKey):\(String(decoding: key.sealedSecret, as: UTF8.self))\n"
        }
        return out
    }
}

/// The JSON export: every principal, every key (sealed), versioned.
public struct DirectoryDocument: Codable, Sendable {
    public struct Item: Codable, Sendable {
        public var principal: Principal
        public var keys: [Key]
    }

    /// A key with its sealed secret as base64 (Data encodes so in JSON).
    public struct Key: Codable, Sendable {
        public var mechanism: DHGroupName
        public var publicKey: String
        public var sealedSecret: Data
        public var state: KeyState
        public var createdAt: Date
        public var rotatedAt: Date?
        /// The password tag (see `PasswordTag`), meaningful with the principal's salt.
        public var passwordTag: Data?
    }

    public var format = "securerpc-directory"
    public var version = 1
    public var principals: [Item]

    public init(_ entries: [(Principal, [KeyEntry])]) {
        principals = entries.sorted { $0.0.netname < $1.0.netname }.map { principal, keys in
            Item(principal: principal, keys: keys.map {
                Key(mechanism: $0.mechanism, publicKey: $0.publicKey, sealedSecret: Data($0.sealedSecret),
                    state: $0.state, createdAt: $0.createdAt, rotatedAt: $0.rotatedAt, passwordTag: $0.passwordTag.map { Data($0) })
            })
        }
    }

    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// Parses and checks a JSON export; errors name the item.
    public static func parse(_ data: Data) throws(DirectoryError) -> [(Principal, [KeyEntry])] {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let document: DirectoryDocument
        do {
            document = try decoder.decode(DirectoryDocument.self, from: data)
        } catch let error as DecodingError {
            throw .badImportFile("not a directory JSON export: \(Self.describe(error))")
        } catch {
            throw .badImportFile("not a directory JSON export")
        }
        guard document.format == "securerpc-directory", document.version == 1 else {
            throw .badImportFile("unsupported export format \(document.format) version \(document.version)")
        }
        var result: [(Principal, [KeyEntry])] = []
        var seen: Set<String> = []
        for (index, item) in document.principals.enumerated() {
            do {
                try Netname.validate(item.principal.netname)
            } catch {
                throw .badImportLine(line: index + 1, "\(error)")
            }
            guard seen.insert(item.principal.netname).inserted else {
                throw .badImportLine(line: index + 1, "\(item.principal.netname) appears twice")
            }
            guard Set(item.keys.map(\.mechanism)).count == item.keys.count else {
                throw .badImportLine(line: index + 1, "\(item.principal.netname) has two keys for one mechanism")
            }
            let keys = item.keys.map {
                KeyEntry(netname: item.principal.netname, mechanism: $0.mechanism, publicKey: $0.publicKey,
                         sealedSecret: Array($0.sealedSecret), state: $0.state, createdAt: $0.createdAt, rotatedAt: $0.rotatedAt,
                         passwordTag: $0.passwordTag.flatMap { PasswordTag(bytes: Array($0))?.bytes })
            }
            for key in keys {
                let problems = key.verify()
                if !problems.isEmpty {
                    throw .badImportLine(line: index + 1, "\(item.principal.netname) \(key.mechanism.rawValue): \(problems.joined(separator: "; "))")
                }
            }
            result.append((item.principal, keys))
        }
        return result
    }

    /// A decoding failure in words: where in the document, and what was expected. Swift's
    /// own description names types and coding keys, which mean nothing to an administrator.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            var out = ""
            for key in context.codingPath {
                if let index = key.intValue { out += "[\(index)]" } else { out += (out.isEmpty ? "" : ".") + key.stringValue }
            }
            return out.isEmpty ? "the top level" : out
        }
        func what(_ type: Any.Type) -> String {
            switch type {
            case is String.Type: return "a string"
            case is Int.Type, is UInt32.Type, is Int64.Type, is Double.Type: return "a number"
            case is Date.Type: return "an ISO 8601 date"
            case is Data.Type: return "base64 data"
            case is Bool.Type: return "true or false"
            case is [Any].Type: return "a list"
            default: return "a value of another kind"
            }
        }
        switch error {
        case let .keyNotFound(key, context):
            return "\"\(key.stringValue)\" is missing at \(path(context))"
        case let .valueNotFound(type, context):
            return "\(what(type)) is missing (null) at \(path(context))"
        case let .typeMismatch(type, context):
            return "\(path(context)) should be \(what(type))"
        case let .dataCorrupted(context):
            if context.codingPath.isEmpty { return "not valid JSON" }
            let expected: String
            switch context.codingPath.last?.stringValue {
            case "mechanism": expected = "one of " + DHGroupName.allCases.map(\.rawValue).joined(separator: ", ")
            case "state": expected = "active or revoked"
            case "kind": expected = "user or host"
            case "createdAt", "rotatedAt": expected = "an ISO 8601 date"
            case "sealedSecret", "passwordTag", "passwordSalt": expected = "base64 data"
            default: expected = "another value"
            }
            return "\(path(context)) should be \(expected)"
        @unknown default:
            return "unreadable"
        }
    }
}
