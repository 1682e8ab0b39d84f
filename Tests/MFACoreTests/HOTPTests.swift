// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// HOTP tokens: RFC 4226 vectors (../shared/reference/otp.md), a bounded look-ahead, no going back.
final class HOTPTests: XCTestCase {
    let secret = Array("12345678901234567890".utf8)
    let vectors = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]

    func testMatchesTheExpectedCounterAndLooksAheadABoundedDistance() {
        XCTAssertEqual(OTP.matchHOTP(code: vectors[0], secret: secret, nextCounter: 0, parameters: .standard), 0)
        // Pressed a few times without logging in: still found, so the token resynchronises.
        XCTAssertEqual(OTP.matchHOTP(code: vectors[7], secret: secret, nextCounter: 2, parameters: .standard), 7)
        // Beyond the look-ahead: refused.
        XCTAssertNil(OTP.matchHOTP(code: vectors[9], secret: secret, nextCounter: 0, parameters: .standard, lookAhead: 8))
        XCTAssertEqual(OTP.matchHOTP(code: vectors[9], secret: secret, nextCounter: 0, parameters: .standard, lookAhead: 9), 9)
    }

    func testUsedOrOlderCountersAreNeverAccepted() {
        XCTAssertNil(OTP.matchHOTP(code: vectors[3], secret: secret, nextCounter: 4, parameters: .standard))
        XCTAssertNil(OTP.matchHOTP(code: vectors[0], secret: secret, nextCounter: 1, parameters: .standard))
        XCTAssertNil(OTP.matchHOTP(code: "12345", secret: secret, nextCounter: 0, parameters: .standard))
    }

    func testTheCounterNeverWrapsAround() {
        XCTAssertNil(OTP.matchHOTP(code: vectors[0], secret: secret, nextCounter: UInt64.max - 2, parameters: .standard))
    }

    func testHOTPURIHasTheCounter() {
        let uri = OTPAuthURI.hotp(secret: secret, issuer: "h", account: "u@h", parameters: .standard, counter: 7)
        XCTAssertTrue(uri.hasPrefix("otpauth://hotp/h:u%40h?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=h"), uri)
        XCTAssertTrue(uri.hasSuffix("&counter=7"), uri)
    }
}
