// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAProtocol
import MFAStore
import MFATerminalQR

/// Where an enrollment offered at login stands (`enroll_at_login = yes` or `invite`, user not enrolled).
public struct LoginEnrollment: Sendable {
    enum Stage: Sendable {
        case awaitingCode, showingRecoveryCodes
        /// `enroll_at_login = invite`: the invite code comes first (Invites.swift).
        case awaitingInvite
        /// The user chose email instead of an app; a code went to this address (LoginFlow+EmailEnrollment.swift).
        case awaitingEmailCode(String)
    }
    /// Mode required: no skipping, the login is refused without an enrollment.
    var mandatory: Bool
    var secret: [UInt8]
    var attemptsLeft: Int
    var stage: Stage = .awaitingCode
    /// CONVERSE rounds sent (the shim accepts 8 per login); counted on the email path.
    var rounds = 1
    init(mandatory: Bool, secret: [UInt8], attemptsLeft: Int, stage: Stage = .awaitingCode, rounds: Int = 1) {
        self.mandatory = mandatory
        self.secret = secret
        self.attemptsLeft = attemptsLeft
        self.stage = stage
        self.rounds = rounds
    }
}

/// The enrollment screen inside the login conversation. OpenSSH shows info text only glued in front
/// of the next prompt and drops text after the last one, so each round ends with a prompt: the QR
/// code and key come with `Verification code: `, the recovery codes with "Press Enter after you
/// saved them".
extension LoginFlow {
    static let loginEnrollmentAttempts = 3
    public static let savedPrompt = "Press Enter after you saved them"
    public static let invitePrompt = "Invite code: "

    func offerEnrollment(_ request: LoginBegin, user: UserName, peer: Peer, mandatory: Bool) -> Step {
        func plainVerdict(_ why: String = "") -> Step {
            let (result, reason): (VerdictResult, String) = mandatory ? (.denied, "not enrolled\(why), mode required")
                                                                     : (.ignore, "not enrolled\(why), mode optional")
            return verdict(request, user: user.value, peer: peer, result, reason)
        }
        // PAM_SILENT drops info text: the user could not see the QR code or the key.
        if request.silent { return plainVerdict() }
        let session = LoginSession(request: request, user: user, peer: peer)
        if config.enrollAtLoginNeedsInvite {
            // Only a user root invited is asked at all; anyone else is simply not enrolled.
            guard invites.hasInvite(user, now: environment.now()) else { return plainVerdict(", no invite") }
            var asking = session
            asking.purpose = .enrolling(LoginEnrollment(mandatory: mandatory, secret: [], attemptsLeft: Self.loginEnrollmentAttempts,
                                                        stage: .awaitingInvite))
            var messages = [ConversationMessage(.textInfo,
                "\(user.value), this account has no second factor yet. Type the invite code your administrator gave you to set one up.")]
            if !mandatory { messages.append(ConversationMessage(.textInfo, "Press Enter without a code to skip this for now.")) }
            messages.append(ConversationMessage(.promptEchoOff, Self.invitePrompt))
            logger.info("invite asked at login", metadata: ["user": "\(user)", "mandatory": "\(mandatory)"])
            return .ask(.converse(messages), asking)
        }
        return enrollmentScreen(session, mandatory: mandatory, rounds: 1) ?? plainVerdict()
    }

    /// The QR code and key, asking for a first code; nil if no secret could be made.
    func enrollmentScreen(_ session: LoginSession, mandatory: Bool, rounds: Int) -> Step? {
        let user = session.user
        let secret: [UInt8]
        do { secret = try environment.randomBytes(20) } catch {
            logger.error("\(error)")
            return nil
        }
        let uri = shared.otpauthURI(user: user, method: .totp, secret: secret, counter: 0)
        var messages: [ConversationMessage] = [ConversationMessage(.textInfo, enrollIntro(user.value, mandatory: mandatory))]
        if let qr = try? TerminalQR.render(uri, style: .halfBlocks) { messages.append(ConversationMessage(.textInfo, qr)) }
        messages.append(ConversationMessage(.textInfo, "Or enter this key by hand (time-based, 6 digits): \(Self.grouped(Base32.encode(secret)))"))
        if let hint = emailEnrollmentHint(user) { messages.append(ConversationMessage(.textInfo, hint)) }
        if !mandatory { messages.append(ConversationMessage(.textInfo, "Press Enter without a code to skip this for now.")) }
        messages.append(ConversationMessage(.promptEchoOff, codePrompt))
        var next = session
        next.purpose = .enrolling(LoginEnrollment(mandatory: mandatory, secret: secret, attemptsLeft: Self.loginEnrollmentAttempts,
                                                  rounds: rounds))
        logger.info("enrollment offered at login", metadata: ["user": "\(user)", "mandatory": "\(mandatory)"])
        return .ask(.converse(messages), next)
    }

    /// The answer to the invite prompt: right, the invite is used up (on disk) and the enrollment
    /// screen follows; wrong, the login is refused and counted as a wrong code.
    func continueInvite(_ typed: String, in session: LoginSession, _ state: LoginEnrollment) -> Step {
        let trimmed = typed.filter { $0 != " " && $0 != "\t" }
        if trimmed.isEmpty && !state.mandatory { return verdict(session, .ignore, "invite skipped, mode optional") }
        let now = environment.now()
        let redeemed: Bool
        do { redeemed = try invites.redeem(session.user, typed: typed, now: now) } catch {
            logger.error("\(error)")
            return verdict(session, .unavailable, "could not record the use of the invite")
        }
        guard redeemed else {
            let step = verdict(session, .denied, "wrong or expired invite code")
            books.recordFailure(user: session.user.value, rhost: session.request.rhost, config: config, now: now)
            return step
        }
        logger.notice("invite used", metadata: ["user": "\(session.user)", "service": "\(loggable(session.request.service))",
                                                "rhost": "\(loggable(session.request.rhost))"])
        var invited = session
        invited.invited = true
        return enrollmentScreen(invited, mandatory: state.mandatory, rounds: state.rounds + 1)
            ?? verdict(session, .unavailable, "could not make a secret")
    }

    /// Every enrollment at login, whatever `enroll_at_login` says, gets a line of its own (MESSAGE_ID
    /// `enrolled at login` in JournalLogHandler.swift) so a SIEM can alert on it, besides the
    /// `enrollment change` notice.
    func logEnrolledAtLogin(_ session: LoginSession, method: String) {
        logger.notice("enrolled at login", metadata: [
            "user": "\(session.user)", "service": "\(loggable(session.request.service))",
            "rhost": "\(loggable(session.request.rhost))", "tty": "\(loggable(session.request.tty))",
            "peer": "\(session.peer)", "method": "\(method)", "invite": "\(session.invited ? "yes" : "no")",
        ])
    }

    func continueEnrollment(_ typed: String, in session: LoginSession, _ state: LoginEnrollment) -> Step {
        var state = state
        var next = session
        switch state.stage {
        case .showingRecoveryCodes:
            books.recordSuccess(user: session.user.value, config: config, now: environment.now())
            return verdict(session, .success, "enrolled at login")
        case .awaitingEmailCode(let address):
            return continueEmailEnrollment(typed, in: session, state, address: address)
        case .awaitingInvite:
            return continueInvite(typed, in: session, state)
        case .awaitingCode:
            let trimmed = typed.filter { $0 != " " && $0 != "\t" }
            if trimmed.isEmpty && !state.mandatory { return verdict(session, .ignore, "enrollment skipped, mode optional") }
            if let email = startEmailEnrollment(typed, in: session, state) { return email }
            let now = environment.now()
            let candidate = UserRecord(user: session.user, parameters: .standard, secret: state.secret, created: now, recoveryCodes: [])
            guard case .accepted(var record, _, false) = shared.checkFactor(typed, against: candidate, now: now, allowRecoveryCode: false) else {
                state.attemptsLeft -= 1
                if state.attemptsLeft <= 0 { return verdict(session, .denied, "wrong enrollment code") }
                next.purpose = .enrolling(state)
                return .ask(.converse([
                    ConversationMessage(.errorMessage, "That code is not right (check the phone's clock). \(state.attemptsLeft) tries left."),
                    ConversationMessage(.promptEchoOff, codePrompt)]), next)
            }
            do {
                // Another login may have enrolled this user meanwhile: never replace an active enrollment.
                if try store.load(session.user) != nil { return verdict(session, .denied, "enrolled by another login meanwhile") }
                let codes = try shared.makeRecoveryCodes()
                record.recoveryCodes = codes.hashed
                try store.save(record)
                logEnrolledAtLogin(session, method: "totp")
                notifier.notify(.enrolled, user: session.user, command: config.notifyCommand, metadata: ["by": "login", "service": "\(loggable(session.request.service))"])
                state.stage = .showingRecoveryCodes
                next.purpose = .enrolling(state)
                return .ask(.converse([
                    ConversationMessage(.textInfo, "Enrolled. These recovery codes let you in once each if you lose the phone. They are shown only now:"),
                    ConversationMessage(.textInfo, codes.shown.map { "  " + $0 }.joined(separator: "\n")),
                    ConversationMessage(.promptEchoOn, LoginFlow.savedPrompt)]), next)
            } catch StoreError.conflict {
                // Fleet mode: another host enrolled the user between our read and our write.
                return verdict(session, .denied, "enrolled by another login meanwhile")
            } catch {
                logger.error("\(error)")
                return verdict(session, .unavailable, "could not save the enrollment")
            }
        }
    }

    /// `ABCD EFGH ...`: groups of four are easier to type from a screen.
    static func grouped(_ key: String) -> String {
        var out = ""
        for (i, ch) in key.enumerated() {
            if i > 0 && i % 4 == 0 { out.append(" ") }
            out.append(ch)
        }
        return out
    }
}
