#if canImport(Glibc)
import Glibc
#endif
import Logging
import MFACore

/// Enrollment changes worth telling someone about (a mail to the user, a SIEM): each is logged and,
/// with `notify_command`, passed to that program as `EVENT USER`. Never a secret or a code.
public enum EnrollmentEvent: String, Sendable {
    case enrolled, disabled, reset, imported
    case recoveryCodesRegenerated = "recovery-codes-regenerated"
    case recoveryCodeUsed = "recovery-code-used"
}

/// Runs `notify_command` without ever waiting for it in the poll loop: spawned, reaped later with
/// `WNOHANG`, killed (its whole process group) when it outlives `timeoutSeconds`.
public final class Notifier {
    struct Running { var pid: pid_t; var event: EnrollmentEvent; var deadline: Int64 }
    public static let timeoutSeconds: Int64 = 10
    /// More running notifications than this are dropped (and logged): a hung command must not pile up processes.
    public static let maximumRunning = 16
    var running: [Running] = []
    let logger: Logger
    let monotonicNow: () -> Int64

    init(logger: Logger, monotonicNow: @escaping () -> Int64 = Server.monotonicNow) {
        self.logger = logger
        self.monotonicNow = monotonicNow
    }

    /// Milliseconds (monotonic) of the next deadline, so the poll loop wakes for it.
    var nextDeadline: Int64? { running.map(\.deadline).min() }

    func notify(_ event: EnrollmentEvent, user: UserName, command: String?, metadata: Logger.Metadata = [:]) {
        var fields = metadata
        fields["event"] = "\(event.rawValue)"
        fields["user"] = "\(user)"
        logger.notice("enrollment change", metadata: fields)
        reap()
        guard let command else { return }
        guard running.count < Notifier.maximumRunning else {
            logger.error("notify_command not run: \(running.count) notifications still running", metadata: ["event": "\(event.rawValue)", "user": "\(user)"])
            return
        }
        switch spawn(command, arguments: [event.rawValue, user.value]) {
        case .success(let pid):
            running.append(Running(pid: pid, event: event, deadline: monotonicNow() + Notifier.timeoutSeconds * 1000))
        case .failure(let failure):
            logger.error("notify_command \(command) could not be started: \(String(cString: strerror(failure.code)))",
                         metadata: ["event": "\(event.rawValue)", "user": "\(user)"])
        }
    }

    /// Collects finished commands (logging failures) and kills those past their deadline.
    public func reap() {
        let now = monotonicNow()
        var still: [Running] = []
        for child in running {
            var status: Int32 = 0
            let rc = waitpid(child.pid, &status, WNOHANG)
            if rc == child.pid || (rc < 0 && errno == ECHILD) {
                let exited = status & 0x7F == 0
                let code = (status >> 8) & 0xFF
                if rc == child.pid && !(exited && code == 0) {
                    logger.error("notify_command failed", metadata: [
                        "event": "\(child.event.rawValue)",
                        "status": "\(exited ? "exit \(code)" : "signal \(status & 0x7F)")"])
                }
                continue
            }
            if now >= child.deadline {
                kill(-child.pid, SIGKILL)
                kill(child.pid, SIGKILL)
                logger.error("notify_command killed after \(Notifier.timeoutSeconds) s", metadata: ["event": "\(child.event.rawValue)"])
                // Reaped at the next call (SIGKILL cannot be ignored); keep it with a short deadline.
                still.append(Running(pid: child.pid, event: child.event, deadline: now + 1000))
                continue
            }
            still.append(child)
        }
        running = still
    }

    /// posix_spawn with an empty signal mask and default dispositions (the daemon blocks SIGTERM/HUP
    /// for its signalfd and ignores SIGPIPE; the command must not inherit that), in its own process
    /// group so a timeout kills what it started too. Every daemon descriptor is close-on-exec.
    func spawn(_ command: String, arguments: [String]) -> Result<pid_t, Errno> {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv: [UnsafeMutablePointer<CChar>?] = ([command] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), nil]
        defer { for p in argv + envp { free(p) } }
        // No stdin: the command gets /dev/null, never the daemon's terminal or socket.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, command, &actions, &attributes, argv, envp)
        return rc == 0 ? .success(pid) : .failure(Errno(code: rc))
    }

    public struct Errno: Error { public var code: Int32 }
}
