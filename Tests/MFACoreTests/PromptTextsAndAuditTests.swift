// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// Issue 19, parts 4 and 5: the prompt-text keys, `mode = audit` in the policy, the audit record lines.
final class PromptTextsAndAuditTests: XCTestCase {
    func parse(_ text: String) throws(ConfigError) -> DaemonConfig { try ConfigParser.parse(text, file: "/etc/mfagate/mfagate.conf") }

    func testPromptKeysParseRenderAndFill() throws {
        let c = try parse("code_prompt = Token:\ncode_hint = Lost it? Type a recovery code.\nenroll_intro = Hi %u, 100% easy\ngrace_notice = %u by %d\n")
        XCTAssertEqual(c.prompts.codePromptShown, "Token: ")
        XCTAssertEqual(c.prompts.codeHint, "Lost it? Type a recovery code.")
        XCTAssertEqual(PromptTexts.fill(c.prompts.enrollIntro!, user: "bob"), "Hi bob, 100% easy")
        XCTAssertEqual(PromptTexts.fill(c.prompts.graceNotice!, user: "bob", deadline: "D"), "bob by D")
        XCTAssertEqual(DaemonConfig().prompts.codePromptShown, "Verification code: ")
        XCTAssertTrue(ConfigParser.render(c).contains("code_prompt = Token:"))
        XCTAssertEqual(c.rule("code_hint"), "config line 2: code_hint = Lost it? Type a recovery code.")
    }

    func testTextsThatCouldDriveATerminalAreRefusedWithoutEchoingThem() {
        for (value, problem) in [("a\u{1B}[2Jb", "U+001B"), ("a\u{9B}31m", "U+009B"), ("a\u{202E}b", "U+202E"),
                                 ("a\u{200B}b", "U+200B"), ("a\u{2028}b", "U+2028"), ("a\u{E000}", "U+E000"),
                                 ("a\u{7F}", "U+007F"), ("a\tb", "U+0009")] {
            do {
                _ = try parse("code_hint = \(value)\n")
                XCTFail("accepted \(value.debugDescription)")
            } catch {
                XCTAssertTrue(error.description.hasPrefix("/etc/mfagate/mfagate.conf:1: `code_hint` must be 1 to 512 bytes"), error.description)
                XCTAssertTrue(error.description.contains(problem), error.description)
                XCTAssertFalse(error.description.contains(value), "the refusal never echoes the text")
            }
        }
        XCTAssertThrowsError(try parse("code_prompt = \(String(repeating: "x", count: 129))\n"))
        XCTAssertNoThrow(try parse("code_prompt = \(String(repeating: "é", count: 64))\n"))
        XCTAssertNoThrow(try parse("enroll_intro = Scannez ce code QR avec une appli — 認証アプリ 🔐\n"))
    }

    func testAuditModeIsEvaluatedAsRequired() throws {
        let c = try parse("mode = audit\nexempt_users = carol\nenroll_at_login = no\n")
        let facts = { (user: String, enrolled: Bool) in LoginFacts(user: user, service: "sshd", rhost: "192.0.2.1", enrolled: enrolled, now: 1000) }
        XCTAssertEqual(Policy.evaluate(c, facts("bob", false)), PolicyOutcome(.deny(reason: "not enrolled, MFA required"), rule: "config line 1: mode = audit"))
        XCTAssertEqual(Policy.evaluate(c, facts("alice", true)).decision, .askForCode)
        XCTAssertEqual(Policy.evaluate(c, facts("carol", false)).decision, .ignore(reason: "exempt"))
        XCTAssertNil(Policy.switchedOff(c))
        XCTAssertThrowsError(try parse("mode = report\n")) { XCTAssertTrue("\($0)".contains("required, optional, audit, off")) }
    }

    func testAuditLinesRoundTripAndHostileFieldsAreEscaped() throws {
        let hostile = AuditRecord(time: 1_800_000_000, user: "bob", service: "ss\thd\n", rhost: "10.0.0.1\u{1B}]0;x\u{7}\u{9B}",
                                  decision: "refuse", rule: "config line 1: mode = audit", reason: "back\\slash \u{202E}")
        let line = hostile.line
        XCTAssertEqual(line.split(separator: "\t", omittingEmptySubsequences: false).count, 8)
        XCTAssertFalse(line.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" || $0.value == 0x9B || $0.value == 0x202E })
        let back = try XCTUnwrap(AuditRecord.parse(line))
        XCTAssertEqual(back.service, "ss\\u{9}hd\\u{a}")
        XCTAssertEqual(back.rhost, "10.0.0.1\\u{1b}]0;x\\u{7}\\u{9b}")
        XCTAssertEqual(back.reason, "back\\u{5c}slash \\u{202e}")
        let plain = AuditRecord(time: 5, user: "alice", service: "sshd", rhost: "", outcome: PolicyOutcome(.askForCode, rule: "r"))
        XCTAssertEqual(AuditRecord.parse(plain.line), plain)
        XCTAssertEqual(AuditRecord.escaped(String(repeating: "x", count: 300)).count, AuditRecord.fieldLimit + 1)
        for bad in ["", "v1", "v2\t1\ta\tb\tc\trefuse\tr\tr", "v1\tx\ta\tb\tc\trefuse\tr\tr", "v1\t1\ta\tb\tc\tmaybe\tr\tr",
                    "v1\t1\ta\tb\tc\trefuse\tr", "v1\t1\ta\tb\tc\trefuse\tr\tr\textra", "v1\t1\ta\u{1B}\tb\tc\trefuse\tr\tr", "v1\t-1\ta\tb\tc\trefuse\tr\tr"] {
            XCTAssertNil(AuditRecord.parse(bad), bad.debugDescription)
        }
        XCTAssertEqual(AuditRecord.parseSince("7d"), 7 * 86400)
        XCTAssertNil(AuditRecord.parseSince("seven"))
    }
}
