// SPDX-License-Identifier: Apache-2.0
import MFACore

/// Wrong-code counts and lockouts per user and per remote address, kept in memory and logged to
/// `STATE/lockout` (BookFiles.swift) on every change so they survive a restart (or a crash).
public struct LockoutBook: Sendable, Equatable {
    public var users: [String: FailureRecord] = [:]
    public var rhosts: [String: FailureRecord] = [:]
    /// Caps on entries, so a flood of distinct names or addresses cannot grow memory or the file
    /// without end: past one, records that count nothing go first, then the least recently
    /// active ones (locked ones last).
    public static let maximumUsers = 50_000
    public static let maximumAddresses = 50_000
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

    /// Holds each kind to its cap; returns how many entries went.
    @discardableResult
    public mutating func enforceCaps(now: Int64, window: Int64) -> Int {
        guard users.count > Self.maximumUsers || rhosts.count > Self.maximumAddresses else { return 0 }
        let before = users.count + rhosts.count
        prune(now: now, window: window)
        // Locked records sort after every unlocked one: a flood evicts counts before lockouts.
        func age(_ r: FailureRecord) -> Int64 {
            max(r.failures.max() ?? 0, r.lockedUntil ?? 0) + (r.isLocked(at: now) ? 1 << 40 : 0)
        }
        if users.count > Self.maximumUsers {
            BoundedBook.evictOldest(&users, limit: BoundedBook.evictionTarget(Self.maximumUsers), age: age)
        }
        if rhosts.count > Self.maximumAddresses {
            BoundedBook.evictOldest(&rhosts, limit: BoundedBook.evictionTarget(Self.maximumAddresses), age: age)
        }
        return before - users.count - rhosts.count
    }

    public static let header = "# mfagate lockout state: written by mfagated; clear with `mfagate unlock`"

    /// One line of the file: the record of a key as it is now (`- -`: nothing, the key is gone).
    public static func line(_ kind: String, _ key: String, _ r: FailureRecord?) -> String {
        let until = r?.lockedUntil.map(String.init) ?? "-"
        let times = (r?.failures ?? []).map(String.init).joined(separator: ",")
        return "\(kind) \(key) \(until) \(times.isEmpty ? "-" : times)"
    }

    public var entryLines: [String] {
        users.sorted { $0.key < $1.key }.map { Self.line("user", $0.key, $0.value) }
            + rhosts.sorted { $0.key < $1.key }.map { Self.line("rhost", $0.key, $0.value) }
    }

    public func serialize() -> String {
        ([Self.header, "version 1"] + entryLines).joined(separator: "\n") + "\n"
    }

    /// Strict: the first bad line throws. The later of two lines about one key wins (the file is a
    /// log, BookFiles.swift); a line with neither lock nor failures removes the key.
    public static func parse(_ text: String) throws(UserFileFormatError) -> LockoutBook {
        var book = LockoutBook()
        try forEachVersionedLine(text, omittingEmptyFields: false) { (lineNumber, fields) throws(UserFileFormatError) in
            try book.apply(lineNumber, fields)
        }
        return book
    }

    /// For the daemon's start: every readable line counts, the others are dropped (and counted).
    public static func read(_ text: String) -> (book: LockoutBook, lines: Int, dropped: Int) {
        var book = LockoutBook()
        let (lines, dropped) = readVersionedLines(text, omittingEmptyFields: false) { (lineNumber, fields) throws(UserFileFormatError) in
            try book.apply(lineNumber, fields)
        }
        return (book, lines, dropped)
    }

    mutating func apply(_ lineNumber: Int, _ fields: [Substring]) throws(UserFileFormatError) {
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
        let kept: FailureRecord? = record.lockedUntil == nil && record.failures.isEmpty ? nil : record
        if fields[0] == "user" {
            guard (try? UserName(validating: key)) != nil else { throw UserFileFormatError(line: lineNumber, message: "bad user name") }
            users[key] = kept
        } else {
            guard LockoutBook.rhostKey(key) == key else { throw UserFileFormatError(line: lineNumber, message: "bad address") }
            rhosts[key] = kept
        }
    }
}

/// When the daemon first saw each user who had no enrollment: the start of their grace period
/// (0: the grace period is used up).
public struct FirstSeenBook: Sendable, Equatable {
    public var users: [String: Int64] = [:]
    /// Past this many users the oldest sightings go (1 % at a time; used-up grace periods last):
    /// such a user, if seen again unenrolled, starts a new grace period. Only a directory with more unenrolled users than
    /// this who need MFA gets there.
    public static let maximumEntries = 100_000
    public init() {}

    /// Records a sighting; returns the users evicted to stay within the cap.
    public mutating func note(_ user: String, at time: Int64) -> [String] {
        users[user] = time
        guard users.count > Self.maximumEntries else { return [] }
        return enforceCap()
    }

    @discardableResult
    public mutating func enforceCap() -> [String] {
        guard users.count > Self.maximumEntries else { return [] }
        // A used-up grace period (0) goes last: forgetting it would give that user a new one.
        return BoundedBook.evictOldest(&users, limit: BoundedBook.evictionTarget(Self.maximumEntries)) { $0 == 0 ? .max : $0 }
    }

    public static let header = "# mfagate: when each unenrolled user was first seen (grace periods); written by mfagated"

    public static func line(_ user: String, _ time: Int64) -> String { "\(user) \(time)" }

    public var entryLines: [String] { users.sorted { $0.key < $1.key }.map { Self.line($0.key, $0.value) } }

    public func serialize() -> String {
        ([Self.header, "version 1"] + entryLines).joined(separator: "\n") + "\n"
    }

    /// Strict: the first bad line throws; the later of two lines about one user wins.
    public static func parse(_ text: String) throws(UserFileFormatError) -> FirstSeenBook {
        var book = FirstSeenBook()
        try forEachVersionedLine(text, omittingEmptyFields: true) { (lineNumber, fields) throws(UserFileFormatError) in
            try book.apply(lineNumber, fields)
        }
        book.enforceCap()
        return book
    }

    /// For the daemon's start: every readable line counts, the others are dropped (and counted).
    public static func read(_ text: String) -> (book: FirstSeenBook, lines: Int, dropped: Int) {
        var book = FirstSeenBook()
        let (lines, dropped) = readVersionedLines(text, omittingEmptyFields: true) { (lineNumber, fields) throws(UserFileFormatError) in
            try book.apply(lineNumber, fields)
        }
        book.enforceCap()
        return (book, lines, dropped)
    }

    mutating func apply(_ lineNumber: Int, _ fields: [Substring]) throws(UserFileFormatError) {
        guard fields.count == 2, let t = Int64(fields[1]), (try? UserName(validating: String(fields[0]))) != nil else {
            throw UserFileFormatError(line: lineNumber, message: "expected `USER TIME`")
        }
        users[String(fields[0])] = t
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

/// The same walk, keeping going past bad lines (a line torn by a crash in the middle of an
/// append, a damaged disk block): returns how many entry lines there were, and how many of them
/// were dropped. Lines before the `version 1` line cannot be trusted and count as dropped.
func readVersionedLines(_ text: String, omittingEmptyFields: Bool,
                        _ body: (_ line: Int, _ fields: [Substring]) throws(UserFileFormatError) -> Void) -> (lines: Int, dropped: Int) {
    var lines = 0
    var sawVersion = false
    var dropped = 0
    var lineNumber = 0
    for rawBytes in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        let raw = Substring(rawBytes)
        lineNumber += 1
        if raw.isEmpty || raw.hasPrefix("#") { continue }
        let fields = raw.split(separator: " ", omittingEmptySubsequences: omittingEmptyFields)
        lines += 1
        if !sawVersion {
            if fields.count == 2, fields[0] == "version", fields[1] == "1" { sawVersion = true; lines -= 1 } else { dropped += 1 }
            continue
        }
        do { try body(lineNumber, fields) } catch { dropped += 1 }
    }
    return (lines, dropped)
}
