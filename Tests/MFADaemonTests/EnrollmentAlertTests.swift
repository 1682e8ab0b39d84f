// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFADaemon

/// Every enrollment at login has a MESSAGE_ID of its own (README, "Logs"), so a SIEM can alert on
/// it; never change the ID.
final class EnrollmentAlertTests: XCTestCase {
    func testEnrollmentAtLoginHasItsOwnStableMessageID() {
        XCTAssertEqual(JournalFields.messageID(for: "enrolled at login"), "7ce5e6e3279c4fa5a0c934429d52edfc")
        XCTAssertNotEqual(JournalFields.messageID(for: "enrolled at login"), JournalFields.messageID(for: "enrollment change"))
        let fields = JournalFields.make(level: .notice, message: "enrolled at login", metadata: ["user": "carol", "invite": "yes"])
        XCTAssertTrue(fields.contains("MESSAGE_ID=7ce5e6e3279c4fa5a0c934429d52edfc"))
        XCTAssertTrue(fields.contains("MFAGATE_INVITE=yes") && fields.contains("MFAGATE_USER=carol"))
    }
}
