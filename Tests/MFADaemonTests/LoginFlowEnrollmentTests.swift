// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore
@testable import MFADaemon
@testable import MFAProtocol
@testable import MFAStore

/// Enrollment offered at login (required, optional, by invite) and the email path with `resend`,
/// scripted through the login flow. The email command is a stand-in script in the temp dir that
/// keeps each message, so no MTA is involved (the real one is in Tests/integration/test_delivery.py).
final class LoginFlowEnrollmentTests: XCTestCase {
    let t = Int64(1_234_567_890)

    func testRequiredEnrollmentAtLoginShowsTheKeyThenRecoveryCodesThenSucceeds() throws {
        let h = try LoginHarness { $0.mode = .required }
        let offer = h.begin("bob")
        XCTAssertEqual(LoginHarness.prompt(offer), LoginFlow.prompt)
        XCTAssertTrue(LoginHarness.text(offer).contains("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"), LoginHarness.text(offer))
        XCTAssertFalse(LoginHarness.text(offer).contains("skip"), "a required enrollment cannot be skipped")
        // Mandatory: an empty answer is a wrong code, not a skip.
        let retry = h.answer("", to: offer)
        XCTAssertTrue(LoginHarness.text(retry).contains("2 tries left"), LoginHarness.text(retry))
        let shown = h.answer(LoginHarness.code(at: t), to: retry)
        XCTAssertEqual(LoginHarness.prompt(shown), LoginFlow.savedPrompt)
        let codes = LoginHarness.messages(shown).dropFirst().first?.text.split(separator: "\n") ?? []
        XCTAssertEqual(codes.count, RecoveryCodes.count)
        let verdict = LoginHarness.verdict(h.answer("", to: shown))
        XCTAssertEqual(verdict?.0, .success)
        XCTAssertEqual(verdict?.1, "enrolled at login")
        // The confirming code is spent: the next login needs the next one.
        XCTAssertEqual(h.login("bob", code: LoginHarness.code(at: t))?.1, "replayed code")
        // A shown recovery code works.
        XCTAssertEqual(h.login("bob", code: String(codes[0]).trimmingCharacters(in: .whitespaces))?.0, .success)
    }

    func testRequiredEnrollmentWithThreeWrongCodesIsDeniedAndSavesNothing() throws {
        let h = try LoginHarness { $0.mode = .required }
        var step = h.begin("bob")
        for _ in 0..<3 { step = h.answer("111111", to: step) }
        XCTAssertEqual(LoginHarness.verdict(step)?.1, "wrong enrollment code")
        XCTAssertNil(try h.record("bob"))
    }

    func testOptionalEnrollmentAtLoginMayBeSkipped() throws {
        let h = try LoginHarness()
        let offer = h.begin("bob")
        XCTAssertTrue(LoginHarness.text(offer).contains("Press Enter without a code to skip"))
        let verdict = LoginHarness.verdict(h.answer("", to: offer))
        XCTAssertEqual(verdict?.0, .ignore)
        XCTAssertEqual(verdict?.1, "enrollment skipped, mode optional")
        XCTAssertNil(try h.record("bob"))
    }

    func testSilentLoginIsNotOfferedEnrollment() throws {
        let h = try LoginHarness { $0.mode = .required }
        XCTAssertEqual(LoginHarness.verdict(h.begin("bob", silent: true))?.1, "not enrolled, mode required")
    }

    func testInviteIsAskedOnlyOfInvitedUsersAndWorksOnce() throws {
        let h = try LoginHarness { $0.mode = .required; $0.enrollAtLoginNeedsInvite = true }
        XCTAssertEqual(LoginHarness.verdict(h.begin("bob"))?.1, "not enrolled, no invite, mode required")
        guard case .invited(let invite) = h.authority.admin.invite(InviteRequest(user: "bob"), peer: h.peer) else {
            return XCTFail("root could not invite bob")
        }
        // A wrong invite code ends the login and counts as a wrong code.
        let asked = h.begin("bob")
        XCTAssertEqual(LoginHarness.prompt(asked), LoginFlow.invitePrompt)
        XCTAssertEqual(LoginHarness.verdict(h.answer("WRONG-WRONG", to: asked))?.1, "wrong or expired invite code")
        // The right one leads to the enrollment screen.
        let screen = h.answer(invite.code, to: h.begin("bob"))
        XCTAssertTrue(LoginHarness.text(screen).contains("GEZD GNBV"), LoginHarness.text(screen))
        let shown = h.answer(LoginHarness.code(at: t), to: screen)
        XCTAssertEqual(LoginHarness.verdict(h.answer("", to: shown))?.0, .success)
        XCTAssertNotNil(try h.record("bob"))
        // Used up.
        XCTAssertFalse(h.authority.invites.hasInvite(try UserName(validating: "bob"), now: h.clock.now))
    }

    // MARK: email

    /// A stand-in `email_command`: keeps each message in `dir/mail.N`.
    func mailCatcher(in dir: String) throws -> String {
        let path = dir + "/catch-mail"
        try "#!/bin/sh\nn=$(ls \(dir) | grep -c '^mail\\.')\ncat > \(dir)/mail.$n.tmp && mv \(dir)/mail.$n.tmp \(dir)/mail.$n\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func mailedCode(_ dir: String, _ n: Int) throws -> String {
        let text = try String(contentsOfFile: "\(dir)/mail.\(n)", encoding: .utf8)
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        return try XCTUnwrap(lines.first { !$0.isEmpty && $0.allSatisfy(\.isNumber) }, text)
    }

    /// alice, enrolled with the app and preferring email; the mail goes to a catcher in a temp dir.
    func emailUser() throws -> (LoginHarness, mail: String) {
        let mail = NSTemporaryDirectory() + "mfagate-mail-\(UUID().uuidString)"
        XCTAssertEqual(mkdir(mail, 0o700), 0)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: mail) }
        let catcher = try mailCatcher(in: mail)
        let h = try LoginHarness { $0.methods = [.totp, .email]; $0.emailCommand = [catcher] }
        try h.enroll("alice")
        var record = try XCTUnwrap(try h.record("alice"))
        record.email = "alice@example.org"
        record.preferred = .email
        try h.store.save(record)
        return (h, mail)
    }

    func testEmailLoginSendsACodeResendsANewOneAndAcceptsItOnce() throws {
        let (h, mail) = try emailUser()
        let sent = h.delivered(h.begin("alice"))
        XCTAssertEqual(LoginHarness.prompt(sent), "Code sent to a***@example.org: ")
        let first = try mailedCode(mail, 0)
        let resent = h.delivered(h.answer("resend", to: sent))
        XCTAssertEqual(LoginHarness.prompt(resent), "Code sent to a***@example.org: ")
        let second = try mailedCode(mail, 1)
        // The resend replaced the first code: it is now a wrong code, asked again while tries are left.
        let wrong = first != second ? first : "000000"
        let again = h.answer(wrong, to: resent)
        XCTAssertTrue(LoginHarness.text(again).contains("That code is not right. 2 tries left."), LoginHarness.text(again))
        let verdict = LoginHarness.verdict(h.answer(second, to: again))
        XCTAssertEqual(verdict?.0, .success)
        XCTAssertEqual(verdict?.1, "email code")
        // Used once: the next login sends a new one, and the old one no longer works.
        let next = h.delivered(h.begin("alice"))
        let reused = h.answer(second, to: next)
        XCTAssertTrue(LoginHarness.text(reused).contains("That code is not right"), LoginHarness.text(reused))
    }

    func testEmailLoginStillAcceptsTheAppCode() throws {
        let (h, _) = try emailUser()
        let sent = h.delivered(h.begin("alice"))
        XCTAssertEqual(LoginHarness.verdict(h.answer(LoginHarness.code(at: t), to: sent))?.1, "totp")
    }
}
