// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import MFACore
import MFAProtocol

extension MFAGate {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show your enrollment and your remembered hosts (root: anyone's with --user).",
            discussion: """
                With `remember` set, a host from which a right code was given is listed with its PAM service \
                and the time until which it is not asked again; `mfagate forget` ends them all.
                """)

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The user to ask about (root may ask about anyone).")
        var user: String?

        @Flag(name: .long, help: "Print one JSON object: user, enrolled, recovery_codes_left, method, enrolled_since, last_success, pending, remembered.")
        var json = false

        func run() throws {
            let name = user ?? ""
            // An older mfagated refuses the flag (it closes the connection): ask it the old way, and
            // say the list is missing rather than that there is none.
            let (reply, olderDaemon) = try perform(.status(version: WireProtocol.version, user: name, remembered: true),
                                                   orOlder: .status(version: WireProtocol.version, user: name), with: global)
            guard case .status(var s) = reply else { throw unexpected(reply) }
            if olderDaemon { s.remembered = nil }
            if json {
                guard case .object(let pairs) = statusJSON(s) else { return }
                let hosts: JSONValue = s.remembered.map { .array($0.map(rememberedJSON)) } ?? .null
                print(JSONValue.object(pairs + [("remembered", hosts)]).text)
                return
            }
            print(statusLine(s))
            if olderDaemon {
                print("  remembered hosts: not shown (mfagated at \(global.client.socketPath) is older than this mfagate; upgrade it)")
            } else if let hosts = s.remembered, !hosts.isEmpty {
                print("  remembered hosts (no code asked from them until the time shown; mfagate forget ends them):")
                for host in hosts { print("    " + rememberedLine(host)) }
            }
        }
    }
}

/// `127.0.0.1 via sshd since 2026-12-06 10:00 UTC until 2026-12-06 18:00 UTC`. The daemon sends only
/// names it stores (printable ASCII without spaces).
func rememberedLine(_ host: RememberedHost) -> String {
    "\(host.rhost) via \(host.service) since \(UTCTime.format(host.since)) until \(UTCTime.format(host.until))"
}

/// `{"rhost": …, "service": …, "since": UNIX, "until": UNIX}` (README, "The CLI").
func rememberedJSON(_ host: RememberedHost) -> JSONValue {
    .object([("rhost", .string(host.rhost)), ("service", .string(host.service)),
             ("since", .int(Int(host.since))), ("until", .int(Int(host.until)))])
}
