// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// A login waiting for the user's answer.
public struct LoginSession: Sendable {
    /// What the answer is for.
    public enum Purpose: Sendable {
        /// A TOTP or recovery code.
        case code
        /// Locked out: the prompt looks the same, but no code is checked, so right and wrong
        /// codes get the same answer in the same time; only a recovery code is (LoginFlow+LockoutRecovery.swift).
        case locked(until: Int64, reason: String)
        /// The grace-period notice was shown; Enter continues without a code.
        case graceNotice(until: Int64)
        /// Enrollment offered at login (issue 4, LoginFlow+Enrollment.swift): a code confirms the new secret.
        case enrolling(LoginEnrollment)
        /// A code was sent by email or SMS (issue 10, LoginFlow+DeliveredCode.swift); `resend`, the code, a TOTP or
        /// a recovery code may be typed.
        case delivered(DeliveredLogin)
    }
    public var request: LoginBegin
    /// The account's canonical name (NSS's pw_name), not necessarily the spelling in `request.user`.
    public var user: UserName
    public var peer: Peer
    public var purpose: Purpose = .code
    /// This login typed a right invite code (`enroll_at_login = invite`).
    public var invited = false
}

/// The outcome of one request: frames to send, and whether the login continues.
public enum Step: Sendable {
    /// Send the frame and wait for the client's REPLY.
    case ask(DaemonMessage, LoginSession)
    /// Send the frame and close the connection.
    case finish(DaemonMessage)
    /// Close the connection without a verdict: the store's backend (the fleet database) is
    /// unreachable, and the PAM module then answers per its `failmode`, as for a daemon that is down.
    case abandon(reason: String)
    /// Send nothing yet: a delivery command runs; the server asks `deliveryEnded` for the next step.
    case awaitDelivery(token: Int)
}

/// One login, begin → converse → answer → verdict: which login needs a code (Policy.evaluate on the
/// facts gathered here), the prompts, the check of each answer against a fresh read of the store,
/// and the verdict, logged once. A login in progress lives in its `LoginSession` (kept by the
/// server's connection between rounds), so this type keeps no per-login state. What it reads comes
/// from the daemon's shared parts, injected through `Authority`: the config (policy), the store,
/// the environment (clock, accounts, randomness), the books (lockouts, first sightings), the
/// notifier and the delivery state. Tests drive it with a table of accounts, a hand-moved clock and
/// a temp store (Tests/MFADaemonTests/LoginFlowTests*.swift).
///
/// The files: LoginFlow.swift (begin, decide, the verdict), LoginFlow+Answer.swift (the code check
/// and durable save), LoginFlow+LockoutRecovery.swift, LoginFlow+Enrollment.swift (enrollment and
/// invites at login), LoginFlow+EmailEnrollment.swift, LoginFlow+DeliveredCode.swift (email/SMS).
public final class LoginFlow: AuthorityPart {
    public static let prompt = "Verification code: "
    public static let continuePrompt = "Press Enter to continue: "

    unowned let shared: Authority
    init(_ shared: Authority) { self.shared = shared }

    public func begin(_ request: LoginBegin, peer: Peer) -> Step {
        var loggedName = "-"
        let step = decideLogin(request, peer: peer, loggedName: &loggedName)
        return abandonedIfBackendFailed(step, request, user: loggedName, peer: peer)
    }

    /// A verdict built while the fleet database failed may rest on missing facts (a lockout not
    /// read, a used code not recorded): the login is closed without one, and `failmode` decides.
    /// `user` is the canonical name, or "-" when the typed one led to no account.
    func abandonedIfBackendFailed(_ step: Step, _ request: LoginBegin, user: String, peer: Peer) -> Step {
        // An audited login gets IGNORE whatever the facts were (LoginFlow+Audit.swift).
        guard store.backendFailedInRequest, config.mode != .audit else { return step }
        let reason = "fleet database unavailable, left to the module's failmode"
        logger.log(level: .notice, "login", metadata: [
            "user": "\(user)", "service": "\(loggable(request.service))", "rhost": "\(loggable(request.rhost))",
            "peer": "\(peer)", "result": "abandoned", "reason": "\(reason)",
        ])
        return .abandon(reason: reason)
    }

    func decideLogin(_ request: LoginBegin, peer: Peer, loggedName: inout String) -> Step {
        guard request.version == WireProtocol.version else {
            return verdict(request, user: "-", peer: peer, .unavailable, "unsupported protocol version \(request.version)")
        }
        // Decided before NSS or the store is asked, so neither can keep the switch from working.
        let switchedOff = Policy.switchedOff(config)
        // The typed name is never logged: a user who typed a password into the login field would
        // leak it. Once NSS has named the account, its own name is.
        let resolved: ResolvedAccount
        switch shared.resolveAccount(request.user) {
        case .success(let r): resolved = r
        case .failure(let refusal):
            if let switchedOff, refusal.isAboutTheAccount { return verdict(request, user: "-", peer: peer, switchedOff) }
            if config.mode == .audit { return audited(request, user: "-", peer: peer, refusal) }
            if case .unavailable = refusal { return verdict(request, user: "-", peer: peer, .unavailable, refusal.sentence) }
            return verdict(request, user: "-", peer: peer, .denied, refusal.sentence)
        }
        let user = resolved.user
        loggedName = user.value
        guard shared.mayActFor(resolved.account, peer: peer) else {
            // Not a login of that user (no PAM stack runs as another user): a refusal, rate-limited.
            shared.logLimited(.notOwnAccount, .notice, "login", metadata: ["user": "\(user)", "peer": "\(peer)", "result": "denied",
                                                                    "reason": "peer may not ask about another user"])
            return .finish(.verdict(.denied, reason: "peer \(peer) may not ask about another user"))
        }
        if let switchedOff { return verdict(request, user: user.value, peer: peer, switchedOff) }
        let outcome: PolicyOutcome
        let record: UserRecord?
        do {
            // Audit mode starts no grace period: it starts when `required` does.
            (outcome, record) = try shared.evaluate(resolved, service: request.service, rhost: request.rhost,
                                                    sideEffects: config.mode != .audit,
                                                    trustedSSHKey: trustedSSHKey(request, peer: peer))
        } catch {
            if config.mode == .audit { return audited(request, user: user.value, peer: peer, storageError: error) }
            // A database outage is logged once by the store, not at every login.
            if !store.backendFailedInRequest { shared.logStorageError(error) }
            return verdict(request, user: user.value, peer: peer, .unavailable, "user file unusable")
        }
        if config.mode == .audit { return audited(request, user: user.value, peer: peer, outcome) }
        let session = LoginSession(request: request, user: user, peer: peer)
        switch outcome.decision {
        case .ignore, .deny: return verdict(request, user: user.value, peer: peer, outcome)
        case .offerEnrollment(let mandatory):
            return offerEnrollment(request, user: user, peer: peer, mandatory: mandatory)
        case .askForCode:
            if let delivered = beginDeliveredLogin(session, record: record) { return delivered }
            return .ask(.converse(codeQuestion(request, record: record)), session)
        case .locked(let until, let reason):
            var locked = session
            locked.purpose = .locked(until: until, reason: reason)
            return .ask(.converse(codeQuestion(request, record: record)), locked)
        case .grace(let until):
            return graceNotice(session, until: until)
        }
    }



    /// The next step after the user's answer: another round while enrolling, else the verdict.
    public func answer(_ typed: String, in session: LoginSession) -> Step {
        let step: Step
        switch session.purpose {
        case .enrolling(let state): step = continueEnrollment(typed, in: session, state)
        case .delivered(let state): step = continueDeliveredLogin(typed, in: session, state)
        default: step = .finish(checkCode(typed, in: session))
        }
        return abandonedIfBackendFailed(step, session.request, user: session.user.value, peer: session.peer)
    }

    /// Checks the answer against a fresh read of the file (another login may have used a code

    /// The client hung up or sent CANCEL.
    public func cancelled(_ session: LoginSession) {
        logDecision(session.request, user: session.user.value, peer: session.peer, result: .denied, reason: "conversation cancelled")
    }

    // MARK: the verdict

    /// The one way a login ends with a verdict: logged once (one line per decision), then sent.
    func verdict(_ request: LoginBegin, user: String, peer: Peer, _ result: VerdictResult, _ reason: String) -> Step {
        logDecision(request, user: user, peer: peer, result: result, reason: reason)
        return .finish(.verdict(result, reason: reason))
    }

    /// The verdict for a policy outcome that needs no question (mode off).
    func verdict(_ request: LoginBegin, user: String, peer: Peer, _ outcome: PolicyOutcome) -> Step {
        switch outcome.decision {
        case .ignore(let reason): return verdict(request, user: user, peer: peer, .ignore, reason)
        case .deny(let reason): return verdict(request, user: user, peer: peer, .denied, reason)
        default: return verdict(request, user: user, peer: peer, .denied, "policy outcome needs a question")
        }
    }

    func verdict(_ session: LoginSession, _ result: VerdictResult, _ reason: String) -> Step {
        .finish(verdictMessage(session, result, reason))
    }

    func verdictMessage(_ session: LoginSession, _ result: VerdictResult, _ reason: String) -> DaemonMessage {
        logDecision(session.request, user: session.user.value, peer: session.peer, result: result, reason: reason)
        return .verdict(result, reason: reason)
    }

    func logDecision(_ request: LoginBegin, user: String, peer: Peer, result: VerdictResult, reason: String) {
        // Such a verdict is never sent: the login is logged as abandoned instead (abandonedIfBackendFailed).
        if store.backendFailedInRequest { return }
        let level: Logger.Level = result == .success || result == .ignore ? .info : .notice
        logger.log(level: level, "login", metadata: [
            "user": "\(user)", "service": "\(loggable(request.service))", "rhost": "\(loggable(request.rhost))",
            "peer": "\(peer)", "result": "\(result.logName)", "reason": "\(reason)",
        ])
    }
}
