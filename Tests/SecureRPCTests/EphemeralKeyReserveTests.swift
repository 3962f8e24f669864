// The ephemeral keys RPCSEC_GSS set-ups take are made ahead, in the background
// (EphemeralKeyReserve): each is handed out once, none is older than the reserve's maximum
// age when used, the older ones are wiped unused, a process that makes one set-up of a group
// leaves no spare behind, and a flood of set-ups makes no more keys than set-ups plus the
// reserve's depth.

import Foundation
@_spi(Testing) import KeyCrypto
import NIOConcurrencyHelpers
import NIOCore
import XCTest
@testable import SecureRPC

final class EphemeralKeyReserveTests: XCTestCase {
    let group = DHGroupName.ffdhe2048

    func testTheFirstSetUpOfAGroupLeavesNoSpareBehind() {
        let reserve = EphemeralKeyReserve(enabled: true)
        _ = reserve.take(group)
        reserve.settle()
        XCTAssertEqual(reserve.readyCount(group), 0)
        XCTAssertEqual(reserve.counts, .init(takenReady: 0, madeInline: 1, madeAhead: 0, discardedStale: 0))
    }

    func testFromTheSecondSetUpOnKeysAreMadeAheadAndEachIsHandedOutOnce() {
        let reserve = EphemeralKeyReserve(enabled: true)
        var seen = Set<[UInt8]>()
        for _ in 0..<12 {
            let key = reserve.take(group)
            XCTAssertTrue(seen.insert(key.publicKey.bytes).inserted, "a key was handed out twice")
            reserve.settle()
        }
        XCTAssertEqual(reserve.readyCount(group), reserve.depth)
        let counts = reserve.counts
        XCTAssertEqual(counts.madeInline, 2, "the first two set-ups make their own; the rest find one ready")
        XCTAssertEqual(counts.takenReady, 10)
        XCTAssertEqual(counts.madeAhead, 10 + reserve.depth)
        // Other groups are kept apart.
        XCTAssertEqual(reserve.readyCount(.ffdhe3072), 0)
        XCTAssertEqual(reserve.take(.ffdhe3072).group, .ffdhe3072)
    }

    func testAReadyKeyOlderThanTheMaximumAgeIsWipedUnused() {
        let clock = NIOLockedValueBox<TimeInterval>(1000)
        let reserve = EphemeralKeyReserve(maximumAge: 30, enabled: true, now: { clock.withLockedValue { $0 } })
        SecretBytesTracking.start()
        defer { SecretBytesTracking.stop() }
        _ = reserve.take(group)
        _ = reserve.take(group)
        reserve.settle()
        XCTAssertEqual(reserve.readyCount(group), 2)
        clock.withLockedValue { $0 += 30.5 }
        _ = reserve.take(group)
        var counts = reserve.counts
        XCTAssertEqual(counts.discardedStale, 2)
        XCTAssertEqual(counts.takenReady, 0)
        XCTAssertEqual(counts.madeInline, 3)
        // Just young enough is used.
        reserve.settle()
        clock.withLockedValue { $0 += 30 }
        _ = reserve.take(group)
        counts = reserve.counts
        XCTAssertEqual(counts.takenReady, 1)
        XCTAssertEqual(counts.discardedStale, 2)
        reserve.clear()
        let secretWidth = DHGroup.named(group).byteLength
        XCTAssertEqual(SecretBytesTracking.live(count: secretWidth), 0, "every key made is released")
        XCTAssertEqual(SecretBytesTracking.releasedNotZeroed, 0, "and zeroed first")
    }

    func testTheSharedReserveIsOnWhereTheProcessHasMoreThanOneCPU() {
        XCTAssertEqual(EphemeralKeyReserve.shared.isEnabled, System.coreCount > 1)
        XCTAssertFalse(EphemeralKeyReserve(enabled: false).isEnabled)
    }

    func testTurnedOffEveryKeyIsMadeAtItsSetUpAndNoneWaits() {
        let reserve = EphemeralKeyReserve(enabled: true)
        _ = reserve.take(group)
        _ = reserve.take(group)
        reserve.settle()
        XCTAssertEqual(reserve.readyCount(group), 2)
        reserve.isEnabled = false
        XCTAssertEqual(reserve.readyCount(group), 0, "turning it off wipes the ready keys")
        for _ in 0..<4 { _ = reserve.take(group) }
        reserve.settle()
        XCTAssertEqual(reserve.readyCount(group), 0)
        XCTAssertEqual(reserve.counts.madeInline, 6)
        XCTAssertEqual(reserve.counts.madeAhead, 2)
    }

    func testAFloodOfSetUpsMakesNoMoreKeysThanSetUpsPlusTheDepth() async {
        let reserve = EphemeralKeyReserve(enabled: true)
        let group = self.group
        let takes = 8 * 25
        let keys = await withTaskGroup(of: [[UInt8]].self) { tasks in
            for _ in 0..<8 {
                tasks.addTask { (0..<25).map { _ in reserve.take(group).publicKey.bytes } }
            }
            var all: [[UInt8]] = []
            for await some in tasks { all += some }
            return all
        }
        reserve.settle()
        XCTAssertEqual(keys.count, takes)
        XCTAssertEqual(Set(keys).count, takes, "a key was handed out twice")
        let counts = reserve.counts
        XCTAssertEqual(counts.takenReady + counts.madeInline, takes)
        XCTAssertLessThanOrEqual(counts.madeInline + counts.madeAhead, takes + reserve.depth)
        XCTAssertEqual(counts.madeAhead - counts.takenReady, reserve.readyCount(group))
    }
}
