// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import MFACore
import MFAStore

/// The user rows of the fleet store, and what a database writer cannot do with them (docs/fleet.md,
/// "What the database can and cannot do to you"):
///
/// - every row's version is inside its seal, and each host refuses a row older than the highest
///   version it has seen of that user (FleetMarks): no rollback;
/// - `disable` and `reset` leave a sealed tombstone row instead of deleting the row, so a row
///   that is missing for a user this host has seen is refused too: no vanishing;
/// - a write sets the version to the larger of the read version + 1 and the current time in
///   milliseconds, so a row written after an attack (an admin's reset, a new enrollment) is newer
///   than anything any host has seen, with no coordination between hosts.
extension PostgresStore {
    static let tombstone = "mfagate tombstone v1\n"

    struct Row {
        var version: Int64
        var sealed: [UInt8]
        var keyID: String
    }

    /// The user's row, and in the same round trip the user's failure record and first sighting,
    /// which the login asks for next (kept for this request: `failuresRead`, `firstSeenRead`).
    func readRow(_ user: String) throws(StoreError) -> Row? {
        let result = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
            try db.run("""
                SELECT u.version, u.sealed, u.key_id, f.version, f.locked_until, f.failures, s.first_seen
                FROM (SELECT $1::text AS name) AS q
                LEFT JOIN mfagate_users u ON u.name = q.name
                LEFT JOIN mfagate_failures f ON f.kind = 'user' AND f.key = q.name
                LEFT JOIN mfagate_first_seen s ON s.name = q.name
                """, [.text(user)], prepared: true)
        }
        if let row = result.rows.first, row.count == 7 {
            firstSeenRead[user] = .some(row[6].flatMap { Int64($0) })
            var failures: FailureRecord? = nil
            if row[3] != nil {
                var record = FailureRecord()
                record.lockedUntil = row[4].flatMap { Int64($0) }
                record.failures = (row[5] ?? "").split(separator: ",").compactMap { Int64($0) }
                failures = record
            }
            failuresRead[LedgerKind.user.rawValue + " " + user] = .some(failures)
        }
        guard let row = result.rows.first, row[0] != nil || row[1] != nil else { return nil }
        // A row that is there but unreadable is damage, never "not enrolled" (which could skip MFA).
        guard let versionText = row[0], let version = Int64(versionText),
              let sealedText = row[1], let sealed = DatabaseConnection.bytea(sealedText) else {
            throw .damagedFile(path: "fleet database row of \(user)", detail: "its version or sealed record is not readable")
        }
        return Row(version: version, sealed: sealed, keyID: row[2] ?? "")
    }

    func loadRow(_ user: UserName) throws(StoreError) -> UserRecord? {
        let name = user.value
        // The row this request read with the user's failure record (failureRecord), else a fresh one.
        let read: Row?
        if let kept = rowsRead.removeValue(forKey: name) { read = kept } else { read = try readRow(name) }
        guard let row = read else {
            if let mark = marks[name] {
                throw refuse(name, "has no row in the fleet database, but this host has seen its row (version \(mark)) and no tombstone of a disable or reset replaced it: the row was deleted by someone with write access to the database")
            }
            versionsRead[name] = 0
            return nil
        }
        guard let (opened, cipher) = keys.open(row.sealed, user: name, version: row.version, keyID: row.keyID) else {
            throw .damagedFile(path: "fleet database row of \(name)",
                               detail: "it does not open with this host's fleet key (another key, or the row was changed or copied from another user)")
        }
        var plain = opened.plain
        defer { mfa_wipe(&plain, plain.count) }
        if let mark = marks[name], opened.versionSealed ? row.version < mark : mark > 0 {
            let what = opened.versionSealed ? "version \(row.version)" : "a row of schema version 1 (no sealed version)"
            throw refuse(name, "is \(what) in the fleet database, older than version \(mark) this host has already seen: a restored backup or an old row put back by someone with write access to the database")
        }
        versionsRead[name] = row.version
        keysRead[name] = cipher.keyID
        noteSeen(name, opened.versionSealed ? row.version : 0, durable: false)
        if plain.starts(with: Array(PostgresStore.tombstone.utf8)) { return nil }
        do {
            return try UserFileFormat.parse(utf8: plain, expectedUser: user)
        } catch {
            throw .damagedFile(path: "fleet database row of \(name)", detail: error.description)
        }
    }

    /// One log line naming the user; the login then gets the UNAVAILABLE verdict, which the PAM
    /// module maps to PAM_AUTHINFO_UNAVAIL whatever its failmode: a row put back or deleted is
    /// tampering, not an outage, so `failmode=safe` must not turn it into "no code" (docs/fleet.md).
    func refuse(_ user: String, _ why: String) -> StoreError {
        let line = "refusing the fleet database row of \(user): \(user) \(why); logins of \(user) are refused until the row is current again or `mfagate reset --user \(user)` writes a new one (docs/fleet.md)"
        logger.error("\(line)", metadata: ["fleet": "refused", "user": "\(user)"])
        return .refusedRow(user: user, detail: line)
    }

    /// Compare-and-swap against the version this request read; when it read nothing, against the
    /// version there now (a replacement by root, or a confirmed self-service enrollment).
    func saveRow(_ record: UserRecord) throws(StoreError) {
        var plain = Array(UserFileFormat.serialize(record).utf8)
        defer { mfa_wipe(&plain, plain.count) }
        try write(plain, user: record.user.value, created: record.created)
    }

    /// `disable` and `reset`: a sealed tombstone replaces the row (hosts that saw the user enrolled
    /// then believe the removal), and is written even where no row is left (after an attack, so
    /// the admin's reset makes every host believe "not enrolled" again).
    func deleteRow(_ user: UserName) throws(StoreError) {
        for attempt in 0..<4 {
            versionsRead[user.value] = nil
            keysRead[user.value] = nil
            do {
                try write(Array(PostgresStore.tombstone.utf8), user: user.value, created: 0)
                return
            } catch .conflict(let name) {
                if attempt == 3 { throw .conflict(user: name) }
            }
        }
    }

    func write(_ plain: [UInt8], user name: String, created: Int64) throws(StoreError) {
        if versionsRead[name] == nil {
            let current = try readRow(name)
            versionsRead[name] = current?.version ?? 0
            if let current, keys.cipher(id: current.keyID) != nil { keysRead[name] = current.keyID }
        }
        let expected = versionsRead[name] ?? 0
        let version = max(expected + 1, PostgresStore.wallMilliseconds(), (marks[name] ?? 0) + 1)
        let keyID: String
        if let read = keysRead[name] { keyID = read } else { keyID = try currentSealingKeyID() }
        guard let cipher = keys.cipher(id: keyID) else { throw .unavailable(detail: "the fleet key \(keyID) is not held by this host") }
        let sealed: [UInt8]
        do {
            sealed = try cipher.seal(plain, user: name, version: version)
        } catch {
            throw .unavailable(detail: "\(error)")
        }
        let host = settings.hostName
        let values: [DatabaseValue] = [.text(name), .text(String(expected)), .text(String(version)), .text(String(created)),
                                       .bytes(sealed), .text(keyID), .text(host)]
        let result = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
            if expected == 0 {
                return try db.run("""
                    INSERT INTO mfagate_users (name, version, created, sealed, key_id, updated_at, updated_by)
                    SELECT $1, $3::bigint, $4::bigint, $5, $6, now(), $7 WHERE $2::bigint = 0
                    ON CONFLICT (name) DO NOTHING RETURNING version
                    """, values, prepared: true)
            }
            return try db.run("""
                UPDATE mfagate_users SET version = $3::bigint, created = $4::bigint, sealed = $5, key_id = $6,
                    updated_at = now(), updated_by = $7
                WHERE name = $1 AND version = $2::bigint RETURNING version
                """, values, prepared: true)
        }
        rowsRead[name] = nil
        guard result.rows.first != nil else {
            versionsRead[name] = nil
            keysRead[name] = nil
            throw .conflict(user: name)
        }
        versionsRead[name] = version
        keysRead[name] = keyID
        noteSeen(name, version)
    }

    /// The key new rows are sealed under: the one the database names (moved by `--rotate-key`),
    /// if this host holds it. Read afresh for each new row (rare: enrollments).
    func currentSealingKeyID() throws(StoreError) -> String {
        let result = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
            try db.run("SELECT value FROM mfagate_meta WHERE key = 'key_id'")
        }
        if let id = result.rows.first?[0] ?? nil, keys.cipher(id: id) != nil { sealingKeyID = id }
        return sealingKeyID
    }

    static func wallMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Enrolled users: rows that are not tombstones (a row that does not open is listed: its
    /// damage shows when it is read).
    public func listUsers() throws(StoreError) -> [UserName] {
        let result = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
            try db.run("SELECT name, version, sealed, key_id FROM mfagate_users ORDER BY name")
        }
        return result.rows.compactMap { row -> UserName? in
            guard let name = row[0], let user = try? UserName(validating: name) else { return nil }
            if let version = row[1].flatMap({ Int64($0) }), let sealed = row[2].flatMap({ DatabaseConnection.bytea($0) }),
               let (opened, _) = keys.open(sealed, user: name, version: version, keyID: row[3] ?? "") {
                var plain = opened.plain
                defer { mfa_wipe(&plain, plain.count) }
                if plain.starts(with: Array(PostgresStore.tombstone.utf8)) { return nil }
            }
            return user
        }
    }

    // MARK: high-water marks

    public func attachMarks(_ file: FleetMarksFile) {
        marksFile = file
        let (loaded, problem) = file.load()
        marks = loaded
        if let problem {
            logger.error("\(problem); starting without high-water marks: until each user's row has been read again, this host cannot tell a rolled-back or deleted row (the file is rewritten now)",
                         metadata: ["fleet": "marks"])
        }
        // Compact at start: the appended lines of the last run become one line per user.
        do { try file.save(marks) } catch { logger.error("\(error); the rollback protection of this host holds only until it restarts", metadata: ["fleet": "marks"]) }
    }

    /// Raises the user's mark and writes it to the file before the caller acts on the row (in the
    /// page cache: a crash of the daemon loses nothing). For a row this host wrote, the flush
    /// thread flushes it at once, without the login waiting for it; a row only read is flushed
    /// with the next (docs/fleet.md, "High-water marks and power cuts").
    func noteSeen(_ user: String, _ version: Int64, durable: Bool = true) {
        guard let changed = marks.raise(user, to: version) else {
            if !marksFull {
                marksFull = true
                logger.error("\(marksFile?.path ?? "fleet-marks") holds \(FleetMarks.maximumUsers) users; new users get no rollback protection on this host")
            }
            return
        }
        guard changed, let marksFile else { return }
        do {
            try marksFile.record(user, version, in: marks, durable: durable)
        } catch {
            logger.error("\(error); the rollback protection of this host holds only until it restarts", metadata: ["fleet": "marks"])
        }
    }
}
