// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAStore

/// The daemon's memory of wrong codes, lockouts and first sightings: the same rules (FailureRecord,
/// the first-sighting book) wherever the store keeps them. The store says where (`openBooks`):
/// this host's state directory (`LocalBookkeeper`, below: loaded at start, written through on every
/// change, so it survives a restart or a crash) or a ledger every host shares (`FleetBookkeeper`,
/// Bookkeeper+Fleet.swift: a lockout made on one host holds on all). Callers never ask which.
protocol Bookkeeper: AnyObject {
    /// Storage errors of the books, logged at most a few times a minute (RefusalLog.swift).
    var onStorageError: ((StoreError) -> Void)? { get set }
    /// When the user's grace period started (0: used up), nil: never seen unenrolled.
    func firstSeenTime(_ user: String) -> Int64?
    func userLockedUntil(_ user: String, now: Int64) -> Int64?
    func rhostBlockedUntil(_ rhost: String, now: Int64) -> Int64?
    /// Counts a wrong code against the user and the address; logs a lockout when one starts.
    func recordFailure(user: String, rhost: String, config: DaemonConfig, now: Int64)
    /// A right code clears the user's count of wrong ones (as pam_faillock does).
    func recordSuccess(user: String, config: DaemonConfig, now: Int64)
    /// Clears a user's and/or an address's lockout; returns what was cleared.
    func unlock(user: String?, rhost: String?, config: DaemonConfig, now: Int64) -> [String]
    /// Remembers when an unenrolled user was first seen (the start of their grace period).
    func noteFirstSeen(_ user: String, now: Int64) -> Int64
    /// Marks the user's grace period as used up, durably.
    func forgetGrace(_ user: String)
}

/// Opens the store's books. A book the daemon wrote itself never stops it from starting (issue 14,
/// finding 6): bad lines are dropped, an unreadable file is moved aside, each logged once here.
func openBookkeeper(store: any FactorStore, logger: Logger, now: Int64, failureWindow: Int64) throws(StoreError) -> any Bookkeeper {
    switch try store.openBooks(now: now, failureWindow: failureWindow, report: { logger.error("\($0)") }) {
    case .local(let lockouts, let firstSeen):
        return LocalBookkeeper(lockouts: lockouts, firstSeen: firstSeen, logger: logger)
    case .shared(let ledger):
        return FleetBookkeeper(ledger, logger: logger)
    }
}

/// This host's books, in its state directory.
final class LocalBookkeeper: Bookkeeper {
    let logger: Logger
    let lockoutLedger: LockoutLedger
    let firstSeenLedger: FirstSeenLedger
    /// The lockout book, changed in place (a copy per change would cost O(entries)).
    var lockouts: LockoutBook {
        get { lockoutLedger.book }
        _modify { yield &lockoutLedger.book }
    }
    var onStorageError: ((StoreError) -> Void)?

    init(lockouts: LockoutLedger, firstSeen: FirstSeenLedger, logger: Logger) {
        lockoutLedger = lockouts
        firstSeenLedger = firstSeen
        self.logger = logger
    }

    /// When the user's grace period started (0: used up), nil: never seen unenrolled.
    func firstSeenTime(_ user: String) -> Int64? {
        return firstSeenLedger.time(user)
    }

    func userLockedUntil(_ user: String, now: Int64) -> Int64? {
        return lockouts.users[user].flatMap { $0.isLocked(at: now) ? $0.lockedUntil : nil }
    }

    func rhostBlockedUntil(_ rhost: String, now: Int64) -> Int64? {
        guard let key = LockoutBook.rhostKey(rhost) else { return nil }
        return lockouts.rhosts[key].flatMap { $0.isLocked(at: now) ? $0.lockedUntil : nil }
    }

    /// Counts a wrong code against the user and the address; logs a lockout when one starts.
    func recordFailure(user: String, rhost: String, config: DaemonConfig, now: Int64) {
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
        guard let record = lockouts.users[user], !record.failures.isEmpty else { return }
        lockouts.users[user]?.failures = []
        saveLockouts(users: [user], rhosts: [], config: config, now: now)
    }

    /// Clears a user's and/or an address's lockout; returns what was cleared.
    func unlock(user: String?, rhost: String?, config: DaemonConfig, now: Int64) -> [String] {
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
        let ledger = firstSeenLedger
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
        let ledger = firstSeenLedger
        guard ledger.time(user) != 0 else { return }
        do { _ = try ledger.note(user, at: 0, durable: true) } catch {
            storageError(error)
        }
    }

    private func saveLockouts(users: [String], rhosts: [String], config: DaemonConfig, now: Int64) {
        // The in-memory state applies even if the write fails; only a restart would forget it.
        do {
            let evicted = try lockoutLedger.save(users: users, rhosts: rhosts, now: now, window: config.failureWindow)
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
