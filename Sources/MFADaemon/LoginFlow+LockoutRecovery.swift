// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAProtocol
import MFAStore

/// A lockout stops guessing, not the owner (issue 14). While a user (or the address) is locked,
/// an answer of digits is never evaluated, so right and wrong codes get the same answer in the same
/// time. An answer in the recovery-code form (12 symbols, about 59 bits: not guessable in any
/// number of tries a lockout allows) is still checked: if right it is used up (durably, before the
/// SUCCESS), the user's lockout is cleared and the recovery-code notice goes out. An address block
/// (`max_failures_per_rhost`) is treated the same way, for the same reason; the block itself stays
/// for everyone else.
extension LoginFlow {
    /// nil: not a recovery code, or not a right one (the caller answers "locked" as for any answer).
    func recoveryWhileLocked(_ typed: String, in session: LoginSession, now: Int64) -> DaemonMessage? {
        // Only our own 12-symbol codes: an imported 8-digit scratch code looks like a TOTP guess.
        guard let normalized = RecoveryCodes.normalize(typed), normalized.utf8.count == RecoveryCodes.length else { return nil }
        guard (try? store.load(session.user)) != nil else { return nil }  // not enrolled, or unreadable
        let outcome = checkAgainstStore(session, now: now) { record in
            guard case .accepted(let updated, let reason, true) = shared.checkFactor(typed, against: record, now: now) else {
                return .rejected(reason: "wrong code")
            }
            return .accepted(updated, reason: "\(reason), lockout cleared", usedRecoveryCode: true)
        }
        guard case .answered(let message) = outcome else { return nil }
        if case .verdict(.success, _) = message {
            let cleared = books.unlock(user: session.user.value, rhost: nil, config: config, now: now)
            logger.notice("unlock", metadata: [
                "user": "\(session.user)", "rhost": "\(loggable(session.request.rhost))", "peer": "\(session.peer)",
                "result": "\(cleared.isEmpty ? "nothing was locked" : "unlocked " + cleared.joined(separator: " and ")) by a recovery code at login",
            ])
        }
        return message
    }
}
