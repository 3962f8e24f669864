// keyadmin: the administrator's tool for the key directory, in the spirit of newkey and
// chkey: create, re-password, rotate, list, revoke and remove keys, import and export the
// classic /etc/publickey format and JSON, verify every entry.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory

@main
struct KeyAdmin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyadmin",
        abstract: "Manage the Secure RPC key directory.",
        discussion: """
        The database defaults to \(SQLiteKeyDirectory.defaultPath) (or $SECURERPC_DB); every \
        command takes --db PATH. Changes are recorded in an append-only audit trail.
        """,
        subcommands: [Init.self, NewKey.self, ChKey.self, List.self, Show.self, Revoke.self, Remove.self,
                      Import.self, Export.self, Verify.self, Audit.self]
    )

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let failure as Failure {
            FileHandle.standardError.write(Data("keyadmin: \(failure)\n".utf8))
            Foundation.exit(1)
        } catch let error as DirectoryError {
            FileHandle.standardError.write(Data("keyadmin: \(error)\n".utf8))
            Foundation.exit(1)
        } catch let error as KeyCryptoError {
            FileHandle.standardError.write(Data("keyadmin: \(error)\n".utf8))
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create the database (or check an existing one).")
    @OptionGroup var database: DatabaseOptions
    func run() throws {
        let directory = try database.open()
        print("\(database.db): ready, \(try directory.count()) principals")
    }
}

struct NewKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "newkey",
        abstract: "Create principals with new key pairs, sealed under a password.",
        discussion: "Example: keyadmin newkey --user alice --mechanism ffdhe3072 --mechanism dh192-des --domain example.org"
    )
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var who: PrincipalOptions
    @Option(help: "Mechanisms to create keys for (repeat). dh192-des is the legacy AUTH_DES group.")
    var mechanism: [DHGroupName] = [.default]
    @OptionGroup var password: PasswordOptions

    func run() throws {
        let principals = try who.principals()
        guard !principals.isEmpty else { throw ValidationError("name at least one --user or --host") }
        let directory = try database.open()
        for principal in principals where try directory.principal(principal.netname) != nil {
            throw Failure("\(principal.netname) already exists (use chkey to change its password or --rotate its keys)")
        }
        let secret = try password.newPassword(for: principals.count == 1 ? principals[0].netname : "\(principals.count) principals")
        var progress = ProgressBar(total: principals.count, label: "newkey")
        for (index, principal) in principals.enumerated() {
            let keys = try mechanism.map { try KeyEntry.sealing(DHPrivateKey.generate(group: $0), netname: principal.netname, password: secret) }
            try directory.add(principal, keys: keys, actor: Actor.current)
            progress.update(index + 1)
            if principals.count == 1 || !Terminal.isInteractive {
                print("\(principal.netname): \(mechanism.map(\.rawValue).joined(separator: ", "))")
            }
        }
    }
}

struct ChKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chkey",
        abstract: "Change a principal's password, rotate its key pairs, or add a mechanism.",
        discussion: """
        Without --rotate, each key is opened with the old password and sealed again under the new \
        one (same key pair). With --rotate, new key pairs replace the old ones. A --mechanism the \
        principal has no key for is added.
        """
    )
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The principal's netname.") var netname: String
    @Flag(help: "Generate new key pairs.") var rotate = false
    @Option(help: "Mechanisms to change or add (default: all the principal has).") var mechanism: [DHGroupName] = []
    @Option(help: ArgumentHelp("Read the old password from a file.", valueName: "file")) var oldPasswordFile: String?
    @OptionGroup var password: PasswordOptions

    func run() throws {
        let directory = try database.open()
        let existing = try directory.keys(of: netname)
        guard try directory.principal(netname) != nil else { throw DirectoryError.noSuchPrincipal(netname) }
        let targets = mechanism.isEmpty ? existing.map(\.mechanism) : mechanism
        let toOpen = rotate ? [] : existing.filter { targets.contains($0.mechanism) }
        var opened: [DHPrivateKey] = []
        if !toOpen.isEmpty {
            let old = try oldPasswordFile.map(PasswordOptions.readFile) ?? Terminal.readSecret(prompt: "Current password for \(netname): ")
            for key in toOpen {
                do {
                    opened.append(try key.open(password: old))
                } catch KeyCryptoError.wrongPassword {
                    throw Failure("wrong password for \(netname) (\(key.mechanism.rawValue)); nothing was changed")
                }
            }
        }
        let new = try password.newPassword(for: netname)
        for group in targets {
            let had = existing.contains { $0.mechanism == group }
            let key = opened.first { $0.group == group } ?? DHPrivateKey.generate(group: group)
            var entry = try KeyEntry.sealing(key, netname: netname, password: new)
            entry.rotatedAt = Date()
            let action = !had ? "addkey" : (rotate ? "rotate" : "chkey")
            try directory.put(entry, replacing: had, actor: Actor.current, action: action)
            print("\(netname) \(group.rawValue): \(action == "chkey" ? "new password" : action == "rotate" ? "new key pair" : "key added")")
        }
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List principals and their keys.")
    @OptionGroup var database: DatabaseOptions
    @Flag(help: "JSON instead of a table (public information only).") var json = false

    func run() throws {
        let entries = try database.open().allEntries()
        if json {
            struct Line: Encodable { var netname: String; var kind: String; var uid: UInt32?; var keys: [String: String] }
            let lines = entries.map { p, keys in
                Line(netname: p.netname, kind: p.kind.rawValue, uid: p.uid,
                     keys: Dictionary(uniqueKeysWithValues: keys.map { ($0.mechanism.rawValue, $0.state.rawValue) }))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(lines), as: UTF8.self))
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
    @Argument(help: "The principal's netname.") var netname: String

    func run() throws {
        let directory = try database.open()
        guard let p = try directory.principal(netname) else { throw DirectoryError.noSuchPrincipal(netname) }
        print("netname:  \(p.netname)\nkind:     \(p.kind.rawValue)\nname:     \(p.name)" + (p.uid.map { "\nuid:      \($0)" } ?? "")
              + "\ncreated:  \(ISO8601DateFormatter().string(from: p.createdAt))")
        for key in try directory.keys(of: netname) {
            print("\n\(key.mechanism.rawValue) (\(key.state.rawValue))\n  public:  \(key.publicKey)\n  created: \(ISO8601DateFormatter().string(from: key.createdAt))"
                  + (key.rotatedAt.map { "\n  changed: \(ISO8601DateFormatter().string(from: $0))" } ?? ""))
        }
    }
}

struct Revoke: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke a principal's keys (all, or one mechanism).")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The principal's netname.") var netname: String
    @Option(help: "Only this mechanism.") var mechanism: DHGroupName?
    func run() throws {
        try database.open().revoke(netname: netname, mechanism: mechanism, actor: Actor.current)
        print("\(netname): \(mechanism.map { "\($0.rawValue) key" } ?? "all keys") revoked")
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove a principal and all its keys.")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The principal's netname.") var netname: String
    func run() throws {
        try database.open().remove(netname: netname, actor: Actor.current)
        print("\(netname): removed")
    }
}

enum FileFormat: String, ExpressibleByArgument, CaseIterable {
    case publickey, json
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a publickey file or a JSON export, all or nothing.",
        discussion: "The whole file is checked first; a bad line is reported with its number and nothing is written."
    )
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The file to import (- for standard input).") var file: String
    @Option(help: "publickey or json (default: json for *.json files, else publickey).") var format: FileFormat?

    func run() throws {
        let data: Data
        if file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let contents = FileManager.default.contents(atPath: file) else { throw Failure("cannot read \(file)") }
            data = contents
        }
        let chosen = format ?? (file.hasSuffix(".json") ? .json : .publickey)
        let entries: [(Principal, [KeyEntry])]
        do {
            switch chosen {
            case .publickey: entries = try PublicKeyFile.parse(String(decoding: data, as: UTF8.self))
            case .json: entries = try DirectoryDocument.parse(data)
            }
        } catch {
            throw Failure("\(file): \(error); nothing was imported")
        }
        var progress = ProgressBar(total: entries.count, label: "import")
        let count = try database.open().importEntries(entries, actor: Actor.current, source: file) { progress.update($0) }
        print("imported \(count) principals from \(file)")
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export as a publickey file (dh192-des keys) or JSON (everything).")
    @OptionGroup var database: DatabaseOptions
    @Option(help: "publickey or json.") var format: FileFormat = .publickey
    @Option(name: .shortAndLong, help: "Write here instead of standard output.") var output: String?

    func run() throws {
        let entries = try database.open().allEntries()
        let data: Data
        switch format {
        case .publickey: data = Data(PublicKeyFile.render(entries).utf8)
        case .json: data = try DirectoryDocument.encoder().encode(DirectoryDocument(entries)) + Data("\n".utf8)
        }
        if let output {
            // Temp file + rename: a crash never leaves a half-written export.
            let temp = output + ".tmp-\(getpid())"
            guard FileManager.default.createFile(atPath: temp, contents: data, attributes: [.posixPermissions: 0o600]) else {
                throw Failure("cannot write \(output)")
            }
            guard rename(temp, output) == 0 else { throw Failure("cannot write \(output)") }
        } else {
            FileHandle.standardOutput.write(data)
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check every entry: public keys valid for their group, sealed secrets well-formed.")
    @OptionGroup var database: DatabaseOptions
    func run() throws {
        let entries = try database.open().allEntries()
        var problems = 0, keys = 0
        for (principal, entryKeys) in entries {
            for key in entryKeys {
                keys += 1
                for problem in key.verify() {
                    problems += 1
                    print("\(principal.netname) \(key.mechanism.rawValue): \(problem)")
                }
            }
        }
        print("\(entries.count) principals, \(keys) keys, \(problems) problems")
        if problems > 0 { throw ExitCode(1) }
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the most recent changes.")
    @OptionGroup var database: DatabaseOptions
    @Option(help: "How many entries.") var limit = 20
    func run() throws {
        for event in try database.open().audit(limit: limit).reversed() {
            print("\(ISO8601DateFormatter().string(from: event.at))  \(event.actor)  \(event.action)  \(event.netname ?? "")  \(event.mechanism ?? "")  \(event.detail ?? "")")
        }
    }
}
