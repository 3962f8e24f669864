// The PostgreSQL store as a server's source of clients' public keys. Servers ask from async
// code (a GSS INIT, an AUTH_DH re-check): this answers there without the synchronous bridge,
// which would park a concurrency thread on a semaphore while the query needs one to run.

import KeyCrypto
import KeyDirectory
import PostgresNIO

extension PostgresKeyDirectory: PublicKeySource {
    public func fetchPublicKey(netname: String, mechanism: DHGroupName) async throws -> DHPublicKey? {
        let hex: String?
        do {
            hex = try await Self.first(client.execute(ActiveKeyStatement(netname: netname, mechanism: mechanism.rawValue), logger: logger))
        } catch {
            throw PostgresErrors.directoryError(error, location: location)
        }
        return try hex.map { try DHPublicKey(group: mechanism, hex: $0) }
    }

    /// Only a query can tell: callers on an event loop keep what they have and ask later.
    public func cachedPublicKey(netname: String, mechanism: DHGroupName) -> DHPublicKey?? {
        .none
    }
}
