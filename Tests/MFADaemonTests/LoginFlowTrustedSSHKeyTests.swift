// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore
@testable import MFADaemon
@testable import MFAProtocol

/// `trusted_ssh_keys` in a whole login: only sshd's word (a root peer whose process has real uid 0)
/// skips the code; the same auth info from a user's own client or from a setuid su/sudo does not.
final class LoginFlowTrustedSSHKeyTests: XCTestCase {
    /// From Tests/MFACoreTests/SSHKeyFixtures.swift (real ssh-keygen output).
    static let certLine = "publickey ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIAD5AvXOe/BhrPQ5GuF9CaLn/XqlgizYe0wrZd5FGQPAAAAAIEmLcX78a0TrPtbBhPwPd3tLYEe6jc+2qVU03KY2wdN/AAAAAAAAAAcAAAABAAAADWFsaWNlLWVkMjU1MTkAAAAJAAAABWFsaWNlAAAAAAAAAAD//////////wAAAAAAAACCAAAAFXBlcm1pdC1YMTEtZm9yd2FyZGluZwAAAAAAAAAXcGVybWl0LWFnZW50LWZvcndhcmRpbmcAAAAAAAAAFnBlcm1pdC1wb3J0LWZvcndhcmRpbmcAAAAAAAAACnBlcm1pdC1wdHkAAAAAAAAADnBlcm1pdC11c2VyLXJjAAAAAAAAAAAAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIDFV/i31p/R+NIAfcsBnRNPoZ7s+9IX6uuedPdy4Z8JXAAAAUwAAAAtzc2gtZWQyNTUxOQAAAEC5CnM7qKsieEplcKd+ZwrBaQQ4Js/GG/GDf+mvThfYk1v6cluDuYwtlzjEWizdtC8C3hpjualxWJJrvPtqpn4D\n"
    static let otherCALine = "publickey ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIGIRlOA+r1/o62Q9rBJnMQhA9zXfWwY469wHI0zGsvJTAAAAIEmLcX78a0TrPtbBhPwPd3tLYEe6jc+2qVU03KY2wdN/AAAAAAAAAAAAAAABAAAABW90aGVyAAAACQAAAAVhbGljZQAAAAAAAAAA//////////8AAAAAAAAAggAAABVwZXJtaXQtWDExLWZvcndhcmRpbmcAAAAAAAAAF3Blcm1pdC1hZ2VudC1mb3J3YXJkaW5nAAAAAAAAABZwZXJtaXQtcG9ydC1mb3J3YXJkaW5nAAAAAAAAAApwZXJtaXQtcHR5AAAAAAAAAA5wZXJtaXQtdXNlci1yYwAAAAAAAAAAAAAAaAAAABNlY2RzYS1zaGEyLW5pc3RwMjU2AAAACG5pc3RwMjU2AAAAQQQStNxtBBAqTkZwViV1aF7EpkHHAwAuBQH0namdyM76bD1i8vQF/Ykgvks/MhAc4qZRBSgUn+TINppbU+3p60pgAAAAZQAAABNlY2RzYS1zaGEyLW5pc3RwMjU2AAAASgAAACEA0pRkQjhniouwu5dqT0+e0zTRSGth947lOjUFcqbfxpwAAAAhAJy6jEW3G0gVc0JIaPbU/nJsl0VROSTjdQJ8iXk8IbSK\n"
    static let caFingerprint = "SHA256:Fhk2QEOL9jOYNH+caq8/2WkXMr71R9cU4aeF6enHtks"

    func harness(mode: MFAMode = .required) throws -> LoginHarness {
        try LoginHarness { config in
            config.mode = mode
            config.enrollAtLogin = false
            config.trustedSSHKeys = try! ConfigParser.parse("trusted_ssh_keys = cert-authority:\(Self.caFingerprint)\n", file: "f").trustedSSHKeys
        }
    }

    func begin(_ h: LoginHarness, _ user: String, info: String?, peer: Peer, realUID: UInt32?) -> Step {
        h.store.forgetLastCheck()
        return h.authority.beginLogin(LoginBegin(user: user, service: "sshd", rhost: "192.0.2.7", realUID: realUID,
                                                 sshAuthInfo: info), peer: peer)
    }

    func testSshdReportingACertificateOfATrustedCASkipsTheCode() throws {
        let h = try harness()
        try h.enroll("alice")
        let verdict = LoginHarness.verdict(begin(h, "alice", info: Self.certLine, peer: h.peer, realUID: 0))
        XCTAssertEqual(verdict?.0, .ignore)
        XCTAssertEqual(verdict?.1, "trusted SSH key: certificate ssh-ed25519-cert-v01@openssh.com signed by CA \(Self.caFingerprint)")
        // Not enrolled under `required`: the key is the second factor, no refusal.
        XCTAssertEqual(LoginHarness.verdict(begin(h, "bob", info: Self.certLine, peer: h.peer, realUID: 0))?.0, .ignore)
    }

    func testAnythingElseIsAskedForTheCode() throws {
        let h = try harness()
        try h.enroll("alice")
        let alice = Peer(pid: 4242, uid: 1001, gid: 1001)
        let cases: [(String, String?, Peer, UInt32?)] = [
            ("another CA", Self.otherCALine, h.peer, 0),
            ("password only", "", h.peer, 0),
            ("old module", nil, h.peer, 0),
            ("the user's own client", Self.certLine, alice, 1001),
            ("the user's own client claiming uid 0", Self.certLine, alice, 0),
            ("a setuid su/sudo of the user", Self.certLine, h.peer, 1001),
            ("no real uid", Self.certLine, h.peer, nil),
        ]
        for (what, info, peer, realUID) in cases {
            XCTAssertEqual(LoginHarness.prompt(begin(h, "alice", info: info, peer: peer, realUID: realUID)), LoginFlow.prompt, what)
        }
    }

    func testCheckExplainsTheSkip() throws {
        let h = try harness()
        try h.enroll("alice")
        guard case .checked(let reply) = h.authority.admin.check(user: "alice", service: "sshd", rhost: "192.0.2.7", peer: h.peer) else {
            return XCTFail("no CHECKED")
        }
        XCTAssertEqual(reply.decision, "code")
        XCTAssertTrue(reply.reason.hasSuffix("; an SSH login that already used a key trusted by default: trusted_ssh_keys = cert-authority:\(Self.caFingerprint) gets no code instead"), reply.reason)
    }
}
