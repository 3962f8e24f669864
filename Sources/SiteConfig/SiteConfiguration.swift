// The host's view of its Secure RPC site, from one file: the domain, the directory servers in
// the order to try them, and for each the directory principal's netname and the fingerprint
// of its public key — the trust anchor every directory answer is checked against, like a
// host keytab and krb5.conf together. Every executable reads it (default
// /etc/securerpc/securerpc.conf, or $SECURERPC_CONF); flags override it.
// It trusts the file (root's to write), but not its syntax: every line is checked and a bad one
// is named by path and line number.

#if canImport(Glibc)
import Glibc
#endif

/// The parsed site configuration.
///
/// ```text
/// # /etc/securerpc/securerpc.conf
/// domain example.org
/// directory dir1.example.org:20050 unix.dir1@example.org sha256:6b1f…(64 hex digits)
/// directory dir2.example.org:20050 unix.dir2@example.org sha256:09aa…
/// ```
///
/// ```swift
/// let site = try SiteConfiguration.load()          // $SECURERPC_CONF or the default path
/// let domain = site.domain ?? "example.org"
/// ```
public struct SiteConfiguration: Sendable, Equatable {
    /// One directory server: where it listens and who it must prove to be.
    public struct DirectoryServer: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        /// Nil: ask the host's rpcbind.
        public var port: Int?
        /// The directory host's principal, e.g. `unix.dir1@example.org`.
        public var netname: String
        /// `sha256:` and 64 lowercase hex digits over the principal's public key
        /// (`KeyFingerprint` in KeyCrypto computes it).
        public var fingerprint: String

        public init(host: String, port: Int? = nil, netname: String, fingerprint: String) {
            self.host = host
            self.port = port
            self.netname = netname
            self.fingerprint = fingerprint
        }

        public var address: String {
            let shown = host.contains(":") ? "[\(host)]" : host
            return port.map { "\(shown):\($0)" } ?? shown
        }
        public var description: String { "\(address) (\(netname))" }
    }

    public static let defaultPath = "/etc/securerpc/securerpc.conf"
    public static let environmentVariable = "SECURERPC_CONF"

    /// The Secure RPC domain of this host's netnames.
    public var domain: String?
    /// Directory servers, tried in this order.
    public var directories: [DirectoryServer] = []
    /// A local key directory file (the directory host, or a single-host site).
    public var database: String?
    /// This host's keyserver socket, when not the default.
    public var keyserverSocket: String?
    /// How long a looked-up public key is used before asking again (seconds).
    public var cacheTTL: Double = 300
    /// How long "no such key" is remembered (seconds).
    public var negativeTTL: Double = 30
    /// How long cached keys keep being served while no directory answers (seconds).
    public var serveStale: Double = 3600
    /// How often hosts ask the directory what changed (seconds): a revocation reaches every
    /// server within this bound plus one round trip.
    public var changePollInterval: Double = 10
    /// The daemons' log level (trace, debug, info, notice, warning, error, critical); a
    /// `--log-level` flag wins. Daemons re-read it on SIGHUP.
    public var logLevel: String?
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    /// The file this came from, for messages; nil when nothing was read.
    public var source: String?

    public init() {}

    /// Reads the configuration: `path` if given (it must exist), else $SECURERPC_CONF (must
    /// exist), else the default path (absent means an empty configuration: a single host).
    public static func load(path: String? = nil, environment: [String: String] = currentEnvironment()) throws(SiteConfigurationError) -> SiteConfiguration {
        let explicit = path ?? environment[environmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        let chosen = explicit ?? defaultPath
        guard let text = readFile(chosen) else {
            if explicit == nil, !fileExists(chosen) { return SiteConfiguration() }
            throw .unreadable(chosen, explicit == nil ? "cannot read it" : "no such file or not readable")
        }
        return try parse(text, source: chosen)
    }

    /// Parses the text of a configuration file; `source` names it in errors.
    public static func parse(_ text: String, source: String = "securerpc.conf") throws(SiteConfigurationError) -> SiteConfiguration {
        var configuration = SiteConfiguration()
        configuration.source = source
        var lineNumber = 0
        // Split on bytes: in Swift "\r\n" is one Character, so a CRLF file would not split on "\n".
        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(String(decoding: rawLine, as: UTF8.self))
            if line.hasSuffix("\r") { line = line.dropLast() }
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let keyword = words.first else { continue }
            let arguments = Array(words.dropFirst())
            func fail(_ why: String) -> SiteConfigurationError { .badLine(source, lineNumber, why) }
            func single(_ what: String) throws(SiteConfigurationError) -> String {
                guard arguments.count == 1 else { throw fail("\(keyword) takes one value: \(keyword) \(what)") }
                return arguments[0]
            }
            func seconds() throws(SiteConfigurationError) -> Double {
                let text = try single("SECONDS")
                guard let value = Double(text), value >= 0, value.isFinite else { throw fail("\(keyword) must be a number of seconds, not \"\(text)\"") }
                return value
            }
            switch keyword {
            case "domain":
                let domain = try single("DOMAIN")
                guard domain.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "@") }) else {
                    throw fail("the domain must be printable ASCII without spaces or '@'")
                }
                configuration.domain = domain
            case "directory":
                guard arguments.count == 3 else {
                    throw fail("expected: directory HOST[:PORT] NETNAME sha256:FINGERPRINT (keyadmin enroll-host prints this line)")
                }
                let (host, port) = try splitAddress(arguments[0], fail: fail)
                let netname = arguments[1]
                guard netname.hasPrefix("unix."), netname.filter({ $0 == "@" }).count == 1, netname.utf8.count <= 255 else {
                    throw fail("\"\(netname)\" is not a netname (unix.HOST@DOMAIN)")
                }
                let fingerprint = arguments[2].lowercased()
                guard isFingerprint(fingerprint) else {
                    throw fail("the fingerprint must be sha256: and 64 hex digits (keyadmin fingerprint \(netname) prints it)")
                }
                configuration.directories.append(DirectoryServer(host: host, port: port, netname: netname, fingerprint: fingerprint))
            case "database":
                configuration.database = try single("PATH")
            case "keyserver-socket":
                configuration.keyserverSocket = try single("PATH")
            case "cache-ttl":
                configuration.cacheTTL = try seconds()
            case "negative-ttl":
                configuration.negativeTTL = try seconds()
            case "serve-stale":
                configuration.serveStale = try seconds()
            case "change-poll":
                let value = try seconds()
                guard value >= 1 else { throw fail("change-poll must be at least 1 second") }
                configuration.changePollInterval = value
            case "log-level":
                let level = try single("LEVEL")
                guard logLevels.contains(level) else { throw fail("log-level must be one of \(logLevels.joined(separator: ", ")), not \"\(level)\"") }
                configuration.logLevel = level
            default:
                throw fail("unknown setting \"\(keyword)\" (known: domain, directory, database, keyserver-socket, cache-ttl, negative-ttl, serve-stale, change-poll, log-level)")
            }
        }
        return configuration
    }

    /// The file's text for these settings (what `keyadmin enroll-host` prints for a new host).
    public func rendered() -> String {
        var lines = ["# Secure RPC site configuration: read by every Secure RPC program on this host."]
        if let domain { lines.append("domain \(domain)") }
        for server in directories { lines.append("directory \(server.address) \(server.netname) \(server.fingerprint)") }
        if let database { lines.append("database \(database)") }
        if let keyserverSocket { lines.append("keyserver-socket \(keyserverSocket)") }
        let defaults = SiteConfiguration()
        if cacheTTL != defaults.cacheTTL { lines.append("cache-ttl \(Self.number(cacheTTL))") }
        if negativeTTL != defaults.negativeTTL { lines.append("negative-ttl \(Self.number(negativeTTL))") }
        if serveStale != defaults.serveStale { lines.append("serve-stale \(Self.number(serveStale))") }
        if changePollInterval != defaults.changePollInterval { lines.append("change-poll \(Self.number(changePollInterval))") }
        if let logLevel { lines.append("log-level \(logLevel)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The domain to use: an explicit value (a flag), else $SECURERPC_DOMAIN, else this file's,
    /// else the system's NIS/YP domain name when one is set.
    public func resolveDomain(_ explicit: String?, environment: [String: String] = currentEnvironment()) -> String? {
        if let explicit, !explicit.isEmpty { return explicit }
        if let fromEnvironment = environment["SECURERPC_DOMAIN"], !fromEnvironment.isEmpty { return fromEnvironment }
        if let domain { return domain }
        return Self.systemDomain()
    }

    // MARK: helpers

    public static func currentEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        #if canImport(Glibc)
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        #endif
        return result
    }

    static func systemDomain() -> String? {
        #if canImport(Glibc)
        var buffer = [CChar](repeating: 0, count: 256)
        guard getdomainname(&buffer, buffer.count - 1) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty || name == "(none)" ? nil : name
        #else
        return nil
        #endif
    }

    private static func splitAddress(_ text: String, fail: (String) -> SiteConfigurationError) throws(SiteConfigurationError) -> (String, Int?) {
        // [v6]:port, host:port, or host.
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw fail("unclosed [ in \"\(text)\"") }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (host, nil) }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port) else { throw fail("bad port in \"\(text)\"") }
            return (host, port)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard !parts[0].isEmpty else { throw fail("no host in \"\(text)\"") }
        switch parts.count {
        case 1: return (text, nil)
        case 2:
            guard let port = Int(parts[1]), (1...65535).contains(port) else { throw fail("bad port in \"\(text)\" (1-65535)") }
            return (String(parts[0]), port)
        default:
            throw fail("write an IPv6 address as [ADDRESS]:PORT, not \"\(text)\"")
        }
    }

    static func isFingerprint(_ text: String) -> Bool {
        guard text.hasPrefix("sha256:") else { return false }
        let digits = text.utf8.dropFirst(7)
        return digits.count == 64 && digits.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }

    private static func fileExists(_ path: String) -> Bool {
        #if canImport(Glibc)
        var info = stat()
        return stat(path, &info) == 0
        #else
        return false
        #endif
    }

    private static func readFile(_ path: String) -> String? {
        #if canImport(Glibc)
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: chunk.prefix(count))
            if bytes.count > 1 << 20 { return nil }  // a configuration file is small
        }
        return String(decoding: bytes, as: UTF8.self)
        #else
        return nil
        #endif
    }
}

/// Why the site configuration cannot be used; each names the file (and line).
public enum SiteConfigurationError: Error, Equatable, CustomStringConvertible {
    case unreadable(String, String)
    case badLine(String, Int, String)

    public var description: String {
        switch self {
        case let .unreadable(path, why): return "\(path): \(why) (set \(SiteConfiguration.environmentVariable) or pass the path)"
        case let .badLine(path, line, why): return "\(path) line \(line): \(why)"
        }
    }
}
