// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// Limits that keep one slow or hostile client from costing the others anything.
public struct ServerLimits: Sendable {
    /// Connections served at once; more are answered BUSY at accept.
    public var maximumConnections = 1024
    /// Connections one local user (by real uid) and one account (logins with real uid 0) may hold
    /// at once, and slots local users' connections may never take (Admission.swift): without
    /// them, one local user holding 1,024 idle connections, or a thousand `su` at the prompt, made
    /// every login fail (test_robustness.py's flood tests, issue 14).
    public var maximumConnectionsPerUser = 16
    public var maximumConnectionsPerAccount = 64
    public var reservedForRoot = 64
    /// Seconds a client has to send its request (and the shim to send a reply frame once typed).
    /// How long a login may wait at a prompt is the config's `prompt_timeout`.
    public var requestTimeout: Int64 = 10
    /// Seconds in-flight logins get to finish after SIGTERM.
    public var drainTimeout: Int64 = 10
    public init() {}
}

/// One poll loop. With the file store every request is answered on its thread without waiting on
/// anything but the local disk, so serialising them makes each user's read-verify-write atomic.
/// With the fleet store, requests go to worker threads (Server+Workers.swift) so that a slow
/// database holds only the requests that wait on it; one lock (`lock`) keeps the daemon's memory
/// to one thread at a time, and the database's compare-and-swap orders each user's writes.
public final class Server {
    let authority: Authority
    /// How replies wait until their records are durable (the file store's journal group commit,
    /// or nothing to wait for: CommittedOnWrite), handed over by whoever made the store.
    let durability: any ReplyDurability
    /// Held by whoever runs daemon code (DaemonLock); only taken when there are workers.
    let lock = DaemonLock()
    /// The fleet store's worker threads, nil with the file store (or `database_connections = 1`).
    var workers: RequestWorkers?
    let logger: Logger
    let limits: ServerLimits
    let listenFD: Int32
    let signalFD: Int32
    let socketPath: String
    /// False when systemd passed the socket: the socket unit owns its file, so it is not unlinked.
    let ownsSocketFile: Bool
    /// Milliseconds between WATCHDOG=1 pings when systemd asked for a watchdog.
    let watchdogPingInterval: Int64?
    var nextWatchdogPing: Int64 = 0
    var connections: [Int32: Connection] = [:]
    /// The poll array, kept between rounds so a round rebuilds it without allocating.
    var pollSet: [pollfd] = []
    /// Connections whose reply waits for the replay journal's flush (group commit): every login
    /// answered in one poll round shares one fdatasync, and no SUCCESS leaves before it.
    var awaitingSync: [Connection] = []
    /// Connections whose reply waits for the flush running on the journal's flush thread, and
    /// whether poll has reported that flush's end.
    var awaitingBackgroundSync: [Connection] = []
    var backgroundSyncEnded = false
    /// Who holds how many connection slots (Admission.swift).
    var admission: Admission
    /// An open descriptor kept for accepting (and answering BUSY) when the process is out of
    /// descriptors (EMFILE): a connection left in the listen queue would be silence, not a refusal.
    var spareFD: Int32 = -1
    /// The last journal flush failed (its renewals are then logged once, not twice a second).
    var journalFlushFailing = false
    /// Refusals since the last log line about them: a flood must not become a flood of log lines.
    var refusedSinceLog = 0
    var lastRefusalLog: Int64 = 0
    /// `maximumConnections`, lowered if the descriptor limit could not be raised to fit it.
    var connectionCapacity: Int
    var draining = false
    var drainDeadline: Int64 = 0
    /// Called on SIGHUP; returns the new config or nil (the error already logged) to keep the old one.
    public var reloadConfig: (() -> DaemonConfig?)?

    /// `inheritedSocket`: a listening socket passed by systemd (see ServiceManager); nil to bind `socketPath`.
    public init(authority: Authority, durability: any ReplyDurability, socketPath: String, inheritedSocket: Int32? = nil,
                limits: ServerLimits = ServerLimits(), logger: Logger) throws {
        self.authority = authority
        self.durability = durability
        self.logger = logger
        self.limits = limits
        watchdogPingInterval = ServiceManager.watchdogPingInterval()
        connectionCapacity = Server.fitDescriptorLimit(to: limits.maximumConnections)
        admission = Admission(capacity: connectionCapacity, perUser: limits.maximumConnectionsPerUser,
                              perAccount: limits.maximumConnectionsPerAccount, reservedForRoot: limits.reservedForRoot)
        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        signalFD = mfa_signalfd_for_lifecycle()
        guard signalFD >= 0 else { throw ServerError.system("setting up signal handling for", "mfagated") }
        if let inheritedSocket {
            listenFD = inheritedSocket
            ownsSocketFile = false
            let boundPath = ServiceManager.boundPath(of: inheritedSocket) ?? socketPath
            if boundPath != socketPath {
                logger.warning("socket-activated on \(boundPath); the configured socket \(socketPath) is not used")
            }
            if let problem = SocketDirectory.problem(socketPath: boundPath, daemonUID: geteuid()) {
                throw ServerError(problem)
            }
            self.socketPath = boundPath
        } else {
            if let problem = SocketDirectory.problem(socketPath: socketPath, daemonUID: geteuid()) {
                throw ServerError(problem)
            }
            listenFD = try Server.bindListeningSocket(path: socketPath)
            ownsSocketFile = true
            self.socketPath = socketPath
        }
        durability.defersJournalSync = true
    }

    /// Serves until SIGTERM or SIGINT, then lets in-flight logins finish (bounded) and returns.
    public func run() {
        logger.notice("ready", metadata: ["socket": "\(socketPath)", "mode": "\(authority.config.mode)",
                                          "activation": "\(ownsSocketFile ? "standalone" : "systemd")"])
        ServiceManager.notify("READY=1\nSTATUS=serving on \(socketPath), mode \(authority.config.mode)")
        lock.enter()
        startWorkers()
        if workers == nil { lock.leave() }
        while true {
            let now = Server.monotonicNow()
            if draining && (connections.isEmpty || now >= drainDeadline) { break }
            pingWatchdogIfDue(now: now)
            var fds = pollSet
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0))
            if !draining { fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)) }
            let syncFD = durability.journalSyncFD ?? -1
            if syncFD >= 0 { fds.append(pollfd(fd: syncFD, events: Int16(POLLIN), revents: 0)) }
            let wakeFD = workers?.wakeFD ?? -1
            if wakeFD >= 0 { fds.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)) }
            var nextDeadline = draining ? drainDeadline : now + 60_000
            if watchdogPingInterval != nil { nextDeadline = min(nextDeadline, nextWatchdogPing) }
            authority.notifier.reap()
            resumeDeliveries()
            if let due = authority.notifier.nextDeadline { nextDeadline = min(nextDeadline, due) }
            authority.flushLogSummaries()
            if let due = authority.nextLogSummary { nextDeadline = min(nextDeadline, due) }
            if let renewal = durability.journalRenewalDelay, !durability.journalSyncPending {
                nextDeadline = min(nextDeadline, now + renewal)
            }
            for connection in connections.values where !connection.withWorker {
                var events = Int16(POLLIN)
                if !connection.output.isEmpty && !connection.awaitsJournal { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: connection.fd, events: events, revents: 0))
                nextDeadline = min(nextDeadline, connection.deadline)
            }
            let timeout = Int32(clamping: max(0, nextDeadline - now))
            if workers != nil { lock.leave() }
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            let pollErrno = errno
            if workers != nil {
                lock.enter()
                authority.store.useSession(0)
            }
            errno = pollErrno
            if ready < 0 && errno != EINTR {
                logger.critical("poll failed: \(String(cString: strerror(errno)))")
                break
            }
            for entry in fds where entry.revents != 0 {
                if entry.fd == signalFD {
                    handleSignals()
                } else if entry.fd == listenFD {
                    acceptConnections()
                } else if entry.fd == syncFD {
                    backgroundSyncEnded = true
                } else if entry.fd == wakeFD {
                    mfa_wakeup_drain(wakeFD)
                } else if let connection = connections[entry.fd], !connection.withWorker {
                    service(connection, revents: entry.revents)
                }
            }
            pollSet = fds
            collectJournalSync()
            if !durability.journalSyncPending
                && (!awaitingSync.isEmpty || durability.repliesWaitForJournal || durability.journalRenewalDelay == 0) {
                startJournalSync()
            }
            expireConnections(now: Server.monotonicNow())
        }
        // Workers still waiting on the database stay blocked on the lock, which the loop keeps.
        for connection in Array(connections.values) { drop(connection, evenWithWorker: true) }
        do {
            try durability.closeJournal()
        } catch {
            logger.error("could not close the replay journal cleanly (after a power cut the next start refuses the codes of the last second): \(error)")
        }
        close(listenFD)
        if ownsSocketFile { unlink(socketPath) }
        logger.notice("stopped")
    }

    func service(_ connection: Connection, revents: Int16) {
        if revents & Int16(POLLOUT) != 0 { flush(connection) }
        if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readAvailable(connection) }
    }

    /// One read buffer for every connection (one thread): allocating and wiping 4 kB per read cost
    /// more than the read. Only the bytes a read filled are wiped afterwards.
    var readBuffer = [UInt8](repeating: 0, count: 4096)

    /// Reads what has arrived, up to the buffer's size: a frame's header and body arrive together
    /// (the shim sends each frame with one send), so one read and one poll round take a whole
    /// frame, where reading the 4-byte header first cost a second read and a second poll. Every
    /// complete frame read is handled at once, so the splitter holds at most one partial frame
    /// plus one buffer's worth: memory stays bounded as before.
    func readAvailable(_ connection: Connection) {
        let n = readBuffer.withUnsafeMutableBytes { read(connection.fd, $0.baseAddress, $0.count) }
        defer { if n > 0 { readBuffer.withUnsafeMutableBytes { mfa_wipe($0.baseAddress, n) } } }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            drop(connection)
            return
        }
        if n == 0 {
            if case .awaitingReply(let session) = connection.state { authority.cancelled(session) }
            drop(connection)
            return
        }
        if case .closing = connection.state { return }
        connection.splitter.append(readBuffer[0..<n])
        var tag: UInt8? = nil
        do {
            while let payload = try connection.splitter.nextPayload() {
                tag = payload.first
                var bytes = payload
                defer { mfa_wipe(&bytes, bytes.count) }
                let message = try FrameCodec.decodeClient(bytes)
                if handOver(message, on: connection) { break }
                authority.store.forgetLastCheck()
                handle(message, on: connection)
                if case .closing = connection.state { break }
            }
        } catch FrameError.invalidUTF8 {
            // Answered, not dropped: a dropped login is left to the module's failmode, and a
            // name or a typed code in bad UTF-8 must not turn into "daemon down" (InvalidText.swift).
            switch connection.state {
            case .awaitingReply(let session): apply(authority.refusedAnswer(in: session), on: connection)
            case .awaitingRequest: finish(authority.refusedRequest(tag: tag, peer: connection.peer), on: connection)
            default: drop(connection)
            }
        } catch {
            authority.logLimited(.protocolError, .warning, "protocol error, closing connection", metadata: ["peer": "\(connection.peer)", "error": "\(error)"])
            if case .awaitingReply(let session) = connection.state { authority.cancelled(session) }
            drop(connection)
        }
    }

    func handle(_ message: ClientMessage, on connection: Connection) {
        switch (connection.state, message) {
        case (.awaitingRequest, .loginBegin(let request)):
            guard let admitted = admitLogin(request, on: connection) else { return }
            apply(authority.beginLogin(admitted, peer: connection.peer), on: connection)
        case (.awaitingReply(let session), .reply(let answer)):
            apply(authority.continueLogin(answer, in: session), on: connection)
        case (.awaitingReply(let session), .cancel):
            authority.cancelled(session)
            drop(connection)
        case (.awaitingRequest, let request) where request.requestVersion != nil:
            apply(authority.request(request, peer: connection.peer), on: connection)
        default:
            authority.logLimited(.protocolError, .warning, "protocol error, closing connection", metadata: ["peer": "\(connection.peer)", "error": "message out of order"])
            if case .awaitingReply(let session) = connection.state { authority.cancelled(session) }
            drop(connection)
        }
    }

    /// Sends a login step: another round (the user has the config's `prompt_timeout` to answer) or the verdict.
    func apply(_ step: Step, on connection: Connection) {
        switch step {
        case .ask(let frame, let session):
            connection.state = .awaitingReply(session)
            connection.deadline = Server.monotonicNow() + authority.config.promptTimeout * 1000
            enqueue(frame, on: connection)
        case .finish(let frame):
            finish(frame, on: connection)
        case .abandon:
            // No verdict: the module answers per its failmode (fleet database down, Authority.swift).
            drop(connection)
        case .awaitDelivery(let token):
            connection.state = .awaitingDelivery(token: token)
            // The command is killed at its own deadline; this one only guards against a lost outcome.
            connection.deadline = Server.monotonicNow() + (Notifier.deliveryTimeoutSeconds + 3) * 1000
        }
    }

    func enqueue(_ message: DaemonMessage, on connection: Connection) {
        do {
            connection.output.append(contentsOf: try FrameCodec.encode(message))
        } catch {
            logger.error("could not encode a reply: \(error)")
            drop(connection)
            return
        }
        if durability.repliesWaitForJournal {
            connection.awaitsJournal = true
            awaitingSync.append(connection)
            return
        }
        flush(connection)
    }

    func finish(_ message: DaemonMessage, on connection: Connection) {
        connection.state = .closing
        connection.deadline = Server.monotonicNow() + limits.requestTimeout * 1000
        enqueue(message, on: connection)
    }

    func flush(_ connection: Connection) {
        if connection.awaitsJournal { return }
        while !connection.output.isEmpty {
            let n = connection.output.withUnsafeBytes { send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { return }
                drop(connection)
                return
            }
            connection.output.removeFirst(n)
        }
        if case .closing = connection.state { drop(connection) }
    }

    func expireConnections(now: Int64) {
        for connection in Array(connections.values) where connection.deadline <= now && !connection.withWorker {
            if case .awaitingReply(let session) = connection.state {
                logger.notice("login timed out waiting for the code", metadata: ["user": "\(session.user)"])
            }
            drop(connection)
        }
    }

    func drop(_ connection: Connection, evenWithWorker: Bool = false) {
        if connection.withWorker && !evenWithWorker {
            connection.dropAfterWorker = true
            return
        }
        guard connections.removeValue(forKey: connection.fd) != nil else { return }
        admission.release(connection.owner)
        connection.splitter.wipe()
        close(connection.fd)
    }
}
