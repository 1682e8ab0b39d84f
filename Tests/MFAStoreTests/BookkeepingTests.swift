// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore
@testable import MFAStore

final class BookkeepingTests: XCTestCase {
    func testLockoutBookRoundTripsAndRefusesDamage() throws {
        var book = LockoutBook()
        book.users["alice"] = FailureRecord(failures: [10, 20], lockedUntil: nil)
        book.users["bob"] = FailureRecord(failures: [], lockedUntil: 900)
        book.rhosts["192.0.2.1"] = FailureRecord(failures: [5], lockedUntil: 700)
        book.rhosts["2001:db8::1"] = FailureRecord(failures: [6], lockedUntil: nil)
        XCTAssertEqual(try LockoutBook.parse(book.serialize()), book)
        XCTAssertEqual(try LockoutBook.parse(""), LockoutBook())
        for bad in ["version 2\n", "version 1\nuser ../x - -\n", "version 1\nrhost a b - -\n", "version 1\nuser a x -\n", "junk\n"] {
            XCTAssertThrowsError(try LockoutBook.parse(bad), bad)
        }
        XCTAssertNil(LockoutBook.rhostKey("evil host\nline"))
        XCTAssertNil(LockoutBook.rhostKey(""))
        XCTAssertEqual(LockoutBook.rhostKey("fe80::1%eth0"), "fe80::1%eth0")
    }

    func testPruneDropsWhatNoLongerCounts() {
        var book = LockoutBook()
        book.users["old"] = FailureRecord(failures: [1], lockedUntil: nil)
        book.users["locked"] = FailureRecord(failures: [], lockedUntil: 10_000)
        book.prune(now: 5_000, window: 900)
        XCTAssertEqual(Array(book.users.keys), ["locked"])
    }

    func testFirstSeenBookRoundTrips() throws {
        var book = FirstSeenBook()
        book.users["alice"] = 1_700_000_000
        XCTAssertEqual(try FirstSeenBook.parse(book.serialize()), book)
        XCTAssertThrowsError(try FirstSeenBook.parse("version 1\nalice soon\n"))
    }
}
