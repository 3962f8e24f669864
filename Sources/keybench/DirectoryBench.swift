// `keybench directory`: the key directory at scale. Builds a database of N principals
// (default 1,000,000) through the same import path keyadmin uses, reports the import rate,
// then looks up random netnames' public keys and reports lookups per second.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory

struct DirectoryBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "directory",
        abstract: "Import rate and public-key lookups per second on a large SQLite directory."
    )

    @Option(help: "Principals in the database.") var principals = 1_000_000
    @Option(help: "Seconds of lookups.") var seconds: Double = 5
    @Option(help: "Database file (default: a temporary file, removed afterwards).") var db: String?

    func run() throws {
        let path = db ?? FileManager.default.temporaryDirectory.appendingPathComponent("keybench-\(getpid()).db").path
        defer { if db == nil { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } } }
        let directory = try SQLiteKeyDirectory(path: path)

        // A publickey file's worth of entries from a few real key pairs.
        let password = SecretBytes(copying: Array("bench".utf8))
        let keys = (0..<16).map { _ in DHPrivateKey.generate(group: .dh192des) }
        let sealed = try keys.map { try XCrypt.encryptSecret($0, password: password) }
        var text = ""
        text.reserveCapacity(principals * 140)
        for i in 0..<principals {
            text += "unix.\(100_000 + i)@example.org \(keys[i % 16].publicKey.hex):\(sealed[i % 16])\n"
        }
        let parseStart = Date()
        let entries = try PublicKeyFile.parse(text)
        let parseSeconds = Date().timeIntervalSince(parseStart)
        let importStart = Date()
        _ = try directory.importEntries(entries, actor: "keybench", source: "generated", progress: nil)
        let importSeconds = Date().timeIntervalSince(importStart)
        let size = ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
            + ((try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0)

        var generator = SystemRandomNumberGenerator()
        func measure(_ body: (String) throws -> Void) rethrows -> Double {
            let start = Date()
            var count = 0
            while Date().timeIntervalSince(start) < seconds {
                for _ in 0..<256 {
                    try body("unix.\(100_000 + Int.random(in: 0..<principals, using: &generator))@example.org")
                }
                count += 256
            }
            return Double(count) / Date().timeIntervalSince(start)
        }
        let raw = try measure { netname in
            guard try directory.publicKeyHex(netname: netname, mechanism: .dh192des) != nil else { throw ValidationError("missing \(netname)") }
        }
        let validated = try measure { netname in
            guard try directory.publicKey(netname: netname, mechanism: .dh192des) != nil else { throw ValidationError("missing \(netname)") }
        }
        let misses = try measure { netname in
            _ = try directory.publicKeyHex(netname: "x" + netname, mechanism: .dh192des)
        }
        let lookup = try PublicKeyLookup(path: path)
        let fast = try measure { netname in
            guard try lookup.publicKeyHex(netname: netname, mechanism: .dh192des) != nil else { throw ValidationError("missing \(netname)") }
        }
        let fastValidated = try measure { netname in
            guard try lookup.publicKey(netname: netname, mechanism: .dh192des) != nil else { throw ValidationError("missing \(netname)") }
        }
        print("""
            keybench directory: \(principals) principals, SQLite WAL via GRDB, \(size / 1_048_576) MiB
              parse publickey text:    \(Int(Double(principals) / parseSeconds)) lines/s
              import (one transaction): \(Int(Double(principals) / importSeconds)) principals/s
              SQLiteKeyDirectory.publicKeyHex:   \(Int(raw)) lookups/s
              SQLiteKeyDirectory.publicKey:      \(Int(validated)) lookups/s (validated)
              SQLiteKeyDirectory miss:           \(Int(misses)) lookups/s
              PublicKeyLookup.publicKeyHex:      \(Int(fast)) lookups/s
              PublicKeyLookup.publicKey:         \(Int(fastValidated)) lookups/s (validated)
            """)
    }
}
