// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAStore

/// The books of the fleet store: the same rules (FailureRecord) applied to the shared ledger with
/// one atomic update per change, so every host counts the same wrong codes and honours the same
/// lockouts. A database failure is logged by the store (once per outage) and flagged for the
/// request (`backendFailedInRequest`), which then ends without a verdict; the answers here only
/// have to be harmless meanwhile.
final class FleetBookkeeper: Bookkeeper {
    let ledger: any SharedLedger
    let logger: Logger
    /// When stale failure records were last removed from the shared ledger.
    var lastPrune: Int64 = 0
    var onStorageError: ((StoreError) -> Void)?

    init(_ ledger: any SharedLedger, logger: Logger) {
        self.ledger = ledger
        self.logger = logger
    }

    func firstSeenTime(_ user: String) -> Int64? {
        (try? ledger.firstSeen(user)) ?? nil
    }

    func userLockedUntil(_ user: String, now: Int64) -> Int64? {
        lockedUntil(.user, user, now: now)
    }

    func rhostBlockedUntil(_ rhost: String, now: Int64) -> Int64? {
        guard let key = LockoutBook.rhostKey(rhost) else { return nil }
        return lockedUntil(.rhost, key, now: now)
    }

    private func lockedUntil(_ kind: LedgerKind, _ key: String, now: Int64) -> Int64? {
        guard let record = (try? ledger.failureRecord(kind, key)) ?? nil, record.isLocked(at: now) else { return nil }
        return record.lockedUntil
    }

    func recordFailure(user: String, rhost: String, config: DaemonConfig, now: Int64) {
        do {
            if try ledger.updateFailureRecord(.user, user, {
                $0.recordFailure(at: now, limit: config.maxFailures, window: config.failureWindow, lockout: config.lockout)
            }) {
                logger.warning("user locked out", metadata: ["user": "\(user)", "rhost": "\(loggable(rhost))",
                                                              "until": "\(UTCTime.format(now + config.lockout))", "scope": "fleet"])
            }
            if let key = LockoutBook.rhostKey(rhost), try ledger.updateFailureRecord(.rhost, key, {
                $0.recordFailure(at: now, limit: config.maxFailuresPerRhost, window: config.failureWindow, lockout: config.lockout)
            }) {
                logger.warning("address blocked", metadata: ["rhost": "\(key)", "user": "\(user)",
                                                             "until": "\(UTCTime.format(now + config.lockout))", "scope": "fleet"])
            }
        } catch {
            // Logged by the store once per outage; the request ends without a verdict.
        }
        // Records that lock and count nothing any more are removed now and then (at most every
        // 10 minutes per host), so a flood of addresses does not grow the table without end.
        if now - lastPrune >= 600 {
            lastPrune = now
            try? ledger.pruneFailureRecords(now: now, window: config.failureWindow)
        }
    }

    func recordSuccess(user: String, config: DaemonConfig, now: Int64) {
        guard let record = (try? ledger.failureRecord(.user, user)) ?? nil, !record.failures.isEmpty else { return }
        _ = try? ledger.updateFailureRecord(.user, user) { r in
            r.failures = []
            return false
        }
    }

    func unlock(user: String?, rhost: String?, config: DaemonConfig, now: Int64) -> [String] {
        var cleared: [String] = []
        if let user, (try? ledger.removeFailureRecord(.user, user)) == true { cleared.append("user \(user)") }
        if let rhost, let key = LockoutBook.rhostKey(rhost), (try? ledger.removeFailureRecord(.rhost, key)) == true {
            cleared.append("address \(key)")
        }
        return cleared
    }

    func noteFirstSeen(_ user: String, now: Int64) -> Int64 {
        (try? ledger.noteFirstSeen(user, at: now)) ?? now
    }

    func forgetGrace(_ user: String) {
        try? ledger.setFirstSeen(user, 0)
    }
}
