// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore

/// The SSH_AUTH_INFO_0 parser, the OpenSSH key/certificate blob parser and `trusted_ssh_keys`,
/// on real ssh-keygen output of every key type (SSHKeyFixtures.swift).
final class SSHAuthInfoTests: XCTestCase {
    typealias F = SSHKeyFixtures

    func info(_ lines: String...) -> SSHAuthInfo? {
        SSHAuthInfo.parse(Array(lines.map { $0 + "\n" }.joined().utf8))
    }

    func key(_ line: String) throws -> SSHPublicKey {
        let parsed = try XCTUnwrap(info("publickey " + line))
        XCTAssertEqual(parsed.methods.count, 1)
        XCTAssertEqual(parsed.methods[0].name, "publickey")
        return try XCTUnwrap(parsed.methods[0].key, line)
    }

    func trusted(_ words: String) throws -> TrustedSSHKeys {
        try ConfigParser.parse("trusted_ssh_keys = \(words)\n", file: "/etc/mfagate/mfagate.conf").trustedSSHKeys
    }

    func testEveryKeyTypeAndItsCertificateIsRead() throws {
        let plain: [(String, String, Bool)] = [
            (F.ed25519, "ssh-ed25519", false), (F.ecdsa, "ecdsa-sha2-nistp256", false), (F.rsa, "ssh-rsa", false),
            (F.skEd25519, "sk-ssh-ed25519@openssh.com", true), (F.skECDSA, "sk-ecdsa-sha2-nistp256@openssh.com", true),
        ]
        for (line, type, sk) in plain {
            let k = try key(line)
            XCTAssertEqual(k.type, type)
            XCTAssertEqual(k.isSecurityKey, sk, type)
            XCTAssertNil(k.certificate, type)
        }
        let certs: [(String, String, Bool, String, String, UInt64)] = [
            (F.ed25519Cert, "ssh-ed25519-cert-v01@openssh.com", false, F.caFingerprint, "alice-ed25519", 7),
            (F.ecdsaCert, "ecdsa-sha2-nistp256-cert-v01@openssh.com", false, F.caFingerprint, "alice-ecdsa", 7),
            (F.rsaCert, "ssh-rsa-cert-v01@openssh.com", false, F.caFingerprint, "alice-rsa", 7),
            (F.skEd25519Cert, "sk-ssh-ed25519-cert-v01@openssh.com", true, F.otherCAFingerprint, "alice-sk-ed25519", 11),
            (F.skECDSACert, "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com", true, F.otherCAFingerprint, "alice-sk-ecdsa", 11),
            (F.ed25519CertOtherCA, "ssh-ed25519-cert-v01@openssh.com", false, F.otherCAFingerprint, "other", 0),
        ]
        for (line, type, sk, ca, id, serial) in certs {
            let k = try key(line)
            XCTAssertEqual(k.type, type)
            XCTAssertEqual(k.isSecurityKey, sk, type)
            let cert = try XCTUnwrap(k.certificate, type)
            XCTAssertEqual(cert.caFingerprint, ca, type)
            XCTAssertEqual(cert.certType, 1)
            XCTAssertEqual(cert.keyID, id)
            XCTAssertEqual(cert.serial, serial)
        }
        XCTAssertEqual(try key(F.ecdsaHostCert).certificate?.certType, 2)
        // The CA's own key has the fingerprint ssh-keygen -l printed for it.
        let caBlob = try XCTUnwrap(Base64.decode(Array(F.caKey.split(separator: " ")[1].utf8)))
        XCTAssertEqual(SSHPublicKey.fingerprint(of: caBlob), F.caFingerprint)
    }

    /// FIDO keys built here from PROTOCOL.u2f, field by field (no token on this machine): the
    /// application string follows the key; without it the blob is no key.
    func testSecurityKeyBlobsBuiltFromTheSpec() throws {
        func string(_ bytes: [UInt8]) -> [UInt8] {
            let n = UInt32(bytes.count)
            return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + bytes
        }
        let ed = string(Array("sk-ssh-ed25519@openssh.com".utf8)) + string([UInt8](repeating: 7, count: 32))
        let ecdsa = string(Array("sk-ecdsa-sha2-nistp256@openssh.com".utf8)) + string(Array("nistp256".utf8))
            + string([4] + [UInt8](repeating: 9, count: 64))
        for (blob, type) in [(ed, "sk-ssh-ed25519@openssh.com"), (ecdsa, "sk-ecdsa-sha2-nistp256@openssh.com")] {
            XCTAssertNil(SSHPublicKey.parse(blob), "no application string")
            let key = try XCTUnwrap(SSHPublicKey.parse(blob + string(Array("ssh:".utf8))))
            XCTAssertEqual(key.type, type)
            XCTAssertTrue(key.isSecurityKey)
            let line = "publickey \(type) \(Base64.encode(blob + string(Array("ssh:".utf8))))"
            XCTAssertEqual(try trusted("sk").match(try XCTUnwrap(info(line))), "security key \(type)")
        }
    }

    func testLinesInOrderOtherMethodsAndPasswordOnly() throws {
        XCTAssertEqual(SSHAuthInfo.parse(Array("".utf8)), SSHAuthInfo(methods: []))
        let several = try XCTUnwrap(info("publickey " + F.ed25519, "keyboard-interactive/pam", "publickey " + F.skEd25519Cert))
        XCTAssertEqual(several.methods.map(\.name), ["publickey", "keyboard-interactive/pam", "publickey"])
        XCTAssertNil(several.methods[1].key)
        // The last line without its newline still counts (sshd always writes one).
        XCTAssertEqual(SSHAuthInfo.parse(Array(("publickey " + F.rsa).utf8))?.methods.first?.key?.type, "ssh-rsa")
    }

    func testTrustedSSHKeysMatchesOnlyWhatIsListed() throws {
        let sk = try trusted("sk")
        for line in [F.skEd25519, F.skECDSA, F.skEd25519Cert, F.skECDSACert] {
            XCTAssertNotNil(sk.match(try XCTUnwrap(info("publickey " + line))), line)
        }
        for line in [F.ed25519, F.ecdsa, F.rsa, F.ed25519Cert, F.rsaCert] {
            XCTAssertNil(sk.match(try XCTUnwrap(info("publickey " + line))), line)
        }
        XCTAssertEqual(sk.match(try XCTUnwrap(info("publickey " + F.skECDSA))), "security key sk-ecdsa-sha2-nistp256@openssh.com")

        let ca = try trusted("cert-authority:" + F.caFingerprint)
        for line in [F.ed25519Cert, F.ecdsaCert, F.rsaCert] {
            XCTAssertEqual(ca.match(try XCTUnwrap(info("publickey " + line))),
                           "certificate \(line.split(separator: " ")[0]) signed by CA \(F.caFingerprint)")
        }
        // Another CA, a host certificate, plain keys (sk too): asked for the code.
        for line in [F.ed25519CertOtherCA, F.skEd25519Cert, F.ecdsaHostCert, F.ed25519, F.skEd25519, F.caKey] {
            XCTAssertNil(ca.match(try XCTUnwrap(info("publickey " + line))), line)
        }
        // Any of the keys already passed counts, in whichever line.
        XCTAssertNotNil(ca.match(try XCTUnwrap(info("publickey " + F.ed25519, "publickey " + F.rsaCert))))
        // Nothing passed before (password-only): nothing trusted.
        XCTAssertNil(ca.match(SSHAuthInfo(methods: [])))
        XCTAssertNil(TrustedSSHKeys().match(try XCTUnwrap(info("publickey " + F.skEd25519))))
    }

    func testALineMustBeWhatItSaysAndWellFormed() throws {
        // The text type must name the blob's own type: an ed25519 blob labelled as a FIDO key is no key.
        let blob = F.ed25519.split(separator: " ")[1]
        let relabelled = try XCTUnwrap(info("publickey sk-ssh-ed25519@openssh.com \(blob)"))
        XCTAssertNil(relabelled.methods[0].key)
        XCTAssertNil(try trusted("sk").match(relabelled))
        // Not publickey: a key on another method's line is not read.
        XCTAssertNil(try XCTUnwrap(info("hostbased " + F.skEd25519)).methods[0].key)
        // Control bytes, blank lines, too many lines, too long: the whole value counts for nothing.
        XCTAssertNil(SSHAuthInfo.parse(Array("publickey \(F.skEd25519)\r\n".utf8)))
        XCTAssertNil(SSHAuthInfo.parse(Array("\npublickey \(F.skEd25519)\n".utf8)))
        XCTAssertNil(SSHAuthInfo.parse(Array(String(repeating: "password\n", count: 17).utf8)))
        XCTAssertNotNil(SSHAuthInfo.parse(Array(String(repeating: "password\n", count: 16).utf8)))
        XCTAssertNil(SSHAuthInfo.parse([UInt8](repeating: UInt8(ascii: "a"), count: SSHAuthInfo.maximumLength + 1)))
        // Blobs: cut short, a byte too many, a certificate whose CA key is itself a certificate.
        let certBlob = try XCTUnwrap(Base64.decode(Array(F.ed25519Cert.split(separator: " ")[1].utf8)))
        XCTAssertNotNil(SSHPublicKey.parse(certBlob))
        for cut in [1, 4, 100, certBlob.count - 100] { XCTAssertNil(SSHPublicKey.parse(Array(certBlob.dropLast(cut))), "\(cut)") }
        XCTAssertNil(SSHPublicKey.parse(certBlob + [0]))
        XCTAssertNil(SSHPublicKey.parse(caSignedByACertificate(certBlob)))
        XCTAssertNil(SSHPublicKey.parse(Array("\u{0}\u{0}\u{0}\u{7}ssh-foo".utf8)))
    }

    /// The ed25519 certificate with its signature-key field replaced by the certificate itself.
    func caSignedByACertificate(_ cert: [UInt8]) -> [UInt8] {
        var r = SSHWireReader(cert)
        _ = r.skipStrings(3)  // type, nonce, pk
        _ = r.u64(); _ = r.u32(); _ = r.skipStrings(2); _ = r.u64(); _ = r.u64(); _ = r.skipStrings(3)
        let head = Array(cert[..<r.index])
        _ = r.skipStrings(1)
        let signature = Array(cert[r.index...])
        let n = UInt32(cert.count)
        return head + [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + cert + signature
    }

    func testBase64IsStrictRFC4648() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(Array(encoded.utf8)), Array(plain.utf8))
        }
        XCTAssertEqual(Base64.encode(Array("fo".utf8), padded: false), "Zm8")
        for bad in ["Zg", "Zg=", "Zh==", "Zm9=", "Z===", "Zm9v\n", " Zm9v", "Zm=v", "Zm9v====", "Zg==Zg=="] {
            XCTAssertNil(Base64.decode(Array(bad.utf8)), bad)
        }
    }

    func testConfigWordsAreCheckedWithTheirLine() throws {
        let keys = try trusted("sk cert-authority:\(F.caFingerprint) cert-authority:\(F.otherCAFingerprint)")
        XCTAssertTrue(keys.securityKeys)
        XCTAssertEqual(keys.caDigests.count, 2)
        XCTAssertEqual(keys.text, "sk cert-authority:\(F.caFingerprint) cert-authority:\(F.otherCAFingerprint)")
        XCTAssertTrue(try trusted("").isEmpty)
        XCTAssertTrue(DaemonConfig().trustedSSHKeys.isEmpty)
        for bad in ["fido", "cert-authority:" + F.caFingerprint.dropLast(), "cert-authority:MD5:aa:bb",
                    "cert-authority:SHA256:" + String(repeating: "!", count: 43), "SHA256:" + F.caFingerprint.dropFirst(7)] {
            XCTAssertThrowsError(try ConfigParser.parse("mode = required\ntrusted_ssh_keys = sk \(bad)\n", file: "/etc/mfagate/mfagate.conf")) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix("/etc/mfagate/mfagate.conf:2: `trusted_ssh_keys`:"), text)
                XCTAssertTrue(text.contains("ssh-keygen -l -f CA.pub"), text)
            }
        }
        let c = try ConfigParser.parse("trusted_ssh_keys = sk\n", file: "f")
        XCTAssertEqual(c.rule("trusted_ssh_keys"), "config line 1: trusted_ssh_keys = sk")
        XCTAssertTrue(ConfigParser.render(c).contains("trusted_ssh_keys = sk"))
    }

    func testPolicySkipsTheCodeForATrustedKeyAfterTheWhoAndWhereRules() throws {
        let c = try ConfigParser.parse("""
            mode = required
            exempt_users = robot
            services = sshd
            trusted_ssh_keys = sk
            enroll_at_login = no
            """, file: "/etc/mfagate/mfagate.conf")
        func decide(user: String = "alice", service: String = "sshd", enrolled: Bool = true, locked: Int64? = nil,
                    key: String? = "security key sk-ssh-ed25519@openssh.com") -> PolicyOutcome {
            Policy.evaluate(c, LoginFacts(user: user, service: service, rhost: "192.0.2.9", enrolled: enrolled,
                                          userLockedUntil: locked, rhostBlockedUntil: locked, now: 1000, trustedSSHKey: key))
        }
        let skip = PolicyOutcome(.ignore(reason: "trusted SSH key: security key sk-ssh-ed25519@openssh.com"),
                                 rule: "config line 4: trusted_ssh_keys = sk")
        XCTAssertEqual(decide(), skip)
        // Required and not enrolled, locked out: the key is the second factor, so no refusal, no lock.
        XCTAssertEqual(decide(enrolled: false), skip)
        XCTAssertEqual(decide(locked: 2000), skip)
        // Without a trusted key: as before.
        XCTAssertEqual(decide(key: nil).decision, .askForCode)
        XCTAssertEqual(decide(enrolled: false, key: nil).decision, .deny(reason: "not enrolled, MFA required"))
        // Rules before it still decide first (their own reason).
        XCTAssertEqual(decide(user: "robot").decision, .ignore(reason: "exempt"))
        XCTAssertEqual(decide(service: "sudo").decision, .ignore(reason: "service sudo does not need MFA"))
    }
}

/// The `.pub` files of `mfagate check --ssh-key`: one key line as ssh-keygen writes it, never a
/// private key, and each problem named by its line without quoting the file.
final class SSHPublicKeyFileTests: XCTestCase {
    func parse(_ text: String) -> Result<SSHPublicKeyFile.Key, SSHPublicKeyFile.Problem> { SSHPublicKeyFile.parse(Array(text.utf8)) }

    func testKeysAndCertificatesAsSshKeygenWritesThem() throws {
        for fixture in [SSHKeyFixtures.ed25519, SSHKeyFixtures.rsa, SSHKeyFixtures.ecdsaCert, SSHKeyFixtures.skEd25519Cert] {
            let words = fixture.split(separator: " ")
            for text in [fixture + " alice@host\n", fixture, "# a comment\n\n" + fixture + "\r\n", fixture + "\tcomment with spaces\n"] {
                let key = try parse(text).get()
                XCTAssertEqual(key.type, String(words[0]))
                XCTAssertEqual(key.base64, String(words[1]))
                XCTAssertEqual(key.key.type, key.type)
            }
        }
        XCTAssertEqual(try parse("\n# x\n" + SSHKeyFixtures.ed25519).get().line, 3)
    }

    func testPrivateKeysAreRefusedWhateverTheirForm() {
        for text in ["-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
                     "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", "-----BEGIN PRIVATE KEY-----\n", "-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
                     "PuTTY-User-Key-File-3: ssh-ed25519\n", SSHKeyFixtures.ed25519 + "\n-----BEGIN EC PRIVATE KEY-----\n"] {
            XCTAssertEqual(SSHPublicKeyFile.parse(Array(text.utf8)), .failure(.privateKey), text)
        }
        XCTAssertEqual(SSHPublicKeyFile.Problem.privateKey.sentence(path: "/k/id"),
                       "/k/id holds a private key; give its public key (/k/id.pub) or its certificate (/k/id-cert.pub) instead, never the private key")
    }

    func testEveryOtherFileIsNamedByItsLineAndNeverQuoted() {
        let secret = "root:$6$SECRETSALT$hash:19000:0:99999:7:::"
        let cases: [(String, Int?)] = [
            ("", nil), ("# only a comment\n\n", nil),
            (secret + "\n", 1),
            ("\n" + "ssh-ed25519 not-base64!\n", 2),
            ("ssh-ed25519 AAAA\n", 1),  // base64, but no key in it
            ("ssh-rsa " + SSHKeyFixtures.ed25519.split(separator: " ")[1] + "\n", 1),  // the type is not the blob's
            (SSHKeyFixtures.ed25519 + "\n" + SSHKeyFixtures.rsa + "\n", 2),  // two keys
            ("from=\"10.0.0.1\" " + SSHKeyFixtures.ed25519 + "\n", 1),  // an authorized_keys line with options
        ]
        for (text, line) in cases {
            switch SSHPublicKeyFile.parse(Array(text.utf8)) {
            case .success: XCTFail("read: \(text)")
            case .failure(let problem):
                let sentence = problem.sentence(path: "f.pub")
                if let line {
                    XCTAssertTrue(sentence.hasPrefix("f.pub:\(line): "), sentence)
                } else {
                    XCTAssertEqual(problem, .noKey, text)
                }
                XCTAssertFalse(sentence.contains("SECRETSALT") || sentence.contains("root:"), sentence)
            }
        }
    }
}
