// Which public-key source a program on this host uses, decided the same way everywhere from
// securerpc.conf and the flags: a database named on the command line (or $SECURERPC_DB) is
// the local directory file; otherwise, when the site configuration names directory servers,
// keydird through NetworkKeyLookup (cached, change feed running); otherwise the local file at
// the configuration's `database` or the default path.

import Foundation
import KeyDirectory
import Logging
import SiteConfig

extension SiteConfiguration {
    /// The cache settings of this configuration (cache-ttl, negative-ttl, serve-stale).
    public var cacheSettings: PublicKeyCache.Settings {
        PublicKeyCache.Settings(ttl: cacheTTL, negativeTTL: negativeTTL, serveStale: serveStale)
    }
}

public enum HostKeySource {
    /// Where keys come from, for messages and logs.
    public enum Choice: Equatable, CustomStringConvertible {
        case file(String)
        case directoryServers([String])

        public var description: String {
            switch self {
            case let .file(path): return "the key directory \(path)"
            case let .directoryServers(servers): return "the directory servers \(servers.joined(separator: ", "))"
            }
        }
    }

    /// What `make` would use.
    public static func choice(site: SiteConfiguration, database: String?) -> Choice {
        if let database { return .file(database) }
        if !site.directories.isEmpty { return .directoryServers(site.directories.map(\.description)) }
        return .file(site.database ?? SQLiteKeyDirectory.defaultPath)
    }

    /// The key source for a program calling as `caller` (used only for the directory servers,
    /// which answer only proven principals).
    public static func make(site: SiteConfiguration, database: String?, caller: DirectoryCaller,
                            logger: Logger = Logger(label: "securerpc.lookup")) throws -> any PublicKeySource {
        switch choice(site: site, database: database) {
        case let .file(path):
            return try PublicKeyLookup(path: path)
        case .directoryServers:
            let lookup = NetworkKeyLookup(directory: DirectoryClient(site: site, caller: caller, service: .integrity, logger: logger),
                                          settings: site.cacheSettings, changePollInterval: site.changePollInterval, logger: logger)
            lookup.startChangeFeed()
            return lookup
        }
    }
}
