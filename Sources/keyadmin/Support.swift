// keyadmin's plumbing: where the database is, who is acting, reading passwords without echo
// (or from a file or stdin for scripts), asking for confirmation, naming principals, and a
// progress bar only when a person is watching. Trusts: the invoking user's environment
// only for the audit hint $SUDO_USER (root could forge it; the login uid is the kernel's).

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory
import KeyDirectoryPostgres
import KeyDirectoryService
import KeyServer
import SiteConfig
#if canImport(Glibc)
import Glibc
#endif

struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("db"), help: ArgumentHelp("The key directory: a SQLite file, or a PostgreSQL server as postgres://USER@HOST:PORT/DB or postgres:///DB?host=/SOCKET/DIR (default: $SECURERPC_DB; else, when securerpc.conf names directory servers, those, remotely; else \(SQLiteKeyDirectory.defaultPath)).", valueName: "path|url"))
    var dbOption: String?

    @Option(help: ArgumentHelp("Run the command on this directory server (one of securerpc.conf's, whose pinned key is checked) over RPCSEC_GSS privacy, as --as; it needs the admin role there.", valueName: "host[:port]"))
    var server: String?

    @Option(name: .customLong("as"), help: ArgumentHelp("Your netname at the directory server (default: unix.UID@DOMAIN, logged in to this host's keyserver).", valueName: "netname"))
    var asNetname: String?

    @Option(help: ArgumentHelp("The site configuration (default: $SECURERPC_CONF, else \(SiteConfiguration.defaultPath)).", valueName: "path"))
    var config: String?

    @Option(help: ArgumentHelp("This host's keyserver socket (for --server).", valueName: "path"))
    var keyserverSocket: String = KeyServerPaths.socket

    /// The database file named or defaulted (for messages and the file-only commands).
    var db: String {
        dbOption ?? ProcessInfo.processInfo.environment["SECURERPC_DB"].flatMap { $0.isEmpty ? nil : $0 } ?? SQLiteKeyDirectory.defaultPath
    }

    /// Whether --db names a PostgreSQL server rather than a file.
    var isPostgres: Bool { PostgresLocation.isPostgresURL(db) }

    /// The database as messages name it: a URL's password never reaches the terminal.
    var shownDB: String {
        guard isPostgres else { return db }
        return (try? PostgresLocation(url: db, environment: [:]).description) ?? "the PostgreSQL directory"
    }

    /// The directory servers to use instead of a file, when --server is given, or when no
    /// file was named and securerpc.conf lists directory servers.
    func remoteSite() throws -> SiteConfiguration? {
        let explicitFile = dbOption ?? ProcessInfo.processInfo.environment["SECURERPC_DB"].flatMap { $0.isEmpty ? nil : $0 }
        guard server != nil || explicitFile == nil else { return nil }
        var site: SiteConfiguration
        do {
            site = try SiteConfiguration.load(path: config)
        } catch {
            throw Failure("\(error)")
        }
        if let server {
            guard dbOption == nil else { throw Failure("give --db or --server, not both") }
            let matching = site.directories.filter { $0.address == server || $0.host == server }
            guard !matching.isEmpty else {
                throw Failure("\(server) is not a directory server of \(site.source ?? "securerpc.conf") (its pinned key is needed: add its directory line)")
            }
            site.directories = matching
            return site
        }
        return site.directories.isEmpty ? nil : site
    }

    /// The directory: the file, or keydird when `remoteSite()` says so.
    func store() throws -> any KeyDirectoryStore {
        guard let site = try remoteSite() else { return try open() }
        guard let domain = site.resolveDomain(nil) else { throw Failure("no Secure RPC domain in securerpc.conf or $SECURERPC_DOMAIN") }
        let me = asNetname ?? Netname.local(uid: getuid(), domain: domain)
        return RemoteKeyDirectory(directory: DirectoryClient(site: site, caller: DirectoryCaller(netname: me, keyserverSocket: keyserverSocket),
                                                             service: .privacy))
    }

    /// As `store()`, for the commands that only read.
    func storeForReading() throws -> any KeyDirectoryStore {
        try remoteSite() == nil ? try openForReading() : try store()
    }

    /// For commands that need the file itself (init, verify).
    func requireFile(_ command: String) throws {
        if server != nil { throw Failure("keyadmin \(command) works on the database file only: run it on the directory host") }
    }

    /// For changes. Only `init` passes `create`: a mistyped --db must not make a new
    /// directory that a later command then silently uses.
    func open(create: Bool = false) throws -> any CheckedDirectory {
        if isPostgres { return try openPostgres(create: create) }
        do {
            return try SQLiteKeyDirectory(path: db, create: create)
        } catch DirectoryError.storage(let why) {
            // keyadmin writes the file and its -wal/-shm beside it: say which of the two is
            // in the way, and what to do about it.
            let parent = (db as NSString).deletingLastPathComponent
            for target in [db, parent.isEmpty ? "." : parent] where FileManager.default.fileExists(atPath: target) && access(target, W_OK) != 0 {
                let way = errno == EROFS ? "it is on a read-only file system" : "run keyadmin as the database's owner"
                throw Failure("cannot change \(db): \(Self.strip(why, db)) (\(target) is not writable: \(way))")
            }
            throw Failure("cannot open \(db): \(Self.strip(why, db))")
        }
    }

    /// For commands that only read (list, show, export, verify, audit): works for any user
    /// who may read the file, and never writes it.
    func openForReading() throws -> any CheckedDirectory {
        // A server decides what this user may read; there is no read-only open to ask for.
        if isPostgres { return try openPostgres(create: false) }
        do {
            return try SQLiteKeyDirectory(path: db, readOnly: true, create: false)
        } catch DirectoryError.storage(let why) {
            throw Failure("cannot read \(db): \(Self.strip(why, db))")
        }
    }

    /// Errors from the store name the server without its password, in one line.
    private func openPostgres(create: Bool) throws -> PostgresKeyDirectory {
        do {
            return try PostgresKeyDirectory(location: PostgresLocation(url: db), create: create)
        } catch DirectoryError.storage(let why) {
            // Already one line that names the server (without its password) and the reason.
            throw Failure(why)
        }
    }

    /// SQLite messages already carry the path; the caller names it once.
    private static func strip(_ why: String, _ path: String) -> String {
        why.hasPrefix(path + ": ") ? String(why.dropFirst(path.count + 2)) : why
    }
}

struct PasswordOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Read the new password from the first line of a file (for scripts).", valueName: "file"))
    var passwordFile: String?

    @Flag(help: "Read the new password from the first line of standard input (for scripts).")
    var passwordStdin = false

    @Flag(help: "Accept an empty password (refused otherwise).")
    var allowEmptyPassword = false

    /// Whether a script gives the new password.
    var isScripted: Bool { passwordFile != nil || passwordStdin }

    /// The new password: from the file or stdin, or asked twice on the terminal.
    func newPassword(for what: String) throws -> SecretBytes {
        let password = try scripted() ?? Self.askTwice(for: what, scriptOption: "--password-file FILE or --password-stdin")
        try refuseEmpty(password, what: "the new password for \(what)")
        return password
    }

    /// A new password typed twice on the terminal.
    static func askTwice(for what: String, scriptOption: String) throws -> SecretBytes {
        let first = try Terminal.readSecret(prompt: "New password for \(what): ", what: "a new password for \(what)", scriptOption: scriptOption)
        let second = try Terminal.readSecret(prompt: "Retype the password: ", what: "the password again", scriptOption: scriptOption)
        guard first == second else { throw Failure("the passwords do not match; nothing was changed") }
        return first
    }

    func refuseEmpty(_ password: SecretBytes, what: String) throws {
        if password.count == 0 && !allowEmptyPassword {
            throw Failure("\(what) is empty; nothing was changed (--allow-empty-password if that is really meant)")
        }
    }

    /// The first line of a password file (LF or CRLF).
    static func readFile(_ path: String) throws -> SecretBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure("cannot read the password file \(path) (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        // The first line only, read byte by byte so nothing after it is ever in memory.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(4096)  // no reallocation leaving copies behind
        var byte: UInt8 = 0
        while bytes.count < 4096 {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || byte == 0x0a || byte == 0x0d { break }
            bytes.append(byte)
        }
        defer { SecretBytes.wipe(&bytes) }
        return SecretBytes(copying: bytes)
    }

    private func scripted() throws -> SecretBytes? {
        if let passwordFile { return try Self.readFile(passwordFile) }
        if passwordStdin {
            guard var line = Terminal.readLine() else { throw Failure("no password on standard input (--password-stdin reads its first line)") }
            defer { SecretBytes.wipe(&line) }
            return SecretBytes(copying: line)
        }
        return nil
    }
}

/// Where the legacy dh192-des key's password comes from when strong keys are made or
/// changed beside it (docs/DIRECTORY.md, "The legacy key's password").
struct LegacyPasswordOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The dh192-des key's own password, from the first line of a file.", valueName: "file"))
    var legacyPasswordFile: String?

    @Flag(help: "Seal the dh192-des key under the strong keys' password (warned: a copy of the database then gives both away at DES speed).")
    var legacySharesPassword = false

    static let warning = """
        warning: the dh192-des key shares the strong keys' password: its unsalted DES sealing can be guessed \
        offline at DES speed from a copy of the database, and that password then opens the strong keys too
        """
}

/// A failure reported as one line, exit status 1.
struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Terminal {
    /// Reads a line from /dev/tty with echo off. `what` and `scriptOption` say, when there
    /// is no terminal, what was wanted and which option gives it.
    static func readSecret(prompt: String, what: String, scriptOption: String) throws -> SecretBytes {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            throw Failure("no terminal to ask for \(what): use \(scriptOption)")
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

    /// Asks a yes/no question on the terminal; nil when there is no terminal to ask on
    /// (standard input is not one, or the process has no controlling terminal).
    static func confirm(_ question: String) -> Bool? {
        guard isatty(0) == 1 else { return nil }
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        _ = question.withCString { write(fd, $0, strlen($0)) }
        var answer: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1, byte != 0x0a, byte != 0x0d, answer.count < 16 { answer.append(byte) }
        let text = String(decoding: answer, as: UTF8.self).trimmingCharacters(in: .whitespaces).lowercased()
        return text == "y" || text == "yes"
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

/// Who is making a change, for the audit trail: the effective user, and who that really is
/// when it is root by sudo or su.
enum Actor {
    static var current: AuditActor {
        let uid = getuid()
        var name = "uid \(uid)"
        if let entry = getpwuid(uid), let login = entry.pointee.pw_name {
            name = "\(String(cString: login)) (uid \(uid))"
        }
        let environment = ProcessInfo.processInfo.environment
        let sudoUser = environment["SUDO_USER"].flatMap { $0.isEmpty ? nil : String($0.prefix(64)) }
        return AuditActor(name: name, sudoUser: sudoUser, loginUID: loginUID())
    }

    /// /proc/self/loginuid: set by pam_loginuid at login, kept across su and sudo; 2^32-1
    /// (or no file) when the session has none.
    static func loginUID() -> UInt32? {
        guard let data = FileManager.default.contents(atPath: "/proc/self/loginuid"),
              let value = UInt32(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
              value != UInt32.max else { return nil }
        return value
    }

    /// "alice (uid 1000)" for a uid, as the audit shows the login uid.
    static func describe(uid: UInt32) -> String {
        if let entry = getpwuid(uid), let name = entry.pointee.pw_name { return "\(String(cString: name)) (uid \(uid))" }
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

/// The Secure RPC domain of names given without one.
struct DomainOption: ParsableArguments {
    @Option(help: "The Secure RPC domain (default: $SECURERPC_DOMAIN, else the system's domain name).")
    var domain: String?

    func resolved() throws -> String {
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
}

/// A principal named on the command line: a netname, or — for the local domain — a uid or
/// a user name this host knows (`1001`, `alice` → `unix.1001@DOMAIN`).
struct PrincipalArgument: ParsableArguments {
    @Argument(help: "A netname (unix.1001@example.org), or a uid or user name of this host.")
    var principal: String

    @OptionGroup var domain: DomainOption

    func netname() throws -> String {
        if principal.contains("@") {
            try Netname.validate(principal)
            return principal
        }
        if let uid = UInt32(principal) { return Netname.user(uid: uid, domain: try domain.resolved()) }
        guard let entry = getpwnam(principal) else {
            throw Failure("no user \"\(principal)\" on this host: give a netname (unix.UID@DOMAIN, or unix.HOST@DOMAIN for a host)")
        }
        return Netname.user(uid: entry.pointee.pw_uid, domain: try domain.resolved())
    }
}

/// Resolves the principals `newkey` makes: --user and --host with a domain.
struct PrincipalOptions: ParsableArguments {
    @Option(help: "A user name or uid (netname unix.UID@DOMAIN).")
    var user: [String] = []

    @Option(help: "A host name (netname unix.HOST@DOMAIN).")
    var host: [String] = []

    @OptionGroup var domain: DomainOption

    /// Every principal named, as (netname, kind, name, uid).
    func principals() throws -> [Principal] {
        let domain = try domain.resolved()
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
        for principal in result { try Netname.validate(principal.netname) }
        return result
    }
}

extension DHGroupName: ExpressibleByArgument {}

/// What init and verify ask of a directory beyond the store: its backend's own checks.
protocol CheckedDirectory: KeyDirectoryStore {
    func integrityProblems() -> [String]
    func count() throws -> Int
}

extension SQLiteKeyDirectory: CheckedDirectory {}
extension PostgresKeyDirectory: CheckedDirectory {}
