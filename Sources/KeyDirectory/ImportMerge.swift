// The import rules for a principal that exists already, in one place for every store
// (SQLite, PostgreSQL): without `replace` nothing of it changes (a re-imported old export
// must not bring back rotated keys); with it, keys that differ are replaced unless older than
// the key here, a key revoked here stays revoked whatever the file says, and revocations in
// the file are applied. Pure: it decides from what the store read; the store writes.

import Foundation

package struct ImportMerge {
    package enum Write {
        case insert(KeyEntry)
        case upsert(KeyEntry)
    }

    /// The writes to make, in order.
    package private(set) var writes: [Write] = []
    /// What changed, for the principal's one audit row (empty: nothing changed, no row).
    package private(set) var done: [String] = []
    /// The mechanisms that differed, for that row.
    package private(set) var mechanisms = ""

    /// Decides what importing `imported` for `principal` changes, given its keys and tag
    /// salt here; counts what stays as it was into `report`. The store makes `writes`, and
    /// when `done` is not empty, writes one audit row and counts the principal replaced.
    package static func plan(_ principal: Principal, _ imported: [KeyEntry], existing: [KeyEntry], saltHere: Data?,
                             replace: Bool, into report: inout ImportReport) -> ImportMerge {
        var merge = ImportMerge()
        var differences: [(KeyEntry, KeyEntry?)] = []
        for key in imported {
            let present = existing.first { $0.mechanism == key.mechanism }
            if let present, present.publicKey == key.publicKey, present.sealedSecret == key.sealedSecret, present.state == key.state { continue }
            differences.append((key, present))
        }
        if differences.isEmpty {
            report.unchanged += 1
            return merge
        }
        guard replace else {
            let what = differences.map { key, present in
                present == nil ? "adds a \(key.mechanism.rawValue) key" : "has another \(key.mechanism.rawValue) key"
            }
            report.keptAsTheyWere.append(.init(netname: principal.netname, reason: what.joined(separator: ", ")))
            return merge
        }
        merge.mechanisms = differences.map(\.0.mechanism.rawValue).joined(separator: ",")
        for (key, present) in differences {
            var incoming = key
            // Tags compare only under one salt: foreign ones would make verify see
            // different passwords where there may be none.
            if principal.passwordSalt == nil || principal.passwordSalt != saltHere { incoming.passwordTag = nil }
            guard let present else {
                merge.writes.append(.insert(incoming))
                merge.done.append("added \(key.mechanism.rawValue)")
                continue
            }
            if present.state == .revoked {
                // Never resurrect: a revoked key stays revoked, whatever the file says.
                report.stillRevoked.append("\(principal.netname) \(key.mechanism.rawValue)")
                if present.publicKey == key.publicKey { continue }
                incoming.state = .revoked
                merge.writes.append(.upsert(incoming))
                merge.done.append("replaced \(key.mechanism.rawValue) (stays revoked)")
                continue
            }
            let importedTime = key.rotatedAt ?? key.createdAt, hereTime = present.rotatedAt ?? present.createdAt
            if present.publicKey != key.publicKey || present.sealedSecret != key.sealedSecret, importedTime < hereTime {
                report.keptAsTheyWere.append(.init(netname: principal.netname,
                                                   reason: "has an older \(key.mechanism.rawValue) key than the one here"))
                continue
            }
            merge.writes.append(.upsert(incoming))
            merge.done.append(key.state == .revoked && present.state == .active ? "revoked \(key.mechanism.rawValue)" : "replaced \(key.mechanism.rawValue)")
        }
        return merge
    }
}
