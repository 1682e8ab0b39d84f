import Logging
import MFACore
import MFAProtocol
import MFAStore

/// Self-service enrollment and the admin requests (docs/protocol.md, tags 0x12–0x17). Every request is
/// authorised by SO_PEERCRED: root may act for anyone, others only for their own account; a change
/// to an active enrollment made by the user needs a code from it.
extension Authority {
    // MARK: shared helpers

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

    // MARK: ENROLL_BEGIN / ENROLL_CONFIRM

    public func enrollBegin(_ request: EnrollBeginRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch resolveUser(request.user, peer: peer, action: "enroll") {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        let method: OTPMethod = request.method == .hotp ? .hotp : .totp
        var counter: UInt64 = 0
        if method == .hotp && !request.counter.isEmpty {
            guard let c = UInt64(request.counter) else { return .error(.badRequest, message: "the counter must be a whole number ≥ 0") }
            counter = c
        }
        let now = environment.now()
        do {
            if let active = try store.load(user), !peer.isRoot {
                // A new phone: the old factor (or a recovery code) must vouch for the change.
                if case .failure(let refusal) = prove(request.proof, active, allowRecoveryCode: true, action: "re-enroll", peer: peer) {
                    if refusal.code == .wrongCode {
                        return .error(.wrongCode, message: "\(user) is already enrolled; replacing the enrollment needs a current code or an unused recovery code (pass --code)")
                    }
                    return refusal.message
                }
            }
        } catch {
            // A damaged file: only root may start over (mfagate reset).
            if !peer.isRoot { return storageError(error) }
        }
        let secret: [UInt8]
        do {
            guard let bytes = try secretBytes(request.secret) else { return Authority.invalidSecret }
            secret = bytes
        } catch { return storageError(error) }
        pending.sweep(now: now)
        pending.put(PendingEnrollment(user: user, method: method, secret: secret, counter: counter,
                                      expires: now + PendingEnrollments.lifetime, attemptsLeft: PendingEnrollments.attempts))
        logger.info("enrollment pending", metadata: ["user": "\(user)", "peer": "\(peer)", "method": "\(method.rawValue)"])
        return .pending(PendingReply(user: user.value, secret: Base32.encode(secret),
                                     otpauthURI: otpauthURI(user: user, method: method, secret: secret, counter: counter),
                                     secondsValid: Int(PendingEnrollments.lifetime)))
    }

    public func enrollConfirm(_ request: UserCodeRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch resolveUser(request.user, peer: peer, action: "enroll") {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        let now = environment.now()
        guard var waiting = pending.get(user, now: now) else {
            return .error(.noPendingEnrollment, message: "no enrollment of \(user) is waiting for a code (they expire after \(PendingEnrollments.lifetime / 60) minutes); run mfagate enroll again")
        }
        let candidate = UserRecord(user: user, parameters: .standard, secret: waiting.secret, created: now,
                                   recoveryCodes: [], method: waiting.method, counter: waiting.counter)
        guard case .accepted(var record, _, false) = checkFactor(request.code, against: candidate, now: now, allowRecoveryCode: false) else {
            waiting.attemptsLeft -= 1
            if waiting.attemptsLeft <= 0 {
                pending.remove(user)
                return .error(.noPendingEnrollment, message: "too many wrong codes; run mfagate enroll again")
            }
            pending.put(waiting)
            return .error(.wrongCode, message: "that code is not right (check the phone's clock and that you scanned the new code); \(waiting.attemptsLeft) tries left")
        }
        do {
            let codes = try makeRecoveryCodes()
            record.recoveryCodes = codes.hashed
            // The confirming code is spent (last_step) but is not a login.
            record.lastSuccess = nil
            // A new phone keeps the confirmed email/SMS methods and the preference (issue 10).
            if let old = try? store.load(user) {
                (record.email, record.sms, record.preferred) = (old.email, old.sms, old.preferred)
            }
            try store.save(record)
            pending.remove(user)
            notifier.notify(.enrolled, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)", "by": "self-service"])
            return .enrolled(EnrolledReply(user: user.value, secret: Base32.encode(record.secret),
                                           otpauthURI: otpauthURI(user: user, method: record.method, secret: record.secret, counter: waiting.counter),
                                           recoveryCodes: codes.shown))
        } catch {
            return storageError(error)
        }
    }

    // MARK: recovery codes, disable, reset, list

    public func regenerateRecoveryCodes(_ request: UserCodeRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch resolveUser(request.user, peer: peer, action: "regenerate") {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        do {
            guard var record = try store.load(user) else { return .error(.notEnrolled, message: "\(user) is not enrolled") }
            if !peer.isRoot || !request.code.isEmpty {
                switch prove(request.code, record, allowRecoveryCode: false, action: "regenerate", peer: peer) {
                case .success(let updated): record = updated
                case .failure(let refusal): return refusal.message
                }
            }
            let codes = try makeRecoveryCodes()
            record.recoveryCodes = codes.hashed
            try store.save(record)
            notifier.notify(.recoveryCodesRegenerated, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)"])
            return .recoveryCodes(user: user.value, codes: codes.shown)
        } catch {
            return storageError(error)
        }
    }

    /// Self-service (a code needed) or, from root without a code, an admin reset.
    public func disable(_ request: UserCodeRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch resolveUser(request.user, peer: peer, action: "disable", removal: true) {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        let isReset = peer.isRoot && request.code.isEmpty
        do {
            if isReset {
                // Root may remove even a damaged file.
                _ = try? store.load(user)
            } else {
                guard let record = try store.load(user) else { return .error(.notEnrolled, message: "\(user) is not enrolled") }
                if case .failure(let refusal) = prove(request.code, record, allowRecoveryCode: true, action: "disable", peer: peer) {
                    return refusal.message
                }
            }
            pending.remove(user)
            // The notice of the removal still goes to the address the user had (Delivery.swift).
            if let record = try? store.load(user) { noteNoticeAddress(user, record.email) }
            try store.delete(user)
            // A grace period is for users MFA is new to: someone who had a factor and removed it gets
            // none (first seen at time 0, so it is over); under `required` they enroll again at the
            // next login, or are refused.
            books.forgetGrace(user.value)
        } catch {
            return storageError(error)
        }
        notifier.notify(isReset ? .reset : .disabled, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)"])
        return .changed(user: user.value, message: isReset ? "\(user): enrollment reset; the user has no second factor now"
                                                       : "\(user): second factor disabled and its recovery codes deleted")
    }

    public func list(peer: Peer) -> DaemonMessage {
        guard peer.isRoot else { return refuse(.notAllowed, "only root may list every enrollment", peer: peer, action: "list") }
        let now = environment.now()
        var entries: [StatusReply] = []
        let users: [UserName]
        do { users = try store.listUsers() } catch { return storageError(error) }
        for user in users {
            do {
                entries.append(summary(user, try store.load(user), now: now))
            } catch {
                logger.error("\(error)")
                entries.append(StatusReply(user: user.value, enrolled: true, recoveryCodesLeft: 0, method: "unreadable"))
            }
        }
        return .list(entries)
    }
}

/// A refusal on its way to the client as an ERROR frame.
struct SelfServiceRefusal: Error {
    var code: ErrorCode
    var text: String
    init(_ code: ErrorCode, _ text: String) {
        self.code = code
        self.text = text
    }
    init(_ refusal: AccountRefusal) { self.init(refusal.message) }
    /// From an ERROR frame already made (`refuse`).
    init(_ message: DaemonMessage) {
        guard case .error(let code, let text) = message else {
            self.init(.badRequest, "\(message)")
            return
        }
        self.init(code, text)
    }
    var message: DaemonMessage { .error(code, message: text) }
}
