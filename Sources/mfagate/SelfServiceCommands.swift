// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys
import MFACore
import MFAProtocol
import MFATerminalQR

/// Sends a request and returns the daemon's answer, errors included (for commands that retry);
/// only an unreachable daemon ends the command (exit 3).
func ask(_ message: ClientMessage, with options: GlobalOptions) throws -> DaemonMessage {
    do {
        return try options.client.request(message)
    } catch {
        mfa_write_stderr("mfagate: \(error)\n")
        throw ExitCode(3)
    }
}

/// Where a command's human text goes: standard output, or standard error when standard output
/// carries the JSON object of --json.
enum OutputStream { case standard, errors }

func emit(_ text: String, to stream: OutputStream) {
    if stream == .standard {
        print(text, terminator: "")
    } else {
        fflush(nil)  // what print buffered comes first
        mfa_write_stderr(text)
    }
}

/// Prints `prompt` (on standard error when standard output carries JSON) and reads one line from
/// the terminal (nil at end of input).
func readAnswer(_ prompt: String, to stream: OutputStream = .standard) -> String? {
    emit(prompt, to: stream)
    fflush(nil)  // every output stream: the prompt has no newline
    guard let line = readLine(strippingNewline: true) else { return nil }
    return line.trimmingSpaces
}

/// The code that proves a change is the user's own: the one given with `--code`, else one read at
/// `prompt`. No code typed: exits 1 saying nothing changed (`unchanged`, e.g. "the enrollment is unchanged").
func requireProof(_ prompt: String, unchanged: String = "nothing was changed", to stream: OutputStream = .standard) throws -> String {
    guard let typed = readAnswer(prompt, to: stream), !typed.isEmpty else {
        mfa_write_stderr("mfagate: no code given; \(unchanged)\n")
        throw ExitCode(1)
    }
    return typed
}

extension String {
    var trimmingSpaces: String {
        var view = self[...]
        while let f = view.first, f == " " || f == "\t" || f == "\r" { view = view.dropFirst() }
        while let l = view.last, l == " " || l == "\t" || l == "\r" { view = view.dropLast() }
        return String(view)
    }
}

/// `ABCD EFGH ...`: a key is easier to type from a screen in groups of four.
func groupedInFours(_ key: String) -> String {
    var out = ""
    for (i, ch) in key.enumerated() {
        if i > 0 && i % 4 == 0 { out.append(" ") }
        out.append(ch)
    }
    return out
}

/// Whether the terminal's locale is UTF-8 (LC_ALL, then LC_CTYPE, then LANG, as setlocale does).
func localeIsUTF8() -> Bool {
    for name in ["LC_ALL", "LC_CTYPE", "LANG"] {
        guard let raw = getenv(name) else { continue }
        let value = String(cString: raw)
        if value.isEmpty { continue }
        let lower = value.lowercased()
        return lower.contains("utf-8") || lower.contains("utf8")
    }
    return false
}

func formatTime(_ t: Int64?) -> String { t.map(UTCTime.format) ?? "never" }

extension MFAGate {
    struct Enroll: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enroll yourself (QR code, then a code from the app), or provision a user (root, --user).",
            discussion: """
                Self-service: shows a QR code, the key in groups of four and the otpauth:// URI, asks for a \
                code from the app and only then makes the enrollment active (a pending enrollment expires \
                after 10 minutes). Then it shows 10 recovery codes, once. Replacing an active enrollment \
                (a new phone) needs a current code or a recovery code (--code, or type it when asked). \
                Root with --user NAME provisions an enrollment that is active at once and prints the \
                secret, the URI and the recovery codes (--json: user, secret, otpauth_uri, recovery_codes).
                """)

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "Root: provision this user, active at once.")
        var user: String?

        @Option(name: .long, help: ArgumentHelp("Use this base32 secret (e.g. a hardware token's) instead of a new 160-bit one. "
                                                + "Visible to every local user in ps: give - to type it or pipe it on standard input.", valueName: "base32"))
        var secret: String?

        @Flag(name: .long, help: "A counter-based (HOTP) token instead of a time-based app.")
        var hotp = false

        @Option(name: .long, help: ArgumentHelp("HOTP: the token's next counter value.", valueName: "n"))
        var counter: UInt64?

        @Option(name: .long, help: ArgumentHelp("Re-enrolling: a current code or an unused recovery code. "
                                                + "Visible to every local user in ps; - reads it from standard input.", valueName: "code"))
        var code: String?

        @Flag(name: .customLong("no-qr"), help: "Do not draw the QR code.")
        var noQR = false

        @Flag(name: .long, help: "Root: replace an existing enrollment.")
        var force = false

        @Flag(name: .long, help: "Print one JSON object at the end: user, secret, otpauth_uri, recovery_codes (self-service: the QR code and prompts go to standard error).")
        var json = false

        func validate() throws {
            if counter != nil && !hotp { throw ValidationError("--counter needs --hotp") }
            if force && user == nil {
                throw ValidationError("--force is for root provisioning (--user NAME); self-service re-enrollment asks for a code instead")
            }
        }

        func run() throws {
            // --json/--force from a non-root user reach the daemon, which says that only root may provision.
            if let user, getuid() == 0 || json || force { return try provision(user) }
            try selfService()
        }

        func provision(_ user: String) throws {
            let secret = try secretOption(self.secret, option: "--secret", prompt: "Secret (base32): ")
            let request = EnrollRequest(user: user, secret: secret ?? "", replaceExisting: force,
                                        method: hotp ? .hotp : .totp, counter: counter.map { String($0) } ?? "")
            let reply = try perform(.enroll(request), with: global)
            guard case .enrolled(let e) = reply else { throw unexpected(reply) }
            if json { return printJSON(e) }
            print("Enrolled \(e.user) (\(hotp ? "HOTP" : "TOTP: SHA1, 6 digits, 30 s")). Give the user these, once:")
            print("  key for manual entry: \(groupedInFours(e.secret))")
            print("  URI for the app:      \(e.otpauthURI)")
            printRecoveryCodes(e.recoveryCodes)
        }

        /// The enrollment as one JSON object on standard output (`--json`), the same for root and self-service.
        func printJSON(_ e: EnrolledReply) {
            print(JSONValue.object([
                ("user", .string(e.user)), ("secret", .string(e.secret)), ("otpauth_uri", .string(e.otpauthURI)),
                ("recovery_codes", .array(e.recoveryCodes.map { .string($0) })),
            ]).text)
        }

        func selfService() throws {
            // With --json, standard output carries only the JSON object; the rest goes to standard error.
            let out = json ? OutputStream.errors : .standard
            let say: (String) -> Void = { emit($0 + "\n", to: out) }
            let secret = try secretOption(self.secret, option: "--secret", prompt: "Secret (base32): ")
            var proof = try secretOption(code, option: "--code", prompt: "Current code or a recovery code: ") ?? ""
            if proof.isEmpty, getuid() != 0,
               case .status(let s) = try ask(.status(version: WireProtocol.version, user: user ?? ""), with: global), s.enrolled {
                say("\(s.user) is already enrolled. Replacing the enrollment (a new phone) needs proof that it is you.")
                proof = try requireProof("Current code or a recovery code: ", unchanged: "the enrollment is unchanged", to: out)
            }
            let begin = EnrollBeginRequest(user: user ?? "", method: hotp ? .hotp : .totp, counter: counter.map { String($0) } ?? "",
                                           secret: secret ?? "", proof: proof)
            let reply = try perform(.enrollBegin(begin), with: global)
            guard case .pending(let p) = reply else { throw unexpected(reply) }
            if !noQR {
                say("Scan this QR code with your authenticator app:")
                if let qr = try? TerminalQR.render(p.otpauthURI, style: localeIsUTF8() ? .halfBlocks : .ascii) { say(qr) }
            }
            say("Or enter this key by hand (\(hotp ? "counter-based" : "time-based"), 6 digits): \(groupedInFours(p.secret))")
            say("URI: \(p.otpauthURI)")
            say("This enrollment becomes active only when you type a code from the app (within \(p.secondsValid / 60) minutes).")
            while true {
                guard let typed = readAnswer("Code from the app: ", to: out), !typed.isEmpty else {
                    mfa_write_stderr("mfagate: no code given; nothing was changed (the pending enrollment expires by itself)\n")
                    throw ExitCode(1)
                }
                let answer = try ask(.enrollConfirm(UserCodeRequest(user: user ?? "", code: typed)), with: global)
                switch answer {
                case .enrolled(let e):
                    if json { return printJSON(e) }
                    print("Enrolled \(e.user). From now on, logins ask for a code from this app.")
                    printRecoveryCodes(e.recoveryCodes)
                    return
                case .error(.wrongCode, let text):
                    say("Not right: \(text)")
                case .error(_, let text):
                    mfa_write_stderr("mfagate: \(text)\n")
                    throw ExitCode(1)
                default:
                    throw unexpected(answer)
                }
            }
        }
    }

    struct RecoveryCodesCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "recovery-codes",
            abstract: "Make a new set of 10 recovery codes; the old set stops working.",
            discussion: """
                Needs a current code from your authenticator (not a recovery code). A user whose only \
                methods are email or SMS gets a code sent there and types it (or passes it with --code \
                on a second run). The new codes are shown only now (--json: user, recovery_codes).
                """)

        @OptionGroup var global: GlobalOptions

        @Flag(name: .long, help: "Required: make a new set.")
        var regenerate = false

        @Option(name: .long, help: "Root: act for this user (no code needed).")
        var user: String?

        @Option(name: .long, help: ArgumentHelp("A current code from your authenticator, or the code sent to your email or phone "
                                                + "(else asked for). Visible to every local user in ps; - reads it from standard input.", valueName: "code"))
        var code: String?

        @Flag(name: .long, help: "Print one JSON object: user, recovery_codes.")
        var json = false

        func validate() throws {
            if !regenerate { throw ValidationError("give --regenerate: it replaces every recovery code (the old ones stop working)") }
        }

        func run() throws {
            var typed = try secretOption(code, option: "--code", prompt: "Current code from your authenticator: ") ?? ""
            if typed.isEmpty && getuid() != 0 {
                // No app (email/SMS only): the daemon sends a code, which comes back in a second request.
                if case .status(let s) = try ask(.status(version: WireProtocol.version, user: user ?? ""), with: global),
                   s.enrolled, s.method == "email" || s.method == "sms" {
                    let sent = try perform(.regenerateRecoveryCodes(UserCodeRequest(user: user ?? "", code: "")), with: global)
                    guard case .done(let text) = sent else { throw unexpected(sent) }
                    emit(text + "\n", to: json ? OutputStream.errors : .standard)
                    guard let answer = readAnswer("Code from the message: ", to: json ? OutputStream.errors : .standard), !answer.isEmpty else {
                        mfa_write_stderr("mfagate: no code given; the recovery codes are unchanged (run again with --code CODE within the code's lifetime)\n")
                        throw ExitCode(1)
                    }
                    typed = answer
                } else {
                    typed = try requireProof("Current code from your authenticator: ", unchanged: "the recovery codes are unchanged",
                                             to: json ? OutputStream.errors : .standard)
                }
            }
            let reply = try perform(.regenerateRecoveryCodes(UserCodeRequest(user: user ?? "", code: typed)), with: global)
            guard case .recoveryCodes(let name, let codes) = reply else { throw unexpected(reply) }
            if json {
                print(recoveryCodesJSON(user: name, codes: codes).text)
                return
            }
            print("New recovery codes for \(name); the old ones no longer work.")
            printRecoveryCodes(codes)
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove your second factor and recovery codes (needs a current code or a recovery code).")

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "Root: act for this user (no code needed; same as reset).")
        var user: String?

        @Option(name: .long, help: ArgumentHelp("A current code or an unused recovery code (else asked for). "
                                                + "Visible to every local user in ps; - reads it from standard input.", valueName: "code"))
        var code: String?

        func run() throws {
            var typed = try secretOption(code, option: "--code", prompt: "Current code or a recovery code: ") ?? ""
            if typed.isEmpty && getuid() != 0 {
                typed = try requireProof("Current code or a recovery code: ")
            }
            let reply = try perform(.disable(UserCodeRequest(user: user ?? "", code: typed)), with: global)
            guard case .changed(_, let text) = reply else { throw unexpected(reply) }
            print(text)
        }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a user's enrollment without a code (root), e.g. after a lost phone and lost recovery codes.")

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The user to reset.")
        var user: String

        func run() throws {
            let reply = try perform(.disable(UserCodeRequest(user: user, code: "")), with: global)
            guard case .changed(_, let text) = reply else { throw unexpected(reply) }
            print(text)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every enrollment (root).")

        @OptionGroup var global: GlobalOptions

        @Flag(name: .long, help: "Print a JSON array of the objects `status --json` prints.")
        var json = false

        func run() throws {
            let reply = try perform(.list(version: WireProtocol.version), with: global)
            guard case .list(let entries) = reply else { throw unexpected(reply) }
            if json {
                print(JSONValue.array(entries.map(statusJSON)).text)
            } else if entries.isEmpty {
                print("nobody is enrolled")
            } else {
                for entry in entries { print(statusLine(entry)) }
            }
        }
    }
}

/// The JSON every verb that shows new recovery codes prints (keys as `enroll --json`).
func recoveryCodesJSON(user: String, codes: [String], extra: [(String, JSONValue)] = []) -> JSONValue {
    .object([("user", .string(user))] + extra + [("recovery_codes", .array(codes.map { .string($0) }))])
}

func printRecoveryCodes(_ codes: [String]) {
    print("Recovery codes: each works once at the Verification code prompt if you lose the device.")
    print("Save them now (a password manager, or on paper); they are not shown again:")
    for code in codes { print("  \(code)") }
}

/// The stable JSON of one enrollment (README, "The CLI"). Times are Unix seconds or null.
func statusJSON(_ s: StatusReply) -> JSONValue {
    .object([
        ("user", .string(s.user)), ("enrolled", .bool(s.enrolled)), ("recovery_codes_left", .int(s.recoveryCodesLeft)),
        ("method", s.method.isEmpty ? .null : .string(s.method)),
        ("enrolled_since", s.enrolledSince.map { .int(Int($0)) } ?? .null),
        ("last_success", s.lastSuccess.map { .int(Int($0)) } ?? .null),
        ("pending", .bool(s.pending)),
    ])
}

func statusLine(_ s: StatusReply) -> String {
    guard s.enrolled else { return "\(s.user): not enrolled" + (s.pending ? " (an enrollment is waiting for its code)" : "") }
    if s.method == "unreadable" { return "\(s.user): enrollment file unreadable (see the daemon's log; mfagate reset --user \(s.user))" }
    return "\(s.user): enrolled since \(formatTime(s.enrolledSince)) (\(s.method.uppercased())), "
        + "\(s.recoveryCodesLeft) recovery code(s) left, last success \(formatTime(s.lastSuccess))"
}
