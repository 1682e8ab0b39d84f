// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFAProtocol

/// REPORT and REPORTED (docs/protocol.md, issue 19 part 5).
final class ReportMessagesTests: XCTestCase {
    func testRoundTrip() throws {
        for r in [ReportRequest(), ReportRequest(sinceSeconds: 7 * 86400)] {
            let frame = try FrameCodec.encode(ClientMessage.report(r))
            XCTAssertEqual(try FrameCodec.decodeClient(Array(frame.dropFirst(4))), .report(r))
        }
        let rows = [ReportRow(user: "bob", decision: "refuse", rule: "config line 1: mode = audit", service: "sshd",
                              rhost: "192.0.2.7", count: 3, last: 1_800_000_000),
                    ReportRow(user: "-", decision: "refuse", rule: "account lookup (NSS)", service: "sudo", rhost: "", count: 1, last: 5)]
        let reply = DaemonMessage.reported(ReportReply(from: 0, to: 1_800_000_100, mode: "audit", logins: 4, skippedLines: 2,
                                                       omittedRows: 0, problem: "p", rows: rows))
        XCTAssertEqual(try FrameCodec.decodeDaemon(Array(try FrameCodec.encode(reply).dropFirst(4))), reply)
        XCTAssertEqual(rows[0].encodedSize, try FrameCodec.encode(DaemonMessage.reported(ReportReply(
            from: 0, to: 0, mode: "", logins: 0, skippedLines: 0, omittedRows: 0, rows: [rows[0]]))).count - 4 - 35)
    }

    func testWireLayoutMatchesTheDocument() throws {
        // 0x28, version, u64 seconds (0 = every record)
        let frame = try FrameCodec.encode(ClientMessage.report(ReportRequest(sinceSeconds: 0x0102)))
        XCTAssertEqual(Array(frame.dropFirst(4)), [0x28, 1, 0, 0, 0, 0, 0, 0, 1, 2])
    }

    func testNegativeTruncatedAndTrailingAreRefused() {
        XCTAssertThrowsError(try FrameCodec.decodeClient([0x28, 1, 0xFF, 0, 0, 0, 0, 0, 0, 1]))
        XCTAssertThrowsError(try FrameCodec.decodeClient([0x28, 1, 0, 0]))
        XCTAssertThrowsError(try FrameCodec.decodeClient([0x28, 1, 0, 0, 0, 0, 0, 0, 0, 0, 9]))
        XCTAssertThrowsError(try FrameCodec.decodeDaemon([0xA8, 0, 1]))
    }
}
