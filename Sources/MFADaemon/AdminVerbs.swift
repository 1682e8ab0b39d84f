// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// Root's verbs on enrollments and lockouts (`mfagate enroll`, `status`, `check`, `unlock`, `invite`
/// in Invites.swift, `import` in ImportGoogleAuthenticator.swift); the user's own verbs are
/// `SelfService` and `MethodService`.
public final class AdminVerbs: AuthorityPart {
    unowned let shared: Authority
    init(_ shared: Authority) { self.shared = shared }

    // MARK: enrollment and status

    public func enroll(_ request: EnrollRequest, peer: Peer) -> DaemonMessage {
        let user: UserName
        switch shared.resolveUser(request.user, peer: peer, action: "enroll", rootOnly: "only root may provision an enrollment for a user") {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        do {
            if try store.load(user) != nil && !request.replaceExisting {
                return .error(.alreadyEnrolled, message: "\(user) is already enrolled; pass --force to replace the enrollment")
            }
        } catch {
            // A damaged file may be replaced only on purpose.
            if !request.replaceExisting { return .error(.storageFailure, message: "\(error); pass --force to replace it") }
        }
        do {
            guard let secret = try shared.secretBytes(request.secret) else { return Authority.invalidSecret }
            let method: OTPMethod = request.method == .hotp ? .hotp : .totp
            var counter: UInt64 = 0
            if method == .hotp && !request.counter.isEmpty {
                guard let c = UInt64(request.counter) else { return .error(.badRequest, message: "the counter must be a whole number ≥ 0") }
                counter = c
            }
            let codes = try shared.makeRecoveryCodes()
            let record = UserRecord(user: user, parameters: .standard, secret: secret, created: environment.now(),
                                    recoveryCodes: codes.hashed, method: method, counter: counter)
            try store.save(record)
            pending.remove(user)
            notifier.notify(.enrolled, user: user, command: config.notifyCommand, metadata: ["peer": "\(peer)", "by": "admin"])
            let uri = shared.otpauthURI(user: user, method: method, secret: secret, counter: counter)
            return .enrolled(EnrolledReply(user: user.value, secret: Base32.encode(secret), otpauthURI: uri, recoveryCodes: codes.shown))
        } catch let error as StoreError {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        } catch {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        }
    }

    /// `remembered`: also the user's live remembered logins (`mfagate status`; the same access
    /// rule: the user's own, root anyone's). Host names and services only, nothing secret.
    public func status(user requested: String, peer: Peer, remembered: Bool = false) -> DaemonMessage {
        let user: UserName
        // Root may look at what is stored under a name NSS no longer knows (`removal`).
        switch shared.resolveUser(requested, peer: peer, action: "status", removal: true,
                           denial: "you may only ask about your own enrollment (or run as root)") {
        case .success(let u): user = u
        case .failure(let refusal): return refusal.message
        }
        do {
            let now = environment.now()
            let record = try store.load(user)
            var reply = shared.summary(user, record, now: now)
            if remembered {
                reply.remembered = RememberPolicy.live(record?.remembered ?? [], config, now: now).map {
                    RememberedHost(rhost: $0.rhost, service: $0.service, since: $0.created, until: RememberPolicy.end(of: $0, config))
                }
            }
            return .status(reply)
        } catch {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        }
    }

    // MARK: policy administration

    /// `sshKey` (`mfagate check --ssh-key FILE`): answer as if sshd had reported a login with that
    /// key; it goes through the login's own parser and `trusted_ssh_keys` match. Nothing is
    /// written: the dry-run grants nothing and changes no state.
    public func check(user raw: String, service: String, rhost: String, sshKey: CheckSSHKey? = nil, peer: Peer) -> DaemonMessage {
        guard peer.isRoot else {
            return shared.refuse(.notAllowed, "only root may ask how the policy treats a user", peer: peer, action: "check")
        }
        var trustedKey: String? = nil, keyNote: String? = nil
        if let sshKey {
            guard let found = checkedKey(sshKey) else { return Self.unreadableKey(sshKey) }
            (trustedKey, keyNote) = found
        }
        let resolved: ResolvedAccount
        switch shared.resolveAccount(raw) {
        case .success(let r): resolved = r
        case .failure(let refusal): return refusal.message
        }
        do {
            let (outcome, record) = try shared.evaluate(resolved, service: service, rhost: rhost, sideEffects: false,
                                                        trustedSSHKey: trustedKey)
            var decision = outcome.decision
            // enroll_at_login = invite: without an invite the screen is not shown (LoginFlow+Enrollment.swift).
            if case .offerEnrollment(let mandatory) = decision, config.enrollAtLoginNeedsInvite,
               !invites.hasInvite(resolved.user, now: environment.now()) {
                decision = mandatory ? .deny(reason: "not enrolled, no invite") : .ignore(reason: "not enrolled, no invite")
            }
            var until: Int64 = 0
            var reason: String
            switch decision {
            case .askForCode: reason = "a verification code is needed"
            case .offerEnrollment(let mandatory):
                reason = mandatory ? "not enrolled: must enroll at this login" : "not enrolled: may enroll at this login or skip"
            case .ignore(let why): reason = "no code needed (\(why))"
            case .deny(let why): reason = "login refused (\(why))"
            case .grace(let t): until = t; reason = "not enrolled, in grace period: no code needed until \(UTCTime.format(t))"
            case .locked(let t, let why): until = t; reason = "locked out (\(why)) until \(UTCTime.format(t))"
            }
            if sshKey == nil, let note = trustedSSHKeysNote(decision) { reason += note }
            if let keyNote, decision.word != "ignore" { reason += keyNote }
            return .checked(CheckReply(decision: decision.word, reason: reason, rule: outcome.rule, until: until,
                                       enrolled: record != nil))
        } catch {
            logger.error("\(error)")
            return .error(.storageFailure, message: "\(error)")
        }
    }

    public func unlock(user raw: String, rhost: String, peer: Peer) -> DaemonMessage {
        guard peer.isRoot else {
            return shared.refuse(.notAllowed, "only root may unlock", peer: peer, action: "unlock")
        }
        var user: String? = nil
        if !raw.isEmpty {
            switch shared.resolveUser(raw, peer: peer, action: "unlock", ownByDefault: false, removal: true) {
            case .success(let u): user = u.value
            case .failure(let refusal): return refusal.message
            }
        }
        if !rhost.isEmpty && LockoutBook.rhostKey(rhost) == nil {
            return .error(.badRequest, message: "\"\(loggable(rhost))\" is not an address")
        }
        let cleared = books.unlock(user: user, rhost: rhost.isEmpty ? nil : rhost, config: config, now: environment.now())
        if store.backendFailedInRequest {
            return .error(.storageFailure, message: "the fleet database is unreachable; nothing was unlocked (try again when it is back)")
        }
        let what = cleared.isEmpty ? "nothing was locked" : "unlocked " + cleared.joined(separator: " and ")
        logger.notice("unlock", metadata: ["user": "\(user ?? "-")", "rhost": "\(loggable(rhost))", "peer": "\(peer)", "result": "\(what)"])
        return .done(message: what)
    }

}
