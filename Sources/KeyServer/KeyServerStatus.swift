// KEYX_STATUS, what keylist shows: the public facts about the keys the keyserver holds for
// the calling uid (netname, mechanism names, since when). Trust: the caller is checked by
// the same `actingUID` as every procedure that touches keys, so a caller without kernel peer
// credentials (not on the unix socket) gets AUTH_TOOWEAK and a user learns only about their
// own uid. Root also sees the key files keyserverd loads and what is held for their uids,
// as root could read those files anyway. No key, secret or public, is ever in the answer.

import Foundation
import KeyCrypto
import ONCRPC

/// The key files a keyserver loads for root and for services (keyserverd's `--root-key`
/// and `--service-key UID:PATH`), named in KEYX_STATUS answers to root.
public struct KeyServerKeyFiles: Sendable {
    public var rootKey: String?
    public var services: [(uid: UInt32, path: String)]

    public init(rootKey: String? = nil, services: [(uid: UInt32, path: String)] = []) {
        self.rootKey = rootKey
        self.services = services
    }
}

extension StrongKeyService {
    /// KEYX_STATUS. Always KEY_SUCCESS for an accepted caller: holding nothing is an answer
    /// ("not logged in"), not an error.
    public func keyxStatus(request: RPCRequest) async throws -> KeyxStatusRes {
        let uid = try identity.actingUID(request)
        var status = KeyxStatus(caller: holder(uid), files: [])
        // Acting as uid 0 means the kernel said the peer is root (`actingUID`).
        if uid == 0 {
            let files = (keyFiles.rootKey.map { [(uid: UInt32(0), path: $0)] } ?? []) + keyFiles.services
            // A path longer than PATH_MAX could not have been loaded either.
            status.files = files.filter { $0.path.utf8.count <= KeyserverConstants.keyxMaxpath }.prefix(KeyserverConstants.keyxMaxfiles).map { file in
                KeyxKeyFile(path: file.path, present: FileManager.default.fileExists(atPath: file.path), holder: holder(file.uid))
            }
        }
        return .keySuccess(status)
    }

    /// What both stores hold for `uid`: dh192-des first, then the groups in order.
    func holder(_ uid: UInt32) -> KeyxHolder {
        let legacy = identity.core.legacyHolding(uid: uid)
        let strong = store.holding(uid: uid)
        var held: [KeyxHeld] = []
        if let legacy { held.append(KeyxHeld(mechanism: DHGroupName.dh192des.rawValue, since: legacy.since)) }
        held += strong.since.map { KeyxHeld(mechanism: $0.group.rawValue, since: $0.since) }
        let netname = legacy?.netname ?? strong.netname ?? ""
        return KeyxHolder(uid: uid, netname: netname, held: held)
    }
}
