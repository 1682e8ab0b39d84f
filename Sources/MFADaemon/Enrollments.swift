// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// What the admin verbs, self-service, methods and the login flow share when they make or change an
/// enrollment: the otpauth URI, recovery codes, a status summary, the proof of a current code, a
/// first enrollment by email or SMS.
extension Authority {
    var issuerName: String { config.issuer ?? environment.hostName }

    func otpauthURI(user: UserName, method: OTPMethod, secret: [UInt8], counter: UInt64) -> String {
        let account = "\(user.value)@\(environment.hostName)"
        switch method {
        case .totp: return OTPAuthURI.totp(secret: secret, issuer: issuerName, account: account, parameters: .standard)
        case .hotp: return OTPAuthURI.hotp(secret: secret, issuer: issuerName, account: account, parameters: .standard, counter: counter)
        }
    }

    /// Ten fresh codes: the text to show once, and the salted hashes to keep.
    func makeRecoveryCodes() throws -> (shown: [String], hashed: [RecoveryCodes.Hashed]) {
        var shown: [String] = []
        var hashed: [RecoveryCodes.Hashed] = []
        while shown.count < RecoveryCodes.count {
            guard let code = RecoveryCodes.makeCode(randomBytes: try environment.randomBytes(32)) else { continue }
            shown.append(code)
            hashed.append(RecoveryCodes.hash(normalizedCode: RecoveryCodes.normalize(code) ?? code, salt: try environment.randomBytes(16)))
        }
        return (shown, hashed)
    }

    func summary(_ user: UserName, _ record: UserRecord?, now: Int64) -> StatusReply {
        let pendingNow = pending.get(user, now: now) != nil
        guard let record else { return StatusReply(user: user.value, enrolled: false, recoveryCodesLeft: 0, pending: pendingNow) }
        return StatusReply(user: user.value, enrolled: true, recoveryCodesLeft: record.recoveryCodes.count,
                           method: record.appActive ? record.method.rawValue : (record.preferred ?? .email).rawValue, enrolledSince: record.created, lastSuccess: record.lastSuccess,
                           pending: pendingNow)
    }

    func storageError(_ error: Error) -> DaemonMessage {
        logStorageError(error)
        return .error(.storageFailure, message: "\(error)")
    }

    /// Checks `code` against the active record and saves the consumed state (a code proves once).
    func prove(_ code: String, _ record: UserRecord, allowRecoveryCode: Bool, action: String, peer: Peer) -> Result<UserRecord, SelfServiceRefusal> {
        let what = allowRecoveryCode ? "a current code from your authenticator or an unused recovery code" : "a current code from your authenticator"
        if code.isEmpty {
            return .failure(SelfServiceRefusal(.wrongCode, "this needs \(what) (pass --code, or type it when asked)"))
        }
        let now = environment.now()
        // Proofs count against the same lockout as logins: otherwise `mfagate disable --code` in a
        // loop would be an unlimited way to guess codes.
        if let until = books.userLockedUntil(record.user.value, now: now) {
            return .failure(SelfServiceRefusal(.wrongCode, "too many wrong codes; locked until \(UTCTime.format(until)) (root: mfagate unlock --user \(record.user))"))
        }
        switch checkFactor(code, against: record, now: now, allowRecoveryCode: allowRecoveryCode) {
        case .accepted(let updated, _, let usedRecovery):
            books.recordSuccess(user: record.user.value, config: config, now: now)
            do { try store.save(updated) } catch { return .failure(SelfServiceRefusal(.storageFailure, "\(error)")) }
            if usedRecovery { notifier.notify(.recoveryCodeUsed, user: record.user, command: config.notifyCommand, metadata: ["action": "\(action)"]) }
            return .success(updated)
        case .rejected(let reason):
            books.recordFailure(user: record.user.value, rhost: "", config: config, now: now)
            logLimited(.refused, .notice, "refused", metadata: ["action": "\(action)", "user": "\(record.user)", "peer": "\(peer)", "reason": "\(reason)"])
            return .failure(SelfServiceRefusal(.wrongCode, "that is not \(what)"))
        }
    }

    func pendingKey(_ user: UserName, _ method: LoginMethod) -> String { "\(user.value) \(method.rawValue)" }

    /// A first method by email or SMS for a user with no enrollment: the user logs in with codes
    /// sent there, or a recovery code (shown now, once) if that fails.
    func enrollByDelivery(_ method: LoginMethod, address: String, user: UserName, peer: Peer) -> DaemonMessage {
        do {
            let codes = try makeRecoveryCodes()
            var record = UserRecord(user: user, parameters: .standard, secret: try environment.randomBytes(20),
                                    created: environment.now(), recoveryCodes: codes.hashed)
            record.appActive = false
            if method == .email { record.email = address } else { record.sms = address }
            record.preferred = method
            try store.save(record)
            notifier.notify(.enrolled, user: user, command: config.notifyCommand,
                            metadata: ["peer": "\(peer)", "by": "\(method.rawValue)", "method": "\(method.rawValue)"])
            return .enrolled(EnrolledReply(user: user.value, secret: "", otpauthURI: "", recoveryCodes: codes.shown))
        } catch {
            return storageError(error)
        }
    }
}
