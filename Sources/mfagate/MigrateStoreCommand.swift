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

        @Option(name: .long, help: ArgumentHelp("The daemon's configuration file.", valueName: "file"))
        var config: String = DaemonConfig.defaultPath

        @Option(name: .long, help: ArgumentHelp("The mfagated binary (default: next to this command, else /usr/sbin/mfagated).", valueName: "path"))
        var daemon: String?

        func run() throws {
            guard to == "postgresql" else {
                mfa_write_stderr("mfagate: --to must be postgresql (the only store enrollments can move to)\n")
                throw ExitCode(2)
            }
            guard geteuid() == 0 else {
                mfa_write_stderr("mfagate: migrate-store must run as root (it reads the daemon's state directory)\n")
                throw ExitCode(2)
            }
            let binary = daemon ?? Self.defaultDaemonPath()
            let arguments = [binary, "--config", config, "--migrate-store"]
            var cArguments = arguments.map { strdup($0) } + [nil]
            execv(binary, &cArguments)
            mfa_write_stderr("mfagate: cannot run \(binary): \(String(cString: strerror(errno))) (pass --daemon PATH)\n")
            throw ExitCode(2)
        }

        /// mfagated beside this binary (a build tree, /usr/sbin next to /usr/bin does not apply), else /usr/sbin.
        static func defaultDaemonPath() -> String {
            var buffer = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
            if n > 0 {
                let own = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                let sibling = own.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/") + "/mfagated"
                if access(sibling, X_OK) == 0 { return sibling }
            }
            return "/usr/sbin/mfagated"
        }
    }
}
