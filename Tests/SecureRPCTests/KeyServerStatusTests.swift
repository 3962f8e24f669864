// KEYX_STATUS (keylist's procedure) at the service, with the kernel's peer credentials faked:
// a caller not on the unix socket gets nothing, a user learns only about their own uid
// (claiming another uid is refused, as for every procedure that touches keys), only root sees
// the key files, and no answer carries key material.

import Foundation
import KeyCrypto
import KeyServer
import Logging
import NIOCore
import ONCRPC
import XCTest

final class KeyServerStatusTests: XCTestCase {
    private struct Unanswered: Error { var answer: KeyxStatusRes }

    private let files = KeyServerKeyFiles(rootKey: "/nonexistent/rootkey", services: [(uid: 4500, path: "/nonexistent/svc.key")])

    private func service() -> (StrongKeyService, KeyServerCore, StrongKeyStore) {
        let logger = Logger(label: "status-test") { _ in SwiftLogNoOpLogHandler() }
        let core = KeyServerCore(), strong = StrongKeyStore()
        return (StrongKeyService(store: strong, identity: KeyServerService(core: core, logger: logger), keyFiles: files), core, strong)
    }

    private func request(uid: UInt32, peer: UInt32?) -> RPCRequest {
        RPCRequest(xid: 1, program: SrpcKeyxV1Client.program, version: 1, procedure: 6,
                   caller: RPCCaller(flavor: .sys, uid: uid, gid: uid), arguments: ByteBuffer(),
                   context: RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil,
                                           peer: peer.map { PeerCredentials(pid: 1, uid: $0, gid: $0) }))
    }

    private func status(_ service: StrongKeyService, uid: UInt32, peer: UInt32?) async throws -> KeyxStatus {
        let answer = try await service.keyxStatus(request: request(uid: uid, peer: peer))
        guard case let .keySuccess(status) = answer else { throw Unanswered(answer: answer) }
        return status
    }

    func testAUserSeesTheirOwnNetnameMechanismsAndLoginTimeAndNoKey() async throws {
        let (service, core, strong) = service()
        let legacy = DHPrivateKey.generate(group: .dh192des), group = DHPrivateKey.generate(group: .ffdhe3072)
        let before = UInt64(Date().timeIntervalSince1970)
        XCTAssertEqual(core.setSecret(uid: 7001, hex: Array(legacy.secretHex.utf8), netname: "unix.7001@example.org"), .keySuccess)
        let secret = group.secret.withUnsafeBytes { Array($0) }
        XCTAssertEqual(strong.set(uid: 7001, mechanism: .keyxFfdhe3072, secret: secret, netname: "unix.7001@example.org"), .keySuccess)

        let mine = try await status(service, uid: 7001, peer: 7001)
        XCTAssertEqual(mine.caller.uid, 7001)
        XCTAssertEqual(mine.caller.netname, "unix.7001@example.org")
        XCTAssertEqual(mine.caller.held.map(\.mechanism), ["dh192-des", "ffdhe3072"])
        for held in mine.caller.held {
            XCTAssertGreaterThanOrEqual(held.since, before)
            XCTAssertLessThanOrEqual(held.since, UInt64(Date().timeIntervalSince1970) + 1)
        }
        XCTAssertTrue(mine.files.isEmpty, "key files are root's to see")

        // Neither secret nor public key, in any form, is in the bytes on the wire.
        let wire = Array(KeyxStatusRes.keySuccess(mine).xdrEncoded().readableBytesView)
        let hexWire = String(decoding: wire, as: UTF8.self)
        for text in [legacy.secretHex, legacy.publicKey.hex, group.secretHex] { XCTAssertFalse(hexWire.contains(text)) }
        for bytes in [group.publicKey.bytes, secret] {
            XCTAssertFalse(wire.indices.contains { wire[$0...].starts(with: bytes.prefix(16)) }, "key bytes in the answer")
        }

        // Logged out: the same question, nothing held.
        core.clear(uid: 7001)
        strong.clear(uid: 7001)
        let after = try await status(service, uid: 7001, peer: 7001)
        XCTAssertTrue(after.caller.held.isEmpty)
        XCTAssertEqual(after.caller.netname, "")
    }

    func testAnotherUidLearnsNothingAboutTheFirst() async throws {
        let (service, core, _) = service()
        XCTAssertEqual(core.setSecret(uid: 7001, hex: Array(DHPrivateKey.generate(group: .dh192des).secretHex.utf8), netname: "unix.7001@example.org"),
                       .keySuccess)
        let other = try await status(service, uid: 7002, peer: 7002)
        XCTAssertEqual(other.caller.uid, 7002)
        XCTAssertTrue(other.caller.held.isEmpty)
        XCTAssertEqual(other.caller.netname, "")

        // Claiming the first uid from another uid's socket is refused outright.
        do {
            _ = try await service.keyxStatus(request: request(uid: 7001, peer: 7002))
            XCTFail("uid 7002 asked as 7001 and was answered")
        } catch let error as RPCServerError {
            XCTAssertEqual(error, .authError(.tooWeak))
        }
    }

    func testACallerWithoutPeerCredentialsGetsNothing() async throws {
        let (service, core, _) = service()
        XCTAssertEqual(core.setSecret(uid: 0, hex: Array(DHPrivateKey.generate(group: .dh192des).secretHex.utf8)), .keySuccess)
        for uid: UInt32 in [0, 7001] {
            do {
                _ = try await service.keyxStatus(request: request(uid: uid, peer: nil))
                XCTFail("a caller over UDP/TCP (no peer credentials) was answered")
            } catch let error as RPCServerError {
                XCTAssertEqual(error, .authError(.tooWeak))
            }
        }
    }

    func testRootSeesTheHostKeyAndTheKeyFilesWithWhatIsHeldForThem() async throws {
        let (service, core, strong) = service()
        let serviceKey = DHPrivateKey.generate(group: .ffdhe2048)
        XCTAssertEqual(strong.set(uid: 4500, mechanism: .keyxFfdhe2048, secret: serviceKey.secret.withUnsafeBytes { Array($0) }), .keySuccess)
        let empty = try await status(service, uid: 0, peer: 0)
        XCTAssertTrue(empty.caller.held.isEmpty, "no host key yet")
        XCTAssertEqual(empty.files.map(\.path), ["/nonexistent/rootkey", "/nonexistent/svc.key"])
        XCTAssertEqual(empty.files.map(\.present), [false, false])
        XCTAssertEqual(empty.files[1].holder.uid, 4500)
        XCTAssertEqual(empty.files[1].holder.held.map(\.mechanism), ["ffdhe2048"])

        XCTAssertEqual(core.setSecret(uid: 0, hex: Array(DHPrivateKey.generate(group: .dh192des).secretHex.utf8)), .keySuccess)
        let host = try await status(service, uid: 0, peer: 0)
        XCTAssertEqual(host.caller.held.map(\.mechanism), ["dh192-des"])
        XCTAssertEqual(host.files[0].holder.held.map(\.mechanism), ["dh192-des"])

        // Root acting for a user (as root may, for every procedure) sees that user's keys only.
        let forUser = try await status(service, uid: 4500, peer: 0)
        XCTAssertEqual(forUser.caller.held.map(\.mechanism), ["ffdhe2048"])
        XCTAssertTrue(forUser.files.isEmpty)
    }
}
