// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore
@testable import MFAStore

/// STATE/invites and the invite codes (issue 14): hashed, single use, expiring, capped, and a
/// damaged file is read as far as it goes, never a reason to stop.
final class InviteBookTests: XCTestCase {
    let code = "abcd-efgh-jkmn-pqrs-tuv2"

    func entry(_ code: String, created: Int64 = 100, expires: Int64 = 1000) -> InviteBook.Entry {
        InviteBook.Entry(digest: InviteCodes.digest(normalizedCode: InviteCodes.normalize(code)!), created: created, expires: expires)
    }

    func testCodesAreLongAndNormalized() throws {
        let made = try XCTUnwrap(InviteCodes.makeCode(randomBytes: Array(0..<64)))
        XCTAssertEqual(made.count, 24)
        XCTAssertNotNil(InviteCodes.normalize(made.uppercased().replacingOccurrences(of: "-", with: " ")))
        XCTAssertNil(InviteCodes.normalize("abcd-efgh-jkmn"), "a recovery code is not an invite")
        XCTAssertNil(InviteCodes.normalize(code + "x"))
        XCTAssertNil(InviteCodes.normalize("abcd-efgh-jkmn-pqrs-tuv1"), "1 is not in the alphabet")
        XCTAssertEqual(InviteCodes.parseLifetime("7d"), 7 * 86400)
        XCTAssertNil(InviteCodes.parseLifetime("91d"))
        XCTAssertNil(InviteCodes.parseLifetime("0"))
    }

    func testRedeemOnceBeforeExpiryOnly() {
        var book = InviteBook()
        book.add("carol", entry(code), now: 100)
        XCTAssertFalse(book.redeem("carol", typed: "abcd-efgh-jkmn-pqrs-tuv3", now: 200))
        XCTAssertFalse(book.redeem("dave", typed: code, now: 200))
        XCTAssertFalse(book.redeem("carol", typed: code, now: 1000), "expired")
        XCTAssertTrue(book.redeem("carol", typed: "ABCD EFGH JKMN PQRS TUV2", now: 999))
        XCTAssertFalse(book.redeem("carol", typed: code, now: 999), "single use")
    }

    func testFileHoldsOnlyTheDigestAndRoundTrips() {
        var book = InviteBook()
        book.add("carol", entry(code), now: 100)
        let text = book.serialize()
        XCTAssertFalse(text.contains("abcd") || text.contains("efgh"), text)
        let (parsed, skipped) = InviteBook.parse(text, now: 100)
        XCTAssertEqual(parsed, book)
        XCTAssertEqual(skipped, 0)
        XCTAssertTrue(InviteBook.parse(text, now: 1000).book.entries.isEmpty, "expired entries are dropped at load")
    }

    func testDamagedLinesAreSkippedNotFatal() {
        var book = InviteBook()
        book.add("carol", entry(code), now: 100)
        let text = book.serialize() + "invite dave 1 2\ninvite ../x 1 2000 00\ngarbage\n"
        let (parsed, skipped) = InviteBook.parse(text, now: 100)
        XCTAssertEqual(parsed.entries.keys.sorted(), ["carol"])
        XCTAssertEqual(skipped, 3)
        XCTAssertEqual(InviteBook.parse("no version\n", now: 0).skipped, 1)
    }

    func testTheOldestGoOverTheCap() {
        let digest = String(repeating: "00", count: 32)
        var lines = ["version 1"]
        for i in 0..<InviteBook.maximumEntries { lines.append("invite u\(i + 1) \(i + 1) 1000000 \(digest)") }
        var (book, _) = InviteBook.parse(lines.joined(separator: "\n"), now: 0)
        XCTAssertEqual(book.entries.count, InviteBook.maximumEntries)
        book.add("u0", InviteBook.Entry(digest: [UInt8](repeating: 0, count: 32), created: 20_000, expires: 1_000_000), now: 0)
        XCTAssertNotNil(book.entries["u0"], "the new one stays")
        XCTAssertNil(book.entries["u1"], "the oldest went")
        book.add("u\(InviteBook.maximumEntries + 1)", InviteBook.Entry(digest: [UInt8](repeating: 0, count: 32), created: 5_000, expires: 1_000_000), now: 0)
        XCTAssertEqual(book.entries.count, InviteBook.maximumEntries)
        XCTAssertNotNil(book.entries["u\(InviteBook.maximumEntries + 1)"])
    }
}
