// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys

extension MFAGate {
    /// `mfagate fleet …`: fleet-key tasks (docs/fleet.md, "Rotating the fleet key"). Like
    /// migrate-store they need the fleet keys and the database password, which this command never
    /// reads: as root it runs the daemon binary in a one-shot mode that does.
    struct Fleet: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fleet database tasks: key rotation (root).",
            subcommands: [RotateKey.self, KeyStatus.self])

        struct RotateKey: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "rotate-key",
                abstract: "Re-seal every fleet database row under a new fleet key (root).",
                discussion: """
                    Give every host the new key first (`fleet_new_key_file = FILE` in its config, then restart \
                    it): hosts then work with rows under either key. This names the new key as the one new rows \
                    are sealed under and re-seals every row under it (each at its own version, while logins go \
                    on), then shows how many rows are left on the old key. Afterwards set `fleet_key_file` to the \
                    new key on every host, remove `fleet_new_key_file`, restart, and destroy the old key. Runs \
                    `mfagated --rotate-key FILE`. Exit 0 every row moved, 1 some left, 2 cannot start.
                    """)

            @Option(name: .long, help: ArgumentHelp("The new fleet key (64 hex digits, root or the daemon's user, mode 0400).", valueName: "file"))
            var new: String

            @OptionGroup var task: DaemonTaskOptions

            func run() throws {
                try task.runDaemon(["--rotate-key", new], verb: "fleet rotate-key", why: Fleet.rootReason)
            }
        }

        struct KeyStatus: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "key-status",
                abstract: "Show how many fleet database rows each fleet key sealed (root).",
                discussion: "Runs `mfagated --fleet-key-status`. Exit 0 no row is left on an old key, 1 some are, 2 cannot start.")

            @OptionGroup var task: DaemonTaskOptions

            func run() throws {
                try task.runDaemon(["--fleet-key-status"], verb: "fleet key-status", why: Fleet.rootReason)
            }
        }

        static let rootReason = "it reads the fleet keys and the database password"
    }
}
