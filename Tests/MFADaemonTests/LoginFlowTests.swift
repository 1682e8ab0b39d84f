// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore
@testable import MFADaemon
@testable import MFAProtocol
@testable import MFAStore

/// Whole logins of an enrolled user, scripted through the login flow (LoginFlowTests+Harness.swift):
/// the code, its replay, recovery codes, lockout and unlock, and a fleet write conflict.
final class LoginFlowTests: XCTestCase {
    let t = Int64(1_234_567_890)

    func testRightCodeSucceedsAndItsReplayIsRefused() throws {
        let h = try LoginHarness()
        try h.enroll("alice")
        let first = h.begin("alice")
        XCTAssertEqual(LoginHarness.prompt(first), LoginFlow.prompt)
        let verdict = LoginHarness.verdict(h.answer(LoginHarness.code(at: t), to: first))
        XCTAssertEqual(verdict?.0, .success)
        XCTAssertEqual(verdict?.1, "totp")
        // The used step is on disk before the success was answered.
        XCTAssertEqual(try h.record("alice")?.lastUsedStep, t / 30)
        // Same code again, even a few seconds later in the same step: refused as a replay.
        h.clock.advance(5)
        let replay = h.login("alice", code: LoginHarness.code(at: t))
        XCTAssertEqual(replay?.0, .denied)
        XCTAssertEqual(replay?.1, "replayed code")
    }

    func testWrongCodeIsDenied() throws {
        let h = try LoginHarness()
        try h.enroll("alice")
        let verdict = h.login("alice", code: "123456")
        XCTAssertEqual(verdict?.0, .denied)
        XCTAssertEqual(verdict?.1, "wrong code")
    }

    func testUnknownAccountIsDeniedWithoutPrompt() throws {
        let h = try LoginHarness()
        let verdict = LoginHarness.verdict(h.begin("mallory"))
        XCTAssertEqual(verdict?.0, .denied)
    }

    func testNotEnrolledUnderOptionalWithoutEnrollAtLoginIsIgnored() throws {
        let h = try LoginHarness { $0.enrollAtLogin = false }
        XCTAssertEqual(LoginHarness.verdict(h.begin("bob"))?.0, .ignore)
    }

    func testRecoveryCodeWorksOnceAndIsUsedUp() throws {
        let h = try LoginHarness()
        let codes = try h.enroll("alice")
        let verdict = h.login("alice", code: codes[0])
        XCTAssertEqual(verdict?.0, .success)
        XCTAssertEqual(verdict?.1, "recovery code, 9 left")
        XCTAssertEqual(try h.record("alice")?.recoveryCodes.count, 9)
        let again = h.login("alice", code: codes[0])
        XCTAssertEqual(again?.0, .denied)
        XCTAssertEqual(try h.record("alice")?.recoveryCodes.count, 9)
    }

    func testLockoutRefusesEvenTheRightCodeUntilRootUnlocks() throws {
        let h = try LoginHarness { $0.maxFailures = 3 }
        try h.enroll("alice")
        for _ in 0..<3 { XCTAssertEqual(h.login("alice", code: "111111")?.0, .denied) }
        // Locked: the prompt looks the same, and the right code gets "locked".
        let locked = h.begin("alice")
        XCTAssertEqual(LoginHarness.prompt(locked), LoginFlow.prompt)
        XCTAssertEqual(LoginHarness.verdict(h.answer(LoginHarness.code(at: t), to: locked))?.0, .locked)
        // The code was not even checked, so it is not spent.
        XCTAssertNil(try h.record("alice")?.lastUsedStep)
        // Only root may unlock.
        let alice = Peer(pid: 7, uid: 1001, gid: 1001)
        guard case .error(.notAllowed, _) = h.authority.admin.unlock(user: "alice", rhost: "", peer: alice) else {
            return XCTFail("a user unlocked herself")
        }
        guard case .done(let message) = h.authority.admin.unlock(user: "alice", rhost: "", peer: h.peer) else {
            return XCTFail("root could not unlock")
        }
        XCTAssertEqual(message, "unlocked user alice")
        XCTAssertEqual(h.login("alice", code: LoginHarness.code(at: t))?.0, .success)
    }

    func testLockedUserGetsInWithARecoveryCodeWhichClearsTheLockout() throws {
        let h = try LoginHarness { $0.maxFailures = 3 }
        let codes = try h.enroll("alice")
        for _ in 0..<3 { _ = h.login("alice", code: "111111") }
        XCTAssertEqual(h.login("alice", code: LoginHarness.code(at: t))?.0, .locked)
        let recovered = h.login("alice", code: codes[3])
        XCTAssertEqual(recovered?.0, .success)
        XCTAssertEqual(recovered?.1, "recovery code, 9 left, lockout cleared")
        // The lockout is gone: the app's code works again.
        XCTAssertEqual(h.login("alice", code: LoginHarness.code(at: t))?.0, .success)
    }

    func testLockedUserWithAWrongRecoveryCodeStaysLocked() throws {
        let h = try LoginHarness { $0.maxFailures = 3 }
        try h.enroll("alice")
        for _ in 0..<3 { _ = h.login("alice", code: "111111") }
        XCTAssertEqual(h.login("alice", code: "ABCD-EFGH-JKMN")?.0, .locked)
        XCTAssertEqual(h.login("alice", code: LoginHarness.code(at: t))?.0, .locked)
    }

    func testGracePeriodLetsAnUnenrolledUserInUntilItEnds() throws {
        let h = try LoginHarness {
            $0.mode = .required
            $0.gracePeriod = 86_400
            $0.enrollAtLogin = false
        }
        let notice = h.begin("bob")
        XCTAssertEqual(LoginHarness.prompt(notice), LoginFlow.continuePrompt)
        XCTAssertTrue(LoginHarness.text(notice).contains("from 2009-02-14 23:31 UTC"), LoginHarness.text(notice))
        XCTAssertEqual(LoginHarness.verdict(h.answer("", to: notice))?.0, .ignore)
        // The grace period counts from the first sighting, not from each login.
        h.clock.advance(86_400 - 60)
        XCTAssertNotNil(LoginHarness.prompt(h.begin("bob")))
        h.clock.advance(60)
        let after = LoginHarness.verdict(h.begin("bob"))
        XCTAssertEqual(after?.0, .denied)
        XCTAssertEqual(after?.1, "not enrolled, MFA required")
    }

    func testModeOffIgnoresEveryone() throws {
        let h = try LoginHarness { $0.mode = .off }
        try h.enroll("alice")
        XCTAssertEqual(LoginHarness.verdict(h.begin("alice"))?.1, "mode off")
        XCTAssertEqual(LoginHarness.verdict(h.begin("nosuchuser"))?.0, .ignore)
    }

    func testProtocolVersionOtherThanOursIsUnavailable() throws {
        let h = try LoginHarness()
        let step = h.authority.beginLogin(LoginBegin(version: WireProtocol.version &+ 1, user: "alice", service: "sshd"), peer: h.peer)
        XCTAssertEqual(LoginHarness.verdict(step)?.0, .unavailable)
    }

    // MARK: fleet

    /// Another host wrote the record between our read and our write (a changed drift, say): the
    /// code is checked again against what it wrote and, still good, accepted.
    func testFleetConflictIsRetriedAndTheCodeStillAccepted() throws {
        var conflicting: ConflictOnceStore?
        let h = try LoginHarness(store: { let s = ConflictOnceStore($0); conflicting = s; return s })
        try h.enroll("alice")
        conflicting?.otherHost = { $0.lastSuccess = 1 }
        let verdict = h.login("alice", code: LoginHarness.code(at: t))
        XCTAssertEqual(verdict?.0, .success)
        XCTAssertEqual(conflicting?.conflicts, 1)
        XCTAssertEqual(try h.record("alice")?.lastUsedStep, t / 30)
    }

    /// Another host used the same code meanwhile: on the retry it is a replay, so a time step is
    /// accepted once fleet-wide.
    func testFleetConflictWhereAnotherHostUsedTheSameCodeIsAReplay() throws {
        var conflicting: ConflictOnceStore?
        let h = try LoginHarness(store: { let s = ConflictOnceStore($0); conflicting = s; return s })
        let codes = try h.enroll("alice")
        conflicting?.otherHost = { $0.lastUsedStep = 1_234_567_890 / 30 }
        let verdict = h.login("alice", code: LoginHarness.code(at: t))
        XCTAssertEqual(verdict?.0, .denied)
        XCTAssertEqual(verdict?.1, "replayed code")
        // Same for a recovery code the other host used up.
        let used = try XCTUnwrap(RecoveryCodes.normalize(codes[0]))
        conflicting?.otherHost = { record in
            if let i = RecoveryCodes.match(typed: used, stored: record.recoveryCodes) { record.recoveryCodes.remove(at: i) }
        }
        XCTAssertEqual(h.login("alice", code: codes[0])?.0, .denied)
        XCTAssertEqual(conflicting?.conflicts, 2)
    }
}
