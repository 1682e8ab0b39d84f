// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore
@testable import MFAStore

/// The replay journal keeps the rule "a code accepted is never accepted again, even after a crash"
/// while a login writes 96 bytes instead of a whole user file. Reopening a store is what a
/// daemon restarted after SIGKILL does.
final class ReplayJournalTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "mfagate-journal-\(UUID().uuidString)"
        XCTAssertEqual(mkdir(root, 0o700), 0)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func record(_ name: String = "alice", created: Int64 = 1_700_000_000) throws -> UserRecord {
        UserRecord(user: try UserName(validating: name), parameters: .standard, secret: Array("12345678901234567890".utf8),
                   created: created, recoveryCodes: [])
    }

    func inode(_ name: String) -> UInt64 {
        var st = stat()
        XCTAssertEqual(stat(root + "/users/" + name, &st), 0)
        return UInt64(st.st_ino)
    }

    /// A login (replay state only) goes to the journal, not to the user's file, and survives a restart.
    func testALoginIsDurableWithoutRewritingTheUserFile() throws {
        var store: FileStore? = try FileStore(path: root)
        var r = try record()
        try store!.save(r)
        let before = inode("alice")
        r = try XCTUnwrap(try store!.load(r.user))
        r.lastUsedStep = 56_666_667
        r.lastSuccess = 1_700_000_010
        try store!.save(r)
        XCTAssertFalse(store!.hasUnsyncedJournal)
        XCTAssertEqual(inode("alice"), before, "the user file was rewritten for a login")
        store = nil  // the daemon dies; nothing else is flushed
        let reopened = try FileStore(path: root)
        let loaded = try XCTUnwrap(try reopened.load(r.user))
        XCTAssertEqual(loaded.lastUsedStep, 56_666_667)
        XCTAssertEqual(loaded.lastSuccess, 1_700_000_010)
    }

    /// With group commit the caller flushes; until then the store says so (the server holds replies).
    func testDeferredRecordsWaitForOneFlush() throws {
        do {
            let store = try FileStore(path: root)
            store.defersJournalSync = true
            for name in ["a1", "a2", "a3"] {
                try store.save(try record(name))
                var r = try XCTUnwrap(try store.load(try UserName(validating: name)))
                r.lastUsedStep = 10
                try store.save(r)
            }
            XCTAssertTrue(store.hasUnsyncedJournal)
            try store.syncJournal()
            XCTAssertFalse(store.hasUnsyncedJournal)
        }
        let reopened = try FileStore(path: root)
        for name in ["a1", "a2", "a3"] {
            XCTAssertEqual(try reopened.load(try UserName(validating: name))?.lastUsedStep, 10)
        }
    }

    /// A flush on the flush thread: the store says it runs until its result is collected, records
    /// appended meanwhile wait for the next one, and everything is on disk for a restarted daemon.
    func testABackgroundFlushIsCollectedAndTheRecordsSurvive() throws {
        do {
            let store = try FileStore(path: root)
            store.defersJournalSync = true
            XCTAssertTrue(try store.startJournalSync(), "a renewal of the lease flushes even with no record")
            try store.finishJournalSync()
            for name in ["b1", "b2"] {
                try store.save(try record(name))
                var r = try XCTUnwrap(try store.load(try UserName(validating: name)))
                r.lastUsedStep = 20
                try store.save(r)
            }
            XCTAssertTrue(try store.startJournalSync())
            XCTAssertTrue(store.journalSyncPending)
            XCTAssertFalse(store.hasUnsyncedJournal)
            let fd = try XCTUnwrap(store.journalSyncFD)
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            XCTAssertEqual(poll(&ready, 1, 10_000), 1, "the flush thread never answered")
            // A record appended while the flush runs waits for the next one.
            var r = try XCTUnwrap(try store.load(try UserName(validating: "b1")))
            r.lastUsedStep = 21
            try store.save(r)
            XCTAssertTrue(store.hasUnsyncedJournal)
            try store.finishJournalSync()
            XCTAssertFalse(store.journalSyncPending)
            XCTAssertNil(store.journalSyncFD)
            XCTAssertTrue(try store.startJournalSync())
            try store.finishJournalSync()  // waits when poll was not asked
            XCTAssertFalse(store.journalSyncPending)
        }
        let reopened = try FileStore(path: root)
        XCTAssertEqual(try reopened.load(try UserName(validating: "b1"))?.lastUsedStep, 21)
        XCTAssertEqual(try reopened.load(try UserName(validating: "b2"))?.lastUsedStep, 20)
    }

    /// A rollover while a background flush runs waits for it before closing the old file, and the
    /// flush's result is still there to collect (the server releases its replies on it).
    func testARolloverDuringABackgroundFlushKeepsItsResult() throws {
        let names = (0..<6).map { "r\($0)" }
        do {
            let store = try FileStore(path: root, journalSlots: 4)
            store.defersJournalSync = true
            for name in names { try store.save(try record(name)) }
            var r = try XCTUnwrap(try store.load(try UserName(validating: names[0])))
            r.lastUsedStep = 7
            try store.save(r)
            XCTAssertTrue(try store.startJournalSync())
            for name in names.dropFirst() {  // the slots run out: the journal is rewritten
                var r = try XCTUnwrap(try store.load(try UserName(validating: name)))
                r.lastUsedStep = 8
                try store.save(r)
            }
            XCTAssertTrue(store.journalSyncPending)
            XCTAssertNil(store.journalSyncFD, "the rollover collected the flush; poll has nothing to wait for")
            try store.finishJournalSync()
            XCTAssertFalse(store.journalSyncPending)
            try store.syncJournal()
        }
        let reopened = try FileStore(path: root, journalSlots: 4)
        XCTAssertEqual(try reopened.load(try UserName(validating: names[0]))?.lastUsedStep, 7)
        for name in names.dropFirst() {
            XCTAssertEqual(try reopened.load(try UserName(validating: name))?.lastUsedStep, 8, name)
        }
    }

    /// When the slots run out the journal is rewritten whole, and no state is lost across rewrites.
    func testRollingOverTheJournalKeepsEveryUsersState() throws {
        let names = (0..<20).map { "u\($0)" }
        do {
            let store = try FileStore(path: root, journalSlots: 4)
            for name in names { try store.save(try record(name)) }
            for step in Int64(1)...5 {
                for name in names {
                    var r = try XCTUnwrap(try store.load(try UserName(validating: name)))
                    r.lastUsedStep = step
                    try store.save(r)
                }
            }
        }
        let reopened = try FileStore(path: root, journalSlots: 4)
        for name in names {
            XCTAssertEqual(try reopened.load(try UserName(validating: name))?.lastUsedStep, 5, name)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/tmp"), [])
    }

    /// A torn or half-written slot is ignored, never misread; the records around it still count.
    func testADamagedRecordIsIgnoredAndTheOthersStillCount() throws {
        do {
            let store = try FileStore(path: root)
            for name in ["bob", "carol"] {
                try store.save(try record(name))
                var r = try XCTUnwrap(try store.load(try UserName(validating: name)))
                r.lastUsedStep = 42
                try store.save(r)
            }
        }
        // Corrupt bob's record (the first record slot): one flipped byte in the step.
        let fd = open(root + "/journal", O_RDWR)
        var byte: UInt8 = 0
        XCTAssertEqual(pread(fd, &byte, 1, off_t(ReplayJournal.firstRecordSlot * ReplayJournal.slotSize + 5)), 1)
        byte ^= 0xFF
        XCTAssertEqual(pwrite(fd, &byte, 1, off_t(ReplayJournal.firstRecordSlot * ReplayJournal.slotSize + 5)), 1)
        close(fd)
        let reopened = try FileStore(path: root)
        XCTAssertNil(try reopened.load(try UserName(validating: "bob"))?.lastUsedStep)
        XCTAssertEqual(try reopened.load(try UserName(validating: "carol"))?.lastUsedStep, 42)
    }

    /// A damaged header (or a journal that is not ours) stops the daemon with what to do.
    func testADamagedHeaderIsOneClearError() throws {
        _ = try FileStore(path: root)
        let fd = open(root + "/journal", O_RDWR)
        XCTAssertEqual(pwrite(fd, "garbage!", 8, 0), 8)
        close(fd)
        XCTAssertThrowsError(try FileStore(path: root)) { error in
            XCTAssertTrue("\(error)".contains("journal"), "\(error)")
            XCTAssertTrue("\(error)".contains("header is damaged"), "\(error)")
        }
    }

    /// A new enrollment of the same user does not inherit the old one's last step.
    func testANewEnrollmentStartsWithCleanReplayState() throws {
        do {
            let store = try FileStore(path: root)
            try store.save(try record())
            var r = try XCTUnwrap(try store.load(try UserName(validating: "alice")))
            r.lastUsedStep = 99
            try store.save(r)
            try store.save(try record(created: 1_700_000_500))
            XCTAssertNil(try store.load(try UserName(validating: "alice"))?.lastUsedStep)
        }
        let reopened = try FileStore(path: root)
        XCTAssertNil(try reopened.load(try UserName(validating: "alice"))?.lastUsedStep)
    }

    /// A file replaced behind the daemon's back (a restore from backup) is read again, not served
    /// from the cache.
    func testAFileReplacedFromOutsideIsReadAgain() throws {
        let store = try FileStore(path: root)
        try store.save(try record())
        _ = try store.load(try UserName(validating: "alice"))
        var other = try record(created: 1_700_000_777)
        other.secret = Array("abcdefghijabcdefghij".utf8)
        let text = UserFileFormat.serialize(other)
        let tmp = root + "/restore"
        XCTAssertTrue(FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]))
        XCTAssertEqual(rename(tmp, root + "/users/alice"), 0)
        XCTAssertEqual(try store.load(try UserName(validating: "alice"))?.created, 1_700_000_777)
    }

    /// `save` skips its own identity check only right after a load in the same request: once the
    /// server has begun another request (`forgetLastCheck`), a file replaced from outside since the
    /// load is noticed, and the save replaces it rather than journaling against the old file.
    func testASaveInALaterRequestChecksTheFileAgain() throws {
        let store = try FileStore(path: root)
        try store.save(try record())
        var loaded = try XCTUnwrap(try store.load(try UserName(validating: "alice")))
        store.forgetLastCheck()
        let other = try record(created: 1_700_000_777)
        let tmp = root + "/restore"
        XCTAssertTrue(FileManager.default.createFile(atPath: tmp, contents: Data(UserFileFormat.serialize(other).utf8),
                                                     attributes: [.posixPermissions: 0o600]))
        XCTAssertEqual(rename(tmp, root + "/users/alice"), 0)
        let restored = inode("alice")
        loaded.lastUsedStep = 42
        try store.save(loaded)
        XCTAssertNotEqual(inode("alice"), restored, "the save went to the journal against a file that was replaced")
    }

    /// Anything but a replay-state change (a recovery code used up) still replaces the file atomically.
    func testOtherChangesStillReplaceTheFile() throws {
        let store = try FileStore(path: root)
        var r = try record()
        r.recoveryCodes = [RecoveryCodes.Hashed(salt: [UInt8](repeating: 1, count: 16), hash: [UInt8](repeating: 2, count: 32))]
        try store.save(r)
        let before = inode("alice")
        r = try XCTUnwrap(try store.load(r.user))
        r.recoveryCodes = []
        try store.save(r)
        XCTAssertNotEqual(inode("alice"), before)
        XCTAssertEqual(try store.load(r.user)?.recoveryCodes.count, 0)
    }
}
