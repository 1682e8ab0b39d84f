// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol

/// The last check before a code goes out by email or SMS (issue 14, finding 7): the number's
/// country must be in `sms_allowed_prefixes`, and the sender and the host must be under their
/// hourly caps (`max_codes_per_sender`, `max_codes_per_hour`). Every code send passes here: login
/// codes, resends, confirmations of `mfagate method add`, email enrollment at login.
extension Authority {
    /// Who a code is charged to: the uid behind a login's account (the account's name if NSS does
    /// not know it), so the same person's logins and commands share one budget however the
    /// addresses or spellings vary.
    func sender(ofLogin user: UserName) -> String {
        Accounts.uid(ofUser: user.value).map { "uid \($0)" } ?? "account \(user.value)"
    }

    /// A command's sender is its peer's uid; root's commands count only against the host's cap.
    func sender(ofCommand peer: Peer) -> String? { peer.isRoot ? nil : "uid \(peer.uid)" }

    /// nil: the code may go (and is counted now). Else the one sentence the user gets; the
    /// refusal is logged (rate-limited).
    func codeSendRefusal(_ method: LoginMethod, to address: String, sender: String?, user: UserName, purpose: String) -> String? {
        let now = environment.now()
        let reason: String
        let shown: String
        if method == .sms && !PhonePrefix.allows(config.smsAllowedPrefixes, address) {
            reason = "number outside sms_allowed_prefixes"
            shown = PhonePrefix.refusal(config.smsAllowedPrefixes, address)
        } else {
            delivery.caps.perSender = config.maxCodesPerSender
            delivery.caps.perHour = config.maxCodesPerHour
            switch delivery.caps.check(sender: sender, now: now) {
            case .allowed:
                delivery.caps.record(sender: sender, now: now)
                return nil
            case .senderLimit(let next):
                reason = "sender limit (max_codes_per_sender)"
                shown = "No code was sent: \(config.maxCodesPerSender) codes were sent for you in the last hour (max_codes_per_sender); the next one can go from \(UTCTime.format(next))"
            case .hostLimit(let next):
                reason = "host limit (max_codes_per_hour)"
                shown = "No code was sent: this host has sent its \(config.maxCodesPerHour) codes for this hour (max_codes_per_hour); the next one can go from \(UTCTime.format(next))"
            }
        }
        logLimited(.codeNotSent, .notice, "delivery", metadata: [
            "user": "\(user)", "method": "\(method.rawValue)", "to": "\(DeliveryAddress.masked(address, method: method))",
            "purpose": "\(purpose)", "sender": "\(sender ?? "root")", "result": "not sent (\(reason))",
        ])
        return shown
    }
}
