import Logging
import MFACore
import MFAStore

/// The daemon's memory of wrong codes, lockouts and first sightings, loaded at start and written
/// through to the state directory on every change (so it survives a restart or a crash).
final class Bookkeeper {
    let store: FileStore
    let logger: Logger
    private(set) var lockouts = LockoutBook()
    private(set) var firstSeen = FirstSeenBook()

    init(store: FileStore, logger: Logger) throws(StoreError) {
        self.store = store
        self.logger = logger
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

    func userLockedUntil(_ user: String, now: Int64) -> Int64? {
        lockouts.users[user].flatMap { $0.isLocked(at: now) ? $0.lockedUntil : nil }
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
        guard let record = lockouts.users[user], !record.failures.isEmpty else { return }
        lockouts.users[user]?.failures = []
        saveLockouts(config: config, now: now)
    }

    /// Clears a user's and/or an address's lockout; returns what was cleared.
    func unlock(user: String?, rhost: String?, config: DaemonConfig, now: Int64) -> [String] {
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
        if let t = firstSeen.users[user] { return t }
        firstSeen.users[user] = now
        do { try store.saveState(.seen, firstSeen.serialize()) } catch {
            logger.error("\(error)")
        }
        return now
    }

    /// Marks the user's grace period as used up (first seen at time 0).
    func forgetGrace(_ user: String) {
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
