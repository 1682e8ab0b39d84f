// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// `remember` and `never_remember` (issue 19 part 2): the pure rules of RememberedLogin.swift and
/// their place in Policy.evaluate.
final class RememberPolicyTests: XCTestCase {
    let t0: Int64 = 1_800_000_000

    func config(_ text: String) throws -> DaemonConfig { try ConfigParser.parse(text, file: "/etc/mfagate/mfagate.conf") }

    func testAnEntryIsGoodFromItsTimeUntilTheLifetimeEndsAndNotBeforeIt() {
        let e = RememberedLogin(service: "sshd", rhost: "192.0.2.1", created: t0)
        XCTAssertTrue(e.isValid(at: t0, lifetime: 3600))
        XCTAssertTrue(e.isValid(at: t0 + 3599, lifetime: 3600))
        XCTAssertFalse(e.isValid(at: t0 + 3600, lifetime: 3600))
        XCTAssertFalse(e.isValid(at: t0 - 1, lifetime: 3600), "a clock set back ends it")
        XCTAssertFalse(e.isValid(at: t0, lifetime: 0), "remember = 0 is off")
        XCTAssertTrue(RememberedLogin(service: "s", rhost: "h", created: .max - 5).isValid(at: .max - 1, lifetime: 3600), "no overflow")
    }

    func testMatchNeedsTheSameServiceAndHostAndNeverARemoteHostTheAdminListsOrNoHost() throws {
        let c = try config("remember = 8h\nnever_remember = jump.example.org 10.0.0.0/8 2001:db8::/32\n")
        let entries = [RememberedLogin(service: "sshd", rhost: "192.0.2.1", created: t0),
                       RememberedLogin(service: "sshd", rhost: "10.1.2.3", created: t0),
                       RememberedLogin(service: "sshd", rhost: "JUMP.example.org", created: t0),
                       RememberedLogin(service: "sshd", rhost: "2001:db8::5", created: t0)]
        XCTAssertEqual(RememberPolicy.match(entries, c, service: "sshd", rhost: "192.0.2.1", now: t0 + 60), entries[0])
        XCTAssertNil(RememberPolicy.match(entries, c, service: "login", rhost: "192.0.2.1", now: t0 + 60))
        XCTAssertNil(RememberPolicy.match(entries, c, service: "sshd", rhost: "192.0.2.2", now: t0 + 60))
        XCTAssertNil(RememberPolicy.match(entries, c, service: "sshd", rhost: "10.1.2.3", now: t0 + 60), "inside a listed network")
        XCTAssertNil(RememberPolicy.match(entries, c, service: "sshd", rhost: "JUMP.example.org", now: t0 + 60), "a listed name, any case")
        XCTAssertNil(RememberPolicy.match(entries, c, service: "sshd", rhost: "2001:db8::5", now: t0 + 60))
        XCTAssertNil(RememberPolicy.match(entries + [RememberedLogin(service: "su", rhost: "", created: t0)], c, service: "su", rhost: "", now: t0))
        XCTAssertFalse(RememberPolicy.mayRemember(c, service: "sshd", rhost: ""), "console, su and sudo logins are never remembered")
        XCTAssertFalse(RememberPolicy.mayRemember(c, service: "sshd", rhost: "evil host"), "a host with a space cannot be stored")
        XCTAssertFalse(RememberPolicy.mayRemember(try config("never_remember = 192.0.2.1\n"), service: "sshd", rhost: "192.0.2.2"), "off by default")
    }

    /// `mfagate status` lists exactly the entries that would let a login in now, newest first.
    func testLiveEntriesAreThoseAMatchingLoginWouldUse() throws {
        let c = try config("remember = 1h\nnever_remember = 10.0.0.0/8\n")
        let entries = [RememberedLogin(service: "sshd", rhost: "192.0.2.1", created: t0 - 3600),  // just over
                       RememberedLogin(service: "sshd", rhost: "192.0.2.2", created: t0 - 3599),
                       RememberedLogin(service: "login", rhost: "192.0.2.3", created: t0 - 10),
                       RememberedLogin(service: "sshd", rhost: "10.1.1.1", created: t0 - 10),  // listed since
                       RememberedLogin(service: "sshd", rhost: "192.0.2.4", created: t0 + 5)]  // the clock set back
        XCTAssertEqual(RememberPolicy.live(entries, c, now: t0), [entries[2], entries[1]])
        XCTAssertEqual(RememberPolicy.end(of: entries[1], c), t0 + 1)
        XCTAssertEqual(RememberPolicy.live(entries, try config(""), now: t0), [], "remember off: none")
        XCTAssertEqual(RememberPolicy.end(of: RememberedLogin(service: "s", rhost: "h", created: .max - 5), c), .max)
    }

    func testARightCodeAddsOrRenewsItsEntryPrunesExpiredOnesAndKeepsTheNewestSixteen() throws {
        let c = try config("remember = 1h\n")
        let old = RememberedLogin(service: "sshd", rhost: "192.0.2.1", created: t0 - 7200)
        let mine = RememberedLogin(service: "sshd", rhost: "192.0.2.2", created: t0 - 60)
        let after = RememberPolicy.afterRightCode([old, mine], c, service: "sshd", rhost: "192.0.2.2", now: t0)
        XCTAssertEqual(after, [RememberedLogin(service: "sshd", rhost: "192.0.2.2", created: t0)])
        let many = (0..<20).map { RememberedLogin(service: "sshd", rhost: "192.0.2.\($0 + 10)", created: t0 - 100 + Int64($0)) }
        let capped = RememberPolicy.afterRightCode(many, c, service: "sshd", rhost: "198.51.100.1", now: t0)
        XCTAssertEqual(capped.count, RememberedLogin.maximumPerUser)
        XCTAssertEqual(capped.last?.rhost, "198.51.100.1")
        XCTAssertFalse(capped.contains(many[0]))
        // A login that may not be remembered changes nothing (so it writes nothing).
        XCTAssertEqual(RememberPolicy.afterRightCode([old, mine], c, service: "sudo", rhost: "", now: t0), [old, mine])
    }

    func testPolicySkipsTheCodeForARememberedHostButNotForALockoutOrAnUnenrolledUser() throws {
        let c = try config("mode = required\nremember = 8h\nenroll_at_login = no\n")
        var facts = LoginFacts(user: "alice", service: "sshd", rhost: "192.0.2.1", enrolled: true, now: t0 + 10)
        facts.remembered = [RememberedLogin(service: "sshd", rhost: "192.0.2.1", created: t0)]
        let outcome = Policy.evaluate(c, facts)
        guard case .ignore(let reason) = outcome.decision else { return XCTFail("\(outcome)") }
        XCTAssertTrue(reason.hasPrefix("remembered: right code from 192.0.2.1 for sshd at "), reason)
        XCTAssertEqual(outcome.rule, "config line 2: remember = 8h")
        var locked = facts
        locked.userLockedUntil = t0 + 600
        XCTAssertEqual(Policy.evaluate(c, locked).decision.word, "locked")
        var blocked = facts
        blocked.rhostBlockedUntil = t0 + 600
        XCTAssertEqual(Policy.evaluate(c, blocked).decision.word, "locked")
        var removed = facts
        removed.enrolled = false
        XCTAssertEqual(Policy.evaluate(c, removed).decision.word, "refuse")
        var later = facts
        later.now = t0 + 8 * 3600
        XCTAssertEqual(Policy.evaluate(c, later).decision, .askForCode)
    }

    func testTheKeysParseRenderAndRefuseWhatIsNotAHost() throws {
        let c = try config("remember = 12h\nnever_remember = bastion 10.0.0.0/8, fd00::/8\n")
        XCTAssertEqual(c.remember, 12 * 3600)
        XCTAssertEqual(c.neverRememberHosts, ["bastion"])
        XCTAssertEqual(c.neverRememberNetworks.map(\.description), ["10.0.0.0/8", "fd00::/8"])
        XCTAssertTrue(ConfigParser.render(c).contains("remember = 12h"))
        XCTAssertTrue(ConfigParser.render(c).contains("never_remember = bastion 10.0.0.0/8 fd00::/8"))
        XCTAssertEqual(try config("").remember, 0)
        for (text, fragment) in [("remember = 8 hours\n", "duration like"), ("never_remember = 10.0.0.0/99\n", "is not a host name"),
                                 ("remember = -1h\n", "duration like")] {
            XCTAssertThrowsError(try config(text), text) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
                XCTAssertTrue("\(error)".contains("mfagate.conf:1"), "\(error)")
            }
        }
    }
}
