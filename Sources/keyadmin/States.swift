// keyadmin revoke, enable and remove: a key's state and a principal's existence. Revoking is
// undone only by enable (never by a new password or key pair); removing is for good, so it
// asks on a terminal and wants --yes from a script.

import ArgumentParser
import Foundation
import KeyCrypto
import KeyDirectory

struct Revoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke a principal's keys (all, or one mechanism): they are no longer served.",
        discussion: "keyadmin enable serves them again; chkey never does."
    )
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var who: PrincipalArgument
    @Option(help: "Only this mechanism.") var mechanism: DHGroupName?

    func run() throws {
        let netname = try who.netname()
        try database.store().revoke(netname: netname, mechanism: mechanism, actor: Actor.current)
        print("\(netname): \(mechanism.map { "\($0.rawValue) key" } ?? "all keys") revoked")
    }
}

struct Enable: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve revoked keys again (all, or one mechanism): revoke's counterpart.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var who: PrincipalArgument
    @Option(help: "Only this mechanism.") var mechanism: DHGroupName?

    func run() throws {
        let netname = try who.netname()
        try database.store().enable(netname: netname, mechanism: mechanism, actor: Actor.current)
        print("\(netname): \(mechanism.map { "\($0.rawValue) key" } ?? "all keys") enabled")
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a principal and all its keys, for good.",
        discussion: "Asks for confirmation on a terminal; scripts pass --yes. To stop a principal's keys from being served, revoke them instead."
    )
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var who: PrincipalArgument
    @Flag(help: "Do not ask for confirmation (for scripts).") var yes = false

    func run() throws {
        let netname = try who.netname()
        let directory = try database.store()
        guard try directory.principal(netname) != nil else { throw DirectoryError.noSuchPrincipal(netname) }
        if !yes {
            let keys = try directory.keys(of: netname).map(\.mechanism.rawValue)
            let what = "\(netname) and its \(keys.isEmpty ? "no" : keys.joined(separator: ", ")) keys"
            switch Terminal.confirm("Remove \(what) for good? (keyadmin revoke only stops serving them) [y/N] ") {
            case nil:
                throw Failure("remove deletes \(what) for good: add --yes to confirm (there is no terminal to ask on); nothing was removed")
            case false?:
                throw Failure("\(netname) was not removed")
            case true?:
                break
            }
        }
        try directory.remove(netname: netname, actor: Actor.current)
        print("\(netname): removed")
    }
}
