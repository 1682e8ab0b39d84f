// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore
@testable import MFADaemon
@testable import MFAProtocol
@testable import MFAStore

/// `remember` and `forward_pass`'s code-prompt mark through the login flow (issue 19 parts 2 and 3),
/// with the RFC 6238 vectors and a hand-moved clock (LoginFlowTests+Harness.swift).
final class LoginFlowRememberTests: XCTestCase {
    let t = Int64(1_234_567_890)

    func remembering() throws -> LoginHarness {
        try LoginHarness({ $0.remember = 8 * 3600; $0.neverRememberHosts = ["jump"] }, start: t)
    }

    func testARightCodeIsRememberedForTheSameHostAndServiceOnly() throws {
        let h = try remembering()
        try h.enroll("alice")
        let first = h.login("alice", code: LoginHarness.code(at: t))
        XCTAssertEqual(first?.0, .success)
        XCTAssertTrue(first?.1.hasPrefix("totp, 192.0.2.7 remembered until ") == true, "\(String(describing: first))")
        h.clock.advance(3600)
        let again = LoginHarness.verdict(h.begin("alice"))
        XCTAssertEqual(again?.0, .ignore)
        XCTAssertTrue(again?.1.hasPrefix("remembered: right code from 192.0.2.7 for sshd at ") == true, "\(String(describing: again))")
        XCTAssertEqual(LoginHarness.prompt(h.begin("alice", service: "login")), LoginFlow.prompt)
        XCTAssertEqual(LoginHarness.prompt(h.begin("alice", rhost: "192.0.2.8")), LoginFlow.prompt)
        XCTAssertEqual(LoginHarness.prompt(h.begin("alice", rhost: "")), LoginFlow.prompt)
        h.clock.advance(7 * 3600)
        XCTAssertEqual(LoginHarness.prompt(h.begin("alice")), LoginFlow.prompt, "8 hours after the code")
    }

    func testARecoveryCodeEndsEveryEntryAndMakesNone() throws {
        let h = try remembering()
        let codes = try h.enroll("alice")
        XCTAssertEqual(h.login("alice", code: LoginHarness.code(at: t))?.0, .success)
        XCTAssertEqual(try h.record("alice")?.remembered.count, 1)
        let recovered = h.login("alice", code: codes[0], rhost: "192.0.2.9")
        XCTAssertEqual(recovered?.0, .success)
        XCTAssertTrue(recovered?.1.hasSuffix("remembered hosts forgotten") == true, "\(String(describing: recovered))")
        XCTAssertEqual(try h.record("alice")?.remembered, [])
        XCTAssertEqual(LoginHarness.prompt(h.begin("alice", rhost: "192.0.2.9")), LoginFlow.prompt)
    }

    func testForgetByTheUserOrRootAndNotByAnotherUser() throws {
        let h = try remembering()
        try h.enroll("alice")
        XCTAssertEqual(h.login("alice", code: LoginHarness.code(at: t))?.0, .success)
        let bob = Peer(pid: 7, uid: 1002, gid: 1002)
        guard case .error(.notAllowed, _) = h.authority.forget(user: "alice", peer: bob) else { return XCTFail("bob forgot alice's") }
        let alice = Peer(pid: 8, uid: 1001, gid: 1001)
        guard case .done(let message) = h.authority.forget(user: "", peer: alice) else { return XCTFail("alice could not forget hers") }
        XCTAssertEqual(message, "alice: 1 remembered host forgotten; the next login asks for a code")
        XCTAssertEqual(LoginHarness.prompt(h.begin("alice")), LoginFlow.prompt)
        guard case .done(let none) = h.authority.forget(user: "alice", peer: h.peer) else { return XCTFail() }
        XCTAssertEqual(none, "alice has no remembered hosts")
    }

    /// Fleet: another host wrote the record between this one's read and write; the entry is made
    /// on the retry, from the record that host wrote.
    func testTheEntrySurvivesAFleetRetry() throws {
        var conflicting: ConflictOnceStore?
        let h = try LoginHarness({ $0.remember = 3600 }, start: t, store: { let s = ConflictOnceStore($0); conflicting = s; return s })
        try h.enroll("alice")
        conflicting?.otherHost = { $0.remembered = [RememberedLogin(service: "sshd", rhost: "198.51.100.1", created: 1_234_567_000)] }
        XCTAssertEqual(h.login("alice", code: LoginHarness.code(at: t))?.0, .success)
        XCTAssertEqual(conflicting?.conflicts, 1)
        XCTAssertEqual(try h.record("alice")?.remembered.map(\.rhost), ["198.51.100.1", "192.0.2.7"])
    }

    func testAOnePromptModuleGetsTheCodePromptMarkedWithTheUsersCodeLength() throws {
        let h = try LoginHarness(start: t)
        try h.enroll("alice")
        let marked = h.authority.beginLogin(LoginBegin(user: "alice", service: "vpn", rhost: "192.0.2.7", onePrompt: true), peer: h.peer)
        XCTAssertEqual(LoginHarness.messages(marked), [ConversationMessage(.codeDigits, "6"), ConversationMessage(.promptEchoOff, LoginFlow.prompt)])
        XCTAssertEqual(LoginHarness.messages(h.begin("alice")), [ConversationMessage(.promptEchoOff, LoginFlow.prompt)], "never to other modules")
        // The code alone comes back (the module kept the password).
        XCTAssertEqual(LoginHarness.verdict(h.answer(LoginHarness.code(at: t), to: marked))?.0, .success)
    }
}
