// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// `mode = audit` (issue 19, part 5): a report-only rollout. The policy is evaluated as under
/// `required` (with every other key as written), nobody is asked anything, and every login gets
/// IGNORE; what the policy would have done (code, enroll, refuse, grace, locked, unavailable, or
/// ignore) and the rule that decided are logged and appended to `STATE/audit` (MFAStore/AuditLog),
/// which `mfagate report` summarises (AuditReport.swift). Audit mode starts no grace period and
/// counts no failure. A record that cannot be written is logged; the login still gets IGNORE.
/// Records asked for by non-root peers are rate-limited (RefusalLog.swift: 20 per 10 s together).
extension LoginFlow {
    func audited(_ request: LoginBegin, user: String, peer: Peer, _ outcome: PolicyOutcome) -> Step {
        record(AuditRecord(time: environment.now(), user: user, service: request.service, rhost: request.rhost, outcome: outcome), peer: peer)
    }

    /// The typed name led to no account (or NSS failed): a required login would have been refused.
    func audited(_ request: LoginBegin, user: String, peer: Peer, _ refusal: AccountRefusal) -> Step {
        let decision: String
        if case .unavailable = refusal { decision = "unavailable" } else { decision = "refuse" }
        return record(AuditRecord(time: environment.now(), user: user, service: request.service, rhost: request.rhost,
                                  decision: decision, rule: "account lookup (NSS)", reason: refusal.sentence), peer: peer)
    }

    /// The user's record could not be read: a required login would have failed closed.
    func audited(_ request: LoginBegin, user: String, peer: Peer, storageError: StoreError) -> Step {
        record(AuditRecord(time: environment.now(), user: user, service: request.service, rhost: request.rhost,
                           decision: "unavailable", rule: "store", reason: "user file unusable"), peer: peer)
    }

    private func record(_ record: AuditRecord, peer: Peer) -> Step {
        let ignore = Step.finish(.verdict(.ignore, reason: "mode audit: would \(record.decision) (\(record.rule))"))
        // sshd, sudo, su and login run as root; a non-root peer is a user's own program, and any user
        // can script the socket: such records (and their lines) are rate-limited together.
        if !peer.isRoot && !shared.mayLog(.auditOfUnprivilegedPeer) { return ignore }
        logger.log(level: .info, "audit", metadata: [
            "user": "\(record.user)", "service": "\(loggable(record.service))", "rhost": "\(loggable(record.rhost))",
            "peer": "\(peer)", "result": "ignore", "would": "\(record.decision)", "rule": "\(record.rule)",
            "reason": "\(record.reason)",
        ])
        do { try shared.audit.append(record) } catch {
            shared.logLimited(.storageError, .error, "could not write the audit record: \(error)")
        }
        return ignore
    }
}
