// keylogin and chkey on a host without keys.db: the principal's entry (sealed keys, tag salt)
// through this host's keyserver (KEYX_FETCH_SEALED), which fetched it from keydird as the
// enrolled host. One place for the call, the decoding and the check that the answer is for
// the netname asked.

import KeyDirectory
import KeyServer
import NIOCore

public enum SealedKeyFetch {
    public struct Refused: Error, CustomStringConvertible {
        public let description: String
    }

    /// keydird's entry for `netname` (its keys checked), as the keyserver handed it over.
    public static func entry(of netname: String, through keyserver: KeyServerClient) async throws -> (entry: KdEntry, keys: [KeyEntry]) {
        switch try await keyserver.performStrong({ try await $0.keyxFetchSealed(netname) }) {
        case let .keySuccess(bytes):
            var buffer = ByteBuffer(bytes: bytes)
            let entry = try KdEntry(xdr: &buffer)
            return (entry, try KeyDirectoryServer.keyEntries(of: entry, netname: netname))
        case let .default(_, message):
            throw Refused(description: "cannot fetch the keys of \(netname) through this host's keyserver: \(message)")
        }
    }
}
