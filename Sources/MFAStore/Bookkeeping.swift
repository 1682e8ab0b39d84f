import MFACore

/// Wrong-code counts and lockouts per user and per remote address, kept in memory and written to
/// `STATE/lockout` on every change so they survive a restart (or a crash) of the daemon.
public struct LockoutBook: Sendable, Equatable {
    public var users: [String: FailureRecord] = [:]
    public var rhosts: [String: FailureRecord] = [:]
    /// Bound on entries, so a flood of distinct names or addresses cannot grow the file without end.
    public static let maximumEntries = 100_000
    public init() {}

    /// The form an address takes as a key: literal IPs and plain host names only (sshd gives the
    /// address unless UseDNS is on); anything else is not rate-limited per address.
    public static func rhostKey(_ rhost: String) -> String? {
        guard !rhost.isEmpty, rhost.utf8.count <= 255 else { return nil }
        let ok = rhost.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: ".") || b == UInt8(ascii: ":") || b == UInt8(ascii: "-") || b == UInt8(ascii: "%")
        }
        return ok ? rhost : nil
    }

    /// Drops entries that no longer lock or count anything.
    public mutating func prune(now: Int64, window: Int64) {
        users = users.filter { !$0.value.isStale(at: now, window: window) }
        rhosts = rhosts.filter { !$0.value.isStale(at: now, window: window) }
    }

    public func serialize() -> String {
        var lines = ["# mfagate lockout state: written by mfagated; clear with `mfagate unlock`", "version 1"]
        func line(_ kind: String, _ key: String, _ r: FailureRecord) -> String {
            let until = r.lockedUntil.map(String.init) ?? "-"
            let times = r.failures.isEmpty ? "-" : r.failures.map(String.init).joined(separator: ",")
            return "\(kind) \(key) \(until) \(times)"
        }
        for key in users.keys.sorted() { lines.append(line("user", key, users[key]!)) }
        for key in rhosts.keys.sorted() { lines.append(line("rhost", key, rhosts[key]!)) }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func parse(_ text: String) throws(UserFileFormatError) -> LockoutBook {
        var book = LockoutBook()
        try forEachVersionedLine(text, omittingEmptyFields: false) { (lineNumber, fields) throws(UserFileFormatError) in
            guard fields.count == 4, fields[0] == "user" || fields[0] == "rhost" else {
                throw UserFileFormatError(line: lineNumber, message: "expected `user|rhost KEY UNTIL TIMES`")
            }
            var record = FailureRecord()
            if fields[2] != "-" {
                guard let until = Int64(fields[2]) else { throw UserFileFormatError(line: lineNumber, message: "bad lock time") }
                record.lockedUntil = until
            }
            if fields[3] != "-" {
                for t in fields[3].split(separator: ",") {
                    guard let v = Int64(t) else { throw UserFileFormatError(line: lineNumber, message: "bad failure time") }
                    record.failures.append(v)
                }
            }
            let key = String(fields[1])
            if fields[0] == "user" {
                guard (try? UserName(validating: key)) != nil else { throw UserFileFormatError(line: lineNumber, message: "bad user name") }
                book.users[key] = record
            } else {
                guard rhostKey(key) == key else { throw UserFileFormatError(line: lineNumber, message: "bad address") }
                book.rhosts[key] = record
            }
            if book.users.count + book.rhosts.count > maximumEntries {
                throw UserFileFormatError(line: lineNumber, message: "more than \(maximumEntries) entries")
            }
        }
        return book
    }
}

/// When the daemon first saw each user who had no enrollment: the start of their grace period.
public struct FirstSeenBook: Sendable, Equatable {
    public var users: [String: Int64] = [:]
    public init() {}

    public func serialize() -> String {
        (["# mfagate: when each unenrolled user was first seen (grace periods); written by mfagated", "version 1"]
            + users.keys.sorted().map { "\($0) \(users[$0]!)" }).joined(separator: "\n") + "\n"
    }

    public static func parse(_ text: String) throws(UserFileFormatError) -> FirstSeenBook {
        var book = FirstSeenBook()
        try forEachVersionedLine(text, omittingEmptyFields: true) { (lineNumber, fields) throws(UserFileFormatError) in
            guard fields.count == 2, let t = Int64(fields[1]), (try? UserName(validating: String(fields[0]))) != nil else {
                throw UserFileFormatError(line: lineNumber, message: "expected `USER TIME`")
            }
            book.users[String(fields[0])] = t
            if book.users.count > LockoutBook.maximumEntries {
                throw UserFileFormatError(line: lineNumber, message: "more than \(LockoutBook.maximumEntries) entries")
            }
        }
        return book
    }
}

/// Walks a bookkeeping file: comment and blank lines skipped, the first line must be `version 1`,
/// every other line handed over split at spaces, with its number (lines end at the `\n` byte).
func forEachVersionedLine(_ text: String, omittingEmptyFields: Bool,
                          _ body: (_ line: Int, _ fields: [Substring]) throws(UserFileFormatError) -> Void) throws(UserFileFormatError) {
    var lineNumber = 0
    var sawVersion = false
    for rawBytes in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        let raw = Substring(rawBytes)
        lineNumber += 1
        if raw.isEmpty || raw.hasPrefix("#") { continue }
        let fields = raw.split(separator: " ", omittingEmptySubsequences: omittingEmptyFields)
        if !sawVersion {
            guard fields.count == 2, fields[0] == "version", fields[1] == "1" else {
                throw UserFileFormatError(line: lineNumber, message: "expected `version 1`")
            }
            sawVersion = true
            continue
        }
        try body(lineNumber, fields)
    }
    if !sawVersion && !text.isEmpty { throw UserFileFormatError(line: 0, message: "no `version` line") }
}
