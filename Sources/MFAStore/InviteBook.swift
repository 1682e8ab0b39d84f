// SPDX-License-Identifier: Apache-2.0
import MFACore

/// One-time invites for `enroll_at_login = invite` (`STATE/invites`): per user the SHA-256 of the
/// latest invite code (InviteCodes), when it was made and until when it holds. Never the code itself.
///
/// A new invite for a user replaces the old one; redeeming it removes it; expired entries are
/// dropped at every load and save; at most `maximumEntries` are kept (the oldest go first). The
/// daemon writes this file itself, so a damaged line is skipped (and counted), never a reason to
/// refuse to start: the worst a lost invite costs is making a new one.
public struct InviteBook: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var digest: [UInt8]
        public var created: Int64
        public var expires: Int64
        public init(digest: [UInt8], created: Int64, expires: Int64) {
            self.digest = digest
            self.created = created
            self.expires = expires
        }
    }

    public private(set) var entries: [String: Entry] = [:]
    public static let maximumEntries = 10_000
    public init() {}

    /// Whether `user` holds an invite that has not expired.
    public func hasInvite(_ user: String, now: Int64) -> Bool {
        guard let entry = entries[user] else { return false }
        return entry.expires > now
    }

    /// Records a new invite for `user` (replacing any older one), then drops expired entries and,
    /// over the cap, the oldest.
    public mutating func add(_ user: String, _ entry: Entry, now: Int64) {
        entries[user] = entry
        prune(now: now)
    }

    /// Whether `typed` is the user's unexpired invite; if so the entry is removed (single use).
    /// The digest is compared in constant time.
    public mutating func redeem(_ user: String, typed: String, now: Int64) -> Bool {
        guard let entry = entries[user], entry.expires > now, let normalized = InviteCodes.normalize(typed) else { return false }
        guard Crypto.constantTimeEqual(InviteCodes.digest(normalizedCode: normalized), entry.digest) else { return false }
        entries.removeValue(forKey: user)
        return true
    }

    public mutating func remove(_ user: String) { entries.removeValue(forKey: user) }

    public mutating func prune(now: Int64) {
        entries = entries.filter { $0.value.expires > now }
        if entries.count > Self.maximumEntries {
            let oldest = entries.sorted { ($0.value.created, $0.key) < ($1.value.created, $1.key) }
            for (user, _) in oldest.prefix(entries.count - Self.maximumEntries) { entries.removeValue(forKey: user) }
        }
    }

    public func serialize() -> String {
        var lines = ["# mfagate invites: SHA-256 of each one-time invite code; written by mfagated (mfagate invite)", "version 1"]
        for user in entries.keys.sorted() {
            let e = entries[user]!
            lines.append("invite \(user) \(e.created) \(e.expires) \(UserFileFormat.hex(e.digest))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The book and the number of lines that were skipped as unreadable. A file without a
    /// `version 1` line yields an empty book (every line counted as skipped).
    public static func parse(_ text: String, now: Int64) -> (book: InviteBook, skipped: Int) {
        var book = InviteBook()
        var skipped = 0
        var sawVersion = false
        for rawBytes in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            let raw = Substring(rawBytes)
            if raw.hasPrefix("#") { continue }
            let fields = raw.split(separator: " ", omittingEmptySubsequences: true)
            if !sawVersion {
                if fields.count == 2 && fields[0] == "version" && fields[1] == "1" { sawVersion = true } else { skipped += 1 }
                continue
            }
            guard fields.count == 5, fields[0] == "invite", (try? UserName(validating: String(fields[1]))) != nil,
                  let created = Int64(fields[2]), let expires = Int64(fields[3]),
                  let digest = UserFileFormat.unhex(ArraySlice(fields[4].utf8)), digest.count == 32 else {
                skipped += 1
                continue
            }
            book.entries[String(fields[1])] = Entry(digest: digest, created: created, expires: expires)
        }
        book.prune(now: now)
        return (book, skipped)
    }
}
