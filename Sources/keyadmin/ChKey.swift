// keyadmin chkey: a new password, new key pairs, or another mechanism for one principal,
// without ever leaving its keys under passwords keylogin cannot open together. keylogin opens
// every strong key with one password, so chkey treats a principal's strong keys as one
// group: it proves the current password on the keys it keeps (all of them must open) and
// seals whatever it adds or rotates under that password, or re-seals the whole group under
// a new one, in one transaction. The legacy dh192-des key is its own group with its own
// password (unless --legacy-shares-password), changed with --mechanism dh192-des.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory

struct ChKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chkey",
        abstract: "Change a principal's password, rotate its key pairs, or add a mechanism.",
        discussion: """
        chkey NETNAME: a new password for every strong key (same key pairs). \
        --rotate: new key pairs (for --mechanism, or every strong key). \
        --mechanism M that the principal lacks: M is added under the current password. \
        Whenever keys are kept, the current password must open all of them \
        (--old-password-file, or asked); add --change-password to re-seal everything under a \
        new one. --mechanism dh192-des works on the legacy key alone, which has its own \
        password. All or nothing: a wrong password changes nothing.
        """
    )
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var who: PrincipalArgument
    @Flag(help: "Generate new key pairs.") var rotate = false
    @Option(help: "Mechanisms to change, rotate or add (default: every strong key the principal has).") var mechanism: [DHGroupName] = []
    @Option(help: ArgumentHelp("Read the current password from the first line of a file.", valueName: "file")) var oldPasswordFile: String?
    @Flag(help: "When adding or rotating, also re-seal every kept key under a new password.") var changePassword = false
    @OptionGroup var password: PasswordOptions
    @OptionGroup var legacy: LegacyPasswordOptions

    func run() throws {
        let directory = try database.store()
        let netname = try who.netname()
        guard let principal = try directory.principal(netname) else { throw DirectoryError.noSuchPrincipal(netname) }
        let existing = try directory.keys(of: netname)
        let requested = mechanism.reduce(into: [DHGroupName]()) { if !$0.contains($1) { $0.append($1) } }
        let legacyOnly = requested == [.dh192des] || (requested.isEmpty && !existing.isEmpty && existing.allSatisfy(\.isLegacy))
        let salt = principal.passwordSalt ?? PasswordTag.newSalt()
        var plan = Plan(netname: netname, salt: salt)
        if legacyOnly {
            try changeLegacy(netname: netname, existing: existing, plan: &plan)
        } else {
            if requested.contains(.dh192des) {
                throw Failure("""
                    \(netname): the dh192-des key has a password of its own: change it on its own \
                    (keyadmin chkey \(netname) --mechanism dh192-des); nothing was changed
                    """)
            }
            try changeStrong(netname: netname, existing: existing, requested: requested, plan: &plan)
        }
        try directory.apply(plan.changes, to: netname, passwordSalt: salt, actor: Actor.current)
        for line in plan.report { print(line) }
        for note in plan.notes { warn(note) }
    }

    /// What one run writes (in one transaction) and says.
    struct Plan {
        let netname: String
        let salt: Data
        var changes: [KeyChange] = []
        var report: [String] = []
        var notes: [String] = []

        mutating func add(_ entry: KeyEntry, _ kind: KeyChange.Kind, _ action: String?) {
            var entry = entry
            if kind != .retag { entry.rotatedAt = Date() }
            changes.append(KeyChange(entry, kind, action: action))
            switch action {
            case "chkey": report.append("\(netname) \(entry.mechanism.rawValue): new password")
            case "rotate": report.append("\(netname) \(entry.mechanism.rawValue): new key pair")
            case "addkey": report.append("\(netname) \(entry.mechanism.rawValue): key added")
            default: break
            }
        }
    }

    // MARK: the strong keys

    private func changeStrong(netname: String, existing: [KeyEntry], requested: [DHGroupName], plan: inout Plan) throws {
        let strong = existing.filter { !$0.isLegacy }
        let have = Set(strong.map(\.mechanism))
        let targets = requested.isEmpty ? strong.map(\.mechanism) : requested
        let added = targets.filter { !have.contains($0) }
        let rotated = rotate ? Set(targets.filter { have.contains($0) }) : []
        let kept = strong.filter { !rotated.contains($0.mechanism) }
        let passwordChange = !rotate && added.isEmpty
        let wantsNew = passwordChange || kept.isEmpty || changePassword || password.isScripted
        let legacyKey = existing.first(where: \.isLegacy)
        if targets.isEmpty { throw Failure("\(netname) has no strong key to change: name one with --mechanism") }

        // Prove the current password on every kept key: one that does not open would be
        // left under a password keylogin is not given.
        var current: SecretBytes?
        var opened: [DHGroupName: DHPrivateKey] = [:]
        if !kept.isEmpty {
            let given = try currentPassword(netname: netname, whose: passwordChange ? "" : ", kept for the new keys")
            var refused: [DHGroupName] = []
            for key in kept {
                do {
                    opened[key.mechanism] = try key.open(password: given)
                } catch KeyCryptoError.wrongPassword {
                    refused.append(key.mechanism)
                }
            }
            if refused.count == kept.count {
                throw Failure("wrong password for \(netname); nothing was changed")
            }
            if !refused.isEmpty {
                let odd = refused.map(\.rawValue).joined(separator: ", ")
                throw Failure("""
                    \(netname): that password opens \(opened.keys.map(\.rawValue).sorted().joined(separator: ", ")) but not \(odd): \
                    its keys are sealed under different passwords (keyadmin verify shows it); nothing was changed. \
                    To re-make \(odd) under this password: keyadmin chkey \(netname) --rotate --mechanism \(refused[0].rawValue)
                    """)
            }
            current = given
        }
        let final = try wantsNew ? password.newPassword(for: netname) : current!
        let sealer = try PasswordSealer(password: final, salt: plan.salt)

        for key in kept {
            if wantsNew {
                plan.add(try sealer.seal(opened[key.mechanism]!, netname: netname), .replace, "chkey")
            } else if key.passwordTag != sealer.tag.bytes || key.passwordTag == nil {
                // Proven just now: record the tag so verify can compare it from now on.
                var retagged = key
                retagged.passwordTag = sealer.tag.bytes
                plan.add(retagged, .retag, nil)
            }
        }
        for group in targets where rotated.contains(group) {
            plan.add(try sealer.seal(DHPrivateKey.generate(group: group), netname: netname), .replace, "rotate")
        }
        for group in added {
            plan.add(try sealer.seal(DHPrivateKey.generate(group: group), netname: netname), .add, "addkey")
        }
        if let legacyKey { try followLegacy(legacyKey, netname: netname, current: current, final: final, sealer: sealer, plan: &plan) }
    }

    /// The legacy key beside a strong change: it follows the strong password only when told
    /// (--legacy-shares-password); otherwise it keeps its password, which must then not be
    /// the strong keys' new one.
    private func followLegacy(_ legacyKey: KeyEntry, netname: String, current: SecretBytes?, final: SecretBytes,
                              sealer: PasswordSealer, plan: inout Plan) throws {
        let rotateLegacy = rotate && mechanism.isEmpty
        if legacy.legacySharesPassword {
            let key: DHPrivateKey
            if rotateLegacy {
                key = DHPrivateKey.generate(group: .dh192des)
            } else {
                guard let current, let open = try? legacyKey.open(password: current) else {
                    throw Failure("""
                        \(netname): the dh192-des key does not open with the current password, so it cannot follow it \
                        (keyadmin chkey \(netname) --mechanism dh192-des --legacy-shares-password); nothing was changed
                        """)
                }
                key = open
            }
            warn(LegacyPasswordOptions.warning)
            plan.add(try sealer.seal(key, netname: netname), .replace, rotateLegacy ? "rotate" : "chkey")
            return
        }
        let sharesFinal = (try? legacyKey.open(password: final)) != nil
        if let current, !(current == final), (try? legacyKey.open(password: current)) != nil {
            plan.notes.append("""
                the dh192-des key of \(netname) keeps the old password, now its own (keylogin asks for it separately; \
                keyadmin chkey \(netname) --mechanism dh192-des changes it)
                """)
        } else if sharesFinal && !(current.map { $0 == final } ?? false) {
            throw Failure("""
                the new password of \(netname) is its dh192-des key's password: choose another \
                (or --legacy-shares-password); nothing was changed
                """)
        } else if sharesFinal {
            plan.notes.append(LegacyPasswordOptions.warning.replacingOccurrences(of: "warning: ", with: "warning: \(netname): "))
        }
        if rotateLegacy {
            plan.notes.append("the dh192-des key of \(netname) was not rotated: keyadmin chkey \(netname) --rotate --mechanism dh192-des")
        }
    }

    // MARK: the legacy key

    private func changeLegacy(netname: String, existing: [KeyEntry], plan: inout Plan) throws {
        let strong = existing.filter { !$0.isLegacy }
        let present = existing.first(where: \.isLegacy)
        var key: DHPrivateKey
        if let present, !rotate {
            let current = try currentPassword(netname: netname, whose: " (its dh192-des key's)")
            do {
                key = try present.open(password: current)
            } catch KeyCryptoError.wrongPassword {
                throw Failure("wrong password for the dh192-des key of \(netname); nothing was changed")
            }
        } else {
            key = DHPrivateKey.generate(group: .dh192des)
        }
        let newPassword: SecretBytes
        if strong.isEmpty {
            newPassword = try password.newPassword(for: netname)
        } else if legacy.legacySharesPassword {
            newPassword = try currentPassword(netname: netname, whose: " (its strong keys', which the dh192-des key is to share)")
            for strongKey in strong {
                guard (try? strongKey.open(password: newPassword)) != nil else {
                    throw Failure("that is not the password of the strong keys of \(netname) (\(strongKey.mechanism.rawValue)); nothing was changed")
                }
            }
            warn(LegacyPasswordOptions.warning)
        } else {
            if let file = legacy.legacyPasswordFile {
                newPassword = try PasswordOptions.readFile(file)
                try password.refuseEmpty(newPassword, what: "the dh192-des key's password")
            } else {
                newPassword = try password.newPassword(for: "the dh192-des key of \(netname)")
            }
            if try shares(newPassword, with: strong, salt: plan.salt) {
                throw Failure("""
                    that is the password of the strong keys of \(netname): the dh192-des key needs its own \
                    (or --legacy-shares-password); nothing was changed
                    """)
            }
        }
        let sealer = try PasswordSealer(password: newPassword, salt: plan.salt)
        let action = present == nil ? "addkey" : (rotate ? "rotate" : "chkey")
        plan.add(try sealer.seal(key, netname: netname), present == nil ? .add : .replace, action)
    }

    /// Whether `candidate` is the strong keys' password: by their tags when they have them
    /// (one scrypt run), else by opening one.
    private func shares(_ candidate: SecretBytes, with strong: [KeyEntry], salt: Data) throws -> Bool {
        if let tagged = strong.lazy.compactMap({ $0.passwordTag.flatMap(PasswordTag.init(bytes:)) }).first {
            return try tagged.matches(password: candidate, salt: salt)
        }
        guard let first = strong.first else { return false }
        return (try? first.open(password: candidate)) != nil
    }

    /// The current password: --old-password-file, else asked on the terminal.
    private func currentPassword(netname: String, whose: String) throws -> SecretBytes {
        if let oldPasswordFile { return try PasswordOptions.readFile(oldPasswordFile) }
        return try Terminal.readSecret(prompt: "Current password for \(netname)\(whose): ",
                                       what: "the current password of \(netname)\(whose)", scriptOption: "--old-password-file FILE")
    }
}
