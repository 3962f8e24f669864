// keyadmin's plumbing: where the database is, who is acting, reading passwords without echo
// (or from a file or stdin for scripts), and a progress bar only when a person is watching.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory
#if canImport(Glibc)
import Glibc
#endif

struct DatabaseOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The key directory database.", valueName: "path"))
    var db: String = ProcessInfo.processInfo.environment["SECURERPC_DB"] ?? SQLiteKeyDirectory.defaultPath

    func open() throws -> SQLiteKeyDirectory {
        do {
            return try SQLiteKeyDirectory(path: db)
        } catch {
            throw Failure("cannot open \(db): \(error)")
        }
    }
}

struct PasswordOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Read the password from the first line of a file (for scripts).", valueName: "file"))
    var passwordFile: String?

    @Flag(help: "Read the password from the first line of standard input (for scripts).")
    var passwordStdin = false

    /// The new password: from the file or stdin, or asked twice on the terminal.
    func newPassword(for what: String) throws -> SecretBytes {
        if let scripted = try scripted() { return scripted }
        let first = try Terminal.readSecret(prompt: "New password for \(what): ")
        let second = try Terminal.readSecret(prompt: "Retype the password: ")
        guard first == second else { throw Failure("the passwords do not match; nothing was changed") }
        return first
    }

    /// An existing password: from the file or stdin, or asked once.
    func existingPassword(for what: String) throws -> SecretBytes {
        if let scripted = try scripted() { return scripted }
        return try Terminal.readSecret(prompt: "Password for \(what): ")
    }

    /// The first line of a password file.
    static func readFile(_ path: String) throws -> SecretBytes {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure("cannot read the password file \(path)")
        }
        var bytes = Array(data.prefix { $0 != 0x0a && $0 != 0x0d })
        defer { SecretBytes.wipe(&bytes) }
        return SecretBytes(copying: bytes)
    }

    private func scripted() throws -> SecretBytes? {
        if let passwordFile { return try Self.readFile(passwordFile) }
        if passwordStdin {
            guard var line = Terminal.readLine() else { throw Failure("no password on standard input") }
            defer { SecretBytes.wipe(&line) }
            return SecretBytes(copying: line)
        }
        return nil
    }
}

/// A failure reported as one line, exit status 1.
struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Terminal {
    /// Reads a line from /dev/tty with echo off.
    static func readSecret(prompt: String) throws -> SecretBytes {
        let fd = open("/dev/tty", O_RDWR)
        guard fd >= 0 else {
            throw Failure("no terminal to ask for a password: use --password-file or --password-stdin")
        }
        defer { close(fd) }
        _ = prompt.withCString { write(fd, $0, strlen($0)) }
        var original = termios()
        tcgetattr(fd, &original)
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(fd, TCSAFLUSH, &silent)
        defer {
            tcsetattr(fd, TCSAFLUSH, &original)
            _ = write(fd, "\n", 1)
        }
        var bytes: [UInt8] = []
        defer { SecretBytes.wipe(&bytes) }
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1, byte != 0x0a, byte != 0x0d {
            bytes.append(byte)
        }
        return SecretBytes(copying: bytes)
    }

    /// One line of standard input as bytes (without the newline).
    static func readLine() -> [UInt8]? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        var any = false
        while read(0, &byte, 1) == 1 {
            any = true
            if byte == 0x0a { break }
            if byte != 0x0d { bytes.append(byte) }
        }
        return any ? bytes : nil
    }

    static var isInteractive: Bool { isatty(2) == 1 }
}

/// Who is making a change, for the audit trail.
enum Actor {
    static var current: String {
        let uid = getuid()
        if let entry = getpwuid(uid), let name = entry.pointee.pw_name {
            return "\(String(cString: name)) (uid \(uid))"
        }
        return "uid \(uid)"
    }
}

/// A progress bar on stderr when it is a terminal; silent otherwise (scripts, CI).
struct ProgressBar {
    let total: Int
    let label: String
    private let enabled = Terminal.isInteractive
    private var lastDrawn = -1

    init(total: Int, label: String) {
        self.total = max(total, 1)
        self.label = label
    }

    mutating func update(_ done: Int) {
        guard enabled else { return }
        let percent = min(100, done * 100 / total)
        guard percent != lastDrawn else { return }
        lastDrawn = percent
        let width = 30
        let filled = width * percent / 100
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(percent)% \(done)/\(total)".utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// Resolves the principal a command names: a netname, or --user / --host with a domain.
struct PrincipalOptions: ParsableArguments {
    @Option(help: "A user name or uid (netname unix.UID@DOMAIN).")
    var user: [String] = []

    @Option(help: "A host name (netname unix.HOST@DOMAIN).")
    var host: [String] = []

    @Option(help: "The Secure RPC domain (default: $SECURERPC_DOMAIN, else the system's domain name).")
    var domain: String?

    func resolvedDomain() throws -> String {
        if let domain { return domain }
        if let fromEnvironment = ProcessInfo.processInfo.environment["SECURERPC_DOMAIN"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        var buffer = [CChar](repeating: 0, count: 256)
        if getdomainname(&buffer, 255) == 0 {
            let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !name.isEmpty && name != "(none)" { return name }
        }
        throw Failure("no Secure RPC domain: pass --domain or set SECURERPC_DOMAIN")
    }

    /// Every principal named, as (netname, kind, name, uid).
    func principals() throws -> [Principal] {
        let domain = try resolvedDomain()
        var result: [Principal] = []
        for user in self.user {
            let uid: UInt32
            if let numeric = UInt32(user) {
                uid = numeric
            } else if let entry = getpwnam(user) {
                uid = entry.pointee.pw_uid
            } else {
                throw Failure("no such user \"\(user)\" (give a uid to create a key for an account this host does not know)")
            }
            result.append(Principal(netname: Netname.user(uid: uid, domain: domain), kind: .user, name: user, uid: uid))
        }
        for host in self.host {
            result.append(Principal(netname: Netname.host(host, domain: domain), kind: .host, name: host, uid: nil))
        }
        return result
    }
}

extension DHGroupName: ExpressibleByArgument {}
