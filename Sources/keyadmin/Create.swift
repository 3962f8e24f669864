// keyadmin init and newkey: the only command that creates a database, and the one that
// creates principals. newkey makes the legacy dh192-des key only when asked, and then never
// silently under the strong keys' password (docs/DIRECTORY.md, "The legacy key's password").

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the database, or check an existing one.",
        discussion: "An existing database is checked as verify checks the file (SQLite's integrity and foreign-key checks)."
    )
    @OptionGroup var database: DatabaseOptions

    func run() throws {
        try database.requireFile("init")
        let directory = try database.open(create: true)
        let problems = directory.integrityProblems()
        for problem in problems { print("\(database.shownDB): \(problem)") }
        guard problems.isEmpty else {
            throw Failure("\(database.shownDB) is damaged (\(problems.count) problems above): restore it from a backup or an export")
        }
        print("\(database.shownDB): ready, \(try directory.count()) principals")
    }
}

struct NewKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "newkey",
        abstract: "Create principals with new key pairs, sealed under a password.",
        discussion: """
        Example: keyadmin newkey --user alice --domain example.org. A dh192-des key (legacy \
        AUTH_DES) is made only with --mechanism dh192-des; beside strong keys it needs a \
        password of its own (--legacy-password-file, or asked on the terminal), or \
        --legacy-shares-password to accept that its weak sealing guards the strong keys too.
        """
    )
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var who: PrincipalOptions
    @Option(help: "Mechanisms to create keys for (repeat). dh192-des is the legacy AUTH_DES group.")
    var mechanism: [DHGroupName] = [.default]
    @OptionGroup var password: PasswordOptions
    @OptionGroup var legacy: LegacyPasswordOptions

    func run() throws {
        let principals = try who.principals()
        guard !principals.isEmpty else { throw Failure("name at least one --user or --host") }
        let mechanisms = mechanism.reduce(into: [DHGroupName]()) { if !$0.contains($1) { $0.append($1) } }
        let strong = mechanisms.filter { $0 != .dh192des }
        let directory = try database.store()
        for principal in principals where try directory.principal(principal.netname) != nil {
            throw Failure("\(principal.netname) already exists (use chkey to change its password or --rotate its keys)")
        }
        let what = principals.count == 1 ? principals[0].netname : "\(principals.count) principals"
        let secret = try password.newPassword(for: what)
        let legacySecret = try mechanisms.contains(.dh192des) && !strong.isEmpty
            ? legacyPassword(for: what, strongPassword: secret, strong: strong) : secret
        var progress = ProgressBar(total: principals.count, label: "newkey")
        for (index, var principal) in principals.enumerated() {
            let salt = PasswordTag.newSalt()
            principal.passwordSalt = salt
            let sealer = try PasswordSealer(password: secret, salt: salt)
            let legacySealer = legacySecret === secret ? sealer : try PasswordSealer(password: legacySecret, salt: salt)
            let keys = try mechanisms.map { group in
                try (group == .dh192des ? legacySealer : sealer).seal(DHPrivateKey.generate(group: group), netname: principal.netname)
            }
            try directory.add(principal, keys: keys, actor: Actor.current)
            progress.update(index + 1)
            if principals.count == 1 || !Terminal.isInteractive {
                print("\(principal.netname): \(mechanisms.map(\.rawValue).joined(separator: ", "))")
            }
        }
    }

    /// The dh192-des key's password beside strong keys: its own, or the strong one only when
    /// the administrator says so.
    private func legacyPassword(for what: String, strongPassword: SecretBytes, strong: [DHGroupName]) throws -> SecretBytes {
        if legacy.legacySharesPassword {
            warn(LegacyPasswordOptions.warning)
            return strongPassword
        }
        let own: SecretBytes
        if let file = legacy.legacyPasswordFile {
            own = try PasswordOptions.readFile(file)
        } else if !password.isScripted {
            own = try PasswordOptions.askTwice(for: "the dh192-des key of \(what) (a different one)",
                                               scriptOption: "--legacy-password-file FILE")
        } else {
            throw Failure("""
                a dh192-des key beside \(strong.map(\.rawValue).joined(separator: ", ")) needs a password of its own: \
                --legacy-password-file FILE, or --legacy-shares-password to accept that its weak sealing guards the strong keys too
                """)
        }
        try password.refuseEmpty(own, what: "the dh192-des key's password")
        guard !(own == strongPassword) else {
            throw Failure("the dh192-des key's password is the strong keys' password; choose another (or --legacy-shares-password); nothing was changed")
        }
        return own
    }
}
