// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// The google-authenticator file parser: what it carries over, and the hostile files it refuses.
final class GoogleAuthenticatorFileTests: XCTestCase {
    func testTOTPFileWithReuseListWindowAndScratchCodes() throws {
        let f = try GoogleAuthenticatorFile.parse("""
            UANP5HTDXUG4L4BS5HJMGEJ2SU
            " RATE_LIMIT 3 30 1700000000
            " WINDOW_SIZE 3
            " DISALLOW_REUSE 5883201 5883205
            " TOTP_AUTH
            75830552
            63053944

            """)
        XCTAssertEqual(f.method, .totp)
        XCTAssertEqual(Base32.encode(f.secret), "UANP5HTDXUG4L4BS5HJMGEJ2SU")
        XCTAssertEqual(f.window, 1)
        XCTAssertEqual(f.lastUsedStep, 5883205)
        XCTAssertEqual(f.scratchCodes, ["75830552", "63053944"])
        XCTAssertEqual(f.ignoredOptions, ["RATE_LIMIT"])
    }

    func testHOTPFile() throws {
        let f = try GoogleAuthenticatorFile.parse("JBSWY3DPEHPK3PXP\n\" HOTP_COUNTER 12\n")
        XCTAssertEqual(f.method, .hotp)
        XCTAssertEqual(f.counter, 12)
        XCTAssertEqual(f.scratchCodes, [])
    }

    func testHostileFilesAreRefusedWithTheLine() {
        let cases: [(String, String)] = [
            ("", "line 1"),
            ("not base32!\n\" TOTP_AUTH\n", "line 1"),
            ("JBSWY3DP\n\" TOTP_AUTH\n", "line 1"),                      // 40-bit secret: too short
            ("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n1234\n", "line 3"),         // not a scratch code
            ("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" WINDOW_SIZE 100000\n", "line 3"),
            ("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" STEP_SIZE 0\n", "line 3"),
            ("JBSWY3DPEHPK3PXP\n\" HOTP_COUNTER -1\n", "line 2"),
            ("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" HOTP_COUNTER 1\n", "both"),
            ("JBSWY3DPEHPK3PXP\n75830552\n", "neither"),
            ("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\u{0}\n", "NUL"),
            ("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n" + String(repeating: "12345678\n", count: 500), "larger"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try GoogleAuthenticatorFile.parse(text), text) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error) for \(text.prefix(40))")
            }
        }
    }
}
