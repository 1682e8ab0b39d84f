// SPDX-License-Identifier: Apache-2.0
/// One-time invite codes for `enroll_at_login = invite`: root makes one with `mfagate invite`, the
/// user types it at the login prompt before the enrollment screen is shown. Pure: random bytes and
/// times are passed in.
///
/// A code is 20 symbols of the recovery-code alphabet (about 99 bits), shown as five groups of four.
/// Only its SHA-256 is stored: with that much entropy a salt or a slow hash adds nothing (nobody
/// can try 2^99 guesses against a stolen digest), and the digest alone lets the daemon find and
/// compare it in constant time.
public enum InviteCodes {
    public static let length = 20
    /// `mfagate invite` without `--expires`.
    public static let defaultLifetime: Int64 = 7 * 86400
    /// Longer-lived invites are refused: an invite is a key to an account's second factor.
    public static let maximumLifetime: Int64 = 90 * 86400

    /// A new code from random bytes (rejection sampling, as RecoveryCodes); nil if they ran out.
    public static func makeCode(randomBytes: [UInt8]) -> String? {
        RecoveryCodes.randomSymbols(randomBytes, count: length).map(RecoveryCodes.format)
    }

    /// What the user typed without dashes and spaces, in lower case; nil if it cannot be an invite.
    public static func normalize(_ typed: String) -> String? {
        var out: [UInt8] = []
        for ch in typed.utf8 {
            if ch == UInt8(ascii: "-") || ch == UInt8(ascii: " ") || ch == UInt8(ascii: "\t") { continue }
            let lower = (ch >= UInt8(ascii: "A") && ch <= UInt8(ascii: "Z")) ? ch + 32 : ch
            guard RecoveryCodes.alphabet.contains(lower), out.count < length else { return nil }
            out.append(lower)
        }
        guard out.count == length else { return nil }
        return String(decoding: out, as: UTF8.self)
    }

    /// The stored form: SHA-256 of the normalized code.
    public static func digest(normalizedCode: String) -> [UInt8] {
        Array(normalizedCode.utf8).withUnsafeBytes { Crypto.sha256($0) }
    }

    /// `--expires 7d`: a duration as in the configuration (30m, 12h, 7d, 2w), at most 90 days.
    public static func parseLifetime(_ text: String) -> Int64? {
        guard let seconds = try? ConfigParser.duration("--expires", text, allowZero: false),
              seconds <= maximumLifetime else { return nil }
        return seconds
    }
}
