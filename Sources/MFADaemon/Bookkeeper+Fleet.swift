// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAStore

/// Fleet mode of the Bookkeeper: the same rules (FailureRecord), applied to the shared ledger with
/// one atomic update per change, so every host counts the same wrong codes and honours the same
/// lockouts. A database failure is logged by the store (once per outage) and flagged for the
/// request (`backendFailedInRequest`), which then ends without a verdict; the answers here only
/// have to be harmless meanwhile.
extension Bookkeeper {
    func fleetFirstSeen(_ shared: any SharedLedger, _ user: String) -> Int64? {
        (try? shared.firstSeen(user)) ?? nil
    }

    func fleetLockedUntil(_ shared: any SharedLedger, _ kind: LedgerKind, _ key: String, now: Int64) -> Int64? {
        guard let record = (try? shared.failureRecord(kind, key)) ?? nil, record.isLocked(at: now) else { return nil }
        return record.lockedUntil
    }

    func fleetRecordFailure(_ shared: any SharedLedger, user: String, rhost: String, config: DaemonConfig, now: Int64) {
        do {
            if try shared.updateFailureRecord(.user, user, {
                $0.recordFailure(at: now, limit: config.maxFailures, window: config.failureWindow, lockout: config.lockout)
            }) {
                logger.warning("user locked out", metadata: ["user": "\(user)", "rhost": "\(loggable(rhost))",
                                                              "until": "\(UTCTime.format(now + config.lockout))", "scope": "fleet"])
            }
            if let key = LockoutBook.rhostKey(rhost), try shared.updateFailureRecord(.rhost, key, {
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
        if now - lastFleetPrune >= 600 {
            lastFleetPrune = now
            try? shared.pruneFailureRecords(now: now, window: config.failureWindow)
        }
    }

    func fleetRecordSuccess(_ shared: any SharedLedger, user: String) {
        guard let record = (try? shared.failureRecord(.user, user)) ?? nil, !record.failures.isEmpty else { return }
        _ = try? shared.updateFailureRecord(.user, user) { r in
            r.failures = []
            return false
        }
    }

    func fleetUnlock(_ shared: any SharedLedger, user: String?, rhost: String?) -> [String] {
        var cleared: [String] = []
        if let user, (try? shared.removeFailureRecord(.user, user)) == true { cleared.append("user \(user)") }
        if let rhost, let key = LockoutBook.rhostKey(rhost), (try? shared.removeFailureRecord(.rhost, key)) == true {
            cleared.append("address \(key)")
        }
        return cleared
    }

    func fleetNoteFirstSeen(_ shared: any SharedLedger, _ user: String, now: Int64) -> Int64 {
        (try? shared.noteFirstSeen(user, at: now)) ?? now
    }

    func fleetForgetGrace(_ shared: any SharedLedger, _ user: String) {
        try? shared.setFirstSeen(user, 0)
    }
}
