// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// `enroll_at_login`, `issuer`, `notify_command`, and where the policy offers enrollment.
final class EnrollmentPolicyTests: XCTestCase {
    func facts(enrolled: Bool = false, firstSeen: Int64? = nil, now: Int64 = 1000) -> LoginFacts {
        LoginFacts(user: "u", service: "sshd", rhost: "192.0.2.1", enrolled: enrolled, firstSeen: firstSeen, now: now)
    }

    func testKeysParseAndBadValuesNameTheLine() throws {
        let c = try ConfigParser.parse("enroll_at_login = no\nissuer = Corp VPN\nnotify_command = /usr/local/bin/tell\n", file: "f")
        XCTAssertFalse(c.enrollAtLogin)
        XCTAssertEqual(c.issuer, "Corp VPN")
        XCTAssertEqual(c.notifyCommand, "/usr/local/bin/tell")
        XCTAssertTrue(DaemonConfig().enrollAtLogin, "default yes")
        XCTAssertFalse(DaemonConfig().enrollAtLoginNeedsInvite)
        let invite = try ConfigParser.parse("enroll_at_login = invite\n", file: "f")
        XCTAssertTrue(invite.enrollAtLogin && invite.enrollAtLoginNeedsInvite)
        XCTAssertTrue(ConfigParser.render(invite).contains("enroll_at_login = invite"))
        XCTAssertTrue(ConfigParser.render(c).contains("issuer = Corp VPN"))
        for (text, needle) in [("enroll_at_login = maybe\n", "yes, no or invite"), ("issuer = a:b\n", "without ':'"),
                               ("notify_command = tell\n", "absolute path")] {
            XCTAssertThrowsError(try ConfigParser.parse(text, file: "f")) { XCTAssertTrue("\($0)".contains("f:1: ") && "\($0)".contains(needle), "\($0)") }
        }
    }

    func testUnenrolledUsersAreOfferedEnrollmentOnlyWhenEnabled() {
        var c = DaemonConfig()
        c.mode = .required
        XCTAssertEqual(Policy.evaluate(c, facts()).decision, .offerEnrollment(mandatory: true))
        c.mode = .optional
        XCTAssertEqual(Policy.evaluate(c, facts()).decision, .offerEnrollment(mandatory: false))
        XCTAssertEqual(Policy.evaluate(c, facts(enrolled: true)).decision, .askForCode)
        c.enrollAtLogin = false
        XCTAssertEqual(Policy.evaluate(c, facts()).decision, .ignore(reason: "not enrolled, MFA optional"))
        c.mode = .required
        XCTAssertEqual(Policy.evaluate(c, facts()).decision, .deny(reason: "not enrolled, MFA required"))
        c.mode = .off
        c.enrollAtLogin = true
        XCTAssertEqual(Policy.evaluate(c, facts()).decision, .ignore(reason: "mode off"))
    }

    func testGracePeriodComesBeforeTheMandatoryEnrollment() {
        var c = DaemonConfig()
        c.mode = .required
        c.gracePeriod = 600
        XCTAssertEqual(Policy.evaluate(c, facts(firstSeen: 900, now: 1000)).decision, .grace(until: 1500))
        XCTAssertEqual(Policy.evaluate(c, facts(firstSeen: 900, now: 1600)).decision, .offerEnrollment(mandatory: true))
    }
}
