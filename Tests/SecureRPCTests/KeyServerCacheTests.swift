// The keyserver's derived-key cache and secret handling (issue 12 items 6 and 7, issue 13
// item 1's keyserver fairness), on KeyServerCore and StrongKeyStore directly:
// - a KEY_SET / KEYX_SET landing while a derive computes (a hook in that gap) no longer leaves
//   the old secret's result cached under the new key (before: only presence was re-checked);
// - one uid deriving with thousands of peers evicts only its own entries (before: one
//   host-wide FIFO that any local user could flush);
// - the secret a KEY_SET / KEYX_SET brought is zeroed in its own storage (before: a
//   copy-on-write copy was wiped), and the constant-time exponentiations zero their scratch.

import Foundation
@_spi(Testing) import KeyCrypto
import KeyServer
import NIOConcurrencyHelpers
import XCTest

final class KeyServerCacheTests: XCTestCase {
    private func secretBytes(_ key: DHPrivateKey) -> [UInt8] { key.secret.withUnsafeBytes { Array($0) } }

    func testStrongKeyChangedDuringADeriveIsNotCachedUnderTheNewKey() throws {
        let old = DHPrivateKey.generate(group: .ffdhe2048), new = DHPrivateKey.generate(group: .ffdhe2048)
        let peer = DHPrivateKey.generate(group: .ffdhe2048).publicKey
        let info = Array("info".utf8)
        let storeBox = NIOLockedValueBox<StrongKeyStore?>(nil)
        let armed = NIOLockedValueBox(true)
        let newSecret = secretBytes(new)
        // The hook runs after DH(old, peer) was computed and before it is stored: the user
        // runs keylogin with a new key right then.
        let store = StrongKeyStore(afterComputing: {
            guard armed.withLockedValue({ let was = $0; $0 = false; return was }) else { return }
            _ = storeBox.withLockedValue { $0 }!.set(uid: 7001, mechanism: .keyxFfdhe2048, secret: Array(newSecret))
        })
        storeBox.withLockedValue { $0 = store }
        XCTAssertEqual(store.set(uid: 7001, mechanism: .keyxFfdhe2048, secret: secretBytes(old)), .keySuccess)
        _ = store.derive(uid: 7001, mechanism: .keyxFfdhe2048, peer: peer.bytes, info: info)

        // What a fresh keyserver holding only the new key answers.
        let reference = StrongKeyStore()
        XCTAssertEqual(reference.set(uid: 7001, mechanism: .keyxFfdhe2048, secret: secretBytes(new)), .keySuccess)
        guard case let .keySuccess(expected) = reference.derive(uid: 7001, mechanism: .keyxFfdhe2048, peer: peer.bytes, info: info),
              case let .keySuccess(after) = store.derive(uid: 7001, mechanism: .keyxFfdhe2048, peer: peer.bytes, info: info) else {
            return XCTFail("derive failed")
        }
        XCTAssertEqual(after, expected, "after the change, K_ss comes from the new key, not a cached DH(old, peer)")
    }

    func testLegacyKeySetDuringADeriveIsNotCachedUnderTheNewKey() throws {
        let old = DHPrivateKey.generate(group: .dh192des), new = DHPrivateKey.generate(group: .dh192des)
        let peer = DHPrivateKey.generate(group: .dh192des).publicKey
        let coreBox = NIOLockedValueBox<KeyServerCore?>(nil)
        let armed = NIOLockedValueBox(true)
        let newHex = Array(new.secretHex.utf8)
        let core = KeyServerCore(afterComputing: {
            guard armed.withLockedValue({ let was = $0; $0 = false; return was }) else { return }
            _ = coreBox.withLockedValue { $0 }!.setSecret(uid: 7002, hex: Array(newHex))
        })
        coreBox.withLockedValue { $0 = core }
        XCTAssertEqual(core.setSecret(uid: 7002, hex: Array(old.secretHex.utf8)), .keySuccess)
        _ = core.conversationKey(uid: 7002, peerPublicKey: Array(peer.hex.utf8))

        let reference = KeyServerCore()
        XCTAssertEqual(reference.setSecret(uid: 7002, hex: Array(new.secretHex.utf8)), .keySuccess)
        XCTAssertEqual(core.conversationKey(uid: 7002, peerPublicKey: Array(peer.hex.utf8)),
                       reference.conversationKey(uid: 7002, peerPublicKey: Array(peer.hex.utf8)),
                       "the DES key comes from the new secret")
    }

    func testOneUIDDerivingWithManyPeersEvictsOnlyItsOwnEntries() throws {
        let store = StrongKeyStore(cacheCapacity: 256, perUIDCapacity: 32)
        let victim = DHPrivateKey.generate(group: .ffdhe2048), flooder = DHPrivateKey.generate(group: .ffdhe2048)
        XCTAssertEqual(store.set(uid: 7010, mechanism: .keyxFfdhe2048, secret: secretBytes(victim)), .keySuccess)
        XCTAssertEqual(store.set(uid: 7011, mechanism: .keyxFfdhe2048, secret: secretBytes(flooder)), .keySuccess)
        let victimPeers = (0..<8).map { _ in DHPrivateKey.generate(group: .ffdhe2048).publicKey.bytes }
        for peer in victimPeers { _ = store.derive(uid: 7010, mechanism: .keyxFfdhe2048, peer: peer, info: [1]) }
        // The flooder derives with 1,000 distinct (valid) peers: 2..1001 are in range.
        for value in 2..<1002 {
            var peer = [UInt8](repeating: 0, count: 256)
            peer[254] = UInt8(value >> 8); peer[255] = UInt8(value & 0xff)
            _ = store.derive(uid: 7011, mechanism: .keyxFfdhe2048, peer: peer, info: [1])
        }
        XCTAssertEqual(store.cachedEntries(uid: 7011), 32, "the flooder keeps at most its share")
        XCTAssertEqual(store.cachedEntries(uid: 7010), 8, "the victim's entries survive")
        let before = store.cacheStatistics.hits
        for peer in victimPeers { _ = store.derive(uid: 7010, mechanism: .keyxFfdhe2048, peer: peer, info: [2]) }
        XCTAssertEqual(store.cacheStatistics.hits - before, 8, "every victim derive is a cache hit: no modexp")

        // The legacy cache has the same shares.
        let core = KeyServerCore(cacheCapacity: 256, perUIDCapacity: 32)
        XCTAssertEqual(core.setSecret(uid: 7010, hex: Array(DHPrivateKey.generate(group: .dh192des).secretHex.utf8)), .keySuccess)
        XCTAssertEqual(core.setSecret(uid: 7011, hex: Array(DHPrivateKey.generate(group: .dh192des).secretHex.utf8)), .keySuccess)
        let legacyPeers = (0..<8).map { _ in Array(DHPrivateKey.generate(group: .dh192des).publicKey.hex.utf8) }
        for peer in legacyPeers { _ = core.conversationKey(uid: 7010, peerPublicKey: peer) }
        for _ in 0..<300 { _ = core.conversationKey(uid: 7011, peerPublicKey: Array(DHPrivateKey.generate(group: .dh192des).publicKey.hex.utf8)) }
        let legacyBefore = core.cacheStatistics.hits
        for peer in legacyPeers { _ = core.conversationKey(uid: 7010, peerPublicKey: peer) }
        XCTAssertEqual(core.cacheStatistics.hits - legacyBefore, 8)
        XCTAssertLessThanOrEqual(core.cacheStatistics.entries, 40)
    }

    func testSecretsAreZeroedInTheirOwnStorage() throws {
        let strongSecret = secretBytes(DHPrivateKey.generate(group: .ffdhe2048))
        let strongAddress = strongSecret.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertEqual(StrongKeyStore().set(uid: 7020, mechanism: .keyxFfdhe2048, secret: strongSecret), .keySuccess)
        XCTAssertEqual(strongSecret.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }, strongAddress, "the same storage")
        XCTAssertTrue(strongSecret.allSatisfy { $0 == 0 }, "KEYX_SET's secret is zeroed where it lies")

        let legacyHex = Array(DHPrivateKey.generate(group: .dh192des).secretHex.utf8)
        XCTAssertEqual(KeyServerCore().setSecret(uid: 7020, hex: legacyHex), .keySuccess)
        XCTAssertTrue(legacyHex.allSatisfy { $0 == 0 }, "KEY_SET's hex secret is zeroed where it lies")

        // Key generation (the fixed-base comb) and shared secrets (mpn_sec_powm) zero their
        // scratch areas before freeing them.
        BigNumScratchTracking.start()
        defer { BigNumScratchTracking.stop() }
        for group in [DHGroupName.ffdhe2048, .dh192des] {
            let a = DHPrivateKey.generate(group: group), b = DHPrivateKey.generate(group: group)
            XCTAssertEqual(try a.sharedSecret(with: b.publicKey), try b.sharedSecret(with: a.publicKey))
        }
        let counts = BigNumScratchTracking.counts
        XCTAssertGreaterThanOrEqual(counts.zeroed, 4)
        XCTAssertEqual(counts.notZeroed, 0)
    }
}
