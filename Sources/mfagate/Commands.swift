#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys
import MFAProtocol

/// Options every subcommand takes. `--socket` may also come before the subcommand name.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The daemon's socket (default: $MFAGATE_SOCKET, else \(DaemonClient.defaultSocket)).", valueName: "path"))
    var socket: String?

    var client: DaemonClient {
        let fromEnvironment = getenv("MFAGATE_SOCKET").map { String(cString: $0) }
        return DaemonClient(socketPath: socket ?? fromEnvironment ?? DaemonClient.defaultSocket)
    }
}

/// Exit codes: 0 done; 1 the daemon refused (the message says why); 2 usage error; 3 daemon unreachable.
func perform(_ message: ClientMessage, with options: GlobalOptions) throws -> DaemonMessage {
    let reply: DaemonMessage
    do {
        reply = try options.client.request(message)
    } catch {
        mfa_write_stderr("mfagate: \(error)\n")
        throw ExitCode(3)
    }
    if case .error(_, let text) = reply {
        mfa_write_stderr("mfagate: \(text)\n")
        throw ExitCode(1)
    }
    return reply
}

func unexpected(_ reply: DaemonMessage) -> ExitCode {
    mfa_write_stderr("mfagate: unexpected answer from the daemon\n")
    return ExitCode(3)
}

@main
struct MFAGate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mfagate",
        abstract: "Manage second-factor (TOTP) enrollments checked by mfagated.",
        discussion: "Exit codes: 0 done, 1 refused by the daemon, 2 usage error, 3 daemon unreachable.",
        subcommands: [Enroll.self, Status.self, Check.self, Unlock.self])

    /// Lets `mfagate --socket PATH enroll ...` work by moving leading global options after the verb.
    static func reorderedArguments(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var rest = arguments[...]
        while let first = rest.first {
            if first == "--socket", rest.count >= 2 {
                leading.append(contentsOf: rest.prefix(2)); rest = rest.dropFirst(2)
            } else if first.hasPrefix("--socket=") {
                leading.append(first); rest = rest.dropFirst()
            } else { break }
        }
        guard let verb = rest.first, !leading.isEmpty else { return arguments }
        return [verb] + leading + Array(rest.dropFirst())
    }

    static func main() {
        let arguments = reorderedArguments(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

extension MFAGate {
    struct Enroll: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Provision a TOTP enrollment for a user (root), active at once.",
            discussion: "Prints the secret, the otpauth:// URI for an authenticator app and 10 single-use recovery codes. They are shown only now.")

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The user to enroll.")
        var user: String

        @Option(name: .long, help: ArgumentHelp("Use this base32 secret instead of generating a 160-bit one.", valueName: "base32"))
        var secret: String?

        @Flag(name: .long, help: "Replace an existing enrollment.")
        var force = false

        @Flag(name: .long, help: "Print one JSON object: user, secret, otpauth_uri, recovery_codes.")
        var json = false

        func run() throws {
            let reply = try perform(.enroll(EnrollRequest(user: user, secret: secret ?? "", replaceExisting: force)), with: global)
            guard case .enrolled(let e) = reply else { throw unexpected(reply) }
            if json {
                print(JSONValue.object([
                    ("user", .string(e.user)), ("secret", .string(e.secret)), ("otpauth_uri", .string(e.otpauthURI)),
                    ("recovery_codes", .array(e.recoveryCodes.map { .string($0) })),
                ]).text)
                return
            }
            var grouped = ""
            for (i, ch) in e.secret.enumerated() {
                if i > 0 && i % 4 == 0 { grouped.append(" ") }
                grouped.append(ch)
            }
            print("Enrolled \(e.user) (TOTP: SHA1, 6 digits, 30 s). Give the user these, once:")
            print("  key for manual entry: \(grouped)")
            print("  URI for the app:      \(e.otpauthURI)")
            print("Recovery codes (each works once, at the Verification code prompt):")
            for code in e.recoveryCodes { print("  \(code)") }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show whether a user is enrolled (default: yourself).")

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The user to ask about (root may ask about anyone).")
        var user: String?

        @Flag(name: .long, help: "Print one JSON object: user, enrolled, recovery_codes_left.")
        var json = false

        func run() throws {
            let reply = try perform(.status(version: WireProtocol.version, user: user ?? ""), with: global)
            guard case .status(let s) = reply else { throw unexpected(reply) }
            if json {
                print(JSONValue.object([
                    ("user", .string(s.user)), ("enrolled", .bool(s.enrolled)), ("recovery_codes_left", .int(s.recoveryCodesLeft)),
                ]).text)
            } else if s.enrolled {
                print("\(s.user): enrolled (TOTP), \(s.recoveryCodesLeft) recovery code(s) left")
            } else {
                print("\(s.user): not enrolled")
            }
        }
    }
}
