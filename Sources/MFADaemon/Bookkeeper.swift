// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAStore

/// The daemon's memory of wrong codes, lockouts and first sightings, loaded at start and written
/// through to the state directory on every change (so it survives a restart or a crash). In fleet
/// mode (`store = postgresql`) every question and change goes to the shared ledger instead
/// (Bookkeeper+Fleet.swift), so a lockout made on one host holds on all.
final class Bookkeeper {
    let shared: (any SharedLedger)?
    let logger: Logger
    /// Nil in fleet mode (the shared ledger keeps these books).
    let lockoutLedger: LockoutLedger?
    let firstSeenLedger: FirstSeenLedger?
    /// The file mode's lockout book, changed in place (a copy per change would cost O(entries)).
    var lockouts: LockoutBook {
        get { lockoutLedger?.book ?? LockoutBook() }
        _modify {
            if let ledger = lockoutLedger {
                yield &ledger.book
            } else {
                var none = LockoutBook()
                yield &none
            }
        }
    }
    /// Fleet mode: when stale failure records were last removed from the shared ledger.
    var lastFleetPrune: Int64 = 0
    /// Storage errors of the books, logged at most a few times a minute (RefusalLog.swift).
    var onStorageError: ((StoreError) -> Void)?

    /// A book the daemon wrote itself never stops it from starting (issue 14, finding 6): bad
    /// lines are dropped, an unreadable file is moved aside, each logged once here.
    init(store factorStore: any FactorStore, logger: Logger, now: Int64, failureWindow: Int64) throws(StoreError) {
        self.logger = logger
        shared = factorStore.sharedLedger
        guard shared == nil, let store = factorStore as? FileStore else {
            lockoutLedger = nil
            firstSeenLedger = nil
            return
        }
        lockoutLedger = try LockoutLedger(store: store, now: now, window: failureWindow) { logger.error("\($0)") }
        firstSeenLedger = try FirstSeenLedger(store: store) { logger.error("\($0)") }
    }

    /// When the user's grace period started (0: used up), nil: never seen unenrolled.
    func firstSeenTime(_ user: String) -> Int64? {
        if let shared { return fleetFirstSeen(shared, user) }
        return firstSeenLedger?.time(user)
    }

    func userLockedUntil(_ user: String, now: Int64) -> Int64? {
        if let shared { return fleetLockedUntil(shared, .user, user, now: now) }
        return lockouts.users[user].flatMap { $0.isLocked(at: now) ? $0.lockedUntil : nil }
    }

    func rhostBlockedUntil(_ rhost: String, now: Int64) -> Int64? {
        guard let key = LockoutBook.rhostKey(rhost) else { return nil }
        if let shared { return fleetLockedUntil(shared, .rhost, key, now: now) }
        return lockouts.rhosts[key].flatMap { $0.isLocked(at: now) ? $0.lockedUntil : nil }
    }

    /// Counts a wrong code against the user and the address; logs a lockout when one starts.
    func recordFailure(user: String, rhost: String, config: DaemonConfig, now: Int64) {
        if let shared { return fleetRecordFailure(shared, user: user, rhost: rhost, config: config, now: now) }
        var userRecord = lockouts.users[user] ?? FailureRecord()
        if userRecord.recordFailure(at: now, limit: config.maxFailures, window: config.failureWindow, lockout: config.lockout) {
            logger.warning("user locked out", metadata: ["user": "\(user)", "rhost": "\(loggable(rhost))",
                                                          "until": "\(UTCTime.format(userRecord.lockedUntil ?? now))"])
        }
        lockouts.users[user] = userRecord
        var rhosts: [String] = []
        if let key = LockoutBook.rhostKey(rhost) {
            rhosts = [key]
            var rhostRecord = lockouts.rhosts[key] ?? FailureRecord()
            if rhostRecord.recordFailure(at: now, limit: config.maxFailuresPerRhost, window: config.failureWindow, lockout: config.lockout) {
                logger.warning("address blocked", metadata: ["rhost": "\(key)", "user": "\(user)",
                                                             "until": "\(UTCTime.format(rhostRecord.lockedUntil ?? now))"])
            }
            lockouts.rhosts[key] = rhostRecord
        }
        saveLockouts(users: [user], rhosts: rhosts, config: config, now: now)
    }

    /// A right code clears the user's count of wrong ones (as pam_faillock does).
    func recordSuccess(user: String, config: DaemonConfig, now: Int64) {
        if let shared { return fleetRecordSuccess(shared, user: user) }
        guard let record = lockouts.users[user], !record.failures.isEmpty else { return }
        lockouts.users[user]?.failures = []
        saveLockouts(users: [user], rhosts: [], config: config, now: now)
    }

    /// Clears a user's and/or an address's lockout; returns what was cleared.
    func unlock(user: String?, rhost: String?, config: DaemonConfig, now: Int64) -> [String] {
        if let shared { return fleetUnlock(shared, user: user, rhost: rhost) }
        var cleared: [String] = []
        var users: [String] = [], rhosts: [String] = []
        if let user, lockouts.users.removeValue(forKey: user) != nil {
            cleared.append("user \(user)")
            users.append(user)
        }
        if let rhost, let key = LockoutBook.rhostKey(rhost), lockouts.rhosts.removeValue(forKey: key) != nil {
            cleared.append("address \(key)")
            rhosts.append(key)
        }
        if !cleared.isEmpty { saveLockouts(users: users, rhosts: rhosts, config: config, now: now) }
        return cleared
    }

    /// Remembers when an unenrolled user was first seen (the start of their grace period): one
    /// line appended to STATE/seen, whatever the size of the book.
    func noteFirstSeen(_ user: String, now: Int64) -> Int64 {
        if let shared { return fleetNoteFirstSeen(shared, user, now: now) }
        guard let ledger = firstSeenLedger else { return now }
        if let t = ledger.time(user) { return t }
        do {
            let evicted = try ledger.note(user, at: now)
            if !evicted.isEmpty {
                logger.warning("first-sighting book full: forgot the \(evicted.count) oldest sightings (those users start a new grace period if seen again unenrolled)",
                               metadata: ["entries": "\(FirstSeenBook.maximumEntries)"])
            }
        } catch {
            storageError(error)
        }
        return now
    }

    /// Marks the user's grace period as used up (first seen at time 0): written durably, since
    /// losing it would give the user a grace period again.
    func forgetGrace(_ user: String) {
        if let shared { return fleetForgetGrace(shared, user) }
        guard let ledger = firstSeenLedger, ledger.time(user) != 0 else { return }
        do { _ = try ledger.note(user, at: 0, durable: true) } catch {
            storageError(error)
        }
    }

    private func saveLockouts(users: [String], rhosts: [String], config: DaemonConfig, now: Int64) {
        // The in-memory state applies even if the write fails; only a restart would forget it.
        do {
            let evicted = try lockoutLedger?.save(users: users, rhosts: rhosts, now: now, window: config.failureWindow) ?? 0
            if evicted > 0 {
                logger.warning("lockout book full: forgot the \(evicted) least recently active records",
                               metadata: ["users": "\(LockoutBook.maximumUsers)", "addresses": "\(LockoutBook.maximumAddresses)"])
            }
        } catch {
            storageError(error)
        }
    }

    private func storageError(_ error: StoreError) {
        if let onStorageError { onStorageError(error) } else { logger.error("\(error)") }
    }
}
