// SPDX-License-Identifier: Apache-2.0
/// Which one-time-password algorithm a user's enrollment uses.
public enum OTPMethod: String, Sendable, CaseIterable {
    /// RFC 6238: the code changes every period (phone apps).
    case totp
    /// RFC 4226: the code changes at each button press (hardware tokens).
    case hotp
}

extension OTP {
    /// How many presses ahead of the expected counter a typed HOTP code is still accepted: a token
    /// pressed a few times without logging in resynchronises at the next login, but a code from far
    /// ahead (a stolen token's future codes written down) is not.
    public static let hotpLookAhead = 10

    /// The counter a typed HOTP code belongs to, from `nextCounter` up to `nextCounter + lookAhead`,
    /// or nil. Counters before `nextCounter` are never accepted, so a code works once. Every
    /// candidate is compared in constant time and the loop does not stop early.
    public static func matchHOTP(code: String, secret: [UInt8], nextCounter: UInt64, parameters: OTPParameters,
                                 lookAhead: Int = hotpLookAhead) -> UInt64? {
        let typed = Array(code.utf8)
        guard typed.count == parameters.digits, lookAhead >= 0 else { return nil }
        var matched: UInt64? = nil
        let key = Crypto.HMACKey(parameters.digest, key: secret)
        for offset in 0...UInt64(lookAhead) {
            let (counter, overflow) = nextCounter.addingReportingOverflow(offset)
            if overflow { break }
            let expected = Array(hotp(key: key, counter: counter, digits: parameters.digits).utf8)
            if Crypto.constantTimeEqual(expected, typed) && matched == nil { matched = counter }
        }
        return matched
    }
}
