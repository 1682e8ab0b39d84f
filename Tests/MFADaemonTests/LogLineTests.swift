// SPDX-License-Identifier: Apache-2.0
import Logging
import MFAProtocol
import XCTest
@testable import MFADaemon

/// The per-login log line is built without reflection and without walking plain strings scalar by
/// scalar; it must read exactly as before.
final class LogLineTests: XCTestCase {
    func testVerdictNamesAreWhatInterpolationPrinted() {
        for result in [VerdictResult.success, .denied, .ignore, .locked, .unavailable, .busy] {
            XCTAssertEqual(result.logName, "\(result)")
        }
    }

    func testLoggableKeepsPlainTextAndEscapesTheRest() {
        XCTAssertEqual(loggable("sshd"), "sshd")
        XCTAssertEqual(loggable("192.0.2.7"), "192.0.2.7")
        XCTAssertEqual(loggable(""), "-")
        XCTAssertEqual(loggable("a b"), "a b")
        XCTAssertEqual(loggable("a\"b"), "a\\x22b")
        XCTAssertEqual(loggable("a\\b"), "a\\x5cb")
        XCTAssertEqual(loggable("a\nb"), "a\\xab")
        XCTAssertEqual(loggable("a\u{7F}"), "a\\x7f")
        XCTAssertEqual(loggable("é"), "é")
        XCTAssertEqual(loggable(String(repeating: "x", count: 64)), String(repeating: "x", count: 64))
        XCTAssertEqual(loggable(String(repeating: "x", count: 65)), String(repeating: "x", count: 64) + "…")
        XCTAssertEqual(loggable("abcdef", limit: 3), "abc…")
    }

    func testTheLineIsSortedAndQuotesValuesWithSpacesOrNothing() {
        let line = LineLogHandler.render(message: "login", metadata: [
            "user": "alice", "reason": "wrong code", "rhost": "", "result": "denied",
        ])
        XCTAssertEqual(line, "login reason=\"wrong code\" result=denied rhost=\"\" user=alice")
    }
}
