// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest
@testable import MFACore

final class RecoveryCodeTests: XCTestCase {
    func makeCodes() -> [String] {
        (0..<10).map { i in RecoveryCodes.makeCode(randomBytes: (0..<64).map { UInt8(truncatingIfNeeded: $0 * 7 + i * 13) })! }
    }

    func testCodesAreFormattedAndNormalize() {
        let code = makeCodes()[0]
        XCTAssertEqual(code.count, 14)
        XCTAssertEqual(code.filter { $0 == "-" }.count, 2)
        XCTAssertEqual(RecoveryCodes.normalize(code.uppercased()), code.replacingOccurrences(of: "-", with: ""))
        XCTAssertEqual(RecoveryCodes.normalize(" " + code + " "), code.replacingOccurrences(of: "-", with: ""))
        XCTAssertNil(RecoveryCodes.normalize("123456"), "a TOTP code is not a recovery code")
        XCTAssertNil(RecoveryCodes.normalize("0000-0000-0000"), "0 is not in the alphabet")
    }

    func testMakeCodeRejectsBiasedBytesAndReportsExhaustion() {
        XCTAssertNil(RecoveryCodes.makeCode(randomBytes: [UInt8](repeating: 255, count: 64)), "255 is above the unbiased limit")
        XCTAssertNil(RecoveryCodes.makeCode(randomBytes: [1, 2, 3]))
    }

    func testStoredHashesMatchOnlyTheirCode() {
        let codes = makeCodes()
        let stored = codes.enumerated().map { i, code in
            RecoveryCodes.hash(normalizedCode: RecoveryCodes.normalize(code)!, salt: [UInt8](repeating: UInt8(i), count: 16))
        }
        for (i, code) in codes.enumerated() { XCTAssertEqual(RecoveryCodes.match(typed: code, stored: stored), i) }
        XCTAssertNil(RecoveryCodes.match(typed: "2222-2222-2222", stored: stored))
        XCTAssertNil(RecoveryCodes.match(typed: codes[0], stored: Array(stored.dropFirst())), "a used (removed) code is refused")
        // The stored form is not the code.
        XCTAssertFalse(stored[0].hash.isEmpty)
        XCTAssertNotEqual(stored[0].hash, Array(RecoveryCodes.normalize(codes[0])!.utf8))
    }
}

final class UserNameTests: XCTestCase {
    func testAcceptsOrdinaryNames() throws {
        for name in ["alice", "bob.smith", "svc_backup", "user-1", "john@EXAMPLE.COM", "joe$", "ü"] {
            XCTAssertEqual(try UserName(validating: name).value, name)
        }
        XCTAssertNoThrow(try UserName(validating: String(repeating: "a", count: 32)))
    }

    func testRefusesNamesThatCouldWalkAPathOrForgeALog() {
        let cases: [(String, UserName.Invalid)] = [
            ("", .empty), (String(repeating: "a", count: 33), .tooLong), ("-rf", .leadingDash), (".", .dotOrDotDot),
            ("..", .dotOrDotDot), ("a..b", .dotOrDotDot), ("a/b", .forbiddenByte(0x2f)), ("a\nb", .forbiddenByte(0x0a)),
            ("a\u{0}b", .forbiddenByte(0)), ("a b", .forbiddenByte(0x20)),
        ]
        for (name, expected) in cases {
            XCTAssertThrowsError(try UserName(validating: name), "\(name.debugDescription)") { error in
                XCTAssertEqual(error as? UserName.Invalid, expected, name.debugDescription)
            }
        }
    }
}

final class ConfigTests: XCTestCase {
    func testDefaults() throws {
        let config = try ConfigParser.parse("# nothing\n\n", file: "x.conf")
        XCTAssertEqual(config.mode, .optional)
        XCTAssertEqual(config.stateDirectory, "/var/lib/mfagate")
        XCTAssertEqual(config.socketPath, "/run/mfagate/mfagated.sock")
        XCTAssertEqual(config.window, 1)
    }

    func testParsesEveryKey() throws {
        let config = try ConfigParser.parse("mode = required\n  state_dir=/srv/mfa  \nsocket = /run/x.sock\nwindow = 2\n", file: "x.conf")
        XCTAssertEqual(config.mode, .required)
        XCTAssertEqual(config.stateDirectory, "/srv/mfa")
        XCTAssertEqual(config.socketPath, "/run/x.sock")
        XCTAssertEqual(config.window, 2)
    }

    func assertError(_ text: String, line: Int, contains fragment: String, file: StaticString = #filePath, lineNo: UInt = #line) {
        XCTAssertThrowsError(try ConfigParser.parse(text, file: "/etc/mfagate/mfagate.conf"), file: file, line: lineNo) { error in
            guard let e = error as? ConfigError else { return XCTFail("not a ConfigError", file: file, line: lineNo) }
            XCTAssertEqual(e.line, line, file: file, line: lineNo)
            XCTAssertTrue(e.description.hasPrefix("/etc/mfagate/mfagate.conf:\(line): "), e.description, file: file, line: lineNo)
            XCTAssertTrue(e.description.contains(fragment), e.description, file: file, line: lineNo)
        }
    }

    /// Issue 14, finding 5: a value that is not UTF-8 was silently changed to U+FFFD.
    func testConfigBytesThatAreNotUTF8AreRefusedWithTheirLine() throws {
        let bytes = Array("mode = required\n".utf8) + Array("require_users = al".utf8) + [0xFF, 0xFE] + Array("\nwindow = 1\n".utf8)
        XCTAssertThrowsError(try ConfigParser.parse(bytes: bytes, file: "/etc/mfagate/mfagate.conf")) { error in
            XCTAssertEqual((error as? ConfigError)?.description,
                           "/etc/mfagate/mfagate.conf:2: the line is not valid UTF-8; save the file as UTF-8")
        }
        let good = try ConfigParser.parse(bytes: Array("require_users = jürgen\n".utf8), file: "x.conf")
        XCTAssertEqual(good.requireUsers, ["jürgen"])
    }

    func testErrorsNameFileLineAndProblem() {
        assertError("mode = optional\nmodee = off\n", line: 2, contains: "unknown key `modee`")
        assertError("# c\nmode = sometimes\n", line: 2, contains: "required, optional, audit, off")
        assertError("mode = off\nmode = required\n", line: 2, contains: "already set on line 1")
        assertError("state_dir = relative/path\n", line: 1, contains: "absolute path")
        assertError("\n\njust words\n", line: 3, contains: "expected `key = value`")
        assertError("window = -1\n", line: 1, contains: "`window`")
        assertError("socket = /" + String(repeating: "s", count: 120) + "\n", line: 1, contains: "107 bytes")
        assertError("= x\n", line: 1, contains: "missing key")
    }

    /// Issue 17: parsing stopped at the first error, so an admin fixed a file one line per restart.
    /// Every error is reported, each with its own file:line, in line order, conflicts included.
    func testEveryErrorIsReportedWithItsLine() {
        let text = "mode = sometimes\nwindow = 2\nmodee = off\nrequire_users = alice\nexempt_users = alice\nwindow = 3\njust words\n"
        XCTAssertThrowsError(try ConfigParser.parse(text, file: "/etc/mfagate/mfagate.conf")) { error in
            guard let e = error as? ConfigError else { return XCTFail("not a ConfigError") }
            XCTAssertEqual(e.all.map(\.line), [1, 3, 5, 6, 7], "\(e)")
            let lines = e.description.split(separator: "\n").map(String.init)
            guard lines.count == 5 else { return XCTFail("not 5 errors: \(e.description)") }
            XCTAssertTrue(lines[0].hasPrefix("/etc/mfagate/mfagate.conf:1: `mode` must be"), lines[0])
            XCTAssertTrue(lines[1].hasPrefix("/etc/mfagate/mfagate.conf:3: unknown key `modee`"), lines[1])
            XCTAssertTrue(lines[2].contains(":5: user \"alice\" is listed in both"), lines[2])
            XCTAssertTrue(lines[3].hasSuffix(":6: `window` is already set on line 2"), lines[3])
            XCTAssertTrue(lines[4].contains(":7: expected `key = value`"), lines[4])
        }
        // A bad value still counts as set: a second line with the key is a repeat, not a fix.
        XCTAssertThrowsError(try ConfigParser.parse("mode = sometimes\nmode = off\n", file: "f")) { error in
            XCTAssertEqual((error as? ConfigError)?.all.map(\.line), [1, 2])
        }
        let bytes = Array("mode = sometimes\n".utf8) + [0xFF] + Array("\nwindow = 99\n".utf8)
        XCTAssertThrowsError(try ConfigParser.parse(bytes: bytes, file: "f")) { error in
            XCTAssertEqual((error as? ConfigError)?.all.map(\.line), [1, 2, 3], "\(error)")
        }
    }
}

final class PolicyTests: XCTestCase {
    /// The skeleton's table (mode × enrolled), through the one decision the daemon uses.
    func decide(mode: MFAMode, enrolled: Bool) -> LoginDecision {
        var config = DaemonConfig()
        config.mode = mode
        config.enrollAtLogin = false
        return Policy.evaluate(config, LoginFacts(user: "-", service: "-", rhost: "", enrolled: enrolled, now: 0)).decision
    }

    func testDecisionTable() {
        XCTAssertEqual(decide(mode: .off, enrolled: true), .ignore(reason: "mode off"))
        XCTAssertEqual(decide(mode: .off, enrolled: false), .ignore(reason: "mode off"))
        XCTAssertEqual(decide(mode: .optional, enrolled: true), .askForCode)
        XCTAssertEqual(decide(mode: .optional, enrolled: false), .ignore(reason: "not enrolled, MFA optional"))
        XCTAssertEqual(decide(mode: .required, enrolled: true), .askForCode)
        XCTAssertEqual(decide(mode: .required, enrolled: false), .deny(reason: "not enrolled, MFA required"))
    }

    func testModeOffIsDecidedBeforeAnyFact() {
        var config = DaemonConfig()
        config.mode = .off
        XCTAssertEqual(Policy.switchedOff(config)?.decision, .ignore(reason: "mode off"))
        config.mode = .required
        XCTAssertNil(Policy.switchedOff(config))
    }
}
