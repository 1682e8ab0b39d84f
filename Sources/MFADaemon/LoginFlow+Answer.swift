// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// The answer to a code prompt: checked against a fresh read of the record, saved durably before
/// success, retried when another host wrote the record meanwhile (fleet).
extension LoginFlow {
    /// meanwhile) and makes the new replay state durable before answering success.
    func checkCode(_ typed: String, in session: LoginSession) -> DaemonMessage {
        let now = environment.now()
        switch session.purpose {
        case .locked(let until, let reason):
            if let recovered = recoveryWhileLocked(typed, in: session, now: now) { return recovered }
            return verdictMessage(session, .locked, "\(reason), locked until \(UTCTime.format(until))")
        case .graceNotice(let until):
            return verdictMessage(session, .ignore, "not enrolled, in grace period until \(UTCTime.format(until))")
        case .enrolling:
            return verdictMessage(session, .denied, "enrollment answer out of order")
        case .delivered:
            return verdictMessage(session, .denied, "answer out of order")
        case .code:
            break
        }
        // Locked while the user was typing (parallel guesses): nothing more is checked.
        if let until = books.rhostBlockedUntil(session.request.rhost, now: now) ?? books.userLockedUntil(session.user.value, now: now) {
            if let recovered = recoveryWhileLocked(typed, in: session, now: now) { return recovered }
            return verdictMessage(session, .locked, "too many wrong codes, locked until \(UTCTime.format(until))")
        }
        switch checkAgainstStore(session, now: now, { shared.checkFactor(typed, against: $0, now: now) }) {
        case .answered(let message):
            return message
        case .rejected(let denial):
            let message = verdictMessage(session, .denied, denial)
            books.recordFailure(user: session.user.value, rhost: session.request.rhost, config: config, now: now)
            return message
        }
    }

    /// What `checkAgainstStore` made of an answer.
    enum StoredCheck {
        /// The verdict to send (success once the new state is saved, or why it could not be).
        case answered(DaemonMessage)
        /// The answer is wrong; the caller counts the failure.
        case rejected(reason: String)
    }

    /// Checks an answer against a fresh read of the record and saves what it changed before success
    /// is granted. Fleet mode: another host may use the same code between our read and our write;
    /// the write is then refused (compare-and-swap) and the answer checked again against what that
    /// host wrote, so a time step or recovery code is accepted once fleet-wide.
    func checkAgainstStore(_ session: LoginSession, now: Int64, _ check: (UserRecord) -> FactorCheck) -> StoredCheck {
        var attemptsLeft = 3
        while true {
            let record: UserRecord?
            do {
                record = try store.load(session.user)
            } catch {
                if !store.backendFailedInRequest { shared.logStorageError(error) }
                return .answered(verdictMessage(session, .unavailable, "user file unusable"))
            }
            guard let record else { return .answered(verdictMessage(session, .denied, "enrollment removed during login")) }
            switch check(record) {
            case .accepted(var updated, var reason, let usedRecoveryCode):
                attemptsLeft -= 1
                rememberAfterRightCode(&updated, reason: &reason, session, usedRecoveryCode: usedRecoveryCode, now: now)
                guard let message = persist(updated, learntFrom: record, retryingConflict: attemptsLeft > 0,
                                            then: succeeded(verdictMessage(session, .success, reason), session, now),
                                            else: { self.verdictMessage(session, $0, $1) }) else {
                    logger.info("another host changed the record meanwhile; checking the code again", metadata: ["user": "\(session.user)"])
                    continue
                }
                if usedRecoveryCode, case .verdict(.success, _) = message { notifyRecoveryCodeUsed(session) }
                return .answered(message)
            case .rejected(let reason):
                return .rejected(reason: reason)
            }
        }
    }

    /// `remember`: a right code adds or renews this login's entry (RememberPolicy); a recovery code
    /// ends every entry of the user and makes none (the user may have lost the device, or someone
    /// else may hold a code). Saved with the code's new replay state, in the same write.
    func rememberAfterRightCode(_ record: inout UserRecord, reason: inout String, _ session: LoginSession,
                                usedRecoveryCode: Bool, now: Int64) {
        if usedRecoveryCode {
            if !record.remembered.isEmpty { reason += ", remembered hosts forgotten" }
            record.remembered = []
            return
        }
        let request = session.request
        record.remembered = RememberPolicy.afterRightCode(record.remembered, config, service: request.service, rhost: request.rhost, now: now)
        if RememberPolicy.mayRemember(config, service: request.service, rhost: request.rhost) {
            reason += ", \(request.rhost) remembered until \(UTCTime.format(now.addingReportingOverflow(config.remember).partialValue))"
        }
    }

    func notifyRecoveryCodeUsed(_ session: LoginSession) {
        notifier.notify(.recoveryCodeUsed, user: session.user, command: config.notifyCommand,
                        metadata: ["service": "\(loggable(session.request.service))"])
    }

    func succeeded(_ message: DaemonMessage, _ session: LoginSession, _ now: Int64) -> DaemonMessage {
        books.recordSuccess(user: session.user.value, config: config, now: now)
        return message
    }

    /// Saves the new replay state before success is granted. Learnt drift is a comfort, the replay
    /// state a guarantee: if the whole record cannot be written (a full disk), the replay state alone
    /// is tried (it goes to the pre-allocated journal), keeping the old drift. nil: another host
    /// changed the record meanwhile (fleet) and `retryingConflict` asks the caller to check again.
    func persist(_ record: UserRecord, learntFrom original: UserRecord? = nil, retryingConflict: Bool = false,
                 then success: @autoclosure () -> DaemonMessage,
                 else failure: (VerdictResult, String) -> DaemonMessage) -> DaemonMessage? {
        do {
            try store.save(record)
        } catch .conflict(let user) {
            if retryingConflict { return nil }
            logger.warning("\(user): changed by other hosts at every try; refusing this login's code")
            return failure(.denied, "record changed by another host")
        } catch {
            if !store.backendFailedInRequest { shared.logStorageError(error) }
            if let original, original.drift != record.drift {
                var replayOnly = record
                replayOnly.drift = original.drift
                if (try? store.save(replayOnly)) != nil { return success() }
            }
            return failure(.unavailable, "could not record the used code")
        }
        return success()
    }
}
