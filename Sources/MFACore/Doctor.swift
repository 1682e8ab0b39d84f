// SPDX-License-Identifier: Apache-2.0
/// `mfagate doctor`: will a login actually reach pam_mfagate? From a service's auth stack
/// (PAMStack), its walk (PAMWalk) and sshd's effective settings (SSHDSettings), the findings an admin
/// acts on, each with what to change. Pure: the CLI reads the files and runs `sshd -T`.

public struct DoctorFinding: Equatable, Sendable {
    public enum Kind: String, Sendable { case problem, note }
    public var kind: Kind
    /// A stable name for scripts and tests (README, "Troubleshooting: mfagate doctor").
    public var code: String
    public var text: String
    public var fix: String

    public init(_ kind: Kind, _ code: String, _ text: String, fix: String) {
        self.kind = kind
        self.code = code
        self.text = text
        self.fix = fix
    }
}

/// What one service's auth stack does with pam_mfagate.
public struct StackDiagnosis: Equatable, Sendable {
    public var service: String
    public var stack: PAMStack?
    /// pam_mfagate's line on the path where every module succeeds, and its place among the modules
    /// that run there (1-based) out of `modulesRun`.
    public var module: PAMEntry?
    public var position: Int?
    public var modulesRun: Int
    public var findings: [DoctorFinding]

    /// Every login through this stack needs pam_mfagate's yes (or its PAM_IGNORE: not needed by policy).
    public var gates: Bool { module != nil && !findings.contains { $0.kind == .problem && Doctor.bypassCodes.contains($0.code) } }

    public var summary: String {
        guard let module, let position else { return "pam_mfagate does not run" }
        return "pam_mfagate runs as auth module \(position) of \(modulesRun) (\(module.control.text), \(module.place))"
    }
}

public struct DoctorWay: Equatable, Sendable {
    public enum Status: String, Sendable {
        case mfa, noMFA = "no-mfa", notOffered = "not-offered"
    }
    /// `password`, `key`, `key + code` or `console`.
    public var way: String
    public var status: Status
    public var detail: String
    public var findings: [DoctorFinding]
}

public enum Doctor {
    /// Findings that let some login through without pam_mfagate's yes.
    public static let bypassCodes: Set<String> = ["no-service", "not-in-stack", "stack-file", "skipped-by", "wrong-code-passes", "code-skips-password"]

    static let addLine = "add `auth required pam_mfagate.so` after the password module (on Debian: after `@include common-auth`)"

    /// The diagnosis of one service's stack; `socketPath` is the daemon's (mfagate.conf's `socket`),
    /// `configFile` where it comes from.
    /// `console`: the service is the console's, which admins often keep free of the code on purpose
    /// (the way in when a phone is lost): the module missing there is a note, not a problem.
    /// `profileInstalled`: /usr/share/pam-configs/mfagate exists (pam-auth-update writes the line).
    public static func diagnose(service: String, stack: PAMStack?, directory: String, socketPath: String, configFile: String,
                                console: Bool = false, profileInstalled: Bool = true) -> StackDiagnosis {
        guard let stack else {
            return StackDiagnosis(service: service, stack: nil, module: nil, position: nil, modulesRun: 0, findings: [
                DoctorFinding(.problem, "no-service", "\(directory)/\(service) does not exist: PAM uses the `other` service for \(service)",
                              fix: "create \(directory)/\(service) and \(addLine)"),
            ])
        }
        var findings = stack.problems.map { DoctorFinding(.problem, "stack-file", "\($0.place): \($0.text)", fix: "correct that line") }
        let entries = stack.entries
        let modules = entries.filter(PAMWalk.isMFAgate)
        let path = PAMWalk.usualPath(stack)
        let index = path.firstIndex(where: PAMWalk.isMFAgate)
        guard let first = modules.first else {
            findings.append(DoctorFinding(console ? .note : .problem, "not-in-stack",
                                          "pam_mfagate is not in the auth stack of \(service) (\(directory)/\(service) and the files it includes)"
                                              + (console ? ": console logins need no code, which is fine if the console is meant as the way in when a phone is lost" : ""),
                                          fix: "in \(directory)/\(service), \(addLine)"))
            return StackDiagnosis(service: service, stack: stack, module: nil, position: nil, modulesRun: path.count, findings: findings)
        }
        let module = index.map { path[$0] } ?? first
        let hasPassword = entries.contains { PAMWalk.passwordModules.contains($0.moduleName) }
        let ends = PAMWalk.ends(stack)

        for number in Set(ends.filter { $0.succeeds && $0.mfa == .notRun }.compactMap(\.skippedBy)).sorted() {
            guard let e = entries.first(where: { $0.number == number }) else { continue }
            let what = PAMWalk.passwordModules.contains(e.moduleName) ? "a right password alone logs in" : "the login succeeds without a code"
            let how: String
            if case .jump(let n) = e.control.action(for: .success) {
                how = "jumps \(n) module line(s) on success, over pam_mfagate"
            } else {
                how = "ends the stack when it succeeds, before pam_mfagate runs"
            }
            findings.append(DoctorFinding(.problem, "skipped-by", "`auth \(e.control.text) \(e.module)` at \(e.place) \(how): \(what)",
                                          fix: "make that line `required` (or put pam_mfagate where the jump lands: after the module it jumps to), so every success passes pam_mfagate"))
        }
        if ends.contains(where: { $0.succeeds && $0.mfa == .notRun && $0.skippedBy == nil }) && index == nil {
            findings.append(DoctorFinding(.problem, "skipped-by", "pam_mfagate is never reached on the path where every module succeeds",
                                          fix: "check the controls before \(first.place)"))
        }
        if ends.contains(where: { $0.succeeds && $0.mfa == .failure }) {
            findings.append(DoctorFinding(.problem, "wrong-code-passes",
                                          "a wrong code does not stop the login: `\(module.control.text)` at \(module.place) lets pam_mfagate's failure through",
                                          fix: "use `auth required pam_mfagate.so` (or requisite)"))
        }
        if hasPassword && ends.contains(where: { $0.succeeds && $0.mfa == .success && !$0.passwordChecked }) {
            let done = module.control.action(for: .success) == .done
            let lenient = entries.filter { PAMWalk.passwordModules.contains($0.moduleName) && ![.bad, .die].contains($0.control.action(for: .failure)) }
            let which = lenient.map { "`auth \($0.control.text) \($0.module)` at \($0.place)" }.joined(separator: " and ")
            findings.append(DoctorFinding(.problem, "code-skips-password",
                                          done ? "`auth \(module.control.text) pam_mfagate` at \(module.place) ends the stack on a right code: the password is never checked"
                                               : "a right code logs in without a right password: \(which.isEmpty ? "the password module" : which) lets a wrong password through",
                                          fix: done ? "use `required` instead of `\(module.control.text)`"
                                                    : "make the password module `required` (or keep Debian's `[success=1 default=ignore]` followed by `requisite pam_deny.so`)"))
        }
        if let index, let passwordIndex = path.firstIndex(where: { PAMWalk.passwordModules.contains($0.moduleName) }), index < passwordIndex {
            let p = path[passwordIndex]
            findings.append(DoctorFinding(.problem, "before-password",
                                          "pam_mfagate (\(module.place)) runs before the password module \(p.moduleName) (\(p.place)): the code is asked first, so anyone can try codes, and lock the user out, without knowing the password",
                                          fix: "move the pam_mfagate line after \(p.moduleName) (after `@include common-auth`)"))
        }
        for m in modules {
            let socket = m.arguments.last(where: { $0.hasPrefix("socket=") }).map { String($0.dropFirst(7)) } ?? defaultSocket
            if socket != socketPath {
                findings.append(DoctorFinding(.problem, "socket-mismatch",
                                              "pam_mfagate at \(m.place) connects to \(socket), but mfagated listens on \(socketPath) (`socket` in \(configFile)): every login fails (or skips the code with failmode=safe)",
                                              fix: "give the module socket=\(socketPath), or set the same socket in \(configFile)"))
            }
            if m.arguments.contains("failmode=safe") {
                findings.append(DoctorFinding(.note, "failmode-safe", "failmode=safe at \(m.place): while mfagated is down or unreachable, logins skip the code",
                                              fix: "remove failmode=safe if a login without the daemon must fail"))
            }
            if m.insidePamAuthUpdateBlocks && !profileInstalled {
                findings.append(DoctorFinding(.note, "pam-auth-update", "pam_mfagate at \(m.place) was written by hand into the blocks pam-auth-update manages, with no mfagate profile in /usr/share/pam-configs: the next `pam-auth-update --force` drops it and logins stop asking for the code",
                                              fix: "install the package's profile and run `pam-auth-update --enable mfagate`, or put the line in \(directory)/\(service) after `@include common-auth`"))
            }
            if m.optionalModule {
                findings.append(DoctorFinding(.note, "dash-module", "`-auth` at \(m.place): if pam_mfagate.so is missing (the package removed), PAM skips it silently and logins need no code",
                                              fix: "write `auth` without the dash"))
            }
        }
        if modules.count > 1 {
            findings.append(DoctorFinding(.note, "several-modules", "pam_mfagate appears \(modules.count) times (\(modules.map(\.place).joined(separator: ", "))): a login may be asked twice",
                                          fix: "keep one pam_mfagate line"))
        }
        return StackDiagnosis(service: service, stack: stack, module: index == nil ? nil : module, position: index.map { $0 + 1 },
                              modulesRun: path.count, findings: findings)
    }

    /// The shim's compiled-in socket (mfg_frame.h, MFG_DEFAULT_SOCKET).
    public static let defaultSocket = "/run/mfagate/mfagated.sock"

    static let keyPlusCode = "AuthenticationMethods publickey,keyboard-interactive (with KbdInteractiveAuthentication yes and UsePAM yes)"

    /// The SSH ways in, from sshd's effective settings and the diagnosis of its PAM service.
    public static func sshWays(_ s: SSHDSettings, _ stack: StackDiagnosis) -> [DoctorWay] {
        let lists = s.usableLists
        let viaPAM: ([String]) -> Bool = { $0.contains("keyboard-interactive") && s.usePAM }
        let keyish: ([String]) -> Bool = { $0.contains("publickey") || $0.contains("hostbased") || $0.contains("gssapi-with-mic") }
        let usePAMOff = DoctorFinding(.problem, "usepam-off", "UsePAM no: sshd runs no PAM auth stack, so pam_mfagate never runs", fix: "set UsePAM yes in sshd_config")
        let kbdOff = DoctorFinding(.problem, "kbdinteractive-off",
                                   "KbdInteractiveAuthentication no: sshd never runs the keyboard-interactive step in which pam_mfagate asks for the code",
                                   fix: "set KbdInteractiveAuthentication yes in sshd_config")
        let stackWay: () -> (DoctorWay.Status, String) = { stack.gates ? (.mfa, stack.summary) : (.noMFA, stack.summary + "; see the stack's problems") }
        var ways: [DoctorWay] = []

        // password: lists without a key.
        let plain = lists.filter { !keyish($0) }
        var passwordFindings: [DoctorFinding] = []
        var passwordStatus = DoctorWay.Status.notOffered
        var passwordDetail = "no method list logs in without a key"
        if !plain.isEmpty {
            passwordStatus = .mfa
            passwordDetail = stackWay().1
            for list in plain {
                if viaPAM(list) {
                    if !stack.gates { passwordStatus = .noMFA }
                } else if list.contains("password") && s.usePAM {
                    passwordStatus = .noMFA
                    passwordFindings.append(DoctorFinding(.problem, "password-method",
                        "PasswordAuthentication yes\(s.authenticationMethods == nil ? "" : " (list \(list.joined(separator: ",")))"): sshd's password method answers pam_mfagate's prompt with the password, so enrolled users cannot log in that way and the others need no code",
                        fix: "set PasswordAuthentication no; passwords and codes are asked by keyboard-interactive"))
                } else {
                    passwordStatus = .noMFA
                    if !s.usePAM && !passwordFindings.contains(usePAMOff) { passwordFindings.append(usePAMOff) }
                }
            }
            if passwordStatus == .noMFA && passwordDetail == stack.summary { passwordDetail = "some logins without a key get in without pam_mfagate" }
        }
        if !s.kbdInteractive { passwordFindings.append(kbdOff) }
        ways.append(DoctorWay(way: "password", status: passwordStatus, detail: passwordDetail, findings: passwordFindings))

        // key: a key (or host/GSSAPI) alone.
        let keyOnly = lists.filter { keyish($0) && !viaPAM($0) && !($0.contains("password") && s.usePAM) }
        if keyOnly.isEmpty {
            ways.append(DoctorWay(way: "key", status: .notOffered, detail: s.publicKey ? "a key alone is not enough" : "PubkeyAuthentication no", findings: []))
        } else {
            let text = s.authenticationMethods == nil
                ? "AuthenticationMethods any with PubkeyAuthentication yes: a key alone logs in, and key logins skip PAM"
                : "AuthenticationMethods allows \(keyOnly.map { $0.joined(separator: ",") }.joined(separator: " and ")) alone: key logins skip PAM"
            ways.append(DoctorWay(way: "key", status: .noMFA, detail: "a key logs in without pam_mfagate",
                                  findings: [DoctorFinding(.problem, "key-skips-pam", text, fix: "set \(keyPlusCode)")]))
        }

        // key + code.
        let keyAndCode = lists.filter { keyish($0) && viaPAM($0) }
        var keyFindings: [DoctorFinding] = []
        if let configured = s.authenticationMethods, !s.kbdInteractive,
           configured.contains(where: { $0.contains("publickey") && $0.contains("keyboard-interactive") }) {
            keyFindings.append(kbdOff)
        }
        if !s.usePAM, let configured = s.authenticationMethods, configured.contains(where: { $0.contains("keyboard-interactive") }) {
            keyFindings.append(usePAMOff)
        }
        if keyAndCode.isEmpty {
            ways.append(DoctorWay(way: "key + code", status: .notOffered, detail: "for it: \(keyPlusCode)", findings: keyFindings))
        } else {
            let (status, detail) = stackWay()
            ways.append(DoctorWay(way: "key + code", status: status, detail: detail, findings: keyFindings))
        }
        return ways
    }

    /// The console way: the `login` service's stack alone.
    public static func consoleWay(_ stack: StackDiagnosis) -> DoctorWay {
        if stack.stack == nil { return DoctorWay(way: "console", status: .notOffered, detail: "no \(stack.service) service", findings: []) }
        return DoctorWay(way: "console", status: stack.gates ? .mfa : .noMFA, detail: stack.summary, findings: [])
    }
}
