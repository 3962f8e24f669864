// keyadmin import and export. Import checks the whole file first (all or nothing), adds new
// principals, and changes an existing one only with --replace — never to an older key than
// the directory has, and never bringing a revoked key back — with an audit row for each
// principal it changes. Export writes through a temporary file, so a crash never leaves half.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory

enum FileFormat: String, ExpressibleByArgument, CaseIterable {
    case publickey, json
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a publickey file or a JSON export, all or nothing.",
        discussion: """
        The whole file is checked first; a bad line is reported with its number and nothing is \
        written. Principals the directory lacks are added. One it has is left as it is when the \
        file differs (each such one is reported) unless --replace; even then a key older than \
        the directory's is not taken, and a key revoked here stays revoked (keyadmin enable).
        """
    )
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The file to import (- for standard input).") var file: String
    @Option(help: "publickey or json (default: json for *.json files, else publickey).") var format: FileFormat?
    @Flag(help: "Let the file's keys replace those of principals that exist (newer keys only; revoked stay revoked).") var replace = false

    func run() throws {
        // The directory first: a mistyped --db is reported before a large file is parsed.
        let directory = try database.store()
        let data: Data
        if file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            data = try readWhole(file, purpose: "nothing was imported")
        }
        let chosen = format ?? (file.hasSuffix(".json") ? .json : .publickey)
        let entries: [(Principal, [KeyEntry])]
        do {
            switch chosen {
            case .publickey: entries = try PublicKeyFile.parse(String(decoding: data, as: UTF8.self))
            case .json: entries = try DirectoryDocument.parse(data)
            }
        } catch {
            throw Failure("\(file): \(ErrorText.describe(error)); nothing was imported")
        }
        var progress = ProgressBar(total: entries.count, label: "import")
        let report = try directory.importEntries(entries, actor: Actor.current, source: file, replace: replace) { progress.update($0) }
        for kept in report.keptAsTheyWere {
            warn("\(kept.netname): left as it is: the file \(kept.reason)" + (replace ? "" : " (--replace takes the file's keys)"))
        }
        for revoked in report.stillRevoked {
            warn("\(revoked): revoked here, stays revoked (keyadmin enable serves it again)")
        }
        print("imported \(file): \(report.summary)")
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export as a publickey file (dh192-des keys) or JSON (everything).")
    @OptionGroup var database: DatabaseOptions
    @Option(help: "publickey or json.") var format: FileFormat = .publickey
    @Option(name: .shortAndLong, help: "Write here instead of standard output.") var output: String?

    func run() throws {
        let entries = try database.storeForReading().allEntries()
        let data: Data
        switch format {
        case .publickey: data = Data(PublicKeyFile.render(entries).utf8)
        case .json: data = try DirectoryDocument.encoder().encode(DirectoryDocument(entries)) + Data("\n".utf8)
        }
        if let output {
            // Temp file + rename: a crash never leaves a half-written export.
            let temp = output + ".tmp-\(getpid())"
            let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Failure("cannot write \(output) (\(String(cString: strerror(errno)))); nothing was exported") }
            var written = 0
            let failure: Int32? = data.withUnsafeBytes { bytes in
                while written < bytes.count {
                    let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
                    if n < 0 { if errno == EINTR { continue }; return errno }
                    written += n
                }
                return fsync(fd) == 0 ? nil : errno
            }
            close(fd)
            if let failure {
                unlink(temp)
                throw Failure("cannot write \(output) (\(String(cString: strerror(failure)))); nothing was exported")
            }
            guard rename(temp, output) == 0 else {
                let why = String(cString: strerror(errno))
                unlink(temp)
                throw Failure("cannot write \(output) (\(why)); nothing was exported")
            }
        } else {
            FileHandle.standardOutput.write(data)
        }
    }
}

/// A whole file, or a one-line failure naming it and the system's reason.
func readWhole(_ path: String, purpose: String) throws -> Data {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw Failure("cannot read \(path) (\(String(cString: strerror(errno)))); \(purpose)") }
    defer { close(fd) }
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 {
            if errno == EINTR { continue }
            throw Failure("cannot read \(path) (\(String(cString: strerror(errno)))); \(purpose)")
        }
        if n == 0 { return data }
        data.append(contentsOf: buffer[0..<n])
    }
}
