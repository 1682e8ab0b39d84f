// SPDX-License-Identifier: Apache-2.0
/// Single-use recovery codes: shown to the user once, stored only as salted hashes.
public enum RecoveryCodes {
    /// Lower-case letters and digits without look-alikes (0/o, 1/l/i), so codes survive being read aloud.
    static let alphabet = Array("23456789abcdefghjkmnpqrstuvwxyz".utf8)
    public static let count = 10
    /// 12 symbols of a 31-symbol alphabet: about 59 bits each.
    public static let length = 12

    /// One stored code: a random salt and HMAC-SHA256(salt, normalized code).
    public struct Hashed: Sendable, Equatable {
        public var salt: [UInt8]
        public var hash: [UInt8]
        public init(salt: [UInt8], hash: [UInt8]) {
            self.salt = salt
            self.hash = hash
        }
    }

    /// Makes a code from random bytes (passed in, so this stays pure). Rejection sampling avoids
    /// modulo bias; returns nil if the bytes ran out (the caller passes plenty).
    public static func makeCode(randomBytes: [UInt8]) -> String? {
        randomSymbols(randomBytes, count: length).map(format)
    }

    /// `count` symbols of the alphabet drawn from random bytes without modulo bias (rejection
    /// sampling); nil if the bytes ran out. Invite codes are drawn the same way (InviteCodes).
    public static func randomSymbols(_ randomBytes: [UInt8], count: Int) -> String? {
        var symbols: [UInt8] = []
        let limit = UInt8(256 - 256 % alphabet.count)
        for byte in randomBytes where byte < limit {
            symbols.append(alphabet[Int(byte) % alphabet.count])
            if symbols.count == count { break }
        }
        guard symbols.count == count else { return nil }
        return String(decoding: symbols, as: UTF8.self)
    }

    /// `abcd-efgh-jkmn`: groups of four, as shown to the user.
    public static func format(_ normalized: String) -> String {
        var out = ""
        for (i, ch) in normalized.enumerated() {
            if i > 0 && i % 4 == 0 { out.append("-") }
            out.append(ch)
        }
        return out
    }

    /// Length of a google-authenticator scratch code (8 decimal digits), kept as a recovery code on import.
    public static let importedScratchLength = 8

    /// What the user typed, without dashes and spaces, in lower case; nil if it cannot be a code.
    /// Eight decimal digits are an imported google-authenticator scratch code (our own codes are 12
    /// symbols long, so the two forms never collide).
    public static func normalize(_ typed: String) -> String? {
        let compact = typed.utf8.filter { $0 != UInt8(ascii: "-") && $0 != UInt8(ascii: " ") }
        if compact.count == importedScratchLength && compact.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            return String(decoding: compact, as: UTF8.self)
        }
        var out: [UInt8] = []
        for ch in typed.utf8 {
            if ch == UInt8(ascii: "-") || ch == UInt8(ascii: " ") { continue }
            let lower = (ch >= UInt8(ascii: "A") && ch <= UInt8(ascii: "Z")) ? ch + 32 : ch
            guard alphabet.contains(lower) else { return nil }
            out.append(lower)
        }
        guard out.count == length else { return nil }
        return String(decoding: out, as: UTF8.self)
    }

    public static func hash(normalizedCode: String, salt: [UInt8]) -> Hashed {
        Hashed(salt: salt, hash: Crypto.hmac(.sha256, key: salt, message: Array(normalizedCode.utf8)))
    }

    /// Index of the stored code the typed one matches, or nil. Every stored code is checked, each in
    /// constant time, so the time taken does not tell which one (or whether one) matched.
    public static func match(typed: String, stored: [Hashed]) -> Int? {
        guard let normalized = normalize(typed) else { return nil }
        var found: Int? = nil
        for (index, entry) in stored.enumerated() {
            let candidate = Crypto.hmac(.sha256, key: entry.salt, message: Array(normalized.utf8))
            if Crypto.constantTimeEqual(candidate, entry.hash) && found == nil { found = index }
        }
        return found
    }
}
