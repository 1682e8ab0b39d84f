// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// Inputs the fuzzers (Tests/fuzz/) found, each kept as a test so the bug cannot come back.
final class ConfigFuzzRegressionTests: XCTestCase {
    /// ConfigFuzz.swift, crlf-hides-setting: Swift reads "\r\n" as one Character, so splitting the
    /// file on the Character "\n" made a CR LF file one line; after a comment line every setting
    /// was silently ignored (here `state_dir`), and `mode = required` could be lost the same way.
    func testCRLFLineEndsDoNotHideSettingsAfterAComment() throws {
        let found = "#\u{0f}\r\r\nstate_dir  =/#"
        XCTAssertEqual(try ConfigParser.parse(found, file: "f").stateDirectory, "/#")
        let windows = "# edited on Windows\r\nmode = required\r\nwindow = 2\r\n"
        let config = try ConfigParser.parse(windows, file: "f")
        XCTAssertEqual(config.mode, .required)
        XCTAssertEqual(config.window, 2)
    }

    /// ConfigFuzz.swift, corpus/config/fleet-and-delivery.conf: the fuzzer's rule "every line of an
    /// accepted file is accepted on its own" met the first rules between keys (`store = postgresql`
    /// needs `database_url`; sms in `methods` needs `sms_command`). Those hold for the file: a line is
    /// read alone without them, and the file without its partner key is still refused.
    func testRulesBetweenKeysHoldForTheFileNotForOneLine() throws {
        XCTAssertThrowsError(try ConfigParser.parse("store = postgresql\n", file: "f"))
        XCTAssertThrowsError(try ConfigParser.parse("methods = totp sms\n", file: "f"))
        XCTAssertEqual(try ConfigParser.parse("store = postgresql\n", file: "f", checkingConflicts: false).store, .postgresql)
        let file = "store = postgresql\ndatabase_url = postgresql://mfagate@db/mfagate\nmethods = totp sms\nsms_command = /usr/local/bin/sms\n"
        XCTAssertEqual(try ConfigParser.parse(file, file: "f").store, .postgresql)
    }

    func testCRLFErrorsNameTheirOwnLine() {
        XCTAssertThrowsError(try ConfigParser.parse("mode = off\r\nwindow = 99\r\n", file: "f")) { error in
            XCTAssertEqual((error as? ConfigError)?.line, 2)
        }
    }
}

final class GoogleAuthenticatorFuzzRegressionTests: XCTestCase {
    /// GoogleAuthenticatorFuzz.swift, corpus/gafile/crlf-hides-used-step: the same CR LF merge as
    /// in the config parser. The file was split on the Character "\n", and "\r\n" is one Character,
    /// so a line ending in CR LF swallowed the next one: a `DISALLOW_REUSE` line (the time steps
    /// already used there) or a scratch code after it was silently dropped on import, and a code
    /// already used under google-authenticator could be used once more under mfagate.
    func testCRLFLineEndsDoNotHideUsedStepsOrScratchCodes() throws {
        let file = "JBSWY3DPEHPK3PXP\r\n\" RATE_LIMIT 3 30\r\n\" DISALLOW_REUSE 58012345\r\n\" TOTP_AUTH\r\n12345678\r\n87654321\r\n"
        let parsed = try GoogleAuthenticatorFile.parse(file)
        XCTAssertEqual(parsed.lastUsedStep, 58012345)
        XCTAssertEqual(parsed.scratchCodes, ["12345678", "87654321"])
        let mixed = "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" X\u{FFFD}\r\n05678103\n\" RATE_LIMIT 3 30\r\n\" DISALLOW_REUSE 7\n"
        let m = try GoogleAuthenticatorFile.parse(mixed)
        XCTAssertEqual(m.scratchCodes, ["05678103"])
        XCTAssertEqual(m.lastUsedStep, 7)
    }

    /// corpus/gafile/combining-mark-hides-option: option lines were split into words on the
    /// Character " ", and a space followed by a combining mark (U+0365) is one Character, so
    /// `" DISALLOW_REUSE` + U+0365 read as one unknown option and was ignored instead of refused.
    func testAnOptionFollowedByACombiningMarkIsReadAsThatOption() {
        let file = "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" DISALLOW_REUSE \u{365}x 30\n"
        XCTAssertThrowsError(try GoogleAuthenticatorFile.parse(file)) { error in
            XCTAssertEqual((error as? GoogleAuthenticatorFile.ParseError)?.line, 3)
        }
        XCTAssertEqual(try GoogleAuthenticatorFile.parse("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" DISALLOW_REUSE 30 \n").lastUsedStep, 30)
    }
}
