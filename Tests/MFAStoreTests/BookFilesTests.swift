// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore
@testable import MFAStore

/// Issue 14, finding 6: the books the daemon writes itself are bounded, cost a line per new name,
/// and can never stop it from starting.
final class BookFilesTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "mfagate-books-\(UUID().uuidString)"
        XCTAssertEqual(mkdir(root, 0o700), 0)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func name(_ i: Int) -> String { "u\(i)" }

    /// 100,001 first sightings through the book's API on a real state directory: the book stays
    /// within its cap, each new name costs a few dozen bytes written (a rewrite of the whole book
    /// cost ≈ 1 MB per name on average before: 2 MB near the end), and a restart reads it back.
    func testAHundredThousandAndOneFirstSightingsStayCappedAndCostALineEach() throws {
        let count = FirstSeenBook.maximumEntries + 1
        var reports: [String] = []
        var evictedTotal = 0
        var worst = 0
        do {
            let store = try FileStore(path: root)
            let ledger = try FirstSeenLedger(store: store) { reports.append($0) }
            for i in 0..<count {
                let before = store.stateBytesWritten
                evictedTotal += try ledger.note(name(i), at: 1_700_000_000 + Int64(i)).count
                // Appends only (after the first, which creates the file), apart from the rewrite after
            // an eviction.
                if i > 0 && store.stateBytesWritten - before < 1_000 { worst = max(worst, store.stateBytesWritten - before) }
            }
            XCTAssertLessThanOrEqual(ledger.book.users.count, FirstSeenBook.maximumEntries)
            XCTAssertEqual(ledger.book.users.count + evictedTotal, count)
            XCTAssertNil(ledger.time(name(0)), "the oldest sighting went")
            XCTAssertEqual(ledger.time(name(count - 1)), 1_700_000_000 + Int64(count - 1))
            let perName = Double(store.stateBytesWritten) / Double(count)
            XCTAssertLessThan(perName, 100, "bytes written per new name")
            XCTAssertLessThan(worst, 40, "one new name appends one short line")
        }
        XCTAssertEqual(reports, [])
        // The restart sees the same book, without complaint, and stays within the cap.
        let store = try FileStore(path: root)
        let again = try FirstSeenLedger(store: store) { reports.append($0) }
        XCTAssertLessThanOrEqual(again.book.users.count, FirstSeenBook.maximumEntries)
        XCTAssertEqual(again.time(name(count - 1)), 1_700_000_000 + Int64(count - 1))
        XCTAssertEqual(reports, [])
    }

    func write(_ file: String, _ text: String) {
        let path = root + "/" + file
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
    }

    /// A book of 100,001 entries (a flood before the restart) is read, capped and rewritten at
    /// start: the start is not refused, as it was ("more than 100000 entries").
    func testAnOversizedBookIsCappedAtStartNotRefused() throws {
        var text = FirstSeenBook.header + "\nversion 1\n"
        for i in 0...FirstSeenBook.maximumEntries { text += "\(name(i)) \(1_700_000_000 + i)\n" }
        write("seen", text)
        var reports: [String] = []
        let store = try FileStore(path: root)
        let ledger = try FirstSeenLedger(store: store) { reports.append($0) }
        XCTAssertLessThanOrEqual(ledger.book.users.count, FirstSeenBook.maximumEntries)
        XCTAssertNotNil(ledger.time(name(FirstSeenBook.maximumEntries)))
        XCTAssertEqual(reports.count, 1)
        XCTAssertTrue(reports[0].contains("oldest sightings were forgotten"), reports[0])
        let onDisk = try XCTUnwrap(store.loadState(.seen))
        XCTAssertEqual(onDisk.split(separator: "\n").count - 2, ledger.book.users.count, "the file was rewritten with the kept entries")
    }

    /// A torn last line (a crash in the middle of an append) and a damaged line are dropped with
    /// one report; the next append does not run into the torn line.
    func testTornAndDamagedLinesAreDroppedWithOneReport() throws {
        write("seen", "version 1\nalice 100\nbob x\ncarol 12")
        var reports: [String] = []
        let store = try FileStore(path: root)
        let ledger = try FirstSeenLedger(store: store) { reports.append($0) }
        XCTAssertEqual(reports.count, 1)
        XCTAssertTrue(reports[0].contains("dropped"), reports[0])
        XCTAssertEqual(ledger.time("alice"), 100)
        XCTAssertEqual(ledger.time("carol"), 12, "a torn time still reads as a number; only its user's grace moves")
        XCTAssertNil(ledger.time("bob"))
        _ = try ledger.note("dave", at: 300)
        XCTAssertEqual(FirstSeenBook.read(try XCTUnwrap(store.loadState(.seen))).book.users["dave"], 300)
    }

    func testAnAppendAfterATornLineStartsOnANewLine() throws {
        write("seen", "version 1\nalice 100\nmall")
        let store = try FileStore(path: root)
        XCTAssertTrue(try store.appendState(.seen, "dave 300\n", durable: false))
        XCTAssertEqual(try store.loadState(.seen), "version 1\nalice 100\nmall\ndave 300\n")
    }

    /// A file too large to read (or not a book at all) is moved aside and the daemon starts with
    /// an empty book; the admin reads one sentence naming both paths.
    func testAFileTooLargeIsMovedAsideAndTheBookStartsEmpty() throws {
        write("seen", "version 1\n" + String(repeating: "x", count: FileStore.maximumStateFileSize + 1))
        var reports: [String] = []
        let store = try FileStore(path: root)
        let ledger = try FirstSeenLedger(store: store) { reports.append($0) }
        XCTAssertEqual(ledger.book, FirstSeenBook())
        XCTAssertEqual(reports.count, 1)
        XCTAssertTrue(reports[0].contains("\(root)/seen.damaged"), reports[0])
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/seen.damaged"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/seen"))

        write("lockout", "no version here\nuser alice 5 -\n")
        var lockReports: [String] = []
        let lockouts = try LockoutLedger(store: store, now: 0, window: 900) { lockReports.append($0) }
        XCTAssertEqual(lockouts.book, LockoutBook())
        XCTAssertEqual(lockReports.count, 1)
    }

    /// Lockouts are a log too: a change appends the changed keys' lines; a removal is a line
    /// with neither lock nor failures; a restart reads the same book.
    func testLockoutChangesAppendLinesAndReadBack() throws {
        let store = try FileStore(path: root)
        let ledger = try LockoutLedger(store: store, now: 1_000, window: 900) { XCTFail($0) }
        ledger.book.users["alice"] = FailureRecord(failures: [990], lockedUntil: nil)
        ledger.book.rhosts["192.0.2.1"] = FailureRecord(failures: [], lockedUntil: 2_000)
        try ledger.save(users: ["alice"], rhosts: ["192.0.2.1"], now: 1_000, window: 900)
        let before = store.stateBytesWritten
        ledger.book.users["alice"] = nil
        try ledger.save(users: ["alice"], rhosts: [], now: 1_001, window: 900)
        XCTAssertEqual(store.stateBytesWritten - before, "user alice - -\n".utf8.count)
        let again = try LockoutLedger(store: store, now: 1_002, window: 900) { XCTFail($0) }
        XCTAssertNil(again.book.users["alice"])
        XCTAssertEqual(again.book.rhosts["192.0.2.1"]?.lockedUntil, 2_000)
    }

    /// Past the cap, counts that lock nothing go before lockouts.
    func testLockoutCapsEvictCountsBeforeLocks() {
        var book = LockoutBook()
        for i in 0..<(LockoutBook.maximumAddresses + 1) {
            book.rhosts["10.0.\(i / 256).\(i % 256)"] = FailureRecord(failures: [5_000 + Int64(i)], lockedUntil: nil)
        }
        book.rhosts["10.0.0.0"] = FailureRecord(failures: [], lockedUntil: 9_000)
        let evicted = book.enforceCaps(now: 6_000, window: 100_000)
        XCTAssertGreaterThan(evicted, 0)
        XCTAssertLessThanOrEqual(book.rhosts.count, LockoutBook.maximumAddresses)
        XCTAssertNotNil(book.rhosts["10.0.0.0"], "the locked address (oldest activity) stays")
        XCTAssertNil(book.rhosts["10.0.0.1"], "the oldest count went")
    }
}
