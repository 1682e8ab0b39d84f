// SPDX-License-Identifier: Apache-2.0
/// Every way a PAM auth stack can end, given what each module may answer, with Linux-PAM's rules
/// (pam.conf(5); libpam/pam_dispatch.c): the impression a module leaves, `done`/`die` ending the
/// (sub)stack, jumps skipping modules (a substack counts as one), `reset`. `mfagate doctor` uses it to
/// find the paths on which a login succeeds while pam_mfagate did not run or said no. Pure.
public enum PAMWalk {
    /// What pam_mfagate did on one path.
    public enum MFA: Hashable, Sendable {
        case notRun, success, ignore, failure
    }

    enum Impression: Hashable { case undecided, positive, negative }

    /// One way the stack ends.
    public struct End: Hashable, Sendable {
        var impression: Impression
        public var mfa: MFA
        /// A password module (pam_unix, pam_sss, ...) answered success on this path.
        public var passwordChecked: Bool
        /// The module line whose `done` or jump left pam_mfagate out, if one did.
        public var skippedBy: Int?
        /// The login succeeds.
        public var succeeds: Bool { impression == .positive }
    }

    /// Modules that check the account's password (or an equivalent first factor).
    public static let passwordModules: Set<String> = [
        "pam_unix", "pam_unix2", "pam_sss", "pam_ldap", "pam_krb5", "pam_winbind", "pam_userdb", "pam_systemd_home",
        "pam_pwdb", "pam_radius_auth",
    ]

    public static func isMFAgate(_ entry: PAMEntry) -> Bool { entry.moduleName == "pam_mfagate" }

    /// What a module may answer: pam_permit always succeeds, pam_deny always fails, a password module
    /// succeeds or fails, anything else may also ignore.
    static func outcomes(_ entry: PAMEntry) -> [PAMOutcome] {
        switch entry.moduleName {
        case "pam_permit": return [.success]
        case "pam_deny": return [.failure]
        case let name where passwordModules.contains(name): return [.success, .failure]
        default: return [.success, .ignore, .failure]
        }
    }

    /// Every distinct end of `stack`.
    public static func ends(_ stack: PAMStack) -> Set<End> {
        let start = End(impression: .undecided, mfa: .notRun, passwordChecked: false, skippedBy: nil)
        return run(stack.items, [start])
    }

    /// The path on which every module succeeds (the right password, then the right code): the
    /// entries that run, in order.
    public static func usualPath(_ stack: PAMStack) -> [PAMEntry] {
        var ran: [PAMEntry] = []
        _ = walkSuccess(stack.items[...], &ran)
        return ran
    }

    /// Returns whether the (sub)stack was ended by `done`/`die`.
    static func walkSuccess(_ items: ArraySlice<PAMItem>, _ ran: inout [PAMEntry]) -> Bool {
        var index = items.startIndex
        while index < items.endIndex {
            switch items[index] {
            case .substack(_, _, let inner):
                _ = walkSuccess(inner[...], &ran)
                index += 1
            case .module(let entry):
                ran.append(entry)
                let outcome = outcomes(entry).first ?? .success
                switch entry.control.action(for: outcome) {
                case .done, .die: return true
                case .jump(let n): index += n + 1
                default: index += 1
                }
            }
        }
        return false
    }

    /// Ends of walking `items` from each of `starts`. Jumps only go forward, so the states waiting at
    /// each position are complete when it is reached; `done`/`die` end this level (a substack, or the
    /// whole stack), which continues at the caller like a walk off the end.
    static func run(_ items: [PAMItem], _ starts: Set<End>) -> Set<End> {
        var waiting = [Set<End>](repeating: [], count: items.count + 1)
        waiting[0] = starts
        var ended: Set<End> = []
        for index in items.indices where !waiting[index].isEmpty {
            switch items[index] {
            case .substack(_, _, let inner):
                waiting[index + 1].formUnion(run(inner, waiting[index]))
            case .module(let entry):
                let mfaLater = items[(index + 1)...].contains { $0.entries.contains(where: isMFAgate) }
                for state in waiting[index] {
                    for outcome in outcomes(entry) {
                        var next = state
                        if isMFAgate(entry) {
                            next.mfa = outcome == .success ? .success : outcome == .ignore ? .ignore : .failure
                        } else if passwordModules.contains(entry.moduleName) && outcome == .success {
                            next.passwordChecked = true
                        }
                        let action = entry.control.action(for: outcome)
                        switch action {
                        case .ok, .done:
                            if outcome == .failure {
                                next.impression = .negative
                            } else if outcome == .success && next.impression == .undecided {
                                next.impression = .positive
                            }
                        case .bad, .die:
                            next.impression = .negative
                        case .reset:
                            next.impression = .undecided
                        case .ignore, .jump:
                            break
                        }
                        if (action == .done && next.impression != .negative) || action == .die {
                            if mfaLater && next.mfa == .notRun && next.skippedBy == nil { next.skippedBy = entry.number }
                            ended.insert(next)
                        } else if case .jump(let n) = action {
                            let target = min(index + 1 + n, items.count)
                            if items[(index + 1)..<target].contains(where: { $0.entries.contains(where: isMFAgate) })
                                && next.mfa == .notRun && next.skippedBy == nil {
                                next.skippedBy = entry.number
                            }
                            waiting[target].insert(next)
                        } else {
                            waiting[index + 1].insert(next)
                        }
                    }
                }
            }
        }
        return ended.union(waiting[items.count])
    }
}
