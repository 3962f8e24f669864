// chkey: a user changes their own keys through the site directory (Sun's name). The current
// sealed keys come through this host's keyserver (as keylogin gets them), are opened with the
// old password (which proves it), new key pairs are made and sealed here under the new
// password, and keydird's KD_CHKEY_SELF stores them — accepted only when the proven caller is
// that principal. The keyserver then holds the new keys, so the user stays logged in.
// On the directory host itself, `keyadmin chkey` changes keys in the file.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory
import KeyDirectoryService
import KeyServer
import Release
import SecureRPC
import SiteConfig

@main
struct ChKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chkey",
        abstract: "Change your secret keys and their password through the site's key directory.",
        discussion: """
        Asks for your current password (it must open your keys), then the new one. By default \
        new key pairs replace your strong keys (ffdhe2048/3072/4096) and are sealed under the \
        new password; --password-only keeps the keys and seals them under the new password. \
        A legacy dh192-des key keeps its own password and is left as it is. Your keyserver \
        holds the new keys when chkey ends. With --password-stdin the passwords are the first \
        two lines of standard input.
        """,
        version: SecureRPCRelease.versionLine("chkey")
    )

    @Option(help: "Your netname (default: unix.UID@DOMAIN).") var netname: String?
    @Option(help: "The site configuration (default: $SECURERPC_CONF, else \(SiteConfiguration.defaultPath)).") var config: String?
    @Option(help: "This host's keyserver socket.") var socket = KeyServerPaths.socket
    @Flag(help: "Keep the keys; only seal them under the new password.") var passwordOnly = false
    @Flag(help: "Read the old and the new password from standard input, one per line.") var passwordStdin = false

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    func run() async throws {
        do {
            try await change()
        } catch {
            FileHandle.standardError.write(Data("chkey: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    private func change() async throws {
        let site = try SiteConfiguration.load(path: config)
        guard !site.directories.isEmpty else {
            throw Failure("securerpc.conf names no directory servers: on the directory host, use keyadmin chkey")
        }
        guard let domain = site.resolveDomain(nil) else { throw Failure("no Secure RPC domain in securerpc.conf or $SECURERPC_DOMAIN") }
        let name = netname ?? Netname.local(uid: getuid(), domain: domain)
        let keyserver = try KeyServerClient(socketPath: socket)
        defer { Task { await keyserver.close() } }

        // The current keys, through the keyserver (as keylogin fetches them).
        let (entry, fetched) = try await SealedKeyFetch.entry(of: name, through: keyserver)
        let current = fetched.filter { $0.state == .active && $0.mechanism != .dh192des }
        guard !current.isEmpty else { throw Failure("\(name) has no active strong key to change (ask an administrator: keyadmin newkey)") }

        let oldPassword = try readPassword(prompt: "Current password for \(name): ")
        let opened: [DHPrivateKey]
        do {
            opened = try LoginKeys.open(current, password: oldPassword) { SecretBytes(copying: []) }.keys
        } catch KeyCryptoError.wrongPassword {
            throw Failure("wrong password for \(name)")
        }
        let newPassword = try readPassword(prompt: "New password: ")
        guard newPassword.count > 0 else { throw Failure("the new password is empty") }
        if !passwordStdin {
            let again = try readPassword(prompt: "New password again: ")
            guard again == newPassword else { throw Failure("the two new passwords differ; nothing was changed") }
        }

        // The directory answers only a proven caller: the keyserver must hold the current keys.
        try await load(opened, as: name, into: keyserver)

        let salt = entry.principal.passwordSalt.isEmpty ? PasswordTag.newSalt() : Data(entry.principal.passwordSalt)
        let sealer = try PasswordSealer(password: newPassword, salt: salt)
        let replacements = passwordOnly ? opened : opened.map { DHPrivateKey.generate(group: $0.group) }
        let sealed = try replacements.map { try KeyDirectoryServer.wire(sealer.seal($0, netname: name), sealed: true) }
        let directory = DirectoryClient(site: site, caller: DirectoryCaller(netname: name, keyserverSocket: socket), service: .privacy)
        defer { Task { await directory.close() } }
        let result = try await directory.call { try await $0.kdChkeySelf(KdChkeySelfArg(keys: sealed, passwordSalt: Array(salt))) }
        guard result.status == .kdOk else { throw Failure("the directory refused: \(result.message)") }

        // The keyserver holds what the directory now holds.
        if !passwordOnly { try await load(replacements, as: name, into: keyserver) }
        let groups = replacements.map(\.group.rawValue).joined(separator: ", ")
        print(passwordOnly ? "chkey: \(name): the \(groups) keys are sealed under the new password"
                           : "chkey: \(name): new \(groups) keys, sealed under the new password; your keyserver holds them")
    }

    private func load(_ keys: [DHPrivateKey], as name: String, into keyserver: KeyServerClient) async throws {
        for key in keys {
            guard let mechanism = StrongKeyStore.mechanism(key.group) else { continue }
            var secret = key.secret.copyBytes()
            defer { SecretBytes.wipe(&secret) }
            let status = try await keyserver.performStrong { try await $0.keyxSet(KeyxSetArg(mechanism: mechanism, secret: secret, netname: name)) }
            guard status == .keySuccess else { throw KeyServerClientError.status(status) }
        }
    }

    private func readPassword(prompt: String) throws -> SecretBytes {
        if passwordStdin {
            var bytes: [UInt8] = []
            defer { SecretBytes.wipe(&bytes) }
            var byte: UInt8 = 0
            while read(0, &byte, 1) == 1, byte != 0x0a { if byte != 0x0d { bytes.append(byte) } }
            return SecretBytes(copying: bytes)
        }
        guard isatty(0) != 0 else { throw Failure("no terminal to ask for the password: use --password-stdin") }
        FileHandle.standardError.write(Data(prompt.utf8))
        var original = termios()
        tcgetattr(0, &original)
        var quiet = original
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(0, TCSAFLUSH, &quiet)
        defer { tcsetattr(0, TCSAFLUSH, &original); FileHandle.standardError.write(Data("\n".utf8)) }
        var bytes: [UInt8] = []
        defer { SecretBytes.wipe(&bytes) }
        var byte: UInt8 = 0
        while read(0, &byte, 1) == 1, byte != 0x0a { bytes.append(byte) }
        return SecretBytes(copying: bytes)
    }
}
