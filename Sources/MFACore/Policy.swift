/// Host-wide MFA mode (config key `mode`).
public enum MFAMode: String, Sendable, CaseIterable {
    /// Every user must give a code; users without an enrollment are refused.
    case required
    /// Enrolled users must give a code; the others are left to the rest of the PAM stack.
    case optional
    /// The module has no opinion on anyone.
    case off
}

/// What the daemon decided before asking anything: whether to prompt, or the verdict straight away.
public enum LoginDecision: Sendable, Equatable {
    case askForCode
    /// The user has no enrollment and may create one at this login (issue 4: QR code in the prompt).
    /// `mandatory`: without it the login is refused; otherwise an empty answer skips (PAM_IGNORE).
    case offerEnrollment(mandatory: Bool)
    case ignore(reason: String)
    case deny(reason: String)
}

public enum Policy {
    /// The skeleton's policy table. Never answers success for "not needed": that is `ignore`, so a
    /// `sufficient` line in an admin's stack cannot skip the password.
    /// `enrollAtLogin` (config `enroll_at_login`): unenrolled users get the enrollment screen instead.
    public static func decide(mode: MFAMode, enrolled: Bool, enrollAtLogin: Bool = false) -> LoginDecision {
        switch (mode, enrolled) {
        case (.off, _): return .ignore(reason: "mode off")
        case (_, true): return .askForCode
        case (_, false) where enrollAtLogin: return .offerEnrollment(mandatory: mode == .required)
        case (.optional, false): return .ignore(reason: "not enrolled, mode optional")
        case (.required, false): return .deny(reason: "not enrolled, mode required")
        }
    }
}
