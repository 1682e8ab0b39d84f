// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAStore

/// The result of checking one typed answer against a user's factors.
enum FactorCheck {
    /// Right: `record` carries the new replay state (last step, next counter, one code fewer) and
    /// must be saved before anything is granted.
    case accepted(UserRecord, reason: String, usedRecoveryCode: Bool)
    case rejected(reason: String)
}

extension Authority {
    /// Checks a typed OTP code (TOTP or HOTP, spaces allowed) or recovery code. Pure apart from reading
    /// the clock: the caller saves the returned record. `allowRecoveryCode: false` asks for a code from
    /// the device itself (regenerating recovery codes must not be possible with a recovery code).
    func checkFactor(_ typed: String, against original: UserRecord, now: Int64, allowRecoveryCode: Bool = true) -> FactorCheck {
        var record = original
        // Over bytes, not Characters (grapheme breaking and Unicode properties on every login):
        // only ASCII digits count, so a space joined to a combining mark still makes it "not digits".
        let typedBytes = typed.utf8.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
        let digitsOnly = !typedBytes.isEmpty && typedBytes.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        let compact = digitsOnly ? String(decoding: typedBytes, as: UTF8.self) : ""
        // An email/SMS-only user has no app: the file's secret is a random one nobody was shown.
        if digitsOnly && record.appActive {
            switch record.method {
            case .totp:
                let window = record.window ?? config.window
                if let step = OTP.matchTOTP(code: compact, secret: record.secret, unixTime: now, parameters: record.parameters,
                                            window: window, lastUsedStep: record.lastUsedStep, drift: record.drift) {
                    record.lastUsedStep = step
                    record.lastSuccess = now
                    record.drift = OTP.learntDrift(acceptedStep: step, unixTime: now, period: record.parameters.period)
                    return .accepted(record, reason: "totp", usedRecoveryCode: false)
                }
            case .hotp:
                if let counter = OTP.matchHOTP(code: compact, secret: record.secret, nextCounter: record.counter,
                                               parameters: record.parameters) {
                    let skipped = counter - record.counter
                    record.counter = counter &+ 1
                    record.lastSuccess = now
                    return .accepted(record, reason: skipped == 0 ? "hotp" : "hotp, resynchronised \(skipped) ahead",
                                     usedRecoveryCode: false)
                }
            }
        }
        // Digits that are not a current code may still be an imported 8-digit scratch code.
        if allowRecoveryCode, let index = RecoveryCodes.match(typed: typed, stored: record.recoveryCodes) {
            record.recoveryCodes.remove(at: index)
            record.lastSuccess = now
            return .accepted(record, reason: "recovery code, \(record.recoveryCodes.count) left", usedRecoveryCode: true)
        }
        if digitsOnly && record.method == .totp && record.appActive {
            let replay = OTP.matchTOTP(code: compact, secret: record.secret, unixTime: now, parameters: record.parameters,
                                       window: record.window ?? config.window, lastUsedStep: nil, drift: record.drift) != nil
            return .rejected(reason: replay ? "replayed code" : "wrong code")
        }
        return .rejected(reason: "wrong code")
    }
}
