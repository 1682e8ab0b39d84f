// SPDX-License-Identifier: Apache-2.0

/// The value forms of mfagate.conf (names, numbers, durations, paths), each refused with one
/// sentence naming the key and the value found.
extension ConfigParser {
    /// True for `password=...` in a connection string or `user:secret@` in a URI: the main config is
    /// world-readable, so the password belongs in `database_password_file`.
    static func containsPassword(_ value: String) -> Bool {
        if value.contains("password=") { return true }
        for scheme in ["postgresql://", "postgres://"] where value.hasPrefix(scheme) {
            let rest = value.dropFirst(scheme.count)
            let authority = rest.prefix { $0 != "/" && $0 != "?" }
            if let at = authority.lastIndex(of: "@"), authority[..<at].contains(":") { return true }
        }
        return false
    }

    static func words(_ value: String) -> [String] {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init)
    }

    static func names(_ key: String, _ value: String) throws(ValueError) -> [String] {
        let list = words(value)
        for name in list {
            do { _ = try UserName(validating: name) } catch {
                throw ValueError(message: "`\(key)`: \"\(name)\" is not a valid name (\(error))")
            }
        }
        return list
    }

    static func number(_ key: String, _ value: String, in range: ClosedRange<Int>, what: String) throws(ValueError) -> Int {
        guard let n = Int(value), range.contains(n) else {
            throw ValueError(message: "`\(key)` must be \(what) from \(range.lowerBound) to \(range.upperBound) (found \"\(value)\")")
        }
        return n
    }

    /// `30s`, `15m`, `12h`, `7d`, `2w`, or `0`.
    static func duration(_ key: String, _ value: String, allowZero: Bool = true) throws(ValueError) -> Int64 {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604_800]
        let bad = ValueError(message: "`\(key)` must be a duration like 30s, 15m, 12h, 7d or 2w\(allowZero ? " (or 0)" : "") (found \"\(value)\")")
        if value == "0" {
            if allowZero { return 0 }
            throw bad
        }
        guard let unit = value.last, let factor = units[unit], let n = Int64(value.dropLast()), n > 0, n <= 3650 * 86400 / factor else {
            throw bad
        }
        return n * factor
    }

    static func absolutePath(_ key: String, _ value: String) throws(ValueError) -> String {
        guard value.hasPrefix("/") else {
            throw ValueError(message: "`\(key)` must be an absolute path (found \"\(value)\")")
        }
        return value
    }

    static func trim(_ s: Substring) -> String {
        var view = s[...]
        while let f = view.first, f == " " || f == "\t" || f == "\r" { view = view.dropFirst() }
        while let l = view.last, l == " " || l == "\t" || l == "\r" { view = view.dropLast() }
        return String(view)
    }
}
