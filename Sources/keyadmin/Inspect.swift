// keyadmin list, show, verify and audit: the commands that only read. They open the
// database read-only, so any user who may read it can run them, and they never write it.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory
#if canImport(Glibc)
import Glibc
#endif

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List principals and their keys.")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "Only netnames or names matching this shell pattern (e.g. 'unix.10*').") var pattern: String?
    @Flag(help: "JSON instead of a table (public information only).") var json = false

    func run() throws {
        let entries = try database.storeForReading().allEntries().filter { principal, _ in
            guard let pattern else { return true }
            return fnmatch(pattern, principal.netname, 0) == 0 || fnmatch(pattern, principal.name, 0) == 0
        }
        if json {
            struct Line: Encodable { var netname: String; var kind: String; var uid: UInt32?; var keys: [String: String] }
            let lines = entries.map { p, keys in
                Line(netname: p.netname, kind: p.kind.rawValue, uid: p.uid,
                     keys: Dictionary(uniqueKeysWithValues: keys.map { ($0.mechanism.rawValue, $0.state.rawValue) }))
            }
            print(try jsonText(lines))
            return
        }
        print("NETNAME".padding(toLength: 36, withPad: " ", startingAt: 0) + "KIND  KEYS")
        for (p, keys) in entries {
            let described = keys.map { $0.state == .active ? $0.mechanism.rawValue : "\($0.mechanism.rawValue) (revoked)" }
            print(p.netname.padding(toLength: 36, withPad: " ", startingAt: 0) + p.kind.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)
                  + described.joined(separator: ", "))
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one principal and its public keys.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var who: PrincipalArgument
    @Flag(help: "JSON instead of text (public information only).") var json = false

    func run() throws {
        let netname = try who.netname()
        let directory = try database.storeForReading()
        guard let p = try directory.principal(netname) else { throw DirectoryError.noSuchPrincipal(netname) }
        let keys = try directory.keys(of: netname)
        if json {
            struct Key: Encodable { var mechanism: String; var state: String; var publicKey: String; var created: Date; var changed: Date? }
            struct Shown: Encodable { var netname: String; var kind: String; var name: String; var uid: UInt32?; var created: Date; var keys: [Key] }
            print(try jsonText(Shown(netname: p.netname, kind: p.kind.rawValue, name: p.name, uid: p.uid, created: p.createdAt,
                                     keys: keys.map { Key(mechanism: $0.mechanism.rawValue, state: $0.state.rawValue, publicKey: $0.publicKey,
                                                          created: $0.createdAt, changed: $0.rotatedAt) })))
            return
        }
        let date = ISO8601DateFormatter()
        print("netname:  \(p.netname)\nkind:     \(p.kind.rawValue)\nname:     \(p.name)" + (p.uid.map { "\nuid:      \($0)" } ?? "")
              + "\ncreated:  \(date.string(from: p.createdAt))")
        for key in keys {
            print("\n\(key.mechanism.rawValue) (\(key.state.rawValue))\n  public:  \(key.publicKey)\n  created: \(date.string(from: key.createdAt))"
                  + (key.rotatedAt.map { "\n  changed: \(date.string(from: $0))" } ?? ""))
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the file and every entry.",
        discussion: """
        SQLite's integrity_check (pages, b-trees, indexes) and foreign_key_check; every public \
        key valid for its group and every sealed secret well-formed; and, from the password \
        tags, strong keys of one principal sealed under different passwords (keylogin could \
        not open them together). Without passwords it cannot tell whether a user knows theirs, \
        nor compare keys sealed before tags existed (reported as notes).
        """
    )
    @OptionGroup var database: DatabaseOptions

    func run() throws {
        try database.requireFile("verify")
        let directory = try database.openForReading()
        var problems = 0, warnings = 0, untagged = 0, keys = 0, principals = 0
        for problem in directory.integrityProblems() {
            problems += 1
            print("\(database.shownDB): \(problem)")
        }
        do {
            let entries = try directory.allEntries()
            principals = entries.count
            for (principal, entryKeys) in entries {
                for key in entryKeys {
                    keys += 1
                    for problem in key.verify() {
                        problems += 1
                        print("\(principal.netname) \(key.mechanism.rawValue): \(problem)")
                    }
                }
                for finding in PasswordFinding.check(entryKeys) {
                    switch finding {
                    case .strongKeysDiffer: problems += 1
                    case .legacySharesPassword: warnings += 1
                    case .untagged: untagged += 1
                    }
                    print("\(principal.netname): \(finding)")
                }
            }
        } catch {
            problems += 1
            print("\(database.shownDB): the entries cannot be read: \(ErrorText.describe(error))")
        }
        print("\(principals) principals, \(keys) keys, \(problems) problems"
              + (warnings > 0 ? ", \(warnings) warnings" : "")
              + (untagged > 0 ? ", \(untagged) principals whose passwords cannot be compared" : ""))
        if problems > 0 { throw ExitCode(1) }
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the most recent changes, oldest first.")
    @OptionGroup var database: DatabaseOptions
    @Option(help: "How many entries.") var limit = 20
    @Flag(help: "JSON instead of text.") var json = false

    func run() throws {
        let events = try database.storeForReading().audit(limit: limit).reversed()
        if json {
            print(try jsonText(Array(events)))
            return
        }
        let date = ISO8601DateFormatter()
        for event in events {
            var who = event.actor
            if let sudo = event.sudoUser { who += " via sudo by \(sudo)" }
            if let login = event.loginUID { who += ", login \(Actor.describe(uid: login))" }
            print("\(date.string(from: event.at))  \(who)  \(event.action)  \(event.netname ?? "")  \(event.mechanism ?? "")  \(event.detail ?? "")")
        }
    }
}

/// Pretty, sorted, ISO 8601 dates: the one JSON style of keyadmin's output.
func jsonText<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
