// keylogin: opens the caller's secret key from the directory with their password, locally,
// and hands it to this host's keyserver. The password and the open key never leave the host
// and are wiped after use. `-r` (root) also stores the host key for keyserverd restarts.

import ArgumentParser
import Release
import Foundation
import KeyCrypto
import KeyDirectory
import KeyServer
import KeyDirectoryService
import SiteConfig

@main
struct KeyLogin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keylogin",
        abstract: "Give the keyserver your secret key (decrypted here with your password).",
        version: SecureRPCRelease.versionLine("keylogin")
    )

    @Option(help: "Key directory file (default: $SECURERPC_DB; else, when securerpc.conf names directory servers, your sealed keys come from them through this host's keyserver; else its database line or \(SQLiteKeyDirectory.defaultPath)).")
    var db: String?
    @Option(help: "The site configuration (default: $SECURERPC_CONF, else \(SiteConfiguration.defaultPath) when present).") var config: String?
    @Option(help: "Your netname (default: unix.UID@DOMAIN, or the host's netname for root).") var netname: String?
    @Option(help: "The Secure RPC domain (default: $SECURERPC_DOMAIN, else the system's).") var domain: String?
    @Option(help: "The keyserver's socket.") var socket = KeyServerPaths.socket
    @Flag(name: .customShort("r"), help: "Root only: also store the key in the root key file so keyserverd keeps it across restarts.") var rootKey = false
    @Option(help: "Root key file for -r.") var rootKeyFile = KeyServerPaths.rootKey
    @Flag(help: "Read the password from standard input.") var passwordStdin = false

    func run() async throws {
        do {
            try await login()
        } catch {
            FileHandle.standardError.write(Data("keylogin: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    private func login() async throws {
        let uid = getuid()
        if rootKey && uid != 0 { throw CommandFailure("-r is for root only") }
        let site = try SiteConfiguration.load(path: config)
        let name = try netname ?? defaultNetname(uid: uid, site: site)
        let database = db ?? ProcessInfo.processInfo.environment["SECURERPC_DB"].flatMap { $0.isEmpty ? nil : $0 }
        let entries: [KeyEntry]
        let source: String
        switch HostKeySource.choice(site: site, database: database) {
        case let .file(path):
            guard FileManager.default.fileExists(atPath: path) else { throw CommandFailure("no key directory at \(path)") }
            entries = try SQLiteKeyDirectory(path: path, readOnly: true).keys(of: name).filter { $0.state == .active }
            source = path
        case let .directoryServers(servers):
            // The sealed keys come through this host's keyserver, which fetched them from
            // the directory as the enrolled host; they are opened here, with the password.
            entries = try await fetchSealedKeys(of: name).filter { $0.state == .active }
            source = servers.joined(separator: ", ")
        }
        guard !entries.isEmpty else {
            throw CommandFailure("no active key for \(name) in \(source) (ask an administrator: keyadmin newkey)")
        }
        let password = try readPassword(prompt: "Password for \(name): ")
        // A dh192-des key with a password of its own (keyadmin's default beside strong keys)
        // is opened with a second password: the next line of stdin, or asked.
        let login: LoginKeys.Opened
        do {
            login = try LoginKeys.open(entries, password: password) {
                try readPassword(prompt: "Password for the dh192-des key of \(name) (empty: skip it): ")
            }
        } catch KeyCryptoError.wrongPassword {
            throw CommandFailure("wrong password for \(name)")
        }
        for note in login.notes { FileHandle.standardError.write(Data("keylogin: \(note)\n".utf8)) }
        let opened = login.keys
        let client = try KeyServerClient(socketPath: socket)
        // The root key file: the dh192-des secret as hex on the first line (what classic
        // keyserv reads; "-" when there is none), then one "GROUP HEX" line per strong key,
        // so a host service's RPCSEC_GSS keys survive a keyserverd restart too.
        var rootFile: [UInt8] = []
        defer { SecretBytes.wipe(&rootFile) }
        var strongLines: [UInt8] = []
        defer { SecretBytes.wipe(&strongLines) }
        var hasLegacy = false
        var loaded: [String] = []
        for key in opened {
            if key.group == .dh192des {
                var secretHex = Array(key.secretHex.utf8)
                defer { SecretBytes.wipe(&secretHex) }
                let argument = KeyNetstarg(stPrivKey: secretHex, stPubKey: Array(key.publicKey.hex.utf8), stNetname: name)
                let status = try await client.perform { try await $0.keyNetPut(argument) }
                guard status == .keySuccess else { throw KeyServerClientError.status(status) }
                rootFile = secretHex + [0x0a] + rootFile
                hasLegacy = true
            } else if let mechanism = StrongKeyStore.mechanism(key.group) {
                var secret = key.secret.copyBytes()
                defer { SecretBytes.wipe(&secret) }
                let argument = KeyxSetArg(mechanism: mechanism, secret: secret, netname: name)
                let status = try await client.performStrong { try await $0.keyxSet(argument) }
                guard status == .keySuccess else { throw KeyServerClientError.status(status) }
                strongLines += Array(key.group.rawValue.utf8) + [0x20] + Array(key.secretHex.utf8) + [0x0a]
            }
            loaded.append(key.group.rawValue)
        }
        await client.close()
        if rootKey {
            if !hasLegacy { rootFile = Array("-\n".utf8) }
            rootFile += strongLines
            let temp = rootKeyFile + ".tmp-\(getpid())"
            let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard fd >= 0 else { throw CommandFailure("cannot write \(rootKeyFile)") }
            let written = rootFile.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            fsync(fd)
            close(fd)
            guard written == rootFile.count, rename(temp, rootKeyFile) == 0 else {
                unlink(temp)
                throw CommandFailure("cannot write \(rootKeyFile)")
            }
        }
        print("keylogin: \(name) logged in to the keyserver (\(loaded.joined(separator: ", ")))" + (rootKey ? "; root key stored in \(rootKeyFile)" : ""))
    }

    private func defaultNetname(uid: UInt32, site: SiteConfiguration) throws -> String {
        Netname.local(uid: uid, domain: try self.domain ?? site.domain ?? Self.systemDomain())
    }

    /// KEYX_FETCH_SEALED: the keyserver hands the directory's answer only to the uid the
    /// netname names (or root).
    private func fetchSealedKeys(of name: String) async throws -> [KeyEntry] {
        let client = try KeyServerClient(socketPath: socket)
        defer { Task { await client.close() } }
        return try await SealedKeyFetch.entry(of: name, through: client).keys
    }

    static func systemDomain() throws -> String {
        if let fromEnvironment = ProcessInfo.processInfo.environment["SECURERPC_DOMAIN"], !fromEnvironment.isEmpty { return fromEnvironment }
        var buffer = [CChar](repeating: 0, count: 256)
        if getdomainname(&buffer, 255) == 0 {
            let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !name.isEmpty && name != "(none)" { return name }
        }
        throw CommandFailure("no Secure RPC domain: pass --domain or set SECURERPC_DOMAIN")
    }

    private func readPassword(prompt: String) throws -> SecretBytes {
        if passwordStdin {
            var bytes: [UInt8] = []
            defer { SecretBytes.wipe(&bytes) }
            var byte: UInt8 = 0
            while read(0, &byte, 1) == 1, byte != 0x0a { if byte != 0x0d { bytes.append(byte) } }
            return SecretBytes(copying: bytes)
        }
        let fd = open("/dev/tty", O_RDWR)
        guard fd >= 0 else { throw CommandFailure("no terminal to ask for the password: use --password-stdin") }
        defer { close(fd) }
        _ = prompt.withCString { write(fd, $0, strlen($0)) }
        var original = termios()
        tcgetattr(fd, &original)
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(fd, TCSAFLUSH, &silent)
        defer { tcsetattr(fd, TCSAFLUSH, &original); _ = write(fd, "\n", 1) }
        var bytes: [UInt8] = []
        defer { SecretBytes.wipe(&bytes) }
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1, byte != 0x0a, byte != 0x0d { bytes.append(byte) }
        return SecretBytes(copying: bytes)
    }
}

struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
