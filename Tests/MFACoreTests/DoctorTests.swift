// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// `mfagate doctor`'s pure part: PAM stack parsing and expansion, the walk over Linux-PAM's rules,
/// `sshd -T` settings and each diagnosis. Debian 12's files are copied as they ship.
final class DoctorTests: XCTestCase {
    static let debianCommonAuth = """
        # here are the per-package modules (the "Primary" block)
        auth\t[success=1 default=ignore]\tpam_unix.so nullok
        # here's the fallback if no module succeeds
        auth\trequisite\t\t\tpam_deny.so
        # prime the stack with a positive return value if there isn't one already;
        auth\trequired\t\t\tpam_permit.so
        # and here are more per-package modules (the "Additional" block)
        auth\toptional\t\t\tpam_cap.so
        """

    func files(_ map: [String: String]) -> (String) -> String? { { map[$0] } }

    func diagnose(_ sshd: String, common: String = debianCommonAuth, extra: [String: String] = [:],
                  socket: String = Doctor.defaultSocket) -> StackDiagnosis {
        var map = ["/p/sshd": sshd, "/p/common-auth": common]
        for (k, v) in extra { map["/p/" + k] = v }
        let stack = PAMStack.read(service: "sshd", directory: "/p", read: files(map))
        return Doctor.diagnose(service: "sshd", stack: stack, directory: "/p", socketPath: socket, configFile: "/etc/mfagate/mfagate.conf")
    }

    func codes(_ d: StackDiagnosis) -> [String] { d.findings.filter { $0.kind == .problem }.map(\.code) }

    // MARK: parsing

    func testParsesBracketsContinuationsCommentsAndIncludes() {
        let stack = PAMStack.read(service: "s", directory: "/p", read: files([
            "/p/s": "auth required pam_env.so # comment\n@include common-auth\n-auth [success=ok \\\n default=die] /lib/security/pam_mfagate.so socket=/x\naccount required pam_unix.so\nauth substack sub\n",
            "/p/common-auth": Self.debianCommonAuth,
            "/p/sub": "auth sufficient pam_permit.so\n",
        ]))!
        let e = stack.entries
        XCTAssertEqual(e.map(\.moduleName), ["pam_env", "pam_unix", "pam_deny", "pam_permit", "pam_cap", "pam_mfagate", "pam_permit"])
        XCTAssertEqual(e[1].control.text, "[success=1 default=ignore]")
        XCTAssertEqual(e[1].place, "/p/common-auth:2")
        XCTAssertEqual(e[5].control.action(for: .failure), .die)
        XCTAssertTrue(e[5].optionalModule)
        XCTAssertEqual(e[5].arguments, ["socket=/x"])
        XCTAssertEqual(e[5].line, 3)
        XCTAssertTrue(stack.problems.isEmpty)
        if case .substack = stack.items.last! {} else { XCTFail("substack kept as one item") }
    }

    func testMissingIncludeAndUnknownControlAreProblems() {
        let d = diagnose("@include nowhere\nauth maybe pam_unix.so\nauth required pam_mfagate.so\n")
        XCTAssertEqual(d.findings.filter { $0.code == "stack-file" }.count, 2)
        XCTAssertTrue(d.findings[0].text.contains("/p/nowhere"))
        XCTAssertFalse(d.gates)
    }

    func testIncludeLoopStops() {
        let stack = PAMStack.read(service: "a", directory: "/p", read: files(["/p/a": "auth include a\n"]))!
        XCTAssertTrue(stack.problems.contains { $0.text.contains("16 deep") })
        // A file that includes itself many times: bounded, not 10^16 expansions.
        let wide = PAMStack.read(service: "a", directory: "/p", read: files(["/p/a": String(repeating: "auth include a\nauth required pam_permit.so\n", count: 10)]))!
        XCTAssertTrue(wide.problems.contains { $0.text.contains("more than 1000 includes") })
        XCTAssertLessThan(wide.entries.count, 20_000)
    }

    func testHugeJumpsEndTheStack() {
        let stack = PAMStack.read(service: "s", directory: "/p", read: files([
            "/p/s": "auth [success=9223372036854775807 default=ignore] pam_unix.so\nauth required pam_mfagate.so\n"]))!
        XCTAssertEqual(PAMWalk.usualPath(stack).map(\.moduleName), ["pam_unix"])
        XCTAssertEqual(Doctor.diagnose(service: "s", stack: stack, directory: "/p", socketPath: Doctor.defaultSocket, configFile: "c")
                        .findings.map(\.code).sorted(), ["code-skips-password"], "the jump lands past the end: undecided, a failure; only the failed-password path reaches the module")
        XCTAssertNil(PAMControl.parse("[success=99999999999999999999999]"), "not a number PAM takes")
        XCTAssertNil(PAMControl.parse("[success=-1]"))
    }

    // MARK: diagnoses

    func testDebianStackWithModuleAfterCommonAuthGates() {
        let d = diagnose("@include common-auth\nauth required pam_mfagate.so\n")
        XCTAssertEqual(codes(d), [])
        XCTAssertTrue(d.gates)
        XCTAssertEqual(d.position, 4, "pam_unix, pam_permit, pam_cap, then pam_mfagate (pam_deny jumped over)")
        XCTAssertEqual(d.modulesRun, 4)
        XCTAssertEqual(d.module?.place, "/p/sshd:2")
    }

    func testModuleMissing() {
        let d = diagnose("@include common-auth\n")
        XCTAssertEqual(codes(d), ["not-in-stack"])
        XCTAssertFalse(d.gates)
    }

    func testConsoleWithoutTheModuleIsANote() {
        let stack = PAMStack.read(service: "login", directory: "/p", read: files(["/p/login": "auth required pam_unix.so\n"]))
        let d = Doctor.diagnose(service: "login", stack: stack, directory: "/p", socketPath: "/s", configFile: "c", console: true)
        XCTAssertEqual(d.findings.map(\.kind), [.note])
        XCTAssertEqual(Doctor.consoleWay(d).status, .noMFA)
    }

    func testModuleBeforePasswordModule() {
        let d = diagnose("auth required pam_mfagate.so\n@include common-auth\n")
        XCTAssertEqual(codes(d), ["before-password"])
        XCTAssertTrue(d.gates, "still gated, but in the wrong order")
    }

    func testSufficientModuleSkipsPassword() {
        let d = diagnose("auth sufficient pam_mfagate.so\n@include common-auth\n")
        XCTAssertTrue(codes(d).contains("code-skips-password"))
        XCTAssertTrue(codes(d).contains("wrong-code-passes"), "sufficient ignores a failure too")
        XCTAssertFalse(d.gates)
    }

    func testOptionalModuleLetsWrongCodeThrough() {
        let d = diagnose("@include common-auth\nauth optional pam_mfagate.so\n")
        XCTAssertEqual(codes(d), ["wrong-code-passes"])
    }

    func testSufficientUnixBeforeModule() {
        let d = diagnose("auth sufficient pam_unix.so\nauth required pam_mfagate.so\n")
        XCTAssertEqual(codes(d), ["skipped-by", "code-skips-password"])
        XCTAssertTrue(d.findings[0].text.contains("`auth sufficient pam_unix.so` at /p/sshd:1"))
        XCTAssertTrue(d.findings[0].text.contains("a right password alone logs in"))
        // A wrong password is ignored by `sufficient`: the code alone then logs in.
        XCTAssertTrue(d.findings[1].text.contains("without a right password: `auth sufficient pam_unix.so` at /p/sshd:1"))
    }

    func testJumpOverModule() {
        // The module put inside Debian's common-auth, where pam_unix's jump lands past it.
        let common = "auth [success=2 default=ignore] pam_unix.so nullok\nauth required pam_mfagate.so\nauth requisite pam_deny.so\nauth required pam_permit.so\n"
        let d = diagnose("@include common-auth\n", common: common)
        XCTAssertEqual(codes(d), ["skipped-by"])
        XCTAssertTrue(d.findings[0].text.contains("jumps 2"))
        XCTAssertNil(d.position, "not on the usual path")
    }

    func testSubstackDoneStaysInside() {
        // done inside the substack ends only the substack: pam_mfagate after it still runs.
        let d = diagnose("auth substack common-auth\nauth required pam_mfagate.so\n",
                         common: "auth sufficient pam_unix.so\nauth requisite pam_deny.so\n")
        XCTAssertEqual(codes(d), [])
        // The same lines included (not a substack): done ends the whole stack.
        XCTAssertEqual(codes(diagnose("auth include common-auth\nauth required pam_mfagate.so\n",
                                      common: "auth sufficient pam_unix.so\nauth requisite pam_deny.so\n")), ["skipped-by"])
    }

    func testSocketMismatchAndNotes() {
        let d = diagnose("@include common-auth\n-auth required pam_mfagate.so socket=/run/other.sock failmode=safe\n", socket: "/run/mfagate/mfagated.sock")
        XCTAssertEqual(codes(d), ["socket-mismatch"])
        XCTAssertTrue(d.findings[0].text.contains("/run/other.sock"))
        XCTAssertEqual(Set(d.findings.filter { $0.kind == .note }.map(\.code)), ["failmode-safe", "dash-module"])
        XCTAssertEqual(codes(diagnose("@include common-auth\nauth required pam_mfagate.so socket=/s\n", socket: "/s")), [])
    }

    func testHandWrittenLineInsidePamAuthUpdateBlocks() {
        let managed = """
            # As of pam 1.0.1-6, this file is managed by pam-auth-update by default.
            # here are the per-package modules (the "Primary" block)
            auth\t[success=1 default=ignore]\tpam_unix.so nullok
            auth\trequisite\t\t\tpam_deny.so
            auth\trequired\t\t\tpam_permit.so
            # and here are more per-package modules (the "Additional" block)
            auth required pam_mfagate.so
            # end of pam-auth-update config
            """
        let map = ["/p/sshd": "@include common-auth\n", "/p/common-auth": managed]
        let stack = PAMStack.read(service: "sshd", directory: "/p", read: files(map))
        XCTAssertEqual(stack?.entries.map(\.insidePamAuthUpdateBlocks), [true, true, true, true])
        let bare = Doctor.diagnose(service: "sshd", stack: stack, directory: "/p", socketPath: Doctor.defaultSocket, configFile: "c",
                                   profileInstalled: false)
        XCTAssertEqual(bare.findings.map(\.code), ["pam-auth-update"])
        XCTAssertEqual(bare.findings.map(\.kind), [.note])
        XCTAssertEqual(Doctor.diagnose(service: "sshd", stack: stack, directory: "/p", socketPath: Doctor.defaultSocket, configFile: "c",
                                       profileInstalled: true).findings, [])
        // After the end marker (kept by pam-auth-update): no note.
        let after = PAMStack.read(service: "sshd", directory: "/p", read: files(["/p/sshd": "@include common-auth\n",
            "/p/common-auth": managed.replacingOccurrences(of: "auth required pam_mfagate.so\n", with: "") + "\nauth required pam_mfagate.so\n"]))
        XCTAssertEqual(after?.entries.last?.insidePamAuthUpdateBlocks, false)
    }

    func testNoServiceFile() {
        let d = Doctor.diagnose(service: "sshd", stack: nil, directory: "/p", socketPath: "/s", configFile: "c")
        XCTAssertEqual(codes(d), ["no-service"])
    }

    // MARK: walk

    func testWalkFollowsLinuxPAMRules() {
        // required failure then sufficient success: still a failure (done does not rescue a bad impression).
        let stack = PAMStack.read(service: "s", directory: "/p", read: files(["/p/s": "auth required pam_deny.so\nauth sufficient pam_permit.so\n"]))!
        XCTAssertFalse(PAMWalk.ends(stack).contains { $0.succeeds })
        // An all-ignore stack fails.
        let ignore = PAMStack.read(service: "s", directory: "/p", read: files(["/p/s": "auth [default=ignore] pam_permit.so\n"]))!
        XCTAssertFalse(PAMWalk.ends(ignore).contains { $0.succeeds })
        // reset clears the failure.
        let reset = PAMStack.read(service: "s", directory: "/p", read: files(["/p/s": "auth required pam_deny.so\nauth [default=reset] pam_deny.so\nauth required pam_permit.so\n"]))!
        XCTAssertTrue(PAMWalk.ends(reset).contains { $0.succeeds })
    }

    // MARK: sshd

    func settings(_ text: String) -> SSHDSettings { SSHDSettings.parse(text) }

    func way(_ ways: [DoctorWay], _ name: String) -> DoctorWay { ways.first { $0.way == name }! }

    func testSSHDParse() {
        let s = settings("usepam yes\nkbdinteractiveauthentication no\npasswordauthentication no\npubkeyauthentication yes\nauthenticationmethods publickey,keyboard-interactive:pam password\n")
        XCTAssertTrue(s.usePAM)
        XCTAssertFalse(s.kbdInteractive)
        XCTAssertEqual(s.authenticationMethods, [["publickey", "keyboard-interactive"], ["password"]])
        XCTAssertEqual(s.usableLists, [], "keyboard-interactive and password are off")
    }

    var good: StackDiagnosis { diagnose("@include common-auth\nauth required pam_mfagate.so\n") }

    func testKeyAloneSkipsPAM() {
        let ways = Doctor.sshWays(settings("usepam yes\nkbdinteractiveauthentication yes\npasswordauthentication no\npubkeyauthentication yes\nauthenticationmethods any\n"), good)
        XCTAssertEqual(way(ways, "key").status, .noMFA)
        XCTAssertEqual(way(ways, "key").findings.map(\.code), ["key-skips-pam"])
        XCTAssertEqual(way(ways, "password").status, .mfa)
        XCTAssertEqual(way(ways, "key + code").status, .notOffered)
        let listed = Doctor.sshWays(settings("usepam yes\nkbdinteractiveauthentication yes\npasswordauthentication no\nauthenticationmethods publickey\n"), good)
        XCTAssertTrue(way(listed, "key").findings[0].text.contains("allows publickey alone"))
    }

    func testKeyPlusCode() {
        let ways = Doctor.sshWays(settings("usepam yes\nkbdinteractiveauthentication yes\npasswordauthentication no\nauthenticationmethods publickey,keyboard-interactive\n"), good)
        XCTAssertEqual(ways.map(\.status), [.notOffered, .notOffered, .mfa])
        XCTAssertTrue(way(ways, "key + code").detail.contains("auth module 4 of 4 (required, /p/sshd:2)"))
    }

    func testKbdInteractiveOffAndPasswordMethod() {
        let ways = Doctor.sshWays(settings("usepam yes\nkbdinteractiveauthentication no\npasswordauthentication yes\nauthenticationmethods any\n"), good)
        XCTAssertEqual(way(ways, "password").status, .noMFA)
        XCTAssertEqual(Set(way(ways, "password").findings.map(\.code)), ["password-method", "kbdinteractive-off"])
        let keyed = Doctor.sshWays(settings("usepam yes\nkbdinteractiveauthentication no\npasswordauthentication no\nauthenticationmethods publickey,keyboard-interactive\n"), good)
        XCTAssertEqual(way(keyed, "key + code").findings.map(\.code), ["kbdinteractive-off"])
    }

    func testUsePAMOff() {
        let ways = Doctor.sshWays(settings("usepam no\nkbdinteractiveauthentication yes\npasswordauthentication yes\nauthenticationmethods any\n"), good)
        XCTAssertEqual(way(ways, "password").status, .noMFA)
        XCTAssertTrue(way(ways, "password").findings.map(\.code).contains("usepam-off"))
    }

    func testBrokenStackMakesPAMWaysNoMFA() {
        let bad = diagnose("auth sufficient pam_unix.so\nauth required pam_mfagate.so\n")
        let ways = Doctor.sshWays(settings("usepam yes\nkbdinteractiveauthentication yes\npasswordauthentication no\npubkeyauthentication no\n"), bad)
        XCTAssertEqual(way(ways, "password").status, .noMFA)
        XCTAssertEqual(Doctor.consoleWay(bad).status, .noMFA)
        XCTAssertEqual(Doctor.consoleWay(good).status, .mfa)
    }
}
