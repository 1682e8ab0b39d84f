// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MFAProtocol

extension MFAGate {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what the policy would do with a login right now, and which rule decides (root).",
            discussion: """
                Asks the running daemon, with its current configuration, without side effects. Use it to \
                test a policy before enabling the module. Decisions: code (a code is needed), enroll, ignore \
                (no code needed), refuse, grace (no code until a date), locked.
                """)

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The user logging in.")
        var user: String

        @Option(name: .long, help: "The PAM service (e.g. sshd, sudo).")
        var service: String = "sshd"

        @Option(name: .long, help: ArgumentHelp("The remote address; omit for a local login.", valueName: "ip"))
        var rhost: String = ""

        @Flag(name: .long, help: "Print one JSON object: user, service, rhost, decision, reason, rule, until, enrolled.")
        var json = false

        func run() throws {
            let reply = try perform(.check(version: WireProtocol.version, user: user, service: service, rhost: rhost), with: global)
            guard case .checked(let c) = reply else { throw unexpected(reply) }
            if json {
                print(JSONValue.object([
                    ("user", .string(user)), ("service", .string(service)), ("rhost", .string(rhost)),
                    ("decision", .string(c.decision)), ("reason", .string(c.reason)), ("rule", .string(c.rule)),
                    ("until", c.until == 0 ? .null : .int(Int(c.until))), ("enrolled", .bool(c.enrolled)),
                ]).text)
            } else {
                let origin = rhost.isEmpty ? "locally" : "from \(rhost)"
                print("\(user) via \(service) \(origin): \(c.decision) — \(c.reason)")
                print("  decided by \(c.rule)")
            }
        }
    }

    struct Unlock: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Clear a lockout after too many wrong codes (root).")

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The user to unlock.")
        var user: String?

        @Option(name: .long, help: ArgumentHelp("The remote address to unblock.", valueName: "ip"))
        var rhost: String?

        func validate() throws {
            if user == nil && rhost == nil { throw ValidationError("give --user NAME, --rhost IP, or both") }
        }

        func run() throws {
            let reply = try perform(.unlock(version: WireProtocol.version, user: user ?? "", rhost: rhost ?? ""), with: global)
            guard case .done(let message) = reply else { throw unexpected(reply) }
            print(message)
        }
    }
}
