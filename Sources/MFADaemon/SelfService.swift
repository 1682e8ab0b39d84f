// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// A user's own enrollment verbs (docs/protocol.md, tags 0x12–0x16: enroll begin/confirm,
/// regenerate, disable, list; `disable` from root without a code is the admin reset). Every request
/// is authorised by SO_PEERCRED: root may act for anyone, others only for their own account; a
/// change to an active enrollment made by the user needs a code from it.
public final class SelfService: AuthorityPart {
    unowned let shared: Authority
    init(_ shared: Authority) { self.shared = shared }

    // MARK: ENROLL_BEGIN / ENROLL_CONFIRM

    public func enrollBegin(_ request: EnrollBeginRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch shared.resolveUser(request.user, peer: peer, action: "enroll") {
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
                if case .failure(let refusal) = shared.prove(request.proof, active, allowRecoveryCode: true, action: "re-enroll", peer: peer) {
                    if refusal.code == .wrongCode {
                        return .error(.wrongCode, message: "\(user) is already enrolled; replacing the enrollment needs a current code or an unused recovery code (pass --code)")
                    }
                    return refusal.message
                }
            }
        } catch {
            // A damaged file: only root may start over (mfagate reset).
            if !peer.isRoot { return shared.storageError(error) }
        }
        let secret: [UInt8]
        do {
            guard let bytes = try shared.secretBytes(request.secret) else { return Authority.invalidSecret }
            secret = bytes
        } catch { return shared.storageError(error) }
        pending.sweep(now: now)
        pending.put(PendingEnrollment(user: user, method: method, secret: secret, counter: counter,
                                      expires: now + PendingEnrollments.lifetime, attemptsLeft: PendingEnrollments.attempts))
        logger.info("enrollment pending", metadata: ["user": "\(user)", "peer": "\(peer)", "method": "\(method.rawValue)"])
        return .pending(PendingReply(user: user.value, secret: Base32.encode(secret),
                                     otpauthURI: shared.otpauthURI(user: user, method: method, secret: secret, counter: counter),
                                     secondsValid: Int(PendingEnrollments.lifetime)))
    }

    public func enrollConfirm(_ request: UserCodeRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch shared.resolveUser(request.user, peer: peer, action: "enroll") {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        let now = environment.now()
        guard var waiting = pending.get(user, now: now) else {
            return .error(.noPendingEnrollment, message: "no enrollment of \(user) is waiting for a code (they expire after \(PendingEnrollments.lifetime / 60) minutes); run mfagate enroll again")
        }
        let candidate = UserRecord(user: user, parameters: .standard, secret: waiting.secret, created: now,
                                   recoveryCodes: [], method: waiting.method, counter: waiting.counter)
        guard case .accepted(var record, _, false) = shared.checkFactor(request.code, against: candidate, now: now, allowRecoveryCode: false) else {
            waiting.attemptsLeft -= 1
            if waiting.attemptsLeft <= 0 {
                pending.remove(user)
                return .error(.noPendingEnrollment, message: "too many wrong codes; run mfagate enroll again")
            }
            pending.put(waiting)
            return .error(.wrongCode, message: "that code is not right (check the phone's clock and that you scanned the new code); \(waiting.attemptsLeft) tries left")
        }
        do {
            let codes = try shared.makeRecoveryCodes()
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
                                           otpauthURI: shared.otpauthURI(user: user, method: record.method, secret: record.secret, counter: waiting.counter),
                                           recoveryCodes: codes.shown))
        } catch {
            return shared.storageError(error)
        }
    }

    // MARK: recovery codes, disable, reset, list

    public func regenerateRecoveryCodes(_ request: UserCodeRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch shared.resolveUser(request.user, peer: peer, action: "regenerate") {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        do {
            guard var record = try store.load(user) else { return .error(.notEnrolled, message: "\(user) is not enrolled") }
            if !peer.isRoot || !request.code.isEmpty {
                switch shared.prove(request.code, record, allowRecoveryCode: false, action: "regenerate", peer: peer) {
                case .success(let updated): record = updated
                case .failure(let refusal): return refusal.message
                }
            }
            let codes = try shared.makeRecoveryCodes()
            record.recoveryCodes = codes.hashed
            try store.save(record)
            notifier.notify(.recoveryCodesRegenerated, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)"])
            return .recoveryCodes(user: user.value, codes: codes.shown)
        } catch {
            return shared.storageError(error)
        }
    }

    /// Self-service (a code needed) or, from root without a code, an admin reset.
    public func disable(_ request: UserCodeRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch shared.resolveUser(request.user, peer: peer, action: "disable", removal: true) {
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
                if case .failure(let refusal) = shared.prove(request.code, record, allowRecoveryCode: true, action: "disable", peer: peer) {
                    return refusal.message
                }
            }
            pending.remove(user)
            // The notice of the removal still goes to the address the user had (Delivery.swift).
            if let record = try? store.load(user) { shared.noteNoticeAddress(user, record.email) }
            try store.delete(user)
            // A grace period is for users MFA is new to: someone who had a factor and removed it gets
            // none (first seen at time 0, so it is over); under `required` they enroll again at the
            // next login, or are refused.
            books.forgetGrace(user.value)
        } catch {
            return shared.storageError(error)
        }
        notifier.notify(isReset ? .reset : .disabled, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)"])
        return .changed(user: user.value, message: isReset ? "\(user): enrollment reset; the user has no second factor now"
                                                       : "\(user): second factor disabled and its recovery codes deleted")
    }

    public func list(peer: Peer) -> DaemonMessage {
        guard peer.isRoot else { return shared.refuse(.notAllowed, "only root may list every enrollment", peer: peer, action: "list") }
        let now = environment.now()
        var entries: [StatusReply] = []
        let users: [UserName]
        do { users = try store.listUsers() } catch { return shared.storageError(error) }
        for user in users {
            do {
                entries.append(shared.summary(user, try store.load(user), now: now))
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
