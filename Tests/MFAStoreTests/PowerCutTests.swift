// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore
@testable import MFAStore

/// The rule that replaced the flush before each TOTP SUCCESS (JournalMarker, docs/robustness.md
/// "Replay across a power cut"): a SIGKILL loses nothing; a machine crash (a new boot id, the
/// journal not closed cleanly) makes every step acceptable before the last flushed lease end
/// count as used. A "power cut" here drops every slot after the newest marker's `durableSlots`,
/// which is what the page cache held and the disk did not.
final class PowerCutTests: XCTestCase {
    var root = ""
    let bootA = BootID.parse("6f1a0d35-6c1b-4a55-9d2e-3a1b2c3d4e5f")!
    let bootB = BootID.parse("0b7e2f11-2222-4333-8444-555566667777")!
    let bootC = BootID.parse("c0ffee00-1111-4222-8333-444455556666")!
    /// 2027-01-15 08:00:00 UTC, in milliseconds.
    let t0: Int64 = 1_800_000_000_000
    var now: Int64 = 0

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "mfagate-powercut-\(UUID().uuidString)"
        XCTAssertEqual(mkdir(root, 0o700), 0)
        now = t0
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func open(boot: [UInt8], window: Int = 1, bound: Int64 = 1_000) throws -> FileStore {
        let store = try FileStore(path: root, bootID: boot, clock: { [unowned self] in self.now },
                                  journalFlushBound: bound, window: window)
        store.defersJournalSync = true  // as the server runs it
        return store
    }

    func enroll(_ store: FileStore, _ name: String, method: OTPMethod = .totp, drift: Int = 0) throws {
        var r = UserRecord(user: try UserName(validating: name), parameters: .standard,
                           secret: Array("12345678901234567890".utf8), created: now / 1000 - 3600, recoveryCodes: [])
        r.method = method
        r.drift = drift
        try store.save(r)
    }

    /// A TOTP login accepted now: the step of now (plus drift) saved as the server's Authority does.
    @discardableResult
    func login(_ store: FileStore, _ name: String) throws -> Int64 {
        var r = try XCTUnwrap(try store.load(try UserName(validating: name)))
        let step = OTP.timeStep(unixTime: now / 1000, period: 30) + Int64(r.drift)
        XCTAssertGreaterThan(step, r.lastUsedStep ?? .min, "the step is still fresh")
        r.lastUsedStep = step
        r.lastSuccess = now / 1000
        try store.save(r)
        return step
    }

    func lastStep(_ store: FileStore, _ name: String) throws -> Int64? {
        try store.load(try UserName(validating: name))?.lastUsedStep
    }

    /// What a power cut leaves: the slots after the newest marker's `durableSlots` lose what the
    /// page cache held (here: zeros, as in a preallocated journal never written there before).
    func dropUnflushedTail() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: root + "/journal")))
        let generation = UInt32(bytes.withUnsafeBytes { ReplayJournal.get($0, at: 8, width: 4) })
        let markers = (1...2).compactMap { slot in
            bytes.withUnsafeBytes {
                JournalMarker.decode(UnsafeRawBufferPointer(rebasing: $0[slot * 96..<(slot + 1) * 96]), generation: generation)
            }
        }
        let newest = try XCTUnwrap(markers.max { $0.sequence < $1.sequence })
        let keep = newest.durableSlots * ReplayJournal.slotSize
        XCTAssertLessThan(keep, bytes.count)
        for i in keep..<bytes.count { bytes[i] = 0 }
        try Data(bytes).write(to: URL(fileURLWithPath: root + "/journal"))
    }

    /// The accepted step lived only in the page cache; the new boot still refuses it, and every
    /// step acceptable before the lease end (1 s after the last flushed marker) + window.
    func testANewBootAfterAnUncleanStopCountsEveryStepAcceptableBeforeTheLeaseEndAsUsed() throws {
        var accepted: Int64 = 0
        do {
            let store = try open(boot: bootA)
            try enroll(store, "alice")
            now += 400
            accepted = try login(store, "alice")
            XCTAssertFalse(store.repliesWaitForJournal, "inside the lease the reply does not wait for the disk")
            XCTAssertTrue(store.hasUnsyncedJournal)
        }  // killed: nothing flushed, nothing closed
        try dropUnflushedTail()
        now += 60_000  // the machine reboots in a minute
        let store = try open(boot: bootB)
        let floor = OTP.lastStepAcceptable(before: (t0 + 1_000) / 1000, period: 30, window: 1, drift: 0)
        XCTAssertEqual(try lastStep(store, "alice"), floor)
        XCTAssertGreaterThan(floor, accepted)
    }

    /// Control: the dropped tail really held the login: with the same boot id (which a real power
    /// cut never leaves) the step is lost. This is what the boot id rule exists for.
    func testControlTheDroppedTailHeldTheLogin() throws {
        do {
            let store = try open(boot: bootA)
            try enroll(store, "alice")
            try login(store, "alice")
        }
        try dropUnflushedTail()
        XCTAssertNil(try lastStep(try open(boot: bootA), "alice"))
    }

    /// SIGKILL: the page cache keeps every write, the boot is the same: the exact step, no horizon.
    func testASigkillInTheSameBootLosesNothingAndAddsNoHorizon() throws {
        var accepted: Int64 = 0
        do {
            let store = try open(boot: bootA)
            try enroll(store, "bob")
            accepted = try login(store, "bob")
        }
        let store = try open(boot: bootA)
        XCTAssertNil(store.journal.horizon)
        XCTAssertEqual(try lastStep(store, "bob"), accepted)
    }

    /// A clean stop flushes everything, then marks it: a later boot loses nothing and adds nothing.
    func testACleanStopAddsNoHorizonInANewBoot() throws {
        var accepted: Int64 = 0
        do {
            let store = try open(boot: bootA)
            try enroll(store, "carol")
            accepted = try login(store, "carol")
            try store.closeJournal()
        }
        now += 30_000
        let store = try open(boot: bootB)
        XCTAssertNil(store.journal.horizon)
        XCTAssertEqual(try lastStep(store, "carol"), accepted)
    }

    /// The new boot's clock is an hour behind (a dead RTC, NTP not synced yet): the horizon comes
    /// from the crashed run's own clock, so the lost steps are still refused; and a second crash
    /// before any login does not lose the horizon (every marker carries it).
    func testAClockSetBackAtBootStillRefusesTheLostStepsAcrossASecondCrash() throws {
        var accepted: Int64 = 0
        do {
            let store = try open(boot: bootA)
            try enroll(store, "dave")
            accepted = try login(store, "dave")
        }
        try dropUnflushedTail()
        now -= 3_600_000
        let floor = OTP.lastStepAcceptable(before: (t0 + 1_000) / 1000, period: 30, window: 1, drift: 0)
        do {
            let store = try open(boot: bootB)
            XCTAssertEqual(try lastStep(store, "dave"), floor)
        }
        now += 10_000
        let store = try open(boot: bootC)
        XCTAssertEqual(try lastStep(store, "dave"), floor)
        XCTAssertGreaterThan(floor, accepted)
    }

    /// The user's learnt drift moves the last acceptable step with it (both ways).
    func testTheLearntDriftMovesTheHorizonWithIt() throws {
        do {
            let store = try open(boot: bootA)
            try enroll(store, "alice", drift: 3)
            try enroll(store, "bob", drift: -2)
            try login(store, "alice")
            try login(store, "bob")
        }
        try dropUnflushedTail()
        let store = try open(boot: bootB)
        let base = OTP.timeStep(unixTime: (t0 + 1_000) / 1000, period: 30)
        XCTAssertEqual(try lastStep(store, "alice"), base + 1 + 3)
        XCTAssertEqual(try lastStep(store, "bob"), base + 1 - 2)
    }

    /// HOTP counters are file rewrites, durable before the reply; no horizon applies to them.
    func testHOTPCountersAreDurableBeforeTheReplyAndGetNoHorizon() throws {
        do {
            let store = try open(boot: bootA)
            try enroll(store, "mallory", method: .hotp)
            var r = try XCTUnwrap(try store.load(try UserName(validating: "mallory")))
            r.counter = 5
            r.lastSuccess = now / 1000
            try store.save(r)
            XCTAssertFalse(store.hasUnsyncedJournal, "a counter went to the journal")
        }
        try dropUnflushedTail()
        let store = try open(boot: bootB)
        XCTAssertNotNil(store.journal.horizon)
        let r = try XCTUnwrap(try store.load(try UserName(validating: "mallory")))
        XCTAssertEqual(r.counter, 5)
        XCTAssertNil(r.lastUsedStep)
    }

    /// After the lease ends (no flush for a whole bound) a reply waits for a flush, which renews it.
    func testALoginOutsideTheLeaseWaitsForAFlushThatRenewsIt() throws {
        let store = try open(boot: bootA)
        try enroll(store, "alice")
        try enroll(store, "bob")
        now += 1_000
        try login(store, "alice")
        XCTAssertTrue(store.repliesWaitForJournal)
        try store.syncJournal()
        XCTAssertFalse(store.repliesWaitForJournal)
        now += 999
        try login(store, "bob")
        XCTAssertFalse(store.repliesWaitForJournal)
    }

    /// A wider window (reload, or a user's own) ends the lease until a flushed marker names it,
    /// and the horizon after a crash uses it even if the next run is configured narrower.
    func testAWiderWindowEndsTheLeaseAndTheHorizonKeepsIt() throws {
        do {
            let store = try open(boot: bootA)
            try enroll(store, "carol")
            store.replayWindow = 3
            try login(store, "carol")
            XCTAssertTrue(store.repliesWaitForJournal)
            try store.syncJournal()
            XCTAssertEqual(store.journal.marker.leadWindow, 3)
            now += 500
            try store.save(try XCTUnwrap(try store.load(try UserName(validating: "carol"))).withStep(offset: 1))
        }
        try dropUnflushedTail()
        let store = try open(boot: bootB, window: 1)
        let floor = OTP.lastStepAcceptable(before: (t0 + 1_000) / 1000, period: 30, window: 3, drift: 0)
        XCTAssertEqual(try lastStep(store, "carol"), floor)
    }

    /// A power cut during a flush can tear the marker being written: the other slot still holds
    /// the lease the replies left under.
    func testATornMarkerLeavesThePreviousOne() throws {
        var accepted: Int64 = 0
        do {
            let store = try open(boot: bootA)
            try enroll(store, "dave")
            accepted = try login(store, "dave")
            XCTAssertTrue(try store.startJournalSync())
            try store.finishJournalSync()
            let slot = 1 + Int(store.journal.marker.sequence % 2)
            let fd = Glibc.open(root + "/journal", O_RDWR)
            var byte: UInt8 = 0xAA
            XCTAssertEqual(pwrite(fd, &byte, 1, off_t(slot * ReplayJournal.slotSize + 30)), 1)
            close(fd)
        }
        let store = try open(boot: bootB)
        XCTAssertNotNil(store.journal.horizon)
        XCTAssertGreaterThan(try XCTUnwrap(try lastStep(store, "dave")), accepted)
    }

    /// Both markers damaged (never written so by the daemon): nothing is known, so every step
    /// acceptable until now, with the widest window, counts as used; the daemon still starts.
    func testBothMarkersDamagedCountEverythingUntilNowAsUsed() throws {
        do {
            let store = try open(boot: bootA)
            try enroll(store, "bob")
        }
        let fd = Glibc.open(root + "/journal", O_RDWR)
        let zeros = [UInt8](repeating: 0, count: 2 * ReplayJournal.slotSize)
        XCTAssertEqual(pwrite(fd, zeros, zeros.count, off_t(ReplayJournal.slotSize)), zeros.count)
        close(fd)
        now += 5_000
        let store = try open(boot: bootA)
        XCTAssertEqual(try lastStep(store, "bob"), OTP.lastStepAcceptable(before: now / 1000, period: 30, window: 10, drift: 0))
    }

    /// The clock went back an hour between a login and the flush: the marker still says the
    /// record's own time, so a power cut during that flush leaves the step inside the horizon.
    func testAClockJumpBackBeforeTheFlushKeepsTheMarkerAtTheLoginsTime() throws {
        let store = try open(boot: bootA)
        try enroll(store, "alice")
        try login(store, "alice")
        let loginTime = now
        now -= 3_600_000
        try store.syncJournal()
        XCTAssertGreaterThanOrEqual(store.journal.marker.durableUntil, loginTime)
    }

    /// A journal of format 1 (every record flushed before its SUCCESS) is read and rewritten in
    /// format 2; nothing was at risk, so no horizon even in a new boot.
    func testAFormat1JournalIsRewrittenWithItsRecordsAndNoHorizon() throws {
        do {
            let store = try open(boot: bootA)
            try enroll(store, "carol")
        }
        var header = [UInt8](repeating: 0, count: 96)
        header.replaceSubrange(0..<8, with: Array("MFAGJRN1".utf8))
        ReplayJournal.put(7, into: &header, at: 8, width: 4)
        header.replaceSubrange(88..<96, with: header.withUnsafeBytes { ReplayJournal.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<88])) })
        let created = now / 1000 - 3600
        let record = ReplayJournal.encodeRecord(user: "carol", entry: .init(created: created, step: 123, success: 456), generation: 7)
        try Data(header + record + [UInt8](repeating: 0, count: 96 * 4)).write(to: URL(fileURLWithPath: root + "/journal"))
        XCTAssertEqual(chmod(root + "/journal", 0o600), 0)
        let store = try open(boot: bootB)
        XCTAssertNil(store.journal.horizon)
        XCTAssertEqual(try lastStep(store, "carol"), 123)
        let magic = try Data(contentsOf: URL(fileURLWithPath: root + "/journal")).prefix(8)
        XCTAssertEqual(String(decoding: magic, as: UTF8.self), "MFAGJRN2")
    }

    func testBootIDsParseOnlyAsUUIDs() {
        XCTAssertEqual(BootID.parse("6f1a0d35-6c1b-4a55-9d2e-3a1b2c3d4e5f\n")?.count, 16)
        XCTAssertNil(BootID.parse("not a uuid"))
        XCTAssertNil(BootID.parse("00000000-0000-0000-0000-000000000000"), "all zeros means unknown")
        XCTAssertEqual(BootID.read(path: "/nonexistent"), JournalMarker.unknownBoot)
        XCTAssertNotEqual(BootID.read(), JournalMarker.unknownBoot, "the kernel's boot id")
    }

    /// An unknown boot id (unreadable /proc) never counts as the same boot.
    func testAnUnknownBootIsNeverTheSameBoot() {
        let marker = JournalMarker(bootID: JournalMarker.unknownBoot, durableUntil: t0, bound: 1_000, leadWindow: 1)
        XCTAssertNotNil(JournalMarker.horizon(after: [marker], markerless: false, bootID: JournalMarker.unknownBoot,
                                              now: t0, maximumWindow: 10))
    }
}

private extension UserRecord {
    func withStep(offset: Int64) -> UserRecord {
        var r = self
        r.lastUsedStep = (r.lastUsedStep ?? 0) + offset
        return r
    }
}
