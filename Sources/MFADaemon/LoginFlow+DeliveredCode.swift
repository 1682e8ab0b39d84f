// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// A login that prompts for a delivered code (the user's preferred method is email or SMS).
public struct DeliveredLogin: Sendable {
    var method: LoginMethod
    var address: String
    /// CONVERSE rounds sent so far: the shim accepts at most 8 per login.
    var rounds = 0
}

/// A login of a user whose preferred method is email or SMS (issue 10): a code is sent at once,
/// `resend` sends a new one, and a code from the app or a recovery code works too.
extension LoginFlow {
    // MARK: login with a delivered code

    /// For a user who prefers email or SMS (and the host allows it): sends a fresh code and waits.
    /// nil: ask for a TOTP/recovery code as usual.
    func beginDeliveredLogin(_ session: LoginSession, record: UserRecord?) -> Step? {
        guard let record, let method = record.preferred, method.isDelivered, config.methods.contains(method),
              let address = method == .email ? record.email : record.sms else { return nil }
        var next = session
        let state = DeliveredLogin(method: method, address: address)
        next.purpose = .delivered(state)
        return sendLoginCode(next, state)
    }

    func sendLoginCode(_ session: LoginSession, _ state: DeliveredLogin) -> Step {
        let user = session.user
        let now = environment.now()
        let masked = DeliveryAddress.masked(state.address, method: state.method)
        delivery.loginCodes.sweep(now: now)
        let left = delivery.loginCodes.sendsLeft(user.value, now: now)
        if left.count == 0 {
            logger.notice("delivery", metadata: ["user": "\(user)", "method": "\(state.method.rawValue)", "to": "\(masked)",
                                                 "purpose": "login", "result": "not sent (rate limit)"])
            let live = delivery.loginCodes.hasLiveCode(user.value, now: now)
            let until = left.nextAt.map { " A new one can be sent from \(UTCTime.format($0))." } ?? ""
            let text = "\(DeliveryBook.maximumSends) codes were sent in the last \(DeliveryBook.sendWindow / 60) minutes.\(until) "
                + (live ? "Use the last code sent, or " : "Use ") + "a code from your authenticator app or a recovery code."
            return askDelivered(session, state, [ConversationMessage(.errorMessage, text)],
                                prompt: live ? "Code sent to \(masked): " : codePrompt)
        }
        guard let code = try? shared.makeDeliveredCode(), let salt = try? environment.randomBytes(16) else {
            return askDelivered(session, state, [ConversationMessage(.errorMessage, "Could not make a code; enter a code from your authenticator app or a recovery code.")],
                                prompt: codePrompt)
        }
        if let refusal = shared.codeSendRefusal(state.method, to: state.address, sender: shared.sender(ofLogin: user), user: user, purpose: "login") {
            // As at the per-user limit: a code sent before stays good until it expires.
            let live = delivery.loginCodes.hasLiveCode(user.value, now: now)
            return askDelivered(session, state, [ConversationMessage(.errorMessage, "\(refusal). "
                + (live ? "Use the last code sent, or " : "Use ") + "a code from your authenticator app or a recovery code.")],
                                prompt: live ? "Code sent to \(masked): " : codePrompt)
        }
        delivery.loginCodes.issue(user.value, code: code, salt: salt, now: now)
        let text = state.method == .email
            ? DeliveryMessage.codeEmail(code: code, to: state.address, from: config.emailFrom, account: shared.account(user),
                                        purpose: "to log in", minutes: Authority.deliveryMinutes)
            : DeliveryMessage.codeSMS(code: code, account: shared.account(user), purpose: "to log in", minutes: Authority.deliveryMinutes)
        return shared.send(text, method: state.method, to: state.address, user: user, purpose: "login", session: session) { [unowned self] outcome in
            if outcome == .sent {
                return self.askDelivered(session, state, [ConversationMessage(.textInfo,
                    "Type resend for a new code; a code from your authenticator app or a recovery code works too.")],
                    prompt: "Code sent to \(masked): ")
            }
            self.delivery.loginCodes.revoke(user.value)
            return self.askDelivered(session, state, [ConversationMessage(.errorMessage,
                "Could not send a code to \(masked). Enter a code from your authenticator app or a recovery code.")],
                prompt: codePrompt)
        }!
    }

    /// One more round of the delivered-code prompt, or the end if the shim's 8 rounds are used up.
    func askDelivered(_ session: LoginSession, _ state: DeliveredLogin, _ messages: [ConversationMessage], prompt: String) -> Step {
        var state = state
        if let end = countRound(&state.rounds, session) { return end }
        var next = session
        next.purpose = .delivered(state)
        return .ask(.converse(messages + [ConversationMessage(.promptEchoOff, prompt)]), next)
    }

    /// The answer at a delivered-code prompt: `resend`, the delivered code, a TOTP/HOTP code or a
    /// recovery code. A wrong answer counts as a failure (lockout) and is asked again while the
    /// delivered code has attempts left.
    func continueDeliveredLogin(_ typed: String, in session: LoginSession, _ state: DeliveredLogin) -> Step {
        let user = session.user
        let now = environment.now()
        if typed.trimmed(of: " \t").lowercased() == "resend" {
            logger.info("resend asked", metadata: ["user": "\(user)", "method": "\(state.method.rawValue)"])
            return sendLoginCode(session, state)
        }
        if let until = books.rhostBlockedUntil(session.request.rhost, now: now) ?? books.userLockedUntil(user.value, now: now) {
            delivery.loginCodes.revoke(user.value)
            return verdict(session, .locked, "too many wrong codes, locked until \(UTCTime.format(until))")
        }
        let delivered = delivery.loginCodes.check(user.value, typed: typed, now: now)
        let checked = checkAgainstStore(session, now: now) { record in
            if delivered == .matched {
                var updated = record
                updated.lastSuccess = now
                return .accepted(updated, reason: "\(state.method.rawValue) code", usedRecoveryCode: false)
            }
            return shared.checkFactor(typed, against: record, now: now)
        }
        switch checked {
        case .answered(let message):
            delivery.loginCodes.revoke(user.value)
            return .finish(message)
        case .rejected(let reason):
            books.recordFailure(user: user.value, rhost: session.request.rhost, config: config, now: now)
            if case .wrong(let left) = delivered, left > 0, books.userLockedUntil(user.value, now: now) == nil {
                logger.notice("wrong code, asked again", metadata: ["user": "\(user)", "service": "\(loggable(session.request.service))",
                                                                   "rhost": "\(loggable(session.request.rhost))", "tries_left": "\(left)"])
                let masked = DeliveryAddress.masked(state.address, method: state.method)
                return askDelivered(session, state, [ConversationMessage(.errorMessage, "That code is not right. \(left) tries left.")],
                                    prompt: "Code sent to \(masked): ")
            }
            delivery.loginCodes.revoke(user.value)
            return verdict(session, .denied, delivered == .noCode ? reason : "wrong code")
        }
    }


}
