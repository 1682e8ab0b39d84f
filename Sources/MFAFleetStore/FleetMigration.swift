// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAStore

/// `mfagate migrate-store --to postgresql`: copies a host's enrollments (with their replay state and
/// unused recovery codes) and first sightings from its state directory into the fleet database.
/// Idempotent: a user already there with the same enrollment is merged, never duplicated (the
/// newer used time step and HOTP counter win, a recovery code used on either side stays used); a
/// user with a *different* enrollment in the database is left alone and reported.
extension PostgresStore {
    public enum MigrationOutcome: Equatable, Sendable {
        case copied, unchanged, merged, mergedSeparateEnrollment, conflicting(String), failed(String)

        public var isFailure: Bool {
            switch self {
            case .failed, .conflicting: return true
            default: return false
            }
        }

        public var text: String {
            switch self {
            case .copied: return "copied into the fleet database"
            case .unchanged: return "already in the fleet database"
            case .merged: return "already in the fleet database; replay state merged"
            case .mergedSeparateEnrollment:
                return "already in the fleet database with the same secret, enrolled separately here: used time step and counter merged; this host's recovery codes are not (the database keeps its own)"
            case .conflicting(let why): return "left alone: \(why)"
            case .failed(let why): return "failed: \(why)"
            }
        }
    }

    public func migrate(user: UserName, from files: FileStore) -> MigrationOutcome {
        forgetLastCheck()
        let local: UserRecord
        do {
            guard let record = try files.load(user) else { return .failed("no user file") }
            local = record
        } catch {
            return .failed("\(error)")
        }
        do {
            guard let remote = try load(user) else {
                try save(local)
                return .copied
            }
            guard remote.method == local.method, remote.parameters == local.parameters,
                  Crypto.constantTimeEqual(remote.secret, local.secret) else {
                return .conflicting("a different enrollment of this user is in the fleet database (reset it there first to use this host's)")
            }
            // The same record (copied files, or a second run): recovery-code hashes share their salts
            // and can be intersected. The same secret enrolled separately (the same
            // google-authenticator file imported on each host): only the replay state can be merged.
            let sameRecord = PostgresStore.sameRecord(remote, local)
            let merged = sameRecord ? PostgresStore.merged(remote, local) : PostgresStore.mergedReplayState(remote, local)
            if merged == remote { return .unchanged }
            try save(merged)
            return sameRecord ? .merged : .mergedSeparateEnrollment
        } catch {
            return .failed("\(error)")
        }
    }

    /// The same enrollment as seen by the database and by a host: whatever was used on either side
    /// stays used.
    static func merged(_ remote: UserRecord, _ local: UserRecord) -> UserRecord {
        var out = remote
        if let s = local.lastUsedStep { out.lastUsedStep = max(remote.lastUsedStep ?? s, s) }
        if let t = local.lastSuccess { out.lastSuccess = max(remote.lastSuccess ?? t, t) }
        out.counter = max(remote.counter, local.counter)
        out.recoveryCodes = remote.recoveryCodes.filter { code in local.recoveryCodes.contains(code) }
        return out
    }

    /// Whether two records of one secret are copies of one enrollment: the same enrollment time and
    /// recovery codes from one set (random 16-byte salts: separate enrollments never share one).
    static func sameRecord(_ remote: UserRecord, _ local: UserRecord) -> Bool {
        guard remote.created == local.created else { return false }
        if remote.recoveryCodes.isEmpty || local.recoveryCodes.isEmpty { return true }
        return local.recoveryCodes.contains { code in remote.recoveryCodes.contains { $0.salt == code.salt } }
    }

    /// A separately enrolled copy of the same secret: the later used step and counter win.
    static func mergedReplayState(_ remote: UserRecord, _ local: UserRecord) -> UserRecord {
        var out = remote
        if let s = local.lastUsedStep { out.lastUsedStep = max(remote.lastUsedStep ?? s, s) }
        if let t = local.lastSuccess { out.lastSuccess = max(remote.lastSuccess ?? t, t) }
        out.counter = max(remote.counter, local.counter)
        return out
    }

    /// First sightings (grace periods) the database does not know yet.
    public func migrateFirstSeen(_ book: FirstSeenBook) throws(StoreError) {
        for (user, time) in book.users.sorted(by: { $0.key < $1.key }) {
            forgetLastCheck()  // a fresh database time budget for each
            _ = try noteFirstSeen(user, at: time)
        }
    }
}
