// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAProtocol
import MFAStore

/// Enrollment at login by email (issue 10): a user offered the QR code who has no authenticator app
/// may type an email address (or `email`, with `email_address_pattern`) at the same prompt. A code
/// goes there; typed back, it makes email the user's factor, and the recovery codes are shown as in
/// the app path. Only when the host's `methods` allows email.
extension LoginFlow {
    func emailEnrollmentHint(_ user: UserName) -> String? {
        guard config.methods.contains(.email) else { return nil }
        if let pattern = config.emailAddressPattern, let address = try? DeliveryAddress.fromPattern(pattern, user: user.value) {
            return "No app? Type email to get codes at \(DeliveryAddress.maskEmail(address)) instead, or type another email address."
        }
        return "No app? Type your email address instead to get codes by email."
    }

    /// The typed answer is an address (or `email`): send a confirming code. nil: it is an app code.
    func startEmailEnrollment(_ typed: String, in session: LoginSession, _ state: LoginEnrollment) -> Step? {
        guard config.methods.contains(.email) else { return nil }
        let answer = typed.trimmed(of: " \t")
        guard answer.lowercased() == "email" || answer.contains("@") else { return nil }
        let address: String
        do {
            if answer.lowercased() == "email" {
                guard let pattern = config.emailAddressPattern else {
                    return askEnrolling(session, state, [ConversationMessage(.errorMessage, "Type your email address.")], prompt: codePrompt)
                }
                address = try DeliveryAddress.fromPattern(pattern, user: session.user.value)
            } else {
                address = try DeliveryAddress.validateEmail(answer)
            }
        } catch {
            return askEnrolling(session, state, [ConversationMessage(.errorMessage, "\(error.message).")], prompt: codePrompt)
        }
        return sendEnrollmentCode(address, in: session, state)
    }

    func sendEnrollmentCode(_ address: String, in session: LoginSession, _ state: LoginEnrollment) -> Step {
        let key = shared.pendingKey(session.user, .email)
        let now = environment.now()
        let masked = DeliveryAddress.maskEmail(address)
        delivery.confirmations.sweep(now: now)
        guard delivery.confirmations.sendsLeft(key, now: now).count > 0 else {
            return askEnrolling(session, state, [ConversationMessage(.errorMessage,
                "\(DeliveryBook.maximumSends) codes were sent in the last \(DeliveryBook.sendWindow / 60) minutes; scan the QR code instead, or try again later.")],
                prompt: codePrompt)
        }
        guard let code = try? shared.makeDeliveredCode(), let salt = try? environment.randomBytes(16) else {
            return askEnrolling(session, state, [ConversationMessage(.errorMessage, "Could not make a code; scan the QR code instead.")], prompt: codePrompt)
        }
        if let refusal = shared.codeSendRefusal(.email, to: address, sender: shared.sender(ofLogin: session.user), user: session.user, purpose: "enroll") {
            return askEnrolling(session, state, [ConversationMessage(.errorMessage, "\(refusal). Scan the QR code with an app instead.")],
                                prompt: codePrompt)
        }
        delivery.confirmations.issue(key, code: code, salt: salt, now: now)
        let text = DeliveryMessage.codeEmail(code: code, to: address, from: config.emailFrom, account: shared.account(session.user),
                                             purpose: "to set up login codes by email", minutes: Authority.deliveryMinutes)
        return shared.send(text, method: .email, to: address, user: session.user, purpose: "enroll", session: session) { [unowned self] outcome in
            guard outcome == .sent else {
                self.delivery.confirmations.revoke(key)
                var back = state
                back.stage = .awaitingCode
                return self.askEnrolling(session, back, [ConversationMessage(.errorMessage,
                    "Could not send a code to \(masked). Scan the QR code with an app instead.")], prompt: codePrompt)
            }
            var next = state
            next.stage = .awaitingEmailCode(address)
            return self.askEnrolling(session, next, [ConversationMessage(.textInfo, "Type resend for a new code.")],
                                     prompt: "Code sent to \(masked): ")
        }!
    }

    func continueEmailEnrollment(_ typed: String, in session: LoginSession, _ state: LoginEnrollment, address: String) -> Step {
        let key = shared.pendingKey(session.user, .email)
        let masked = DeliveryAddress.maskEmail(address)
        if typed.trimmed(of: " \t").lowercased() == "resend" { return sendEnrollmentCode(address, in: session, state) }
        switch delivery.confirmations.check(key, typed: typed, now: environment.now()) {
        case .matched:
            break
        case .wrong(let left) where left > 0:
            return askEnrolling(session, state, [ConversationMessage(.errorMessage, "That code is not right. \(left) tries left.")],
                                prompt: "Code sent to \(masked): ")
        case .wrong, .noCode:
            return verdict(session, .denied, "wrong email enrollment code")
        }
        do {
            if try store.load(session.user) != nil { return verdict(session, .denied, "enrolled by another login meanwhile") }
        } catch {
            logger.error("\(error)")
            return verdict(session, .unavailable, "user file unusable")
        }
        guard case .enrolled(let reply) = shared.enrollByDelivery(.email, address: address, user: session.user, peer: session.peer) else {
            return verdict(session, .unavailable, "could not save the enrollment")
        }
        logEnrolledAtLogin(session, method: "email")
        var next = state
        next.stage = .showingRecoveryCodes
        return askEnrolling(session, next, [
            ConversationMessage(.textInfo, "Enrolled: logins send a code to \(masked). These recovery codes let you in once each if email fails. They are shown only now:"),
            ConversationMessage(.textInfo, reply.recoveryCodes.map { "  " + $0 }.joined(separator: "\n"))],
            prompt: LoginFlow.savedPrompt, echo: true)
    }

    /// Counts one more conversation round of a login: nil while the PAM module allows another (it
    /// takes at most 8), else the verdict that ends the login.
    func countRound(_ rounds: inout Int, _ session: LoginSession) -> Step? {
        rounds += 1
        guard rounds > WireProtocol.maximumRounds else { return nil }
        return verdict(session, .denied, "too many rounds")
    }

    /// One more round of the enrollment screen, or the end if the shim's 8 rounds are used up.
    func askEnrolling(_ session: LoginSession, _ state: LoginEnrollment, _ messages: [ConversationMessage], prompt: String,
                      echo: Bool = false) -> Step {
        var state = state
        if let end = countRound(&state.rounds, session) { return end }
        var next = session
        next.purpose = .enrolling(state)
        return .ask(.converse(messages + [ConversationMessage(echo ? .promptEchoOn : .promptEchoOff, prompt)]), next)
    }
}
