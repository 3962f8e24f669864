// keyadmin: the administrator's tool for the key directory, in the spirit of newkey and
// chkey: create, re-password, rotate, list, revoke, enable and remove keys, import and
// export the classic /etc/publickey format and JSON, verify the file and every entry.
// Every failure is one line on stderr that names the thing (path, line, netname) and the
// way out, in words: never a Swift type name or an errno tuple.

import ArgumentParser
import Release
import Foundation
import KeyCrypto
import KeyDirectory

@main
struct KeyAdmin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyadmin",
        abstract: "Manage the Secure RPC key directory.",
        discussion: """
        The database defaults to \(SQLiteKeyDirectory.defaultPath) (or $SECURERPC_DB); every \
        command takes --db PATH, and only init creates it. Changes are recorded in an \
        append-only audit trail.
        """,
        version: SecureRPCRelease.versionLine("keyadmin"),
        subcommands: [Init.self, NewKey.self, ChKey.self, List.self, Show.self, Revoke.self, Enable.self, Remove.self,
                      Import.self, Export.self, Verify.self, Audit.self, Grant.self, RevokeRole.self, EnrollHost.self, EnrollService.self, Fingerprint.self]
    )

    static func main() {
        var command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            // --help and friends exit cleanly with their text; a usage error is one line.
            if exitCode(for: error) == .success { exit(withError: error) }
            let message = self.message(for: error).split(whereSeparator: \.isNewline).joined(separator: "; ")
            fail("\(message) (keyadmin help for usage)", status: exitCode(for: error).rawValue)
        }
        do {
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            // `keyadmin SUBCOMMAND --help` and `keyadmin help SUBCOMMAND` arrive here as a
            // help command whose run() throws the help request: print the help, exit 0.
            if exitCode(for: error) == .success { exit(withError: error) }
            fail(ErrorText.describe(error), status: 1)
        }
    }

    static func fail(_ message: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data("keyadmin: \(message)\n".utf8))
        Foundation.exit(status)
    }
}

/// Errors in the administrator's words.
enum ErrorText {
    static func describe(_ error: any Error) -> String {
        switch error {
        case let failure as Failure: return failure.description
        case let error as DirectoryError: return error.description
        case let error as KeyCryptoError: return error.description
        case let error as ValidationError: return error.message
        case let error as CocoaError:
            return error.filePath.map { "\($0): \(error.localizedDescription)" } ?? error.localizedDescription
        default:
            return "unexpected failure: \(String(describing: error).prefix(200))"
        }
    }
}

/// Warnings and notes go to stderr, prefixed like errors, so that scripts reading stdout
/// get only results.
func warn(_ message: String) {
    FileHandle.standardError.write(Data("keyadmin: \(message)\n".utf8))
}
