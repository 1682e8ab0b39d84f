// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
import CMFAFleetCrypto
import MFACore
import MFAStore
@testable import MFAFleetStore

/// The pure parts of the fleet store: sealing records under the fleet key.
final class FleetCipherTests: XCTestCase {
    let key = (0..<32).map { UInt8($0) }
    let record = Array("version 1\nuser alice\nsecret JBSWY3DPEHPK3PXP\n".utf8)

    func testRoundTrip() throws {
        let cipher = FleetCipher(key: key)
        let sealed = try cipher.seal(record, user: "alice", version: 7)
        XCTAssertEqual(sealed.count, 1 + 12 + record.count + 16)
        XCTAssertEqual(cipher.open(sealed, user: "alice", version: 7)?.plain, record)
        // A fresh nonce every time: the same record never seals to the same bytes.
        XCTAssertNotEqual(try cipher.seal(record, user: "alice", version: 7), sealed)
    }

    func testNoSecretInTheSealedBytes() throws {
        let sealed = try FleetCipher(key: key).seal(record, user: "alice", version: 7)
        let text = String(decoding: sealed, as: UTF8.self)
        XCTAssertFalse(text.contains("JBSWY3DP"))
        XCTAssertFalse(text.contains("alice"))
    }

    func testEveryFlippedBitIsRefused() throws {
        let cipher = FleetCipher(key: key)
        let sealed = try cipher.seal(record, user: "alice", version: 7)
        for i in 0..<sealed.count {
            var tampered = sealed
            tampered[i] ^= 0x01
            XCTAssertNil(cipher.open(tampered, user: "alice", version: 7), "byte \(i)")
        }
        XCTAssertNil(cipher.open(Array(sealed.dropLast()), user: "alice", version: 7))
        XCTAssertNil(cipher.open([], user: "alice", version: 7))
    }

    func testRowsCannotMoveBetweenUsers() throws {
        let sealed = try FleetCipher(key: key).seal(record, user: "alice", version: 7)
        XCTAssertNil(FleetCipher(key: key).open(sealed, user: "mallory", version: 7))
    }

    /// The version is inside the seal: an old row put back under a newer version number (to pass
    /// a host's high-water mark) does not open.
    func testRowsCannotChangeTheirVersion() throws {
        let cipher = FleetCipher(key: key)
        let sealed = try cipher.seal(record, user: "alice", version: 7)
        XCTAssertNil(cipher.open(sealed, user: "alice", version: 8))
        XCTAssertNil(cipher.open(sealed, user: "alice", version: 70))
        XCTAssertEqual(cipher.open(sealed, user: "alice", version: 7)?.versionSealed, true)
    }

    /// Rows of schema version 1 (no version inside) still open, and say so.
    func testLegacyRowsOpenWithoutASealedVersion() throws {
        let cipher = FleetCipher(key: key)
        let sealed = try cipher.sealLegacy(record, user: "alice")
        XCTAssertEqual(sealed[0], 1)
        let opened = cipher.open(sealed, user: "alice", version: 123)
        XCTAssertEqual(opened?.plain, record)
        XCTAssertEqual(opened?.versionSealed, false)
        XCTAssertNil(cipher.open(sealed, user: "bob", version: 123))
    }

    func testAnotherKeyCannotOpen() throws {
        let sealed = try FleetCipher(key: key).seal(record, user: "alice", version: 7)
        var other = key
        other[0] ^= 0xFF
        XCTAssertNil(FleetCipher(key: other).open(sealed, user: "alice", version: 7))
        XCTAssertNotEqual(FleetCipher(key: other).keyID, FleetCipher(key: key).keyID)
    }

    /// The AES-256-GCM known answer of McGrew & Viega's test case 14 (zero key, zero nonce, one
    /// zero block, no additional data): the C helper does GCM, not something merely self-consistent.
    func testKnownAnswer() {
        func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }
        let zeroKey = [UInt8](repeating: 0, count: 32), zeroNonce = [UInt8](repeating: 0, count: 12)
        let plain = [UInt8](repeating: 0, count: 16)
        var cipher = [UInt8](repeating: 0, count: 16), tag = [UInt8](repeating: 0, count: 16)
        XCTAssertEqual(mfa_gcm_seal(zeroKey, zeroNonce, nil, 0, plain, 16, &cipher, &tag), 1)
        XCTAssertEqual(hex(cipher), "cea7403d4d606b6e074ec5d3baf39d18")
        XCTAssertEqual(hex(tag), "d0d1c8a799996bf0265b98b5d48ab919")
        var opened = [UInt8](repeating: 1, count: 16)
        XCTAssertEqual(mfa_gcm_open(zeroKey, zeroNonce, nil, 0, cipher, 16, tag, &opened), 1)
        XCTAssertEqual(opened, plain)
    }

    func testKeyFileText() throws {
        let hex = Array(String(repeating: "0f", count: 32).utf8)
        XCTAssertEqual(try FleetCipher.parseKey(hex + [10], path: "k"), [UInt8](repeating: 0x0F, count: 32))
        XCTAssertThrowsError(try FleetCipher.parseKey(Array(hex.dropLast()), path: "k"))
        XCTAssertThrowsError(try FleetCipher.parseKey(Array("zz".utf8) + hex.dropFirst(2), path: "k"))
    }

    func testMergeKeepsWhatEitherSideUsed() throws {
        let codes = (0..<3).map { RecoveryCodes.Hashed(salt: [UInt8](repeating: UInt8($0), count: 16), hash: [UInt8](repeating: 1, count: 32)) }
        let user = try UserName(validating: "alice")
        var remote = UserRecord(user: user, parameters: .standard, secret: [UInt8](repeating: 7, count: 20), created: 100,
                                lastUsedStep: 10, recoveryCodes: [codes[0], codes[1]])
        var local = remote
        local.lastUsedStep = 12
        local.recoveryCodes = [codes[1], codes[2]]
        remote.lastSuccess = 50
        let merged = PostgresStore.merged(remote, local)
        XCTAssertEqual(merged.lastUsedStep, 12)
        XCTAssertEqual(merged.lastSuccess, 50)
        XCTAssertEqual(merged.recoveryCodes, [codes[1]])
        XCTAssertTrue(PostgresStore.sameRecord(remote, local))
        var separate = local
        separate.recoveryCodes = [RecoveryCodes.Hashed(salt: [UInt8](repeating: 9, count: 16), hash: [UInt8](repeating: 1, count: 32))]
        XCTAssertFalse(PostgresStore.sameRecord(remote, separate), "same second, different code set")
        XCTAssertEqual(PostgresStore.mergedReplayState(remote, separate).recoveryCodes, remote.recoveryCodes)
    }
}

/// The high-water marks file: appended marks, a line cut short by a crash, compaction.
final class FleetMarksFileTests: XCTestCase {
    func testAppendCompactAndCutLine() throws {
        let dir = NSTemporaryDirectory() + "marks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(dir, 0o700), 0)
        defer { _ = unlink(dir + "/fleet-marks"); _ = rmdir(dir) }
        let file = FleetMarksFile(directory: dir)
        file.compactAfter = 16
        var marks = FleetMarks()
        try file.save(marks)
        for version in Int64(1)...40 {
            _ = marks.raise("alice", to: version)
            try file.record("alice", version, in: marks)
        }
        XCTAssertLessThan(file.appended, 16, "compacted once the appended lines outnumbered the marks")
        XCTAssertEqual(file.load().marks["alice"], 40)
        XCTAssertNil(file.load().problem)
        // A crash in the middle of an append: the cut line is ignored, the rest is kept.
        let fd = open(file.path, O_WRONLY | O_APPEND)
        _ = "alice 9999".withCString { write(fd, $0, 10) }
        close(fd)
        XCTAssertEqual(file.load().marks["alice"], 40)
        XCTAssertNil(file.load().problem)
    }
}

/// The high-water marks file's text (FleetMarks): marks only rise, damage is reported, not guessed.
final class FleetMarksTests: XCTestCase {
    func testMarksOnlyRiseAndRoundTrip() throws {
        var marks = FleetMarks()
        XCTAssertEqual(marks.raise("alice", to: 5), true)
        XCTAssertEqual(marks.raise("alice", to: 3), false)
        XCTAssertEqual(marks.raise("alice", to: 5), false)
        XCTAssertEqual(marks.raise("bob", to: 0), true)
        XCTAssertEqual(marks["alice"], 5)
        XCTAssertEqual(try FleetMarks.parse(marks.serialize()), marks)
    }

    func testDamagedTextIsRefused() {
        for text in ["alice\n", "alice x\n", "alice -1\n", "alice 1 2\n", " 1\n"] {
            XCTAssertThrowsError(try FleetMarks.parse(text), text)
        }
        XCTAssertEqual(try FleetMarks.parse("# comment\n\nalice 7\n")["alice"], 7)
        // Appended lines: the highest version of a user counts, wherever it is.
        XCTAssertEqual(try FleetMarks.parse("alice 7\nbob 1\nalice 9\nalice 8\n")["alice"], 9)
    }
}

/// Which database_url counts as an authenticated link (FleetLink, read with libpq's own parser).
final class FleetLinkTests: XCTestCase {
    func testLocalSocketsAndVerifiedTLSPass() throws {
        for url in ["host=/run/postgresql dbname=mfagate user=mfagate", "dbname=mfagate",
                    "postgresql:///mfagate?host=/run/postgresql", "host=/a,/b dbname=x", "host=@abstract dbname=x",
                    "postgresql://mfagate@db.example.org/mfagate?sslmode=verify-full",
                    "host=db.example.org hostaddr=192.0.2.10 sslmode=verify-full dbname=x",
                    "service=fleet sslmode=verify-full"] {
            XCTAssertNil(try FleetLink.insecurity(of: url), url)
        }
    }

    func testNetworkWithoutVerificationIsNamed() throws {
        let cases = ["postgresql://mfagate@db.example.org/mfagate": "sslmode=prefer (libpq's default)",
                     "postgresql://db.example.org/mfagate?sslmode=verify-ca": "sslmode=verify-ca",
                     "host=/run/postgresql hostaddr=192.0.2.10 dbname=x sslmode=require": "(192.0.2.10)",
                     "host=/run/postgresql,db.example.org dbname=x": "(db.example.org)",
                     "host=localhost dbname=x sslmode=disable": "sslmode=disable",
                     "service=fleet": "pg_service.conf service fleet"]
        for (url, expected) in cases {
            let why = try FleetLink.insecurity(of: url)
            XCTAssertTrue(why?.contains(expected) == true, "\(url): \(why ?? "nil")")
        }
        XCTAssertThrowsError(try FleetLink.insecurity(of: "host='unterminated"))
    }

    /// AES-256-GCM known answer (test case 16 of McGrew and Viega's GCM specification, checked here
    /// against python-cryptography's OpenSSL): rows sealed before the switch from libcrypto to Nettle
    /// open after it, and a flipped tag bit is refused with the plaintext wiped.
    func testGCMKnownAnswer() {
        func bytes(_ hex: String) -> [UInt8] {
            stride(from: 0, to: hex.count, by: 2).map { i in
                let start = hex.index(hex.startIndex, offsetBy: i)
                return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16) ?? 0
            }
        }
        let key = bytes("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
        let plain = bytes("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let aad = bytes("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let iv = bytes("cafebabefacedbaddecaf888")
        var cipher = [UInt8](repeating: 0, count: plain.count), tag = [UInt8](repeating: 0, count: 16)
        XCTAssertEqual(mfa_gcm_seal(key, iv, aad, aad.count, plain, plain.count, &cipher, &tag), 1)
        XCTAssertEqual(cipher, bytes("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"))
        XCTAssertEqual(tag, bytes("76fc6ece0f4e1768cddf8853bb2d551b"))
        var opened = [UInt8](repeating: 0, count: plain.count)
        XCTAssertEqual(mfa_gcm_open(key, iv, aad, aad.count, cipher, cipher.count, tag, &opened), 1)
        XCTAssertEqual(opened, plain)
        tag[15] ^= 1
        XCTAssertEqual(mfa_gcm_open(key, iv, aad, aad.count, cipher, cipher.count, tag, &opened), 0)
        XCTAssertEqual(opened, [UInt8](repeating: 0, count: plain.count))
    }
}
