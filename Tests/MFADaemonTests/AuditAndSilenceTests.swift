// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore
@testable import MFADaemon
@testable import MFAProtocol
@testable import MFAStore

/// Issue 19, parts 4 and 5 through the login flow: `mode = audit` answers IGNORE without a question
/// and records the would-be decision; the admin's texts; what PAM_SILENT leaves out.
final class AuditAndSilenceTests: XCTestCase {
    func testAuditModeIgnoresEveryLoginAndRecordsWhatRequiredWouldDo() throws {
        let h = try LoginHarness { $0.mode = .audit; $0.enrollAtLogin = false }
        try h.enroll("alice")
        for (user, word) in [("alice", "code"), ("bob", "refuse"), ("nobody-here", "refuse")] {
            let step = h.begin(user)
            let verdict = LoginHarness.verdict(step)
            XCTAssertEqual(verdict?.0, .ignore, "\(user): \(step)")
            XCTAssertTrue(verdict?.1.hasPrefix("mode audit: would \(word)") == true, "\(user): \(String(describing: verdict))")
        }
        let (records, skipped, problems) = h.authority.audit.read(since: 0)
        XCTAssertEqual(skipped, 0)
        XCTAssertEqual(problems, [])
        XCTAssertEqual(records.map(\.user), ["alice", "bob", "-"])
        guard records.count == 3 else { return }
        XCTAssertEqual(records.map(\.decision), ["code", "refuse", "refuse"])
        XCTAssertEqual(records[1].rule, "default: mode = audit")
        XCTAssertEqual(records[0].time, h.clock.now)
        guard case .reported(let report) = h.authority.admin.report(ReportRequest(), peer: h.peer) else { return XCTFail() }
        XCTAssertEqual(report.logins, 3)
        XCTAssertEqual(report.rows.first?.decision, "refuse", "refusals first")
        guard case .error(.notAllowed, _) = h.authority.admin.report(ReportRequest(), peer: Peer(pid: 1, uid: 1002, gid: 1002)) else {
            return XCTFail("a user may not read the report")
        }
    }

    func testRecordsFromNonRootPeersAreRateLimited() throws {
        let h = try LoginHarness { $0.mode = .audit }
        let bob = Peer(pid: 200, uid: 1002, gid: 1002)
        for _ in 0..<30 {
            XCTAssertEqual(LoginHarness.verdict(h.authority.beginLogin(LoginBegin(user: "bob", service: "x"), peer: bob))?.0, .ignore)
        }
        XCTAssertEqual(h.authority.audit.read(since: 0).records.count, 20, "one user cannot flood the records")
        for _ in 0..<5 { _ = h.begin("alice") }
        XCTAssertEqual(h.authority.audit.read(since: 0).records.count, 25, "sshd's (root's) logins are always recorded")
    }

    func testReportRowsAreCutToTheFrameAndCounted() {
        let records = (0..<2000).map { i in
            AuditRecord(time: Int64(i), user: "user\(i)", service: "sshd", rhost: "192.0.2.\(i % 250)", decision: i % 2 == 0 ? "code" : "refuse",
                        rule: String(repeating: "r", count: 150), reason: "x")
        }
        let (rows, omitted) = AdminVerbs.group(records, budget: ReportReply.rowBudget)
        XCTAssertEqual(rows.count + omitted, 2000)
        XCTAssertGreaterThan(omitted, 0)
        XCTAssertEqual(rows.first?.decision, "refuse", "refusals first")
        if let firstCode = rows.firstIndex(where: { $0.decision == "code" }) {
            XCTAssertTrue(rows[..<firstCode].allSatisfy { $0.decision == "refuse" })
            XCTAssertEqual(rows[..<firstCode].count, 1000, "every refusal kept before any code row")
        }
        let reply = DaemonMessage.reported(ReportReply(from: 0, to: 1, mode: "audit", logins: 2000, skippedLines: 0,
                                                       omittedRows: UInt32(omitted), problem: String(repeating: "p", count: 1000), rows: rows))
        XCTAssertNoThrow(try FrameCodec.encode(reply), "the cut report fits one frame")
    }

    func testOwnTextsAndTheHintAlsoForALockedUser() throws {
        let h = try LoginHarness {
            $0.prompts.codePrompt = "Token:"
            $0.prompts.codeHint = "Lost it? Type a recovery code."
            $0.maxFailures = 1
        }
        try h.enroll("alice")
        let first = h.begin("alice")
        XCTAssertEqual(LoginHarness.messages(first), [ConversationMessage(.textInfo, "Lost it? Type a recovery code."),
                                                      ConversationMessage(.promptEchoOff, "Token: ")])
        XCTAssertEqual(LoginHarness.verdict(h.answer("000000", to: first))?.0, .denied)
        let locked = h.begin("alice")
        XCTAssertEqual(LoginHarness.messages(locked), LoginHarness.messages(first))
        XCTAssertEqual(LoginHarness.messages(h.begin("alice", silent: true)), [ConversationMessage(.promptEchoOff, "Token: ")])
    }

    func testSilentGraceGetsIgnoreAtOnceAndSilentEnrollmentIsNotOffered() throws {
        let h = try LoginHarness { $0.mode = .required; $0.gracePeriod = 7 * 86400; $0.enrollAtLogin = false
                                   $0.prompts.graceNotice = "%u, from %d." }
        XCTAssertEqual(LoginHarness.messages(h.begin("bob")).first?.text, "bob, from \(UTCTime.format(h.clock.now + 7 * 86400)).")
        let silent = LoginHarness.verdict(h.begin("bob", silent: true))
        XCTAssertEqual(silent?.0, .ignore)
        XCTAssertTrue(silent?.1.contains("silent: no notice") == true)
        let e = try LoginHarness { $0.mode = .required; $0.enrollAtLogin = true; $0.prompts.enrollIntro = "Hi %u:" }
        XCTAssertEqual(LoginHarness.messages(e.begin("bob")).first?.text, "Hi bob:")
        XCTAssertEqual(LoginHarness.verdict(e.begin("bob", silent: true))?.0, .denied)
    }
}
