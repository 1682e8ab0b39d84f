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
/// `ifClosed`: said after "closed the connection without an answer" when the request carries a
/// field an older mfagated does not know (it refuses the frame that way).
func perform(_ message: ClientMessage, with options: GlobalOptions, ifClosed: String? = nil) throws -> DaemonMessage {
    let reply: DaemonMessage
    do {
        reply = try options.client.request(message)
    } catch let error as ClientError where error.closedWithoutAnswer && ifClosed != nil {
        mfa_write_stderr("mfagate: \(error); \(ifClosed ?? "")\n")
        throw ExitCode(3)
    } catch {
        mfa_write_stderr("mfagate: \(error)\n")
        throw ExitCode(3)
    }
    return try refusedOrAnswer(reply)
}

/// `perform` for a request with a field an older mfagated does not know: if the daemon closes the
/// connection without an answer, `older` (the same request without it) is sent instead, and the
/// answer comes back with `true`.
func perform(_ message: ClientMessage, orOlder older: ClientMessage, with options: GlobalOptions) throws -> (DaemonMessage, Bool) {
    let reply: DaemonMessage
    do {
        reply = try options.client.request(message)
    } catch let error as ClientError where error.closedWithoutAnswer {
        return (try perform(older, with: options), true)
    } catch {
        mfa_write_stderr("mfagate: \(error)\n")
        throw ExitCode(3)
    }
    return (try refusedOrAnswer(reply), false)
}

/// An ERROR answer is the daemon's sentence on stderr and exit code 1.
func refusedOrAnswer(_ reply: DaemonMessage) throws -> DaemonMessage {
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

