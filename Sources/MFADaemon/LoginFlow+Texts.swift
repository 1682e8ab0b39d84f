// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAProtocol
import MFAStore

/// The login texts an admin may word (`code_prompt`, `code_hint`, `grace_notice`; MFACore/PromptTexts)
/// and what `PAM_SILENT` means for each round that is more than a prompt (docs/protocol.md, "Silence"):
/// the PAM module drops every info and error text of a silent login; the daemon also leaves out
/// the rounds that would be nothing but a bare prompt without them (the grace notice, enrollment).
extension LoginFlow {
    /// The code prompt, as configured (`code_prompt`), ending in one space.
    var codePrompt: String { config.prompts.codePromptShown }

    /// The round that asks for a code: `code_hint` (if any) above the prompt, and the mark a
    /// `forward_pass` module needs (LoginFlow+OnePrompt). The same for a locked-out user, so the
    /// two cannot be told apart.
    func codeQuestion(_ request: LoginBegin, record: UserRecord?) -> [ConversationMessage] {
        var messages: [ConversationMessage] = []
        if let hint = config.prompts.codeHint, !request.silent { messages.append(ConversationMessage(.textInfo, hint)) }
        return messages + codeDigitsMark(request, record: record) + [ConversationMessage(.promptEchoOff, codePrompt)]
    }

    /// Required but not enrolled, in the grace period: the notice (`grace_notice`, or the built-in
    /// text) and "Press Enter to continue". Under PAM_SILENT the notice could not be shown, and a
    /// bare "Press Enter" would make no sense: IGNORE at once, as after the notice.
    func graceNotice(_ session: LoginSession, until: Int64) -> Step {
        let user = session.user.value
        if session.request.silent {
            return verdict(session, .ignore, "not enrolled, in grace period until \(UTCTime.format(until)) (silent: no notice)")
        }
        var notice = session
        notice.purpose = .graceNotice(until: until)
        let text = config.prompts.graceNotice.map { PromptTexts.fill($0, user: user, deadline: UTCTime.format(until)) }
            ?? "Multi-factor authentication is required for \(user) on this host from \(UTCTime.format(until)). "
            + "Until then you may log in without a code. Set it up now with: mfagate enroll"
        return .ask(.converse([ConversationMessage(.textInfo, text), ConversationMessage(.promptEchoOn, Self.continuePrompt)]), notice)
    }

    /// The first sentence of the enrollment screen (`enroll_intro`, or the built-in one).
    func enrollIntro(_ user: String, mandatory: Bool) -> String {
        if let intro = config.prompts.enrollIntro { return PromptTexts.fill(intro, user: user) }
        return mandatory
            ? "\(user), this login needs a second factor and you have none yet. Scan this QR code with an authenticator app:"
            : "\(user), you can protect this account with a second factor now. Scan this QR code with an authenticator app:"
    }
}
