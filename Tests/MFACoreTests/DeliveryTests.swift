// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// Addresses, masking, the delivery config keys and the bookkeeping of delivered codes (issue 10).
final class DeliveryTests: XCTestCase {
    func testPlainEmailAddressesPassAndEverythingElseIsRefused() throws {
        for good in ["alice@example.org", "a.b+tag@mail.example.co.uk", "x_y-z@e-x.org", "o'neil@example.org"] {
            XCTAssertEqual(try DeliveryAddress.validateEmail(good), good)
        }
        for bad in ["alice@example.org\nBcc: m@x.org", "alice@example.org\r\nX: y", "alice@example.org\r", "Alice <alice@example.org>",
                    "alice@example.org, m@x.org", "alice@example.org m@x.org", "\"a b\"@example.org", "alice", "alice@localhost",
                    "@example.org", "alice@", ".alice@example.org", "al..ice@example.org", "alice@-x.org", "alice@x..org",
                    "alice@exa_mple.org", "alice@@example.org", "", "ä@example.org", "alice@example.org\u{0}",
                    String(repeating: "a", count: 65) + "@example.org", "a@" + String(repeating: "b", count: 250) + ".org"] {
            XCTAssertThrowsError(try DeliveryAddress.validateEmail(bad), bad.debugDescription)
        }
    }

    func testALineBreakIsNamedAndEscapedInTheMessage() {
        XCTAssertThrowsError(try DeliveryAddress.validateEmail("a@b.org\nBcc: c@d.org")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("line break"), text)
            XCTAssertTrue(text.contains("a@b.org\\nBcc: c@d.org"), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
    }

    func testPhoneNumbersMustBeE164() throws {
        XCTAssertEqual(try DeliveryAddress.validatePhone("+4915112345678"), "+4915112345678")
        XCTAssertEqual(try DeliveryAddress.validatePhone("+49 (151) 123-456.78"), "+4915112345678")
        XCTAssertEqual(try DeliveryAddress.validatePhone("+1234567"), "+1234567")
        for bad in ["4915112345678", "+0151123456", "+123456", "+1234567890123456", "+49151abc4567", "+49\n15112345678", "", "+"] {
            XCTAssertThrowsError(try DeliveryAddress.validatePhone(bad), bad.debugDescription)
        }
    }

    func testMasking() {
        XCTAssertEqual(DeliveryAddress.maskEmail("alice@example.org"), "a***@example.org")
        XCTAssertEqual(DeliveryAddress.maskPhone("+4915112345678"), "+*********5678")
        XCTAssertEqual(DeliveryAddress.maskPhone("+1234"), "+***")
    }

    func testPattern() throws {
        XCTAssertEqual(try DeliveryAddress.fromPattern("%u@example.org", user: "alice"), "alice@example.org")
        XCTAssertEqual(try DeliveryAddress.fromPattern("mfa+%u@example.org", user: "bob"), "mfa+bob@example.org")
        XCTAssertThrowsError(try DeliveryAddress.fromPattern("%x@example.org", user: "alice"))
        XCTAssertThrowsError(try DeliveryAddress.fromPattern("%u@example.org", user: "a\nb"))
    }

    func testConfigKeys() throws {
        let c = try ConfigParser.parse("""
            methods = totp email sms
            email_command = /usr/sbin/sendmail -t -oi -f mfa@example.org
            email_from = mfa@example.org
            email_address_pattern = %u@example.org
            sms_command = /usr/local/bin/send-sms --gateway 1
            """, file: "t")
        XCTAssertEqual(c.methods, [.totp, .email, .sms])
        XCTAssertEqual(c.emailCommand, ["/usr/sbin/sendmail", "-t", "-oi", "-f", "mfa@example.org"])
        XCTAssertEqual(c.smsCommand, ["/usr/local/bin/send-sms", "--gateway", "1"])
        XCTAssertEqual(c.emailFrom, "mfa@example.org")
        let defaults = try ConfigParser.parse("", file: "t")
        XCTAssertEqual(defaults.methods, [.totp])
        XCTAssertEqual(defaults.emailCommand, ["/usr/sbin/sendmail", "-t", "-oi"])
        XCTAssertNil(defaults.smsCommand)
        XCTAssertTrue(ConfigParser.render(defaults).contains("email_command = /usr/sbin/sendmail -t -oi"))
        for (text, fragment) in [("methods = totp fax", "not a method"), ("methods = email", "must include totp"),
                                 ("methods = totp sms", "sms_command"), ("email_command = sendmail -t", "absolute"),
                                 ("email_from = Mfa <mfa@example.org>", "email_from"), ("email_address_pattern = me@example.org", "%u"),
                                 ("sms_command = ", "absolute")] {
            XCTAssertThrowsError(try ConfigParser.parse(text, file: "t"), text) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(text): \(error)")
                XCTAssertTrue("\(error)".hasPrefix("t:1: "), "\(error)")
            }
        }
    }

    func testCodesAreSixUniformDigits() {
        XCTAssertEqual(DeliveryBook.makeCode(randomBytes: [0, 0, 0, 7]), "000007")
        XCTAssertEqual(DeliveryBook.makeCode(randomBytes: [0, 0x0F, 0x42, 0x40]), "000000")  // 1,000,000
        XCTAssertNil(DeliveryBook.makeCode(randomBytes: [0xFF, 0xFF, 0xFF, 0xFF]), "the biased top is rejected")
        XCTAssertNil(DeliveryBook.makeCode(randomBytes: [1, 2]))
    }

    func testBookkeeping() {
        var book = DeliveryBook()
        let salt = [UInt8](repeating: 9, count: 16)
        XCTAssertEqual(book.check("alice", typed: "123456", now: 0), .noCode)
        book.issue("alice", code: "123456", salt: salt, now: 1000)
        XCTAssertEqual(book.check("bob", typed: "123456", now: 1000), .noCode, "per user")
        XCTAssertEqual(book.check("alice", typed: "123 456", now: 1001), .matched)
        XCTAssertEqual(book.check("alice", typed: "123456", now: 1002), .noCode, "single use")

        book.issue("alice", code: "111111", salt: salt, now: 1010)
        book.issue("alice", code: "222222", salt: salt, now: 1020)
        XCTAssertEqual(book.check("alice", typed: "111111", now: 1021), .wrong(attemptsLeft: 2), "a new code kills the old")
        XCTAssertEqual(book.check("alice", typed: "000000", now: 1022), .wrong(attemptsLeft: 1))
        XCTAssertEqual(book.check("alice", typed: "000000", now: 1023), .wrong(attemptsLeft: 0))
        XCTAssertEqual(book.check("alice", typed: "222222", now: 1024), .noCode, "three wrong answers kill it")

        XCTAssertEqual(book.sendsLeft("alice", now: 1030).count, 0, "3 sends in 10 minutes")
        XCTAssertEqual(book.sendsLeft("alice", now: 1030).nextAt, 1000 + 600)
        XCTAssertEqual(book.sendsLeft("alice", now: 1600).count, 1)

        book.issue("bob", code: "333333", salt: salt, now: 2000)
        XCTAssertTrue(book.hasLiveCode("bob", now: 2299))
        XCTAssertEqual(book.check("bob", typed: "333333", now: 2300), .noCode, "5 minutes")
        book.issue("bob", code: "333333", salt: salt, now: 2400)
        book.revoke("bob")
        XCTAssertEqual(book.check("bob", typed: "333333", now: 2401), .noCode)
        book.sweep(now: 10_000)
        XCTAssertTrue(book.live.isEmpty && book.sends.isEmpty)
    }

    func testTheCodeIsKeptOnlyAsAnHMAC() {
        var book = DeliveryBook()
        book.issue("alice", code: "424242", salt: [UInt8](repeating: 1, count: 16), now: 0)
        let stored = book.live["alice"]!
        XCTAssertNotEqual(stored.hash, Array("424242".utf8))
        XCTAssertEqual(stored.hash.count, 32)
    }

    func testMessagesCarryTheRecipientOnlyInTheHeader() {
        let mail = DeliveryMessage.codeEmail(code: "123456", to: "a@b.org", from: "m@b.org", account: "a@host", purpose: "to log in", minutes: 5)
        XCTAssertTrue(mail.hasPrefix("From: m@b.org\nTo: a@b.org\nSubject: "))
        XCTAssertTrue(mail.contains("\n\nYour verification code to log in for a@host is:\n\n    123456\n"))
        let notice = DeliveryMessage.noticeEmail(to: "a@b.org", from: nil, account: "a@host", what: "a recovery code was used", when: "now")
        XCTAssertTrue(notice.hasPrefix("To: a@b.org\nSubject: Security notice for a@host: a recovery code was used\n"))
        XCTAssertEqual(DeliveryMessage.codeSMS(code: "123456", account: "a@h", purpose: "to log in", minutes: 5),
                       "123456 is your verification code to log in for a@h. Valid 5 min. Never share it.\n")
    }
}
