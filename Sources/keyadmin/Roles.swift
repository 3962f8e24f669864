// Roles in the directory: `admin` (keydird's administration procedures) and `host` (an
// enrolled host, whose keyserver may fetch users' sealed keys for keylogin). Granted and
// taken on the directory file here; every change is audited.

import ArgumentParser
import KeyDirectory

extension PrincipalRole: ExpressibleByArgument {}

struct Grant: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Give a principal a role: admin (administers the site through keydird) or host (an enrolled host).",
        discussion: "Example: keyadmin grant host unix.client1@example.org"
    )
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "admin or host.") var role: PrincipalRole
    @OptionGroup var who: PrincipalArgument

    func run() throws {
        let netname = try who.netname()
        try database.store().grant(role, to: netname, actor: Actor.current)
        print("\(netname): role \(role.rawValue) granted")
    }
}

struct RevokeRole: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke-role", abstract: "Take a role away from a principal.")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "admin or host.") var role: PrincipalRole
    @OptionGroup var who: PrincipalArgument

    func run() throws {
        let netname = try who.netname()
        try database.store().revokeRole(role, from: netname, actor: Actor.current)
        print("\(netname): role \(role.rawValue) taken away")
    }
}
