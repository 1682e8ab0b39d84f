// SPDX-License-Identifier: Apache-2.0
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
        abstract: "Enroll in and manage the second factor (TOTP app or HOTP token) checked by mfagated.",
        discussion: "Exit codes: 0 done, 1 refused by the daemon, 2 usage error, 3 daemon unreachable.",
        subcommands: [Enroll.self, Status.self, RecoveryCodesCommand.self, Disable.self, List.self, Reset.self,
                      ImportGoogleAuthenticator.self, Check.self, Unlock.self, Invite.self, Report.self, MigrateStore.self, Fleet.self, Method.self, Relay.self, Doctor.self, Forget.self])

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
        // `method` has verbs of its own (`method add ...`): the options go after those.
        let verbs = verb == "method" ? Array(rest.prefix(2)) : [verb]
        return verbs + leading + Array(rest.dropFirst(verbs.count))
    }

    static func main() {
        // CommandLine.arguments repairs bytes that are not UTF-8 to U+FFFD: refuse them instead, so a
        // name or an address never reaches the daemon as another one.
        for index in 1..<Int(CommandLine.argc) {
            if let raw = CommandLine.unsafeArgv[index], String(validatingCString: raw) == nil {
                mfa_write_stderr("mfagate: argument \(index) is not valid UTF-8; names, addresses and values must be UTF-8\n")
                Glibc.exit(2)
            }
        }
        let arguments = reorderedArguments(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

