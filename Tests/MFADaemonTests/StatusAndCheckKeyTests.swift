// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore
@testable import MFADaemon
@testable import MFAProtocol

/// `mfagate status` lists the live remembered hosts; `mfagate check --ssh-key` answers through the
/// login's own auth-info parser and `trusted_ssh_keys` match, and changes nothing.
final class StatusAndCheckKeyTests: XCTestCase {
    /// Tests/MFACoreTests/SSHKeyFixtures.swift's keys (real ssh-keygen output), as `.pub` lines.
    enum SSHKeyFixtures {
        static let ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmLcX78a0TrPtbBhPwPd3tLYEe6jc+2qVU03KY2wdN/"
        static let skEd25519 = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gAAAABHNzaDo="
        static let ed25519Cert = String(LoginFlowTrustedSSHKeyTests.certLine.dropFirst("publickey ".count).dropLast())
        static let ed25519CertOtherCA = String(LoginFlowTrustedSSHKeyTests.otherCALine.dropFirst("publickey ".count).dropLast())
        static let caFingerprint = LoginFlowTrustedSSHKeyTests.caFingerprint
        static let otherCAFingerprint = "SHA256:2u3ax4AngkL4Rp8j7AzkVVU9uTnUlsCAWX/K7ZCJLzI"
    }

    let t = Int64(1_234_567_890)

    func blob(_ fixture: String) -> CheckSSHKey {
        let words = fixture.split(separator: " ")
        return CheckSSHKey(type: String(words[0]), blob: String(words[1]))
    }

    func testStatusListsOnlyLiveEntriesAndOnlyWhenAsked() throws {
        let h = try LoginHarness({ $0.remember = 8 * 3600 }, start: t)
        try h.enroll("alice")
        XCTAssertEqual(h.login("alice", code: LoginHarness.code(at: t))?.0, .success)
        h.clock.advance(3600)
        guard case .status(let plain) = h.authority.admin.status(user: "alice", peer: h.peer) else { return XCTFail() }
        XCTAssertNil(plain.remembered, "a STATUS without the flag gets the old answer")
        let alice = Peer(pid: 8, uid: 1001, gid: 1001)
        guard case .status(let own) = h.authority.admin.status(user: "", peer: alice, remembered: true) else { return XCTFail() }
        XCTAssertEqual(own.remembered, [RememberedHost(rhost: "192.0.2.7", service: "sshd", since: t, until: t + 8 * 3600)])
        // Another user may not look, as before.
        let bob = Peer(pid: 7, uid: 1002, gid: 1002)
        guard case .error(.notAllowed, _) = h.authority.admin.status(user: "alice", peer: bob, remembered: true) else {
            return XCTFail("bob saw alice's status")
        }
        // At created + remember the entry is over: listed no more (it is still in the record).
        h.clock.advance(7 * 3600)
        guard case .status(let later) = h.authority.admin.status(user: "alice", peer: h.peer, remembered: true) else { return XCTFail() }
        XCTAssertEqual(later.remembered, [])
        XCTAssertEqual(try h.record("alice")?.remembered.count, 1)
        // An unenrolled user has none.
        guard case .status(let bobs) = h.authority.admin.status(user: "bob", peer: h.peer, remembered: true) else { return XCTFail() }
        XCTAssertEqual(bobs.remembered, [])
    }

    func testStatusListsNothingWhenRememberIsOff() throws {
        let h = try LoginHarness({ $0.remember = 8 * 3600 }, start: t)
        try h.enroll("alice")
        XCTAssertEqual(h.login("alice", code: LoginHarness.code(at: t))?.0, .success)
        h.authority.config.remember = 0
        guard case .status(let s) = h.authority.admin.status(user: "alice", peer: h.peer, remembered: true) else { return XCTFail() }
        XCTAssertEqual(s.remembered, [])
    }

    func harness(_ trusted: String) throws -> LoginHarness {
        try LoginHarness { config in
            config.mode = .required
            config.enrollAtLogin = false
            config.gracePeriod = 3600
            config.trustedSSHKeys = try! ConfigParser.parse("trusted_ssh_keys = \(trusted)\n", file: "f").trustedSSHKeys
        }
    }

    func check(_ h: LoginHarness, _ user: String, _ key: CheckSSHKey?) -> CheckReply? {
        guard case .checked(let reply) = h.authority.admin.check(user: user, service: "sshd", rhost: "192.0.2.7", sshKey: key, peer: h.peer) else {
            return nil
        }
        return reply
    }

    func testCheckWithATrustedCertificateSaysNotAskedAndWhichCA() throws {
        let h = try harness("cert-authority:\(SSHKeyFixtures.caFingerprint)")
        try h.enroll("alice")
        let reply = try XCTUnwrap(check(h, "alice", blob(SSHKeyFixtures.ed25519Cert)))
        XCTAssertEqual(reply.decision, "ignore")
        XCTAssertEqual(reply.reason, "no code needed (trusted SSH key: certificate ssh-ed25519-cert-v01@openssh.com signed by CA \(SSHKeyFixtures.caFingerprint))")
        XCTAssertEqual(reply.rule, "default: trusted_ssh_keys = cert-authority:\(SSHKeyFixtures.caFingerprint)")
    }

    func testCheckWithAnUntrustedKeySaysAskedAndWhyNot() throws {
        let h = try harness("sk")
        try h.enroll("alice")
        let plain = try XCTUnwrap(check(h, "alice", blob(SSHKeyFixtures.ed25519)))
        XCTAssertEqual(plain.decision, "code")
        XCTAssertTrue(plain.reason.hasSuffix("; an SSH login with this key gets no skip: ssh-ed25519 is neither a security key (sk) nor a certificate signed by a CA trusted_ssh_keys lists"), plain.reason)
        let sk = try XCTUnwrap(check(h, "alice", blob(SSHKeyFixtures.skEd25519)))
        XCTAssertEqual(sk.decision, "ignore")
        XCTAssertEqual(sk.reason, "no code needed (trusted SSH key: security key sk-ssh-ed25519@openssh.com)")
        let byCA = try harness("cert-authority:\(SSHKeyFixtures.caFingerprint)")
        try byCA.enroll("alice")
        let other = try XCTUnwrap(check(byCA, "alice", blob(SSHKeyFixtures.ed25519CertOtherCA)))
        XCTAssertEqual(other.decision, "code")
        XCTAssertTrue(other.reason.hasSuffix("is signed by CA \(SSHKeyFixtures.otherCAFingerprint), which trusted_ssh_keys does not list"), other.reason)
    }

    func testCheckRefusesAKeyALoginCouldNotCarryAndChangesNothing() throws {
        let h = try harness("cert-authority:\(SSHKeyFixtures.caFingerprint)")
        let cert = blob(SSHKeyFixtures.ed25519Cert)
        for bad in [CheckSSHKey(type: "ssh-ed25519", blob: cert.blob),  // the line's type is not the blob's
                    CheckSSHKey(type: cert.type, blob: "AAAA"),
                    CheckSSHKey(type: cert.type + "\npublickey", blob: cert.blob),
                    CheckSSHKey(type: cert.type, blob: cert.blob + " x")] {
            guard case .error(.badRequest, let message) = h.authority.admin.check(user: "alice", service: "sshd", rhost: "", sshKey: bad, peer: h.peer) else {
                return XCTFail("\(bad) was read")
            }
            XCTAssertTrue(message.hasPrefix("the SSH key sent (type "), message)
        }
        // An unenrolled user in grace: the dry-run starts no grace period, enrolls nobody.
        let reply = try XCTUnwrap(check(h, "alice", cert))
        XCTAssertEqual(reply.decision, "ignore")
        XCTAssertNil(h.authority.books.firstSeenTime("alice"))
        XCTAssertNil(try h.record("alice"))
        // Non-root: refused, key or not.
        let alice = Peer(pid: 8, uid: 1001, gid: 1001)
        guard case .error(.notAllowed, _) = h.authority.admin.check(user: "alice", service: "sshd", rhost: "", sshKey: cert, peer: alice) else {
            return XCTFail("a user ran check")
        }
    }
}
