// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys
import MFACore

/// The options of the verbs that run mfagated as root in a one-shot mode (`migrate-store`,
/// `fleet rotate-key`, `fleet key-status`): the daemon binary reads the state directory, the fleet
/// keys and the database password; this command never does.
struct DaemonTaskOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The daemon's configuration file.", valueName: "file"))
    var config: String = DaemonConfig.defaultPath

    @Option(name: .long, help: ArgumentHelp("The mfagated binary (default: next to this command, else /usr/sbin/mfagated).", valueName: "path"))
    var daemon: String?

    /// Replaces this process with `mfagated --config FILE <mode…>` as root; returns only by throwing.
    /// `verb` and `why` make the refusal for a non-root caller one sentence.
    func runDaemon(_ mode: [String], verb: String, why: String) throws {
        guard geteuid() == 0 else {
            mfa_write_stderr("mfagate: \(verb) must run as root (\(why))\n")
            throw ExitCode(2)
        }
        let binary = daemon ?? Self.defaultDaemonPath()
        var cArguments = ([binary, "--config", config] + mode).map { strdup($0) } + [nil]
        execv(binary, &cArguments)
        mfa_write_stderr("mfagate: cannot run \(binary): \(String(cString: strerror(errno))) (pass --daemon PATH)\n")
        throw ExitCode(2)
    }

    /// mfagated beside this binary (a build tree), else /usr/sbin/mfagated.
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
