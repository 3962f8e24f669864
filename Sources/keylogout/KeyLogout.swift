// keylogout: tells this host's keyserver to forget the caller's secret keys.

import ArgumentParser
import Release
import Foundation
import KeyServer

@main
struct KeyLogout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keylogout",
        abstract: "Remove your secret key from the keyserver.",
        version: SecureRPCRelease.versionLine("keylogout")
    )

    @Option(help: "The keyserver's socket.") var socket = KeyServerPaths.socket
    @Flag(name: .customShort("f"), help: "Root only: also log out root (host services lose their key).") var force = false

    func run() async throws {
        if getuid() == 0 && !force {
            FileHandle.standardError.write(Data("keylogout: root must give -f (host services would lose their key)\n".utf8))
            throw ExitCode.failure
        }
        do {
            let client = try KeyServerClient(socketPath: socket)
            // Say so when there was nothing to remove (a user who thinks they logged in elsewhere
            // should not read "removed").
            var held = false
            if case .keySuccess = try await client.perform({ try await $0.keyNetGet() }) { held = true }
            for mechanism: KeyxMechanism in [.keyxFfdhe2048, .keyxFfdhe3072, .keyxFfdhe4096] where !held {
                if case .keySuccess = try await client.performStrong({ try await $0.keyxPublic(mechanism) }) { held = true }
            }
            if !held {
                await client.close()
                print("keylogout: the keyserver held no keys for you; nothing to remove")
                return
            }
            let status = try await client.perform { try await $0.keySet([UInt8](repeating: 0, count: 48)) }
            let strongStatus = try await client.performStrong { try await $0.keyxClear() }
            await client.close()
            guard status == .keySuccess, strongStatus == .keySuccess else { throw KeyServerClientError.status(status == .keySuccess ? strongStatus : status) }
            print("keylogout: your keys have been removed from the keyserver")
        } catch {
            FileHandle.standardError.write(Data("keylogout: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
