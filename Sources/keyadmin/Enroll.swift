// keyadmin enroll-host and fingerprint: bringing a new host into the site.
//
// enroll-host makes the host principal unix.HOST@DOMAIN with fresh strong keys, gives it the
// role host (its keyserver may fetch users' sealed keys for keylogin), and writes what the new
// host needs: its key file (the root key file keyserverd loads, like a Kerberos keytab:
// secret, mode 600, to be carried to the host and installed as /etc/.rootkey) and its
// securerpc.conf (this host's directory lines, whose pinned fingerprints are the trust
// anchor). The sealed copy in the directory is sealed under a random password nobody keeps:
// the host's key lives in its key file, and a new enrolment replaces it.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory
import SiteConfig

struct EnrollHost: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll-host",
        abstract: "Add a host to the site: its principal and keys, the host role, its key file and its securerpc.conf.",
        discussion: """
        Example: keyadmin enroll-host fs2 --domain example.org --key-file fs2.rootkey --conf-file fs2.conf
        Carry both files to the new host (the key file is secret): install the key file as \
        /etc/.rootkey (owner root, mode 600) and the configuration as /etc/securerpc/securerpc.conf, \
        then start keyserverd. With --server the principal is made on that directory server.
        """
    )
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The host's name (its netname is unix.HOST@DOMAIN).") var host: String
    @OptionGroup var domain: DomainOption
    @Option(help: "Mechanisms to create keys for (repeat; strong groups only).") var mechanism: [DHGroupName] = [.default]
    @Option(help: "Where to write the host's key file (created, mode 600; must not exist).") var keyFile: String
    @Option(help: "Where to write the host's securerpc.conf (default: print it).") var confFile: String?

    func run() throws {
        let groups = mechanism.reduce(into: [DHGroupName]()) { if !$0.contains($1) { $0.append($1) } }
        guard !groups.contains(.dh192des) else { throw Failure("enroll-host makes strong keys only; a host's dh192-des key is made with newkey --host") }
        let netname = Netname.host(host, domain: try domain.resolved())
        try Netname.validate(netname)
        guard !FileManager.default.fileExists(atPath: keyFile) else { throw Failure("\(keyFile) exists; choose another path (it would hold the host's secret key)") }
        // The site this host's programs use: the new host gets its directory lines.
        let site = try SiteConfiguration.load(path: database.config)
        var hostSite = SiteConfiguration()
        hostSite.domain = try domain.resolved()
        hostSite.directories = site.directories
        if hostSite.directories.isEmpty { warn("securerpc.conf names no directory servers: add the directory lines to \(confFile ?? "the printed configuration") by hand") }

        var principal = Principal(netname: netname, kind: .host, name: host, uid: nil)
        try KeyFile.enrol(&principal, groups: groups, role: .host, keyFile: keyFile, store: try database.store())

        let conf = hostSite.rendered()
        if let confFile {
            try conf.write(toFile: confFile, atomically: true, encoding: .utf8)
        }
        print("\(netname): \(groups.map(\.rawValue).joined(separator: ", ")), role host; key file \(keyFile) (secret: install as /etc/.rootkey, mode 600)")
        if confFile == nil { print(conf, terminator: "") }
    }
}

/// A service principal (unix.NAME/HOST@DOMAIN) for a daemon that does not run as root: its
/// keys go to a key file that the host's keyserverd loads for the service's uid at start
/// (`keyserverd --service-key UID:FILE`), so the daemon never runs keylogin.
struct EnrollService: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll-service",
        abstract: "Add a service principal unix.NAME/HOST@DOMAIN and write its key file for the host's keyserverd.",
        discussion: """
        Example: keyadmin enroll-service filesvc --host fs1 --domain example.org --key-file filesvc.key
        On fs1, install the key file owned by root or the service's user, mode 600, and start \
        keyserverd with --service-key UID:PATH; the service runs as UID with --netname unix.filesvc/fs1@example.org.
        """
    )
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The service's name.") var name: String
    @Option(help: "The host it runs on.") var host: String
    @OptionGroup var domain: DomainOption
    @Option(help: "Mechanisms to create keys for (repeat; strong groups only).") var mechanism: [DHGroupName] = [.default]
    @Option(help: "Where to write the service's key file (created, mode 600; must not exist).") var keyFile: String

    func run() throws {
        let groups = mechanism.reduce(into: [DHGroupName]()) { if !$0.contains($1) { $0.append($1) } }
        guard !groups.contains(.dh192des) else { throw Failure("enroll-service makes strong keys only") }
        let netname = Netname.service(name, host: host, domain: try domain.resolved())
        try Netname.validate(netname)
        var principal = Principal(netname: netname, kind: .service, name: "\(name)/\(host)", uid: nil)
        try KeyFile.enrol(&principal, groups: groups, role: nil, keyFile: keyFile, store: try database.store())
        print("\(netname): \(groups.map(\.rawValue).joined(separator: ", ")); key file \(keyFile) (secret: for keyserverd --service-key UID:PATH on \(host))")
    }
}

/// Making a principal whose secret keys live in a key file instead of behind a password.
enum KeyFile {
    /// Adds `principal` with fresh keys of `groups` (sealed in the directory under a random
    /// password nobody keeps), grants `role`, and writes the keys to `keyFile` in the root key
    /// file's format ("-", then "GROUP HEX" lines), created with mode 600.
    static func enrol(_ principal: inout Principal, groups: [DHGroupName], role: PrincipalRole?, keyFile: String,
                      store directory: any KeyDirectoryStore) throws {
        let netname = principal.netname
        guard !FileManager.default.fileExists(atPath: keyFile) else {
            throw Failure("\(keyFile) exists; choose another path (it would hold a secret key)")
        }
        if try directory.principal(netname) != nil { throw Failure("\(netname) already exists (keyadmin remove it first to enrol it again)") }
        let keys = groups.map { DHPrivateKey.generate(group: $0) }
        let password = SecretBytes(copying: (0..<32).map { _ in UInt8.random(in: 0x21...0x7e) })
        let salt = PasswordTag.newSalt()
        let sealer = try PasswordSealer(password: password, salt: salt)
        principal.passwordSalt = salt
        try directory.add(principal, keys: try keys.map { try sealer.seal($0, netname: netname) }, actor: Actor.current)
        if let role { try directory.grant(role, to: netname, actor: Actor.current) }

        var text = Array("-\n".utf8)
        defer { SecretBytes.wipe(&text) }
        for key in keys { text += Array("\(key.group.rawValue) \(key.secretHex)\n".utf8) }
        let fd = open(keyFile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Failure("cannot create \(keyFile): \(String(cString: strerror(errno))); the principal was made: keyadmin remove \(netname) and try again")
        }
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == text.count else { throw Failure("cannot write \(keyFile)") }
    }
}

struct Fingerprint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the fingerprints of a principal's public keys (what a host pins for a directory server in securerpc.conf)."
    )
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var who: PrincipalArgument

    func run() throws {
        let netname = try who.netname()
        let directory = try database.storeForReading()
        let keys = try directory.keys(of: netname).filter { $0.state == .active }
        guard !keys.isEmpty else { throw Failure("\(netname) has no active key") }
        for key in keys {
            let publicKey = try DHPublicKey(group: key.mechanism, hex: key.publicKey)
            print("\(netname) \(key.mechanism.rawValue) \(publicKey.fingerprint)")
        }
    }
}
