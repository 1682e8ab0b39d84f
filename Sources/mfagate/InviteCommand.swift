// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import CMFASys
import MFACore
import MFAProtocol

extension MFAGate {
    struct Invite: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a one-time invite that lets a user enroll at the login prompt (root; enroll_at_login = invite).",
            discussion: """
                Prints a one-time code for a user without a second factor. With enroll_at_login = invite the \
                login prompt offers enrollment only to a user who types it (Invite code:); it works once, until \
                it expires, and a new invite replaces the user's older one. The daemon keeps only a hash of it. \
                Give it to the user over a channel the password does not travel on. \
                --json: user, invite, expires (Unix time).
                """)

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The user to invite.")
        var user: String

        @Option(name: .long, help: ArgumentHelp("How long the invite holds: 30m, 12h, 7d, 2w (at most 90 days; default 7d).", valueName: "duration"))
        var expires: String?

        @Flag(name: .long, help: "Print one JSON object: user, invite, expires.")
        var json = false

        func validate() throws {
            if let expires, InviteCodes.parseLifetime(expires) == nil {
                throw ValidationError("--expires must be a duration like 30m, 12h, 7d or 2w, at most 90 days (found \"\(expires)\")")
            }
        }

        func run() throws {
            let lifetime = expires.flatMap(InviteCodes.parseLifetime) ?? 0
            let reply = try perform(.invite(InviteRequest(user: user, lifetime: lifetime)), with: global)
            guard case .invited(let invite) = reply else { throw unexpected(reply) }
            if !invite.note.isEmpty { mfa_write_stderr("mfagate: note: \(invite.note)\n") }
            if json {
                print(JSONValue.object([("user", .string(invite.user)), ("invite", .string(invite.code)),
                                        ("expires", .int(Int(invite.expires)))]).text)
                return
            }
            print("Invite for \(invite.user), valid once until \(UTCTime.format(invite.expires)):")
            print("  \(invite.code)")
            print("At the next login the user types it at \"Invite code:\", then sets up an authenticator app.")
        }
    }
}
