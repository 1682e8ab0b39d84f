// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys
import MFACore

extension MFAGate {
    struct MigrateStore: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate-store",
            abstract: "Copy this host's enrollments into the fleet database (root).",
            discussion: """
                Reads the config (which must already say `store = postgresql` and name the database and \
                fleet key), then runs `mfagated --migrate-store`: the daemon binary, as the state \
                directory's owner, copies every user file with its replay state and unused recovery codes, \
                and the grace-period first sightings, into the database. Users keep their authenticator and \
                recovery codes. Running it again changes nothing; a user with a different enrollment in the \
                database is left alone and reported. Stop mfagated on this host first; start it afterwards. \
                One line per user, never a secret. Exit 0 done, 1 some user not copied, 2 cannot start.
                """)

        @Option(name: .long, help: ArgumentHelp("Where to: only postgresql.", valueName: "store"))
        var to: String

        @OptionGroup var task: DaemonTaskOptions

        func run() throws {
            guard to == "postgresql" else {
                mfa_write_stderr("mfagate: --to must be postgresql (the only store enrollments can move to)\n")
                throw ExitCode(2)
            }
            try task.runDaemon(["--migrate-store"], verb: "migrate-store", why: "it reads the daemon's state directory")
        }
    }
}
