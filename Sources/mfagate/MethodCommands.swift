// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys
import MFAProtocol

extension MFAGate {
    /// `mfagate method add|confirm|list|prefer|remove` (issue 10).
    struct Method: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Get codes by email or SMS too: add, confirm, list, prefer or remove a login method.",
            discussion: """
                Methods are totp (the app or token of your enrollment), email and sms; the host's \
                methods setting says which are allowed. An email address or phone number counts only \
                once you type the code sent to it. Adding or removing one needs a current code from \
                the app or a recovery code (root with --user does not). Removing totp is the same as \
                mfagate disable: the whole enrollment goes.
                """,
            subcommands: [Add.self, Confirm.self, List.self, Prefer.self, Remove.self])

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Add an email address or a phone number (E.164, like +4915112345678).",
                discussion: "Sends a code to it and asks for it (type resend for a new one). Without a terminal, confirm later with: mfagate method confirm METHOD CODE")

            @OptionGroup var global: GlobalOptions

            @Argument(help: "email or sms.")
            var method: String

            @Argument(help: "The address or number (email: default from the host's email_address_pattern).")
            var address: String?

            @Option(name: .long, help: "Root: act for this user (no proof needed).")
            var user: String?

            @Option(name: .long, help: ArgumentHelp("Proof: a current code from the app or an unused recovery code (else asked for). "
                                                    + "Visible to every local user in ps; - reads it from standard input.", valueName: "code"))
            var code: String?

            @Flag(name: .long, help: "Print one JSON object at the end: user, method, and recovery_codes if this is the first method (else message); prompts go to standard error.")
            var json = false

            func validate() throws {
                if method == "sms" && address == nil { throw ValidationError("give the phone number, like +4915112345678") }
            }

            func run() throws {
                var proof = try secretOption(code, option: "--code", prompt: "Current code from your app or a recovery code: ") ?? ""
                // Proof is needed only when there is an enrollment to protect.
                if proof.isEmpty && getuid() != 0,
                   case .status(let s) = try ask(.status(version: WireProtocol.version, user: user ?? ""), with: global), s.enrolled {
                    proof = try requireProof("Current code from your app or a recovery code: ", to: json ? OutputStream.errors : .standard)
                }
                let reply = try perform(.method(MethodRequest(.add, user: user ?? "", method: method, address: address ?? "", code: proof)),
                                        with: global)
                guard case .done(let text) = reply else { throw unexpected(reply) }
                emit(text + "\n", to: json ? OutputStream.errors : .standard)
                try confirmInteractively(method: method, user: user ?? "", global: global, json: json)
            }
        }

        struct Confirm: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Confirm a method being added with the code sent to it (or `resend`).")

            @OptionGroup var global: GlobalOptions

            @Argument(help: "email or sms.")
            var method: String

            @Argument(help: "The code from the message, or resend; - reads it from standard input.")
            var code: String

            @Option(name: .long, help: "Root: act for this user.")
            var user: String?

            @Flag(name: .long, help: "Print one JSON object: user, method, and recovery_codes if this is the first method (else message).")
            var json = false

            func run() throws {
                // A sent code is short-lived and only its own user may confirm it, so no warning for the inline form.
                var typed = code
                if code == "-" {
                    guard let line = readSecretLine("Code from the message: "), !line.isEmpty else {
                        mfa_write_stderr("mfagate: nothing was read from standard input; nothing was changed\n")
                        throw ExitCode(2)
                    }
                    typed = line
                }
                let reply = try perform(.method(MethodRequest(.confirm, user: user ?? "", method: method, code: typed)), with: global)
                switch reply {
                case .done(let text): print(json ? methodJSON(user: user ?? "", method: method, message: text).text : text)
                case .enrolled(let e): printFirstMethod(e, method: method, json: json)
                default: throw unexpected(reply)
                }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show your login methods (root: anyone's with --user).")

            @OptionGroup var global: GlobalOptions

            @Option(name: .long, help: "Root: the user to ask about.")
            var user: String?

            @Flag(name: .long, help: "Print one JSON object: user, preferred, methods (method, address, allowed).")
            var json = false

            func run() throws {
                let reply = try perform(.method(MethodRequest(.list, user: user ?? "")), with: global)
                guard case .methods(let m) = reply else { throw unexpected(reply) }
                if json {
                    print(JSONValue.object([
                        ("user", .string(m.user)), ("preferred", .string(m.preferred)),
                        ("methods", .array(m.entries.map { e in
                            .object([("method", .string(e.method)), ("address", e.detail.isEmpty ? .null : .string(e.detail)),
                                     ("allowed", .bool(e.allowed))])
                        })),
                    ]).text)
                    return
                }
                for e in m.entries {
                    let first = (e.method == m.preferred || (m.preferred == "totp" && e.method == "hotp")) ? " (asked first)" : ""
                    let off = e.allowed ? "" : " (not allowed on this host now)"
                    print("\(m.user): \(e.method)\(e.detail.isEmpty ? "" : " \(e.detail)")\(first)\(off)")
                }
            }
        }

        struct Prefer: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Choose the method asked first at login (totp, email or sms).")

            @OptionGroup var global: GlobalOptions

            @Argument(help: "totp, email or sms.")
            var method: String

            @Option(name: .long, help: "Root: act for this user.")
            var user: String?

            func run() throws {
                let reply = try perform(.method(MethodRequest(.prefer, user: user ?? "", method: method)), with: global)
                guard case .done(let text) = reply else { throw unexpected(reply) }
                print(text)
            }
        }

        struct Remove: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Remove a method (needs a current code or a recovery code; totp removes the whole enrollment).")

            @OptionGroup var global: GlobalOptions

            @Argument(help: "email, sms, or totp (= mfagate disable).")
            var method: String

            @Option(name: .long, help: "Root: act for this user (no code needed).")
            var user: String?

            @Option(name: .long, help: ArgumentHelp("A current code or an unused recovery code (else asked for). "
                                                    + "Visible to every local user in ps; - reads it from standard input.", valueName: "code"))
            var code: String?

            func run() throws {
                var proof = try secretOption(code, option: "--code", prompt: "Current code from your app or a recovery code: ") ?? ""
                if proof.isEmpty && getuid() != 0 {
                    proof = try requireProof("Current code from your app or a recovery code: ")
                }
                let reply = try perform(.method(MethodRequest(.remove, user: user ?? "", method: method, code: proof)), with: global)
                switch reply {
                case .done(let text), .changed(_, let text): print(text)
                default: throw unexpected(reply)
                }
            }
        }
    }
}

/// Asks for the code sent to a method being added until it is right, `resend` sends another;
/// at end of input (no terminal) it says how to confirm later.
func confirmInteractively(method: String, user: String, global: GlobalOptions, json: Bool = false) throws {
    let out = json ? OutputStream.errors : .standard
    while true {
        guard let typed = readAnswer("Code from the message (or resend): ", to: out), !typed.isEmpty else {
            let text = "Not confirmed yet. Confirm within 5 minutes with: mfagate method confirm \(method) CODE"
            if json { print(methodJSON(user: user, method: method, message: text).text) } else { emit(text + "\n", to: out) }
            return
        }
        let reply = try ask(.method(MethodRequest(.confirm, user: user, method: method, code: typed)), with: global)
        switch reply {
        case .done(let text):
            if typed.lowercased() != "resend" {
                print(json ? methodJSON(user: user, method: method, message: text).text : text)
                return
            }
            emit(text + "\n", to: out)
        case .enrolled(let e):
            printFirstMethod(e, method: method, json: json)
            return
        case .error(.wrongCode, let text), .error(.tooManyCodes, let text), .error(.deliveryFailed, let text):
            emit("Not confirmed: \(text)\n", to: out)
        case .error(_, let text):
            mfa_write_stderr("mfagate: \(text)\n")
            throw ExitCode(1)
        default:
            throw unexpected(reply)
        }
    }
}

/// The user had no enrollment: this method is now their second factor, with recovery codes.
func printFirstMethod(_ e: EnrolledReply, method: String, json: Bool = false) {
    if json {
        print(recoveryCodesJSON(user: e.user, codes: e.recoveryCodes, extra: [("method", .string(method))]).text)
        return
    }
    print("Enrolled \(e.user) with \(method) codes: logins now send a code there.")
    printRecoveryCodes(e.recoveryCodes)
}

/// A method confirmed that was not the user's first: no new codes, only what happened.
func methodJSON(user: String, method: String, message: String) -> JSONValue {
    .object([("user", user.isEmpty ? .null : .string(user)), ("method", .string(method)), ("message", .string(message))])
}
