// keylist's two ways of saying what the keyserver answered: lines for a person (times in the
// local zone, like klist) and JSON for scripts (UTC ISO 8601 and Unix seconds). Works only
// on the public facts of KEYX_STATUS.

import Foundation
import KeyServer

struct KeyListReport {
    let socket: String
    let status: KeyxStatus

    var loggedIn: Bool { !status.caller.held.isEmpty }
    private var isRoot: Bool { status.caller.uid == 0 }

    var notLoggedIn: String {
        isRoot
            ? "not logged in: the keyserver at \(socket) holds no host key (root: keylogin -r)"
            : "not logged in: the keyserver at \(socket) holds no keys for uid \(status.caller.uid) (run keylogin)"
    }

    func text() -> String {
        var lines: [String] = []
        if loggedIn {
            let caller = status.caller
            lines.append("Keyserver: \(socket)")
            lines.append("Netname:   \(Self.netname(caller))" + (isRoot ? " (uid 0: the host's key)" : " (uid \(caller.uid))"))
            lines.append("")
            lines.append("Since" + String(repeating: " ", count: Self.timeWidth - 3) + "Mechanism")
            for held in caller.held { lines.append("\(Self.localTime(held.since))  \(held.mechanism)") }
        }
        if !status.files.isEmpty {
            if !lines.isEmpty { lines.append("") }
            lines.append("Key files the keyserver loads:")
            for file in status.files {
                let kind = file.holder.uid == 0 ? "root key file" : "service key of uid \(file.holder.uid)"
                // One time per file: the latest, since when all of these have been held.
                let holds = file.holder.held.isEmpty
                    ? "holds nothing for uid \(file.holder.uid)"
                    : "holds " + file.holder.held.map(\.mechanism).joined(separator: ", ")
                        + " since \(Self.localTime(file.holder.held.map(\.since).max()!))"
                let name = file.holder.netname.isEmpty ? "" : " as \(file.holder.netname)"
                lines.append("  \(file.path) (\(kind)): \(file.present ? "present" : "missing"); the keyserver \(holds)\(name)")
            }
        }
        return lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
    }

    func json() -> String {
        let document = Document(keyserver: socket, loggedIn: loggedIn, caller: Holder(status.caller),
                                keyFiles: status.files.map { KeyFile(path: $0.path, present: $0.present, holder: Holder($0.holder)) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        // Encoding these plain strings, numbers and arrays cannot fail.
        return String(decoding: try! encoder.encode(document), as: UTF8.self) + "\n"
    }

    // MARK: JSON shape

    private struct Document: Encodable {
        var keyserver: String
        var loggedIn: Bool
        var caller: Holder
        var keyFiles: [KeyFile]
    }

    private struct Holder: Encodable {
        var uid: UInt32
        var netname: String?
        var held: [Held]

        init(_ holder: KeyxHolder) {
            uid = holder.uid
            netname = holder.netname.isEmpty ? nil : holder.netname
            held = holder.held.map { Held(mechanism: $0.mechanism, since: KeyListReport.utcTime($0.since), sinceUnix: $0.since) }
        }
    }

    private struct Held: Encodable {
        var mechanism: String
        var since: String
        var sinceUnix: UInt64
    }

    private struct KeyFile: Encodable {
        var path: String
        var present: Bool
        var holder: Holder
    }

    // MARK: formatting

    private static let timeWidth = 23

    private static func netname(_ holder: KeyxHolder) -> String {
        holder.netname.isEmpty ? "(none recorded: the key came from a key file)" : holder.netname
    }

    static func localTime(_ seconds: UInt64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    static func utcTime(_ seconds: UInt64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }
}
