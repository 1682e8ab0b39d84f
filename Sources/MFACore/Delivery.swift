// SPDX-License-Identifier: Apache-2.0
/// Codes delivered by email or SMS (issue 10): which methods exist, what an address may look like,
/// how it is shown masked, and the bookkeeping of live codes. Pure: no I/O, time passed in.

/// A way for a user to get a code at login.
public enum LoginMethod: String, Sendable, CaseIterable, Equatable {
    /// The authenticator app or token (TOTP or HOTP) of the enrollment.
    case totp
    /// A code mailed through `email_command`.
    case email
    /// A code texted through `sms_command`.
    case sms

    /// Email and SMS send a code; TOTP is computed by the user's device.
    public var isDelivered: Bool { self != .totp }
}

/// An address that cannot be used, with one sentence saying what to fix. The address itself is shown
/// only with control characters escaped, so an injection attempt cannot forge log lines either.
public struct AddressError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}

public enum DeliveryAddress {
    public static let maximumEmailLength = 254

    /// Characters RFC 5322 allows in an unquoted (dot-atom) local part.
    static let localPartSymbols = Set("!#$%&'*+/=?^_`{|}~-".utf8)

    /// A plain `local@domain` address, nothing else: no display name, no comment, no quotes, no
    /// angle brackets, no comma, no white space, no CR or LF. The address goes into a `To:` header
    /// that `sendmail -t` reads recipients from, so anything more could add recipients or headers.
    public static func validateEmail(_ text: String) throws(AddressError) -> String {
        let shown = escaped(text)
        if text.utf8.contains(where: { $0 == 10 || $0 == 13 }) {
            throw AddressError("\"\(shown)\" contains a line break; an email address must be one plain address like user@example.org")
        }
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumEmailLength else {
            throw AddressError("\"\(shown)\" is not an email address (1 to \(maximumEmailLength) characters, like user@example.org)")
        }
        let parts = bytes.split(separator: UInt8(ascii: "@"), omittingEmptySubsequences: false)
        guard parts.count == 2, isDotAtom(parts[0], allowed: { isAlnum($0) || localPartSymbols.contains($0) }),
              parts[0].count <= 64, isDomain(parts[1]) else {
            throw AddressError("\"\(shown)\" is not a plain email address like user@example.org (no name, quotes, <>, commas or spaces)")
        }
        return text
    }

    /// E.164: `+`, a country code not starting with 0, 7 to 15 digits in all; spaces, dashes, dots
    /// and parentheses people type are removed first. Returns the number as `+4915112345678`.
    public static func validatePhone(_ text: String) throws(AddressError) -> String {
        let shown = escaped(text)
        let kept = text.unicodeScalars.filter { !" -.()".unicodeScalars.contains($0) }
        let compact = String(String.UnicodeScalarView(kept))
        let digits = compact.utf8.dropFirst()
        guard compact.hasPrefix("+"), (7...15).contains(digits.count),
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              digits.first != UInt8(ascii: "0") else {
            throw AddressError("\"\(shown)\" is not a phone number in international (E.164) form, like +4915112345678")
        }
        return compact
    }

    /// `a***@example.org`: enough for the user to recognise the address, not enough to learn it
    /// from a login prompt.
    public static func maskEmail(_ address: String) -> String {
        guard let at = address.lastIndex(of: "@"), let first = address.first else { return "***" }
        return "\(first)***\(address[at...])"
    }

    /// `+*********5678`: the last four digits only.
    public static func maskPhone(_ number: String) -> String {
        let digits = number.utf8.count - 1
        guard digits > 4 else { return "+***" }
        return "+" + String(repeating: "*", count: digits - 4) + String(number.suffix(4))
    }

    public static func masked(_ address: String, method: LoginMethod) -> String {
        method == .sms ? maskPhone(address) : maskEmail(address)
    }

    /// The address `email_address_pattern` gives a user: every `%u` becomes the user name, `%%` a `%`.
    public static func fromPattern(_ pattern: String, user: String) throws(AddressError) -> String {
        var out = ""
        var iterator = pattern.makeIterator()
        while let c = iterator.next() {
            guard c == "%" else { out.append(c); continue }
            switch iterator.next() {
            case "u": out += user
            case "%": out.append("%")
            default: throw AddressError("`email_address_pattern` may only use %u (the user name) and %%")
            }
        }
        return try validateEmail(out)
    }

    /// For messages and logs: control characters as `\n`, `\r`, `\u{..}`; at most 80 characters.
    public static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(80) {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }

    static func isDotAtom(_ part: ArraySlice<UInt8>, allowed: (UInt8) -> Bool) -> Bool {
        let atoms = part.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return !part.isEmpty && atoms.allSatisfy { !$0.isEmpty && $0.allSatisfy(allowed) }
    }

    /// Host-name labels (letters, digits, inner hyphens), at least two of them: mail to a bare host
    /// name would go wherever the MTA's default domain says.
    static func isDomain(_ part: ArraySlice<UInt8>) -> Bool {
        let labels = part.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2, part.count <= 253 else { return false }
        return labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != UInt8(ascii: "-") && label.last != UInt8(ascii: "-")
                && label.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") }
        }
    }
}

/// A delivery command from the config: an absolute program path and its fixed arguments, split on
/// spaces (no shell, no quoting). The recipient never goes into the arguments.
public enum DeliveryCommand {
    public static func parse(_ key: String, _ value: String) throws(AddressError) -> [String] {
        let words = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let program = words.first, program.hasPrefix("/") else {
            throw AddressError("`\(key)` must start with an absolute program path, e.g. /usr/sbin/sendmail -t -oi (found \"\(DeliveryAddress.escaped(value))\")")
        }
        guard words.allSatisfy({ $0.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F } }) else {
            throw AddressError("`\(key)` contains a control character")
        }
        return words
    }
}

/// The texts sent. Email: a complete RFC 5322 message for `sendmail -t` (the MTA adds Date and
/// Message-ID). SMS: one short line; the gateway command gets the number in its environment.
public enum DeliveryMessage {
    public static func codeEmail(code: String, to address: String, from sender: String?, account: String,
                                 purpose: String, minutes: Int) -> String {
        var headers: [String] = []
        if let sender { headers.append("From: \(sender)") }
        headers += ["To: \(address)", "Subject: Your verification code for \(account)",
                    "Auto-Submitted: auto-generated", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                    "Content-Transfer-Encoding: 8bit"]
        let body = ["Your verification code \(purpose) for \(account) is:", "", "    \(code)", "",
                    "It is valid for \(minutes) minutes and works once.",
                    "If you did not ask for it, someone may know your password: change it, and tell your administrator."]
        return (headers + [""] + body).joined(separator: "\n") + "\n"
    }

    public static func codeSMS(code: String, account: String, purpose: String, minutes: Int) -> String {
        "\(code) is your verification code \(purpose) for \(account). Valid \(minutes) min. Never share it.\n"
    }

    /// A short notice that something changed on the account (never a code or secret).
    public static func noticeEmail(to address: String, from sender: String?, account: String, what: String, when: String) -> String {
        var headers: [String] = []
        if let sender { headers.append("From: \(sender)") }
        headers += ["To: \(address)", "Subject: Security notice for \(account): \(what)",
                    "Auto-Submitted: auto-generated", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                    "Content-Transfer-Encoding: 8bit"]
        let body = ["On \(when), for the login \(account): \(what).", "",
                    "If this was you, there is nothing to do.",
                    "If it was not, someone else may control your account: tell your administrator now."]
        return (headers + [""] + body).joined(separator: "\n") + "\n"
    }
}

/// Live delivered codes and how many were sent, per key (a user, or a user and the method being
/// confirmed). A code is kept only as a salted HMAC; a new code replaces the old one; a code dies
/// when used, when it expires, or after `attempts` wrong answers.
public struct DeliveryBook: Sendable {
    public struct Live: Sendable {
        var salt: [UInt8]
        var hash: [UInt8]
        public var expires: Int64
        public var attemptsLeft: Int
    }

    public enum Check: Equatable, Sendable {
        /// The code was right; it is gone now.
        case matched
        /// A live code exists and this was not it; `attemptsLeft` 0 means it died.
        case wrong(attemptsLeft: Int)
        /// No live code (never sent, expired, used, or killed by wrong answers).
        case noCode
    }

    public static let lifetime: Int64 = 300
    public static let attempts = 3
    /// At most `maximumSends` codes per key within `sendWindow` seconds.
    public static let maximumSends = 3
    public static let sendWindow: Int64 = 600
    /// Keys (users, user and method) remembered at most; past it, expired entries go, then the
    /// oldest (issue 14: every per-name book is bounded).
    public static let maximumKeys = 10_000

    var live: [String: Live] = [:]
    var sends: [String: [Int64]] = [:]

    public init() {}

    /// Sends left now for `key`, and when the next one frees up if none.
    public func sendsLeft(_ key: String, now: Int64) -> (count: Int, nextAt: Int64?) {
        let recent = (sends[key] ?? []).filter { now - $0 < Self.sendWindow }
        let left = max(0, Self.maximumSends - recent.count)
        return (left, left == 0 ? recent.min().map { $0 + Self.sendWindow } : nil)
    }

    /// Records a send of `code` (made by `makeCode`) under `salt`, replacing any live code. The
    /// caller checked `sendsLeft` first.
    public mutating func issue(_ key: String, code: String, salt: [UInt8], now: Int64) {
        live[key] = Live(salt: salt, hash: Self.hash(code, salt: salt), expires: now + Self.lifetime, attemptsLeft: Self.attempts)
        sends[key] = (sends[key] ?? []).filter { now - $0 < Self.sendWindow } + [now]
        if live.count > Self.maximumKeys || sends.count > Self.maximumKeys {
            sweep(now: now)
            BoundedBook.evictOldest(&live, limit: BoundedBook.evictionTarget(Self.maximumKeys)) { $0.expires }
            BoundedBook.evictOldest(&sends, limit: BoundedBook.evictionTarget(Self.maximumKeys)) { $0.max() ?? 0 }
        }
    }

    /// Kills the live code of `key` (its delivery failed, or the login it was for is over).
    public mutating func revoke(_ key: String) { live[key] = nil }

    public func hasLiveCode(_ key: String, now: Int64) -> Bool {
        guard let l = live[key] else { return false }
        return now < l.expires
    }

    /// Checks a typed answer (spaces allowed) in constant time; a wrong answer costs an attempt.
    public mutating func check(_ key: String, typed: String, now: Int64) -> Check {
        guard let l = live[key] else { return .noCode }
        if now >= l.expires {
            live[key] = nil
            return .noCode
        }
        let compact = String(typed.filter { $0 != " " && $0 != "\t" && $0 != "-" })
        if Crypto.constantTimeEqual(Self.hash(compact, salt: l.salt), l.hash) {
            live[key] = nil
            return .matched
        }
        var updated = l
        updated.attemptsLeft -= 1
        live[key] = updated.attemptsLeft > 0 ? updated : nil
        return .wrong(attemptsLeft: updated.attemptsLeft)
    }

    /// Forgets expired codes and old send times, so the maps stay as small as the active users.
    public mutating func sweep(now: Int64) {
        live = live.filter { now < $0.value.expires }
        sends = sends.compactMapValues { times in
            let recent = times.filter { now - $0 < Self.sendWindow }
            return recent.isEmpty ? nil : recent
        }
    }

    static func hash(_ code: String, salt: [UInt8]) -> [UInt8] {
        Crypto.hmac(.sha256, key: salt, message: Array(code.utf8))
    }

    /// Six decimal digits, uniform, from 4 random bytes; nil (ask again with new bytes) for the few
    /// values that would bias the result.
    public static func makeCode(randomBytes: [UInt8]) -> String? {
        guard randomBytes.count >= 4 else { return nil }
        let value = randomBytes.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let limit = UInt32.max - UInt32.max % 1_000_000
        guard value < limit else { return nil }
        let n = value % 1_000_000
        let text = String(n)
        return String(repeating: "0", count: 6 - text.count) + text
    }
}
