// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore
@testable import MFAStore

/// Inputs the fuzzers (Tests/fuzz/) and their invariants pointed at, kept as tests.
final class UserFileFuzzRegressionTests: XCTestCase {
    let alice = try! UserName(validating: "alice")
    let body = "version 1\nuser alice\nmethod totp\nalgorithm sha1\ndigits 6\nperiod 30\nsecret JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\ncreated 1700000000\n"

    /// The config parser's CR LF bug (see MFACoreTests/FuzzRegressionTests) existed here too: a
    /// "\r\n" after a comment line hid the next line, so a `last_step` (the replay guard) could vanish.
    func testCRLFDoesNotHideTheReplayGuardBehindAComment() {
        let text = body + "# note\r\nlast_step 56666666\n"
        // Either the file is refused or the guard is read: never a record without it.
        if let record = try? UserFileFormat.parse(text, expectedUser: alice) {
            XCTAssertEqual(record.lastUsedStep, 56_666_666)
        }
    }

    func testAStrayCRIsRefusedNotSwallowed() {
        XCTAssertThrowsError(try UserFileFormat.parse(body + "last_step 5\r\n", expectedUser: alice))
    }

    /// Extreme values the parser accepts must not trap on the login path.
    func testExtremeStepsAndTimesDoNotTrapTheLoginPath() throws {
        let record = try UserFileFormat.parse(body + "last_step 9223372036854775807\nlast_success -9223372036854775808\n",
                                              expectedUser: alice)
        for now in [Int64(0), 1_700_000_000, Int64.max] {
            XCTAssertNil(OTP.matchTOTP(code: "123456", secret: record.secret, unixTime: now, parameters: record.parameters,
                                       window: 10, lastUsedStep: record.lastUsedStep))
        }
        XCTAssertEqual(try UserFileFormat.parse(UserFileFormat.serialize(record), expectedUser: alice), record)
    }

    /// UserFileFuzz.swift, userfile/period-1-clock-at-int64-max: a file with `period 1` (accepted,
    /// 1...300 s) and a clock at Int64.max made `now + offset` overflow and trap in matchTOTP.
    func testOneSecondPeriodAtTheEndOfTimeDoesNotTrap() throws {
        let text = body.replacingOccurrences(of: "period 30", with: "period 1")
        let record = try UserFileFormat.parse(text, expectedUser: alice)
        XCTAssertEqual(record.parameters.period, 1)
        XCTAssertNil(OTP.matchTOTP(code: "123456", secret: record.secret, unixTime: Int64.max, parameters: record.parameters,
                                   window: 10, lastUsedStep: nil))
        let code = OTP.hotp(secret: record.secret, counter: UInt64(Int64.max - 1))
        XCTAssertEqual(OTP.matchTOTP(code: code, secret: record.secret, unixTime: Int64.max, parameters: record.parameters,
                                     window: 1, lastUsedStep: nil), Int64.max - 1)
    }
}
