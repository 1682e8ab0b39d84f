// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore

final class PolicyEngineTests: XCTestCase {
    func config(_ text: String) throws -> DaemonConfig { try ConfigParser.parse(text, file: "/etc/mfagate/mfagate.conf") }

    func decide(_ c: DaemonConfig, user: String = "alice", service: String = "sshd", rhost: String = "192.0.2.9",
                groups: [String] = [], enrolled: Bool = true, firstSeen: Int64? = nil, userLocked: Int64? = nil,
                rhostBlocked: Int64? = nil, now: Int64 = 1_000_000) -> PolicyOutcome {
        Policy.evaluate(c, LoginFacts(user: user, service: service, rhost: rhost, groups: groups, enrolled: enrolled,
                                      firstSeen: firstSeen, userLockedUntil: userLocked, rhostBlockedUntil: rhostBlocked, now: now))
    }

    func testPrecedenceMostSpecificWinsAndRequiredWinsBetweenGroups() throws {
        let c = try config("""
            mode = optional
            require_groups = admins
            exempt_groups = robots ops
            require_users = carol
            exempt_users = dave
            enroll_at_login = no
            """)
        // user lists beat group lists
        XCTAssertEqual(decide(c, user: "dave", groups: ["admins"]), PolicyOutcome(.ignore(reason: "exempt"), rule: "config line 5: exempt_users = dave"))
        XCTAssertEqual(decide(c, user: "carol", groups: ["robots"], enrolled: false).decision, .deny(reason: "not enrolled, MFA required"))
        XCTAssertEqual(decide(c, user: "carol", groups: ["robots"], enrolled: false).rule, "config line 4: require_users = carol")
        // a user in a required and an exempt group: required (the safe side) wins
        XCTAssertEqual(decide(c, groups: ["ops", "admins"], enrolled: false).rule, "config line 2: require_groups = admins")
        XCTAssertEqual(decide(c, groups: ["ops"]), PolicyOutcome(.ignore(reason: "exempt"), rule: "config line 3: exempt_groups = robots ops"))
        // nobody special: the mode
        XCTAssertEqual(decide(c, enrolled: false), PolicyOutcome(.ignore(reason: "not enrolled, MFA optional"), rule: "config line 1: mode = optional"))
        XCTAssertEqual(decide(c, enrolled: true).decision, .askForCode)
    }

    func testEnrollmentAtLoginIsOfferedAfterGraceAndNamesBothRules() throws {
        let c = try config("mode = optional\nrequire_groups = admins\ngrace_period = 1d\n")
        XCTAssertEqual(decide(c, enrolled: false),
                       PolicyOutcome(.offerEnrollment(mandatory: false), rule: "config line 1: mode = optional; default: enroll_at_login = yes"))
        XCTAssertEqual(decide(c, groups: ["admins"], enrolled: false, firstSeen: 0, now: 86_400).decision, .offerEnrollment(mandatory: true))
        XCTAssertEqual(decide(c, groups: ["admins"], enrolled: false, firstSeen: 0, now: 100).decision, .grace(until: 86_400),
                       "grace comes first")
    }

    func testModeOffOverridesEverything() throws {
        let c = try config("mode = off\nrequire_users = alice\n")
        XCTAssertEqual(decide(c, userLocked: 2_000_000), PolicyOutcome(.ignore(reason: "mode off"), rule: "config line 1: mode = off"))
    }

    func testServices() throws {
        let c = try config("mode = required\nservices = sshd sudo\n")
        XCTAssertEqual(decide(c, service: "sudo").decision, .askForCode)
        XCTAssertEqual(decide(c, service: "login"), PolicyOutcome(.ignore(reason: "service login does not need MFA"), rule: "config line 2: services = sshd sudo"))
        XCTAssertEqual(decide(try config("mode = required\n"), service: "anything").decision, .askForCode, "default: every service")
    }

    func testTrustedNetworksIPv4IPv6HostNamesAndLocal() throws {
        let c = try config("mode = required\ntrusted_networks = 10.0.0.0/8 192.0.2.128/25 fd00::/8 2001:db8::1\n")
        XCTAssertEqual(decide(c, rhost: "10.200.3.4").decision, .ignore(reason: "trusted network 10.0.0.0/8"))
        XCTAssertEqual(decide(c, rhost: "10.200.3.4").rule, "config line 2: trusted_networks = 10.0.0.0/8 192.0.2.128/25 fd00::/8 2001:db8::1")
        XCTAssertEqual(decide(c, rhost: "192.0.2.200").decision, .ignore(reason: "trusted network 192.0.2.128/25"))
        XCTAssertEqual(decide(c, rhost: "192.0.2.100").decision, .askForCode)
        XCTAssertEqual(decide(c, rhost: "::ffff:10.1.1.1").decision, .ignore(reason: "trusted network 10.0.0.0/8"), "IPv4-mapped")
        XCTAssertEqual(decide(c, rhost: "fd12:3456::1").decision, .ignore(reason: "trusted network fd00::/8"))
        XCTAssertEqual(decide(c, rhost: "2001:db8::1").decision, .ignore(reason: "trusted network 2001:db8::1"))
        XCTAssertEqual(decide(c, rhost: "2001:db8::2").decision, .askForCode)
        XCTAssertEqual(decide(c, rhost: "10.example.org").decision, .askForCode, "host names are never trusted")
        XCTAssertEqual(decide(c, rhost: "").decision, .askForCode, "trust_local defaults to no")
        let local = try config("mode = required\ntrust_local = yes\n")
        XCTAssertEqual(decide(local, rhost: ""), PolicyOutcome(.ignore(reason: "local login trusted"), rule: "config line 2: trust_local = yes"))
        XCTAssertEqual(decide(local, rhost: "192.0.2.1").decision, .askForCode)
    }

    func testGraceBeforeAndAfterTheDeadline() throws {
        let c = try config("mode = required\ngrace_period = 7d\nenroll_at_login = no\n")
        let seen: Int64 = 1_000_000
        XCTAssertEqual(decide(c, enrolled: false, firstSeen: seen, now: seen + 7 * 86400 - 1),
                       PolicyOutcome(.grace(until: seen + 7 * 86400), rule: "config line 2: grace_period = 7d"))
        XCTAssertEqual(decide(c, enrolled: false, firstSeen: seen, now: seen + 7 * 86400).decision, .deny(reason: "not enrolled, MFA required"))
        XCTAssertEqual(decide(c, enrolled: true, firstSeen: seen, now: seen).decision, .askForCode, "enrolled users give a code")
        XCTAssertEqual(decide(try config("mode = optional\ngrace_period = 7d\nenroll_at_login = no\n"), enrolled: false).decision,
                       .ignore(reason: "not enrolled, MFA optional"), "grace only matters when MFA is required")
    }

    func testLockoutsApplyOnlyWhenACodeWouldBeAsked() throws {
        let c = try config("mode = required\nexempt_users = bob\n")
        XCTAssertEqual(decide(c, userLocked: 1_000_900), PolicyOutcome(.locked(until: 1_000_900, reason: "too many wrong codes"), rule: "default: max_failures = 5"))
        XCTAssertEqual(decide(c, userLocked: 999_999).decision, .askForCode, "an expired lock is no lock")
        XCTAssertEqual(decide(c, rhost: "192.0.2.9", rhostBlocked: 1_000_100).decision,
                       .locked(until: 1_000_100, reason: "too many wrong codes from 192.0.2.9"))
        XCTAssertEqual(decide(c, user: "bob", userLocked: 1_000_900).decision, .ignore(reason: "exempt"))
    }

    func testFailureRecordLocksAtTheLimitWithinTheWindow() {
        var r = FailureRecord()
        XCTAssertFalse(r.recordFailure(at: 100, limit: 3, window: 60, lockout: 600))
        XCTAssertFalse(r.recordFailure(at: 200, limit: 3, window: 60, lockout: 600), "the first one fell out of the window")
        XCTAssertFalse(r.recordFailure(at: 210, limit: 3, window: 60, lockout: 600))
        XCTAssertTrue(r.recordFailure(at: 220, limit: 3, window: 60, lockout: 600), "third within 60 s locks")
        XCTAssertTrue(r.isLocked(at: 819))
        XCTAssertFalse(r.isLocked(at: 820))
        XCTAssertTrue(r.isStale(at: 820, window: 60))
        var off = FailureRecord()
        for t in 0..<100 { XCTAssertFalse(off.recordFailure(at: Int64(t), limit: 0, window: 60, lockout: 600)) }
    }

    func testDriftIsLearntAndBounded() {
        XCTAssertEqual(OTP.learntDrift(acceptedStep: 101, unixTime: 100 * 30, period: 30), 1)
        XCTAssertEqual(OTP.learntDrift(acceptedStep: 50, unixTime: 100 * 30, period: 30), -OTP.maximumDrift)
        let secret = Array("12345678901234567890".utf8)
        let now: Int64 = 1_000_000_020
        let step = OTP.timeStep(unixTime: now, period: 30)
        let twoAhead = OTP.hotp(secret: secret, counter: UInt64(step + 2))
        XCTAssertNil(OTP.matchTOTP(code: twoAhead, secret: secret, unixTime: now, parameters: .standard, window: 1, lastUsedStep: nil, drift: 0))
        XCTAssertEqual(OTP.matchTOTP(code: twoAhead, secret: secret, unixTime: now, parameters: .standard, window: 1, lastUsedStep: nil, drift: 1), step + 2)
        let far = OTP.hotp(secret: secret, counter: UInt64(step + 12))
        XCTAssertNil(OTP.matchTOTP(code: far, secret: secret, unixTime: now, parameters: .standard, window: 1, lastUsedStep: nil, drift: 50),
                     "drift is clamped to maximumDrift")
    }

    func testNewConfigKeysAreValidated() {
        let bad: [(String, String)] = [
            ("require_users = alice\nexempt_users = bob alice\n", "\"alice\" is listed in both `require_users` (line 1) and `exempt_users` (line 2)"),
            ("require_groups = ops\nexempt_groups = ops\n", "group \"ops\""),
            ("trusted_networks = 10.0.0.0/33\n", "not an address or network"),
            ("trusted_networks = bastion.example.org\n", "host names are never trusted"),
            ("grace_period = 7 days\n", "duration like"),
            ("failure_window = 0\n", "duration like"),
            ("max_failures = many\n", "`max_failures` must be"),
            ("trust_local = maybe\n", "yes or no"),
            ("exempt_users = ../x\n", "not a valid name"),
            ("prompt_timeout = 0\n", "duration like"),
            ("prompt_timeout = 2h\n", "`prompt_timeout` must be at most 1h"),
        ]
        for (text, fragment) in bad {
            XCTAssertThrowsError(try config(text), text) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
                XCTAssertTrue("\(error)".hasPrefix("/etc/mfagate/mfagate.conf:"), "\(error)")
            }
        }
    }

    func testPromptTimeoutDefaultsToSshdsLoginGraceTime() throws {
        XCTAssertEqual(try config("").promptTimeout, 120)
        XCTAssertEqual(try config("prompt_timeout = 45s\n").promptTimeout, 45)
        XCTAssertEqual(ConfigParser.defaultText("prompt_timeout", DaemonConfig()), "2m")
    }

    func testRenderShowsEveryKeyWithItsOrigin() throws {
        let text = ConfigParser.render(try config("mode = required\ngrace_period = 2w\n"))
        for key in ConfigParser.keys { XCTAssertTrue(text.contains("\(key) = "), key) }
        XCTAssertTrue(text.contains("grace_period = 2w"))
        XCTAssertTrue(text.contains("# line 2"))
        XCTAssertTrue(text.contains("lockout = 15m"))
        // What --print shows parses back to the same settings.
        let reparsed = try config(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            String(line.split(separator: "#")[0])
        }.filter { !$0.hasSuffix("= ") && !$0.trimmingCharacters(in: .whitespaces).hasSuffix("=") }.joined(separator: "\n"))
        XCTAssertEqual(reparsed.mode, .required)
        XCTAssertEqual(reparsed.gracePeriod, 14 * 86400)
    }
}
