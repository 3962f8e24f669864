// keylist: klist for Secure RPC. Asks this host's keyserver what it holds for the caller
// (KEYX_STATUS: netname, mechanisms, since when; for root also the key files keyserverd
// loads) and says so, with an exit status scripts can test: 0 logged in, 1 not logged in,
// 2 anything else. The keyserver answers only for the caller's own uid and never with a
// key, so nothing here is secret.

import ArgumentParser
import Foundation
import KeyServer
import ONCRPC
import Release
import SiteConfig

@main
struct KeyList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keylist",
        abstract: "Show what the keyserver holds for you: netname, mechanisms, since when.",
        discussion: """
        Exit status: 0 when the keyserver holds a key for you, 1 when it holds none (not \
        logged in: one line on standard error), 2 on any other error (keyserver unreachable, \
        bad configuration). Root's keys are the host's; root also sees the key files the \
        keyserver loads (its root key file and --service-key files) and what it holds for them.
        """,
        version: SecureRPCRelease.versionLine("keylist")
    )

    @Option(name: [.customLong("socket"), .customLong("keyserver-socket")],
            help: "The keyserver's socket (default: keyserver-socket of securerpc.conf, else \(KeyServerPaths.socket)).")
    var socket: String?
    @Option(help: "The site configuration (default: $SECURERPC_CONF, else \(SiteConfiguration.defaultPath) when present).") var config: String?
    @Flag(help: "Print the answer as JSON (the exit status is the same).") var json = false

    func run() async throws {
        let report: KeyListReport
        do {
            let site = try SiteConfiguration.load(path: config)
            let socket = self.socket ?? site.keyserverSocket ?? KeyServerPaths.socket
            let client = try KeyServerClient(socketPath: socket)
            let status: KeyxStatus
            do {
                status = try await client.status()
            } catch {
                await client.close()
                throw error
            }
            await client.close()
            report = KeyListReport(socket: socket, status: status)
        } catch {
            Self.fail("\(errorInWords(error))", status: 2)
        }
        print(json ? report.json() : report.text(), terminator: "")
        if !report.loggedIn {
            Self.fail(report.notLoggedIn, status: 1)
        }
    }

    /// One line on standard error, then the exit status. Plain `exit` rather than a thrown
    /// ExitCode: ArgumentParser would print its own line for some errors.
    private static func fail(_ message: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data("keylist: \(message)\n".utf8))
        Foundation.exit(status)
    }
}
