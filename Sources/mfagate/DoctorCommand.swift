// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CMFASys
import MFACore

extension MFAGate {
    /// `mfagate doctor` (issue 19, part 6): reads sshd's effective configuration and the PAM stacks,
    /// and says for each way in whether pam_mfagate runs (MFACore/Doctor.swift decides).
    struct Doctor: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that logins reach pam_mfagate: sshd's settings and the PAM stack, with what to change (root).",
            discussion: """
                Runs sshd -T (the effective configuration; with --user/--host/--addr the Match blocks for \
                that connection apply) and reads the auth stack of the service in /etc/pam.d, following \
                @include, include, substack and jumps. For each way in (password, key, key + code, \
                console) it says whether pam_mfagate runs, where and with what control, and what to \
                change when it does not. The daemon's socket comes from mfagate.conf (not from the \
                daemon, which need not run). Exit codes: 0 no problem found, 1 problems found, 2 usage \
                error, 3 sshd -T or a file could not be read.
                """)

        @Option(name: .long, help: "The PAM service sshd uses (its program name).")
        var service = "sshd"

        @Option(name: .customLong("console-service"), help: "The PAM service of console logins.")
        var consoleService = "login"

        @Flag(name: .long, help: "Print one JSON object: ways, services (stack, findings), ssh_findings, problems.")
        var json = false

        @Option(name: .long, help: ArgumentHelp("sshd's configuration file (passed to sshd -T -f).", valueName: "file"))
        var sshdConfig: String?

        @Option(name: .long, help: ArgumentHelp("The sshd program.", valueName: "path"))
        var sshd = "/usr/sbin/sshd"

        @Option(name: .long, help: "Evaluate sshd's Match blocks for this user (sshd -T -C user=...).")
        var user: String?

        @Option(name: .long, help: "... and this client host name (host=...).")
        var host: String?

        @Option(name: .long, help: "... and this client address (addr=...).")
        var addr: String?

        @Option(name: .long, help: ArgumentHelp("mfagate.conf, for the daemon's socket.", valueName: "file"))
        var config = "/etc/mfagate/mfagate.conf"

        @Option(name: .customLong("pam-dir"), help: ArgumentHelp("The PAM configuration directory.", valueName: "dir"))
        var pamDirectory = "/etc/pam.d"

        func run() throws {
            guard getuid() == 0 else {
                mfa_write_stderr("mfagate: doctor runs sshd -T, which reads sshd's host keys: run it as root\n")
                throw ExitCode(2)
            }
            var socketPath = MFACore.Doctor.defaultSocket
            var notes: [DoctorFinding] = []
            if access(config, F_OK) != 0 {
                notes.append(DoctorFinding(.note, "no-config", "\(config) does not exist: the module's socket is compared with the default, \(socketPath)",
                                           fix: "give --config FILE if mfagated reads another file"))
            } else if let text = readText(config) {
                do { socketPath = try ConfigParser.parse(text, file: config).socketPath } catch {
                    mfa_write_stderr("mfagate: \(error)\n")
                    throw ExitCode(3)
                }
            } else {
                mfa_write_stderr("mfagate: cannot read \(config): \(String(cString: strerror(errno)))\n")
                throw ExitCode(3)
            }
            var argv = [sshd, "-T"]
            if let sshdConfig { argv += ["-f", sshdConfig] }
            let spec = [("user", user), ("host", host), ("addr", addr)].compactMap { k, v in v.map { "\(k)=\($0)" } }
            if !spec.isEmpty { argv += ["-C", spec.joined(separator: ",")] }
            let result = runCapturing(argv)
            guard result.status == 0 else {
                // sshd's last line is the fatal one (warnings come first).
                let why = result.errors.split(separator: "\n").last.map(String.init) ?? "exit status \(result.status)"
                mfa_write_stderr("mfagate: \(argv.joined(separator: " ")) failed: \(why)\n")
                throw ExitCode(3)
            }
            let settings = SSHDSettings.parse(result.output)
            let reader: (String) -> String? = { readText($0) }
            let profile = access("/usr/share/pam-configs/mfagate", F_OK) == 0
            let sshStack = MFACore.Doctor.diagnose(service: service, stack: PAMStack.read(service: service, directory: pamDirectory, read: reader),
                                                   directory: pamDirectory, socketPath: socketPath, configFile: config,
                                                   profileInstalled: profile)
            let consoleStack = MFACore.Doctor.diagnose(service: consoleService,
                                                       stack: PAMStack.read(service: consoleService, directory: pamDirectory, read: reader),
                                                       directory: pamDirectory, socketPath: socketPath, configFile: config, console: true, profileInstalled: profile)
            var ways = MFACore.Doctor.sshWays(settings, sshStack)
            ways.append(MFACore.Doctor.consoleWay(consoleStack))
            let report = DoctorReport(ways: ways, services: consoleStack.stack == nil ? [sshStack] : [sshStack, consoleStack], notes: notes)
            print(json ? report.json.text : report.text, terminator: json ? "\n" : "")
            if report.problemCount > 0 { throw ExitCode(1) }
        }
    }
}

/// A file's text (at most 1 MiB), or nil if it cannot be opened.
func readText(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count < 1 << 20 {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Runs a program (no shell) and returns its exit status, standard output and standard error.
func runCapturing(_ argv: [String]) -> (status: Int32, output: String, errors: String) {
    var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
    // The CLI runs one thread: no other spawn can inherit the ends before FD_CLOEXEC is set.
    guard pipe(&outPipe) == 0 else { return (-1, "", "cannot make a pipe") }
    guard pipe(&errPipe) == 0 else { close(outPipe[0]); close(outPipe[1]); return (-1, "", "cannot make a pipe") }
    for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
    let cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ)
    close(outPipe[1]); close(errPipe[1])
    defer { close(outPipe[0]); close(errPipe[0]) }
    guard spawned == 0 else { return (-1, "", "cannot run \(argv[0]): \(String(cString: strerror(spawned)))") }
    let drain: (Int32) -> String = { fd in
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            if bytes.count < 4 << 20 { bytes += chunk[0..<n] }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
    let output = drain(outPipe[0])
    let errors = drain(errPipe[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exited = (status & 0x7f) == 0
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output, errors)
}
