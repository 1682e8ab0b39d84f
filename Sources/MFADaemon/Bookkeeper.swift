import Logging
import MFACore
import MFAStore

/// The daemon's memory of wrong codes, lockouts and first sightings, loaded at start and written
/// through to the state directory on every change (so it survives a restart or a crash). In fleet
/// mode (`store = postgresql`) every question and change goes to the shared ledger instead
/// (Bookkeeper+Fleet.swift), so a lockout made on one host holds on all.
final class Bookkeeper {
    let store: FileStore!
    let shared: (any SharedLedger)?
    let logger: Logger
    private(set) var lockouts = LockoutBook()
    private(set) var firstSeen = FirstSeenBook()
    /// Fleet mode: when stale failure records were last removed from the shared ledger.
    var lastFleetPrune: Int64 = 0

    init(store factorStore: any FactorStore, logger: Logger) throws(StoreError) {
        self.logger = logger
        shared = factorStore.sharedLedger
        guard shared == nil, let store = factorStore as? FileStore else {
            self.store = nil
            return
        }
        self.store = store
        if let text = try store.loadState(.lockout) {
            do { lockouts = try LockoutBook.parse(text) } catch {
                throw .damagedFile(path: "\(store.path)/lockout", detail: error.description)
            }
        }
        if let text = try store.loadState(.seen) {
            do { firstSeen = try FirstSeenBook.parse(text) } catch {
                throw .damagedFile(path: "\(store.path)/seen", detail: error.description)
            }
        }
    }

    /// When the user's grace period started (0: used up), nil: never seen unenrolled.
    func firstSeenTime(_ user: String) -> Int64? {
        if let shared { return fleetFirstSeen(shared, user) }
        return firstSeen.users[user]
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
        if let key = LockoutBook.rhostKey(rhost) {
            var rhostRecord = lockouts.rhosts[key] ?? FailureRecord()
            if rhostRecord.recordFailure(at: now, limit: config.maxFailuresPerRhost, window: config.failureWindow, lockout: config.lockout) {
                logger.warning("address blocked", metadata: ["rhost": "\(key)", "user": "\(user)",
                                                             "until": "\(UTCTime.format(rhostRecord.lockedUntil ?? now))"])
            }
            lockouts.rhosts[key] = rhostRecord
        }
        saveLockouts(config: config, now: now)
    }

    /// A right code clears the user's count of wrong ones (as pam_faillock does).
    func recordSuccess(user: String, config: DaemonConfig, now: Int64) {
        if let shared { return fleetRecordSuccess(shared, user: user) }
        guard let record = lockouts.users[user], !record.failures.isEmpty else { return }
        lockouts.users[user]?.failures = []
        saveLockouts(config: config, now: now)
    }

    /// Clears a user's and/or an address's lockout; returns what was cleared.
    func unlock(user: String?, rhost: String?, config: DaemonConfig, now: Int64) -> [String] {
        if let shared { return fleetUnlock(shared, user: user, rhost: rhost) }
        var cleared: [String] = []
        if let user, lockouts.users.removeValue(forKey: user) != nil { cleared.append("user \(user)") }
        if let rhost, let key = LockoutBook.rhostKey(rhost), lockouts.rhosts.removeValue(forKey: key) != nil {
            cleared.append("address \(key)")
        }
        if !cleared.isEmpty { saveLockouts(config: config, now: now) }
        return cleared
    }

    /// Remembers when an unenrolled user was first seen (the start of their grace period).
    func noteFirstSeen(_ user: String, now: Int64) -> Int64 {
        if let shared { return fleetNoteFirstSeen(shared, user, now: now) }
        if let t = firstSeen.users[user] { return t }
        firstSeen.users[user] = now
        do { try store.saveState(.seen, firstSeen.serialize()) } catch {
            logger.error("\(error)")
        }
        return now
    }

    /// Marks the user's grace period as used up (first seen at time 0).
    func forgetGrace(_ user: String) {
        if let shared { return fleetForgetGrace(shared, user) }
        guard firstSeen.users[user] != 0 else { return }
        firstSeen.users[user] = 0
        do { try store.saveState(.seen, firstSeen.serialize()) } catch {
            logger.error("\(error)")
        }
    }

    private func saveLockouts(config: DaemonConfig, now: Int64) {
        lockouts.prune(now: now, window: config.failureWindow)
        // Not fsynced: a lockout must survive a restart or crash of the daemon, which the page
        // cache gives; a power cut may forget the last few wrong codes, which costs little.
        do { try store.saveState(.lockout, lockouts.serialize(), durable: false) } catch {
            // The in-memory state still applies; only a restart would forget it.
            logger.error("\(error)")
        }
    }
}
