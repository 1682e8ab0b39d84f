// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
import Logging
@testable import MFADaemon

/// The mapping from swift-log events to journald fields, as pure functions (no journal needed).
final class JournalFieldsTests: XCTestCase {
    func testLoginDecisionBecomesStructuredFields() {
        let fields = JournalFields.make(level: .notice, message: "login", metadata: [
            "user": "alice", "service": "sshd", "rhost": "192.0.2.7", "peer": "uid=0 pid=42",
            "result": "denied", "reason": "wrong code",
        ], file: "MFADaemon/Authority.swift", function: "logDecision", line: 237)
        XCTAssertEqual(fields, [
            "MESSAGE=login peer=\"uid=0 pid=42\" reason=\"wrong code\" result=denied rhost=192.0.2.7 service=sshd user=alice",
            "PRIORITY=5",
            "SYSLOG_IDENTIFIER=mfagated",
            "MESSAGE_ID=7d0d0ab36ec24c3ebdc12cc3ee8182d0",
            "MFAGATE_PEER=uid=0 pid=42",
            "MFAGATE_REASON=wrong code",
            "MFAGATE_RESULT=denied",
            "MFAGATE_RHOST=192.0.2.7",
            "MFAGATE_SERVICE=sshd",
            "MFAGATE_USER=alice",
            "CODE_FILE=MFADaemon/Authority.swift",
            "CODE_LINE=237",
            "CODE_FUNC=logDecision",
        ])
    }

    func testMessageIDsAreStableDistinctAndMatchWholeWords() {
        XCTAssertEqual(JournalFields.messageID(for: "login"), "7d0d0ab36ec24c3ebdc12cc3ee8182d0")
        XCTAssertEqual(JournalFields.messageID(for: "login timed out waiting for the code"), "45e268e459d3421b8598e7cf09fbb91e")
        XCTAssertEqual(JournalFields.messageID(for: "stopping: letting 2 connection(s) finish"), "113307d20e0a4ec4a258cd0271360018")
        XCTAssertEqual(JournalFields.messageID(for: "reload refused, keeping the old configuration: x"), "bec3fe5aec09406198e29667e895cdbb")
        XCTAssertNil(JournalFields.messageID(for: "loginx"))
        XCTAssertNil(JournalFields.messageID(for: "something else"))
        let ids = JournalFields.messageIDs.map(\.id)
        XCTAssertEqual(Set(ids).count, ids.count, "one ID per kind")
        for id in ids {
            XCTAssertEqual(id.count, 32)
            XCTAssertTrue(id.allSatisfy { $0.isHexDigit && !$0.isUppercase }, "sd-id128 text form: 32 lowercase hex digits")
        }
    }

    func testPrioritiesFollowSyslog() {
        XCTAssertEqual(JournalFields.priority(.critical), 2)
        XCTAssertEqual(JournalFields.priority(.error), 3)
        XCTAssertEqual(JournalFields.priority(.warning), 4)
        XCTAssertEqual(JournalFields.priority(.notice), 5)
        XCTAssertEqual(JournalFields.priority(.info), 6)
        XCTAssertEqual(JournalFields.priority(.debug), 7)
        XCTAssertEqual(JournalFields.priority(.trace), 7)
    }

    func testFieldNamesAreValidJournalFieldNames() {
        XCTAssertEqual(JournalFields.fieldName(forMetadataKey: "user"), "MFAGATE_USER")
        XCTAssertEqual(JournalFields.fieldName(forMetadataKey: "a-b.c d"), "MFAGATE_A_B_C_D")
        XCTAssertEqual(JournalFields.fieldName(forMetadataKey: "é"), "MFAGATE__")
        XCTAssertEqual(JournalFields.fieldName(forMetadataKey: String(repeating: "k", count: 100)).count, 64)
    }

    func testSendReturnsWithoutAJournal() throws {
        // Without journald the send must return at once, not block or crash: -ENOENT when the
        // socket is missing (the handler then writes a plain line), 0 when a journal took it.
        let started = Date()
        let rc = JournalFields.send(["MESSAGE=mfagate unit test", "PRIORITY=7", "SYSLOG_IDENTIFIER=mfagated-test"])
        XCTAssertEqual(rc, access(JournalFields.journalSocketPath, F_OK) == 0 ? 0 : -ENOENT)
        XCTAssertLessThan(Date().timeIntervalSince(started), 1)
        if access(JournalFields.journalSocketPath, F_OK) != 0 {
            XCTAssertFalse(JournalFields.shouldUseJournal, "no journal socket, no journal handler")
        }
    }
}
