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
                (no code needed), refuse, grace (no code until a date), locked. With --ssh-key FILE (a public \
                key or certificate file as ssh-keygen writes it), the answer is for an SSH login that already \
                used that key, as sshd reports it: whether `trusted_ssh_keys` skips the code, and why (or why not).
                """)

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The user logging in.")
        var user: String

        @Option(name: .long, help: "The PAM service (e.g. sshd, sudo).")
        var service: String = "sshd"

        @Option(name: .long, help: ArgumentHelp("The remote address; omit for a local login.", valueName: "ip"))
        var rhost: String = ""

        @Option(name: .long, help: ArgumentHelp("A public key or certificate file (id_ed25519.pub, id_ed25519-cert.pub): as if the SSH login had used it.", valueName: "file"))
        var sshKey: String?

        @Flag(name: .long, help: "Print one JSON object: user, service, rhost, ssh_key_type, decision, reason, rule, until, enrolled.")
        var json = false

        func run() throws {
            let key = try sshKey.map(SSHKeyFileReader.read)
            let reply = try perform(.check(version: WireProtocol.version, user: user, service: service, rhost: rhost, sshKey: key),
                                    with: global, ifClosed: key == nil ? nil : "an mfagated older than this mfagate does not know --ssh-key (upgrade mfagated)")
            guard case .checked(let c) = reply else { throw unexpected(reply) }
            if json {
                print(JSONValue.object([
                    ("user", .string(user)), ("service", .string(service)), ("rhost", .string(rhost)),
                    ("ssh_key_type", key.map { .string($0.type) } ?? .null),
                    ("decision", .string(c.decision)), ("reason", .string(c.reason)), ("rule", .string(c.rule)),
                    ("until", c.until == 0 ? .null : .int(Int(c.until))), ("enrolled", .bool(c.enrolled)),
                ]).text)
            } else {
                let origin = rhost.isEmpty ? "locally" : "from \(rhost)"
                let with = key.map { " with the SSH key \($0.type)" } ?? ""
                print("\(user) via \(service) \(origin)\(with): \(c.decision) — \(c.reason)")
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
