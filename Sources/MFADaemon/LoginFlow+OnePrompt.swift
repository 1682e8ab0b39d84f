// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAProtocol
import MFAStore

/// `forward_pass` (issue 19 part 3): a module that asks one combined question ("Password and code")
/// splits the answer itself and sends only the code; the daemon never sees the password. It needs
/// to know which prompt takes a login code and how long the user's codes are: the daemon marks that
/// prompt with a `codeDigits` message, only for a module that asked for it (LOGIN_BEGIN flag bit 3).
extension LoginFlow {
    /// The mark a one-prompt module needs before the code prompt (`codeQuestion`): the user's code
    /// length; nothing for any other module. A locked login gets the same mark (its prompt looks
    /// the same as any other). Without a record the standard 6 digits.
    func codeDigitsMark(_ request: LoginBegin, record: UserRecord?) -> [ConversationMessage] {
        guard request.onePrompt else { return [] }
        let digits = record?.parameters.digits ?? OTPParameters.standard.digits
        return [ConversationMessage(.codeDigits, "\(digits)")]
    }
}
