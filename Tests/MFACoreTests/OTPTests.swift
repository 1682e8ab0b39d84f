// SPDX-License-Identifier: Apache-2.0
import XCTest
@testable import MFACore

/// Vectors from RFC 4226 / RFC 6238 (re-checked with oathtool, see shared/reference/otp.md).
final class OTPTests: XCTestCase {
    let sha1Secret = Array("12345678901234567890".utf8)
    let sha256Secret = Array("12345678901234567890123456789012".utf8)
    let sha512Secret = Array(String(repeating: "1234567890", count: 7).prefix(64).utf8)

    func testHOTPVectorsRFC4226() {
        let expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
        for (counter, code) in expected.enumerated() {
            XCTAssertEqual(OTP.hotp(secret: sha1Secret, counter: UInt64(counter)), code, "counter \(counter)")
        }
    }

    func testTOTPVectorsRFC6238AllDigestsEightDigits() {
        let rows: [(Int64, String, String, String)] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ]
        for (time, sha1, sha256, sha512) in rows {
            XCTAssertEqual(OTP.totp(secret: sha1Secret, unixTime: time, parameters: .init(digest: .sha1, digits: 8, period: 30)), sha1)
            XCTAssertEqual(OTP.totp(secret: sha256Secret, unixTime: time, parameters: .init(digest: .sha256, digits: 8, period: 30)), sha256)
            XCTAssertEqual(OTP.totp(secret: sha512Secret, unixTime: time, parameters: .init(digest: .sha512, digits: 8, period: 30)), sha512)
        }
    }

    func testSixDigitsIsTheLastSixOfEight() {
        XCTAssertEqual(OTP.totp(secret: sha1Secret, unixTime: 59), "287082")
    }

    func testWindowAcceptsOneStepEitherSideAndNoFurther() {
        let now: Int64 = 1_000_000_020  // step 33333334
        let step = OTP.timeStep(unixTime: now, period: 30)
        for offset in -2...2 {
            let code = OTP.hotp(secret: sha1Secret, counter: UInt64(step + Int64(offset)))
            let match = OTP.matchTOTP(code: code, secret: sha1Secret, unixTime: now, parameters: .standard, window: 1, lastUsedStep: nil)
            if abs(offset) <= 1 {
                XCTAssertEqual(match, step + Int64(offset), "offset \(offset) must be accepted")
            } else {
                XCTAssertNil(match, "offset \(offset) must be refused")
            }
        }
    }

    func testWindowZeroAcceptsOnlyTheCurrentStep() {
        let now: Int64 = 1_000_000_020
        let step = OTP.timeStep(unixTime: now, period: 30)
        let previous = OTP.hotp(secret: sha1Secret, counter: UInt64(step - 1))
        XCTAssertNil(OTP.matchTOTP(code: previous, secret: sha1Secret, unixTime: now, parameters: .standard, window: 0, lastUsedStep: nil))
    }

    func testReplayOfTheSameOrAnOlderStepIsRefused() {
        let now: Int64 = 1_000_000_020
        let step = OTP.timeStep(unixTime: now, period: 30)
        let code = OTP.hotp(secret: sha1Secret, counter: UInt64(step))
        XCTAssertNil(OTP.matchTOTP(code: code, secret: sha1Secret, unixTime: now, parameters: .standard, window: 1, lastUsedStep: step))
        XCTAssertNil(OTP.matchTOTP(code: code, secret: sha1Secret, unixTime: now, parameters: .standard, window: 1, lastUsedStep: step + 1))
        XCTAssertEqual(OTP.matchTOTP(code: code, secret: sha1Secret, unixTime: now, parameters: .standard, window: 1, lastUsedStep: step - 1), step)
    }

    func testWrongLengthAndWrongCodeAreRefused() {
        let now: Int64 = 1_000_000_020
        let code = OTP.totp(secret: sha1Secret, unixTime: now)
        XCTAssertNil(OTP.matchTOTP(code: String(code.dropLast()), secret: sha1Secret, unixTime: now, parameters: .standard, window: 1, lastUsedStep: nil))
        XCTAssertNil(OTP.matchTOTP(code: code + "0", secret: sha1Secret, unixTime: now, parameters: .standard, window: 1, lastUsedStep: nil))
        let wrong = String(code.map { $0 == "9" ? "0" : Character(String(Int(String($0))! + 1)) })
        XCTAssertNil(OTP.matchTOTP(code: wrong, secret: sha1Secret, unixTime: now, parameters: .standard, window: 1, lastUsedStep: nil))
    }

    func testBase32KnownValuesAndRoundTrip() {

        XCTAssertEqual(Base32.encode(Array("foobar".utf8)), "MZXW6YTBOI")
        XCTAssertEqual(Base32.decode("MZXW6YTBOI======"), Array("foobar".utf8))
        XCTAssertEqual(Base32.decode("mzxw 6ytb-oi"), Array("foobar".utf8))
        XCTAssertEqual(Base32.decode("JBSWY3DPEHPK3PXP"), [0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x21, 0xde, 0xad, 0xbe, 0xef])
        XCTAssertNil(Base32.decode("MZXW1"), "1 is not base32")
        XCTAssertNil(Base32.decode("MZXW6YTBO"), "an impossible length")
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            XCTAssertEqual(Base32.decode(Base32.encode(bytes)), bytes)
        }
    }

    func testConstantTimeEqual() {
        XCTAssertTrue(Crypto.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(Crypto.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(Crypto.constantTimeEqual([1, 2, 3], [1, 2]))
    }

    func testOTPAuthURI() {
        let uri = OTPAuthURI.totp(secret: Array("foobar".utf8), issuer: "bastion 1", account: "alice@bastion 1", parameters: .standard)
        XCTAssertEqual(uri, "otpauth://totp/bastion%201:alice%40bastion%201?secret=MZXW6YTBOI&issuer=bastion%201&algorithm=SHA1&digits=6&period=30")
    }
}
