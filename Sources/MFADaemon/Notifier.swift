// SPDX-License-Identifier: Apache-2.0
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
    /// Email/SMS methods (issue 10, Delivery.swift).
    case methodAdded = "method-added"
    case methodRemoved = "method-removed"
    case methodPreferred = "method-preferred"
}

/// Runs `notify_command` without ever waiting for it in the poll loop: spawned, reaped later with
/// `WNOHANG`, killed (its whole process group) when it outlives `timeoutSeconds`.
public final class Notifier {
    struct Running {
        var pid: pid_t
        /// Which command, for log lines: `notify_command`, `email_command`, `sms_command`.
        var label: String
        /// The event or purpose, for log lines: `recovery-code-used`, `notice`.
        var event: String
        var deadline: Int64
        /// Set for a code delivery whose outcome someone waits for (Delivery.swift); nil once reported.
        var delivery: Int? = nil
        var timeoutSeconds: Int64 = Notifier.timeoutSeconds
    }
    public static let timeoutSeconds: Int64 = 10
    /// More running notifications than this are dropped (and logged): a hung command must not pile up processes.
    public static let maximumRunning = 16
    var running: [Running] = []
    /// Deliveries that ended since the caller last took them (token, outcome).
    var finishedDeliveries: [(token: Int, outcome: DeliveryOutcome)] = []
    /// The last delivery token handed out.
    var deliveryTokens = 0
    /// Called after every event is logged (Delivery.swift: a notice to the user's email address).
    var onEvent: ((EnrollmentEvent, UserName, Logger.Metadata) -> Void)?
    let logger: Logger
    let monotonicNow: () -> Int64

    init(logger: Logger, monotonicNow: @escaping () -> Int64 = Server.monotonicNow) {
        self.logger = logger
        self.monotonicNow = monotonicNow
    }

    /// Milliseconds (monotonic) of the next deadline, so the poll loop wakes for it.
    var nextDeadline: Int64? {
        guard let earliest = running.map(\.deadline).min() else { return nil }
        // A delivery someone waits for is polled often: its end is seen by waitpid, not by poll.
        if running.contains(where: { $0.delivery != nil }) { return min(earliest, monotonicNow() + Notifier.deliveryPollMilliseconds) }
        return earliest
    }

    func notify(_ event: EnrollmentEvent, user: UserName, command: String?, metadata: Logger.Metadata = [:]) {
        var fields = metadata
        fields["event"] = "\(event.rawValue)"
        fields["user"] = "\(user)"
        logger.notice("enrollment change", metadata: fields)
        onEvent?(event, user, metadata)
        reap()
        guard let command else { return }
        guard running.count < Notifier.maximumRunning else {
            logger.error("notify_command not run: \(running.count) notifications still running", metadata: ["event": "\(event.rawValue)", "user": "\(user)"])
            return
        }
        switch spawn(command, arguments: [event.rawValue, user.value]) {
        case .success(let pid):
            running.append(Running(pid: pid, label: "notify_command", event: event.rawValue, deadline: monotonicNow() + Notifier.timeoutSeconds * 1000))
        case .failure(let failure):
            logger.error("notify_command \(command) could not be started: \(String(cString: strerror(failure.code)))",
                         metadata: ["event": "\(event.rawValue)", "user": "\(user)"])
        }
    }

    /// Collects finished commands (logging failures) and kills those past their deadline. A
    /// delivery's outcome is queued in `finishedDeliveries` as soon as it is known.
    public func reap() {
        let now = monotonicNow()
        var still: [Running] = []
        for child in running {
            var status: Int32 = 0
            let rc = waitpid(child.pid, &status, WNOHANG)
            if rc == child.pid || (rc < 0 && errno == ECHILD) {
                let exited = status & 0x7F == 0
                let code = (status >> 8) & 0xFF
                let failed = rc == child.pid && !(exited && code == 0)
                let how = exited ? "exit \(code)" : "signal \(status & 0x7F)"
                if let token = child.delivery {
                    finishedDeliveries.append((token, failed ? .failed(how) : .sent))
                } else if failed {
                    logger.error("\(child.label) failed", metadata: ["event": "\(child.event)", "status": "\(how)"])
                }
                continue
            }
            if now >= child.deadline {
                kill(-child.pid, SIGKILL)
                kill(child.pid, SIGKILL)
                if let token = child.delivery {
                    finishedDeliveries.append((token, .timedOut(seconds: child.timeoutSeconds)))
                } else {
                    logger.error("\(child.label) killed after \(child.timeoutSeconds) s", metadata: ["event": "\(child.event)"])
                }
                // Reaped at the next call (SIGKILL cannot be ignored); keep it with a short deadline.
                still.append(Running(pid: child.pid, label: child.label, event: child.event, deadline: now + 1000))
                continue
            }
            still.append(child)
        }
        running = still
    }

    /// Takes the outcomes of deliveries that ended.
    func takeFinishedDeliveries() -> [(token: Int, outcome: DeliveryOutcome)] {
        defer { finishedDeliveries.removeAll() }
        return finishedDeliveries
    }

    /// posix_spawn with an empty signal mask and default dispositions (the daemon blocks SIGTERM/HUP
    /// for its signalfd and ignores SIGPIPE; the command must not inherit that), in its own process
    /// group so a timeout kills what it started too. Every daemon descriptor is close-on-exec.
    func spawn(_ command: String, arguments: [String], environment: [String] = [], stdinFD: Int32? = nil) -> Result<pid_t, Errno> {
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
        let envp: [UnsafeMutablePointer<CChar>?] = (["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] + environment).map { strdup($0) } + [nil]
        defer { for p in argv + envp { free(p) } }
        // No stdin (notify_command): /dev/null, never the daemon's terminal or socket; a delivery
        // command gets the read end of the pipe its message is in.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdinFD {
            posix_spawn_file_actions_adddup2(&actions, stdinFD, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, command, &actions, &attributes, argv, envp)
        return rc == 0 ? .success(pid) : .failure(Errno(code: rc))
    }

    public struct Errno: Error { public var code: Int32 }
}
