// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore
@testable import MFAStore

/// The email/SMS fields of the user file (issue 10) round-trip and are read as strictly as the rest.
final class DeliveryFieldsTests: XCTestCase {
    let alice = try! UserName(validating: "alice")

    func base() -> UserRecord {
        UserRecord(user: alice, parameters: .standard, secret: Array("12345678901234567890".utf8), created: 1_700_000_000, recoveryCodes: [])
    }

    func testRoundTrip() throws {
        var r = base()
        XCTAssertFalse(UserFileFormat.serialize(r).contains("email"), "old files stay as they were")
        r.email = "alice@example.org"
        r.sms = "+4915112345678"
        r.preferred = .sms
        let text = UserFileFormat.serialize(r)
        XCTAssertTrue(text.contains("\nemail alice@example.org\nsms +4915112345678\nprefer sms\n"), text)
        XCTAssertEqual(try UserFileFormat.parse(text, expectedUser: alice), r)
    }

    func testAnEmailOnlyRecordRoundTripsAndNeedsItsMethod() throws {
        var r = base()
        r.email = "alice@example.org"
        r.preferred = .email
        r.appActive = false
        let text = UserFileFormat.serialize(r)
        XCTAssertTrue(text.contains("\nprefer email\napp none\n"), text)
        XCTAssertEqual(try UserFileFormat.parse(text, expectedUser: alice), r)
        XCTAssertThrowsError(try UserFileFormat.parse(UserFileFormat.serialize(base()) + "app none\n", expectedUser: alice))
        XCTAssertThrowsError(try UserFileFormat.parse(UserFileFormat.serialize(base()) + "app totp\n", expectedUser: alice))
    }

    func testDamagedFieldsAreRefusedWithTheirLine() throws {
        let good = UserFileFormat.serialize(base())
        for (extra, message) in [("email alice@example.org\r", "bad email address"), ("email Alice <a@b.org>", "bad email address"),
                                 ("sms 4915112345678", "bad sms number"), ("sms +49 151 12345678", "bad sms number"),
                                 ("prefer email", "preferred method email has no address"), ("prefer fax", "unknown preferred method"),
                                 ("email a@b.org\nemail c@d.org", "appears twice")] {
            XCTAssertThrowsError(try UserFileFormat.parse(good + extra + "\n", expectedUser: alice), extra) { error in
                XCTAssertTrue("\(error)".contains(message), "\(extra): \(error)")
                XCTAssertTrue("\(error)".hasPrefix("line "), "\(error)")
            }
        }
    }
}
