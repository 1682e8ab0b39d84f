// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Host-wide MFA mode (config key `mode`).
public enum MFAMode: String, Sendable, CaseIterable {
    /// Every user must give a code; users without an enrollment are refused (after any grace period).
    case required
    /// Enrolled users must give a code; the others are left to the rest of the PAM stack.
    case optional
    /// The module has no opinion on anyone: the emergency switch, it overrides every other rule.
    case off
    /// A report-only rollout: the policy is evaluated as under `required`, but nobody is asked and
    /// every login gets PAM_IGNORE; the daemon records what it would have done (LoginFlow+Audit.swift).
    case audit
}

/// What the daemon decided before asking anything: whether to prompt, or the verdict straight away.
public enum LoginDecision: Sendable, Equatable {
    case askForCode
    /// The user has no enrollment and may create one at this login (issue 4: QR code in the prompt).
    /// `mandatory`: without it the login is refused; otherwise an empty answer skips (PAM_IGNORE).
    case offerEnrollment(mandatory: Bool)
    /// No code needed (PAM_IGNORE, never PAM_SUCCESS: a `sufficient` line must not skip the password).
    case ignore(reason: String)
    case deny(reason: String)
    /// Required but not enrolled, still inside the grace period: no code, a notice with the deadline.
    case grace(until: Int64)
    /// Too many wrong codes (for the user or from the address): PAM_MAXTRIES until then.
    case locked(until: Int64, reason: String)

    /// A stable word for `mfagate check --json`.
    public var word: String {
        switch self {
        case .askForCode: return "code"
        case .offerEnrollment: return "enroll"
        case .ignore: return "ignore"
        case .deny: return "refuse"
        case .grace: return "grace"
        case .locked: return "locked"
        }
    }
}

/// A decision and the rule that made it ("config line 7: exempt_groups = ops").
public struct PolicyOutcome: Sendable, Equatable {
    public var decision: LoginDecision
    public var rule: String
    public init(_ decision: LoginDecision, rule: String) {
        self.decision = decision
        self.rule = rule
    }
}

/// Everything the policy looks at for one login, gathered by the daemon (NSS, files, clock).
public struct LoginFacts: Sendable {
    public var user: String
    public var service: String
    public var rhost: String
    /// Names of every group the user is in (primary and supplementary, through NSS).
    public var groups: [String]
    public var enrolled: Bool
    /// When the daemon first saw this user without an enrollment (for the grace period).
    public var firstSeen: Int64?
    public var userLockedUntil: Int64?
    public var rhostBlockedUntil: Int64?
    public var now: Int64
    /// The user's remembered logins (`remember`), from their record.
    public var remembered: [RememberedLogin] = []
    /// The SSH key already used in this connection that `trusted_ssh_keys` trusts, described for
    /// the log (TrustedSSHKeys.match); nil: none, or the login did not come from sshd.
    public var trustedSSHKey: String?

    public init(user: String, service: String, rhost: String, groups: [String] = [], enrolled: Bool,
                firstSeen: Int64? = nil, userLockedUntil: Int64? = nil, rhostBlockedUntil: Int64? = nil, now: Int64,
                trustedSSHKey: String? = nil) {
        self.trustedSSHKey = trustedSSHKey
        self.user = user
        self.service = service
        self.rhost = rhost
        self.groups = groups
        self.enrolled = enrolled
        self.firstSeen = firstSeen
        self.userLockedUntil = userLockedUntil
        self.rhostBlockedUntil = rhostBlockedUntil
        self.now = now
    }
}

public enum Policy {
    /// `mode = off`, the emergency switch: it overrides every other rule and is decided before any
    /// fact is gathered, so a failing NSS or store cannot keep it from working (the login flow asks
    /// this before it resolves the account; `evaluate` asks it first too). nil: the mode is on.
    public static func switchedOff(_ config: DaemonConfig) -> PolicyOutcome? {
        config.mode == .off ? PolicyOutcome(.ignore(reason: "mode off"), rule: config.rule("mode")) : nil
    }

    /// Whether a user needs MFA at all, and which rule says so. Precedence, most specific first:
    /// `exempt_users`, `require_users` (a name in both is a config error), then groups, where
    /// `require_groups` beats `exempt_groups` for a user in both (when rules of equal weight
    /// disagree, the safe one wins), then `mode`.
    public static func requirement(_ config: DaemonConfig, user: String, groups: [String]) -> (required: Bool?, rule: String) {
        if config.exemptUsers.contains(user) { return (nil, config.rule("exempt_users")) }
        if config.requireUsers.contains(user) { return (true, config.rule("require_users")) }
        if groups.contains(where: config.requireGroups.contains) { return (true, config.rule("require_groups")) }
        if groups.contains(where: config.exemptGroups.contains) { return (nil, config.rule("exempt_groups")) }
        switch config.mode {
        case .required, .audit: return (true, config.rule("mode"))
        case .optional: return (false, config.rule("mode"))
        case .off: return (nil, config.rule("mode"))
        }
    }

    /// The whole decision, in this order: `mode = off`; `services`; user/group requirement;
    /// trusted networks and `trust_local`; `trusted_ssh_keys`; lockout; a remembered host
    /// (`remember`, enrolled users only); then enrollment and grace.
    /// A trusted SSH key is a second factor already given, like a trusted network: it skips the
    /// code for enrolled and unenrolled users, in `required` too, and before the lockout (which
    /// guards the code, not the account; a user locked out by someone guessing codes still logs
    /// in with the key).
    public static func evaluate(_ config: DaemonConfig, _ facts: LoginFacts) -> PolicyOutcome {
        if let off = switchedOff(config) { return off }
        if !config.services.isEmpty && !config.services.contains(facts.service) {
            return PolicyOutcome(.ignore(reason: "service \(facts.service) does not need MFA"), rule: config.rule("services"))
        }
        let (required, requirementRule) = requirement(config, user: facts.user, groups: facts.groups)
        guard let required else { return PolicyOutcome(.ignore(reason: "exempt"), rule: requirementRule) }
        if facts.rhost.isEmpty {
            if config.trustLocal { return PolicyOutcome(.ignore(reason: "local login trusted"), rule: config.rule("trust_local")) }
        } else if let address = IPNetwork.parseAddress(facts.rhost),
                  let network = config.trustedNetworks.first(where: { $0.contains(address) }) {
            return PolicyOutcome(.ignore(reason: "trusted network \(network)"), rule: config.rule("trusted_networks"))
        }
        if let key = facts.trustedSSHKey {
            return PolicyOutcome(.ignore(reason: "trusted SSH key: \(key)"), rule: config.rule("trusted_ssh_keys"))
        }
        if let until = facts.rhostBlockedUntil, until > facts.now {
            return PolicyOutcome(.locked(until: until, reason: "too many wrong codes from \(facts.rhost)"),
                                 rule: config.rule("max_failures_per_rhost"))
        }
        if let until = facts.userLockedUntil, until > facts.now {
            return PolicyOutcome(.locked(until: until, reason: "too many wrong codes"), rule: config.rule("max_failures"))
        }
        if facts.enrolled, let entry = RememberPolicy.match(facts.remembered, config, service: facts.service, rhost: facts.rhost, now: facts.now) {
            let until = entry.created.addingReportingOverflow(config.remember).partialValue
            return PolicyOutcome(.ignore(reason: "remembered: right code from \(facts.rhost) for \(facts.service) at \(UTCTime.format(entry.created)), until \(UTCTime.format(until))"),
                                 rule: config.rule("remember"))
        }
        if facts.enrolled { return PolicyOutcome(.askForCode, rule: requirementRule) }
        if !required {
            if config.enrollAtLogin {
                return PolicyOutcome(.offerEnrollment(mandatory: false), rule: "\(requirementRule); \(config.rule("enroll_at_login"))")
            }
            return PolicyOutcome(.ignore(reason: "not enrolled, MFA optional"), rule: requirementRule)
        }
        if config.gracePeriod > 0 {
            let deadline = (facts.firstSeen ?? facts.now) + config.gracePeriod
            if facts.now < deadline { return PolicyOutcome(.grace(until: deadline), rule: config.rule("grace_period")) }
        }
        if config.enrollAtLogin {
            return PolicyOutcome(.offerEnrollment(mandatory: true), rule: "\(requirementRule); \(config.rule("enroll_at_login"))")
        }
        return PolicyOutcome(.deny(reason: "not enrolled, MFA required"), rule: requirementRule)
    }
}

/// Wrong-code bookkeeping for one user or one remote address (pure; the daemon persists it).
public struct FailureRecord: Sendable, Equatable {
    /// Times of recent wrong codes (only those inside the failure window are kept).
    public var failures: [Int64] = []
    public var lockedUntil: Int64?
    public init(failures: [Int64] = [], lockedUntil: Int64? = nil) {
        self.failures = failures
        self.lockedUntil = lockedUntil
    }

    public func isLocked(at now: Int64) -> Bool { (lockedUntil ?? .min) > now }

    /// Counts a wrong code; returns true when this one starts a lockout (log it once, then).
    public mutating func recordFailure(at now: Int64, limit: Int, window: Int64, lockout: Int64) -> Bool {
        guard limit > 0 else { return false }
        failures = failures.filter { $0 > now - window }
        failures.append(now)
        if failures.count > limit { failures.removeFirst(failures.count - limit) }
        if failures.count >= limit && !isLocked(at: now) && lockout > 0 {
            lockedUntil = now + lockout
            failures = []
            return true
        }
        return false
    }

    /// Nothing worth keeping any more (so the daemon can drop the entry).
    public func isStale(at now: Int64, window: Int64) -> Bool {
        !isLocked(at: now) && failures.allSatisfy { $0 <= now - window }
    }
}

public enum UTCTime {
    /// `2026-12-02 10:00 UTC`: what a user at a login prompt can read.
    public static func format(_ unixTime: Int64) -> String {
        var t = time_t(unixTime)
        var parts = tm()
        gmtime_r(&t, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M UTC", &parts)
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
