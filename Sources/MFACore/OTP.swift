// SPDX-License-Identifier: Apache-2.0
/// The parameters of one OTP credential (RFC 4226 / RFC 6238).
public struct OTPParameters: Sendable, Equatable {
    public var digest: Crypto.Digest
    public var digits: Int
    public var period: Int

    /// SHA1, 6 digits, 30 s: the only combination every phone app honours.
    public static let standard = OTPParameters(digest: .sha1, digits: 6, period: 30)

    public init(digest: Crypto.Digest, digits: Int, period: Int) {
        self.digest = digest
        self.digits = digits
        self.period = period
    }

    public var isValid: Bool { (digits == 6 || digits == 8) && (1...300).contains(period) }
}

public enum OTP {
    static let powersOfTen: [UInt32] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000]

    /// HOTP value (RFC 4226 §5.3, dynamic truncation) as a zero-padded decimal string.
    public static func hotp(secret: [UInt8], counter: UInt64, digest: Crypto.Digest = .sha1, digits: Int = 6) -> String {
        hotp(key: Crypto.HMACKey(digest, key: secret), counter: counter, digits: digits)
    }

    /// HOTP under a key prepared once (several counters of one secret).
    static func hotp(key: Crypto.HMACKey, counter: UInt64, digits: Int) -> String {
        var message = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { message[7 - i] = UInt8(truncatingIfNeeded: counter >> (8 * UInt64(i))) }
        let mac = key.mac(message)
        let offset = Int(mac[mac.count - 1] & 0x0F)
        let binary = (UInt32(mac[offset] & 0x7F) << 24) | (UInt32(mac[offset + 1]) << 16)
            | (UInt32(mac[offset + 2]) << 8) | UInt32(mac[offset + 3])
        let value = binary % powersOfTen[digits]
        var text = String(value)
        while text.count < digits { text = "0" + text }
        return text
    }

    /// The RFC 6238 time step for a Unix time (T0 = 0). Times before 1970 have no step.
    public static func timeStep(unixTime: Int64, period: Int) -> Int64 {
        unixTime < 0 ? -1 : unixTime / Int64(period)
    }

    public static func totp(secret: [UInt8], unixTime: Int64, parameters: OTPParameters = .standard) -> String {
        let step = max(0, timeStep(unixTime: unixTime, period: parameters.period))
        return hotp(secret: secret, counter: UInt64(step), digest: parameters.digest, digits: parameters.digits)
    }

    /// How far (in steps) learnt drift may move the window: 10 steps = 5 minutes at 30 s.
    public static let maximumDrift = 10

    /// Finds the time step a typed TOTP code belongs to, within `window` steps either side of now
    /// shifted by the device's learnt `drift`, considering only steps newer than `lastUsedStep` so
    /// that a code is never accepted twice. Every candidate is compared in constant time and the
    /// loop does not stop early, so the answer time does not reveal which step matched.
    public static func matchTOTP(code: String, secret: [UInt8], unixTime: Int64, parameters: OTPParameters,
                                 window: Int, lastUsedStep: Int64?, drift: Int = 0) -> Int64? {
        let typed = Array(code.utf8)
        guard typed.count == parameters.digits else { return nil }
        let now = timeStep(unixTime: unixTime, period: parameters.period) + Int64(max(-maximumDrift, min(maximumDrift, drift)))
        var matched: Int64? = nil
        let key = Crypto.HMACKey(parameters.digest, key: secret)
        for offset in -window...window {
            // Overflow-checked: with a 1 s period a clock near Int64.max would trap (found by
            // Tests/fuzz/UserFileFuzz.swift); such a step does not exist.
            let (step, overflow) = now.addingReportingOverflow(Int64(offset))
            if overflow || step < 0 { continue }
            let expected = Array(hotp(key: key, counter: UInt64(step), digits: parameters.digits).utf8)
            let fresh = lastUsedStep.map { step > $0 } ?? true
            if Crypto.constantTimeEqual(expected, typed) && fresh && matched == nil {
                matched = step
            }
        }
        return matched
    }
}

extension OTP {
    /// The drift to remember after accepting `step`: where the device's clock appears to be,
    /// bounded so a stolen code from far away can never widen the window beyond `maximumDrift`.
    public static func learntDrift(acceptedStep: Int64, unixTime: Int64, period: Int) -> Int {
        let offset = acceptedStep - timeStep(unixTime: unixTime, period: period)
        return Int(max(Int64(-maximumDrift), min(Int64(maximumDrift), offset)))
    }
}

extension OTP {
    /// The newest step `matchTOTP` could have accepted at any time before `before` (Unix seconds,
    /// inclusive) with this `window` and learnt `drift`: after a crash that may have lost records,
    /// every step up to this one counts as used (docs/robustness.md, "Replay across a power cut").
    /// Overflow saturates (a step that large exists for no clock).
    public static func lastStepAcceptable(before unixTime: Int64, period: Int, window: Int, drift: Int) -> Int64 {
        let clamped = Int64(max(-maximumDrift, min(maximumDrift, drift)))
        let (lead, o1) = clamped.addingReportingOverflow(Int64(max(0, window)))
        let (step, o2) = timeStep(unixTime: unixTime, period: period).addingReportingOverflow(lead)
        return o1 || o2 ? Int64.max : step
    }
}
