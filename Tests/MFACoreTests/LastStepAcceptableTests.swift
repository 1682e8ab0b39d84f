// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// `OTP.lastStepAcceptable` bounds what `matchTOTP` can accept before a time: after a crash that
/// may have lost records, every step up to it counts as used, so it must never be below a step
/// `matchTOTP` really accepted (RFC 6238 vectors' secret; every drift, window and second of a span).
final class LastStepAcceptableTests: XCTestCase {
    let secret = Array("12345678901234567890".utf8)

    func testNoStepMatchTOTPAcceptsBeforeTheTimeIsAboveIt() {
        let horizon: Int64 = 59 + 30 * 1_000  // inside a step, not on its edge
        for drift in [-10, -3, 0, 2, 10, 11] {
            for window in 0...3 {
                let bound = OTP.lastStepAcceptable(before: horizon, period: 30, window: window, drift: drift)
                for t in stride(from: horizon - 95, through: horizon, by: 4) {
                    for lead in -13...13 {
                        let step = OTP.timeStep(unixTime: t, period: 30) + Int64(lead)
                        let code = OTP.hotp(secret: secret, counter: UInt64(step), digest: .sha1, digits: 6)
                        if let accepted = OTP.matchTOTP(code: code, secret: secret, unixTime: t, parameters: .standard,
                                                        window: window, lastUsedStep: nil, drift: drift) {
                            XCTAssertLessThanOrEqual(accepted, bound, "t \(t) drift \(drift) window \(window)")
                        }
                    }
                }
                // And it is tight: at the time itself the top of the window is accepted.
                let top = OTP.timeStep(unixTime: horizon, period: 30) + Int64(max(-10, min(10, drift)) + window)
                let code = OTP.hotp(secret: secret, counter: UInt64(top), digest: .sha1, digits: 6)
                XCTAssertEqual(OTP.matchTOTP(code: code, secret: secret, unixTime: horizon, parameters: .standard,
                                             window: window, lastUsedStep: nil, drift: drift), bound)
            }
        }
    }

    func testExtremeValuesSaturateInsteadOfTrapping() {
        XCTAssertEqual(OTP.lastStepAcceptable(before: Int64.max, period: 1, window: 10, drift: 10), Int64.max)
        XCTAssertEqual(OTP.lastStepAcceptable(before: -5, period: 30, window: 1, drift: 0), 0)
    }
}
