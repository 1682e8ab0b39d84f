// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// Issue 14, findings 7 and 8: send caps, SMS prefixes, the log rate limiter, bounded books.
final class LocalAttackerLimitsTests: XCTestCase {
    // MARK: LogRateLimiter

    /// 20,000 refusals in 2 s write at most `burst` lines per interval, and every suppressed one
    /// is counted in a summary: written + suppressed = 20,000.
    func testTwentyThousandRefusalsWriteABoundedNumberOfLinesAndCountTheRest() {
        var limiter = LogRateLimiter(burst: 20, interval: 10_000)
        var written = 0
        var suppressed = 0
        for i in 0..<20_000 {
            let now = Int64(i / 10)  // 2 s in all
            if case .write(let summary) = limiter.admit("refused", now: now) {
                written += 1
                suppressed += summary?.suppressed ?? 0
            }
            suppressed += limiter.summaries(now: now).map(\.suppressed).reduce(0, +)
        }
        XCTAssertEqual(written, 20)
        XCTAssertEqual(limiter.nextSummaryAt, 10_000)
        XCTAssertEqual(limiter.summaries(now: 9_999), [])
        let last = limiter.summaries(now: 10_000)
        XCTAssertEqual(last, [LogRateLimiter.Summary(kind: "refused", suppressed: 19_980, interval: 10_000)])
        suppressed += last.map(\.suppressed).reduce(0, +)
        XCTAssertEqual(written + suppressed, 20_000)
        XCTAssertNil(limiter.nextSummaryAt, "nothing left to report")
    }

    func testKindsHaveTheirOwnBudgetAndALateLineCarriesTheSummary() {
        var limiter = LogRateLimiter(burst: 2, interval: 1_000)
        XCTAssertEqual(limiter.admit("a", now: 0), .write(summaryFirst: nil))
        XCTAssertEqual(limiter.admit("a", now: 1), .write(summaryFirst: nil))
        XCTAssertEqual(limiter.admit("a", now: 2), .drop)
        XCTAssertEqual(limiter.admit("b", now: 3), .write(summaryFirst: nil), "another kind is not held back")
        // Nobody took the summary when the interval ended: the next line of the kind brings it.
        XCTAssertEqual(limiter.admit("a", now: 1_500),
                       .write(summaryFirst: LogRateLimiter.Summary(kind: "a", suppressed: 1, interval: 1_500)))
        XCTAssertEqual(limiter.summaries(now: 5_000), [])
        // A clock that went back starts a new interval rather than muting the kind.
        XCTAssertEqual(limiter.admit("c", now: 10_000), .write(summaryFirst: nil))
        XCTAssertEqual(limiter.admit("c", now: 10), .write(summaryFirst: nil))
    }

    // MARK: SendCaps

    func testOneSenderIsCappedAcrossEveryAddressAndTheHostAcrossEverySender() {
        var caps = SendCaps(perSender: 3, perHour: 5)
        for t in Int64(0)..<3 {
            XCTAssertEqual(caps.check(sender: "uid 1000", now: t), .allowed)
            caps.record(sender: "uid 1000", now: t)
        }
        XCTAssertEqual(caps.check(sender: "uid 1000", now: 10), .senderLimit(nextAt: 3_600))
        XCTAssertEqual(caps.check(sender: "uid 1001", now: 10), .allowed)
        caps.record(sender: "uid 1001", now: 10)
        caps.record(sender: nil, now: 11)  // root: only the host's count
        XCTAssertEqual(caps.check(sender: nil, now: 12), .hostLimit(nextAt: 3_600))
        XCTAssertEqual(caps.check(sender: "uid 1002", now: 12), .hostLimit(nextAt: 3_600))
        // The hour slides.
        XCTAssertEqual(caps.check(sender: "uid 1000", now: 3_600), .allowed)
    }

    func testSendersAreBounded() {
        var caps = SendCaps(perSender: 1, perHour: 20)
        for i in 0...SendCaps.maximumSenders { caps.record(sender: "uid \(i)", now: Int64(i)) }
        XCTAssertLessThanOrEqual(caps.senderCount, SendCaps.maximumSenders)
    }

    // MARK: sms_allowed_prefixes and the caps' config keys

    func testSMSPrefixesParseAndAllow() throws {
        XCTAssertEqual(PhonePrefix.parse("+49"), "+49")
        for bad in ["49", "+", "+0", "+4a", "+1234567890123456", "++1"] { XCTAssertNil(PhonePrefix.parse(bad), bad) }
        XCTAssertTrue(PhonePrefix.allows([], "+8821234567"), "the default allows any number")
        XCTAssertTrue(PhonePrefix.allows(["+49", "+43"], "+4915112345678"))
        XCTAssertFalse(PhonePrefix.allows(["+49", "+43"], "+14155550100"))
        let sentence = PhonePrefix.refusal(["+49"], "+14155550100")
        XCTAssertTrue(sentence.contains("sms_allowed_prefixes") && !sentence.contains("4155550100"), sentence)

        let config = try ConfigParser.parse("max_codes_per_sender = 4\nmax_codes_per_hour = 50\nsms_allowed_prefixes = +49, +43\n", file: "t")
        XCTAssertEqual(config.maxCodesPerSender, 4)
        XCTAssertEqual(config.maxCodesPerHour, 50)
        XCTAssertEqual(config.smsAllowedPrefixes, ["+49", "+43"])
        XCTAssertEqual(DaemonConfig().maxCodesPerSender, 10)
        XCTAssertEqual(DaemonConfig().maxCodesPerHour, 200)
        XCTAssertEqual(DaemonConfig().smsAllowedPrefixes, [])
        for bad in ["max_codes_per_sender = 0", "max_codes_per_hour = lots", "sms_allowed_prefixes = 49"] {
            XCTAssertThrowsError(try ConfigParser.parse(bad + "\n", file: "t"), bad) { error in
                XCTAssertTrue("\(error)".contains("t:1:"), "\(error)")
            }
        }
    }

    // MARK: BoundedBook

    func testEvictOldestKeepsTheNewest() {
        var book = ["a": Int64(5), "b": 1, "c": 9, "d": 3]
        XCTAssertEqual(BoundedBook.evictOldest(&book, limit: 3) { $0 }, ["b"])
        XCTAssertEqual(Set(BoundedBook.evictOldest(&book, limit: 1) { $0 }), ["d", "a"])
        XCTAssertEqual(book, ["c": 9])
        XCTAssertEqual(BoundedBook.evictionTarget(100_000), 99_000)
        XCTAssertEqual(BoundedBook.evictionTarget(10), 9)
    }

    func testDeliveryBookIsBounded() {
        var book = DeliveryBook()
        for i in 0...DeliveryBook.maximumKeys { book.issue("u\(i)", code: "123456", salt: [1], now: Int64(i)) }
        XCTAssertLessThanOrEqual(book.live.count, DeliveryBook.maximumKeys)
        XCTAssertLessThanOrEqual(book.sends.count, DeliveryBook.maximumKeys)
        XCTAssertTrue(book.hasLiveCode("u\(DeliveryBook.maximumKeys)", now: Int64(DeliveryBook.maximumKeys)))
    }
}
