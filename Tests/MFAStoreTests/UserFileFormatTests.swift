// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore
@testable import MFAStore

/// The user-file parser works on bytes (for speed); these pin it to what the text format means.
final class UserFileFormatTests: XCTestCase {
    func record(drift: Int = 0) throws -> UserRecord {
        var r = UserRecord(user: try UserName(validating: "alice"), parameters: .standard,
                           secret: Array("12345678901234567890".utf8), created: 1_700_000_000, lastUsedStep: 56_666_666,
                           lastSuccess: 1_700_000_030,
                           recoveryCodes: (0..<10).map { RecoveryCodes.Hashed(salt: [UInt8](repeating: UInt8($0), count: 16),
                                                                            hash: [UInt8](repeating: 0xAB, count: 32)) })
        r.drift = drift
        return r
    }

    func testSerializeThenParseGivesTheSameRecord() throws {
        for drift in [0, -3, 10] {
            let r = try record(drift: drift)
            XCTAssertEqual(try UserFileFormat.parse(UserFileFormat.serialize(r), expectedUser: r.user), r)
            XCTAssertEqual(try UserFileFormat.parse(utf8: Array(UserFileFormat.serialize(r).utf8), expectedUser: r.user), r)
        }
    }

    func testIntegersAreReadAsInt64ReadsThem() {
        for text in ["0", "7", "-7", "+7", "", "-", "+", "1 ", " 1", "1x", "00012", "9223372036854775807",
                     "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "1_000", "١"] {
            XCTAssertEqual(UserFileFormat.integer(Array(text.utf8)[...]), Int64(text), "\"\(text)\"")
        }
    }

    func testEachLineIsCheckedWithItsNumber() throws {
        let r = try record()
        let good = UserFileFormat.serialize(r)
        let cases: [(String, String)] = [
            (good.replacingOccurrences(of: "digits 6", with: "digits six"), "line 6: bad digits"),
            (good.replacingOccurrences(of: "created 1700000000", with: "created 17e8"), "line 9: bad created time"),
            (good.replacingOccurrences(of: "last_step 56666666", with: "last_step -1"), "line 10: bad last_step"),
            (good + "drift 11\n", "bad drift"),
            (good + "secret AAAA\n", "`secret` appears twice"),
            (good + "recovery 00:11\n", "bad recovery code entry"),
            // right lengths (16-byte salt, 32-byte hash), one digit that is not lowercase hex
            (good + "recovery " + String(repeating: "ab", count: 15) + "aG:" + String(repeating: "cd", count: 32) + "\n", "bad recovery code entry"),
            (good + "recovery " + String(repeating: "ab", count: 16) + ":" + String(repeating: "cd", count: 31) + "Cd\n", "bad recovery code entry"),
            (good + "recovery " + String(repeating: "ab", count: 16) + ":" + String(repeating: "cd", count: 31) + "c/\n", "bad recovery code entry"),
            (good.replacingOccurrences(of: "method totp", with: "method sms"), "line 4: unknown method `sms`"),
            (good.replacingOccurrences(of: "method totp", with: "method hotp"), "missing `counter`"),
            (good + "counter 5\n", "`counter` belongs to method hotp only"),
            (good.replacingOccurrences(of: "algorithm sha1", with: "algorithm md5"), "unknown algorithm `md5`"),
            (good.replacingOccurrences(of: "\n", with: "\r\n"), "bad version"),
        ]
        for (text, fragment) in cases {
            XCTAssertThrowsError(try UserFileFormat.parse(text, expectedUser: r.user)) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error) does not say \(fragment)")
            }
        }
    }
}
