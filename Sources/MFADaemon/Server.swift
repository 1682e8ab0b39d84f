// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import Logging
import MFACore
import MFAProtocol

/// Why the daemon could not start serving.
public struct ServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
    static func system(_ what: String, _ path: String, _ code: Int32 = errno) -> ServerError {
        ServerError("\(what) \(path) failed: \(String(cString: strerror(code)))")
    }
}

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

final class Connection {
    enum State {
        case awaitingRequest
        case awaitingReply(LoginSession)
        /// A delivery command runs (email/SMS code, issue 10); the next frame comes when it ends.
        case awaitingDelivery(token: Int)
        case closing
    }

    let fd: Int32
    let peer: Peer
    /// Whom the connection's slot is charged to (nil: a root peer before its request).
    var owner: Owner?
    var state: State = .awaitingRequest
    var splitter = FrameSplitter()
    var output: [UInt8] = []
    /// True while `output` holds a reply that must not leave before the replay journal's flush
    /// covering it has returned: nothing is sent, not even when poll says the socket is writable.
    var awaitsJournal = false
    var deadline: Int64
    /// True while a worker serves this connection's request (Server+Workers.swift): the loop does
    /// not poll, read, expire or close it meanwhile; a close asked for then happens when it is done.
    var withWorker = false
    var dropAfterWorker = false

    init(fd: Int32, peer: Peer, deadline: Int64) {
        self.fd = fd
        self.peer = peer
        self.deadline = deadline
    }
}

/// One poll loop. With the file store every request is answered on its thread without waiting on
/// anything but the local disk, so serialising them makes each user's read-verify-write atomic.
/// With the fleet store, requests go to worker threads (Server+Workers.swift) so that a slow
/// database holds only the requests that wait on it; one lock (`lock`) keeps the daemon's memory
/// to one thread at a time, and the database's compare-and-swap orders each user's writes.
public final class Server {
    let authority: Authority
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
    public init(authority: Authority, socketPath: String, inheritedSocket: Int32? = nil,
                limits: ServerLimits = ServerLimits(), logger: Logger) throws {
        self.authority = authority
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
        authority.store.defersJournalSync = true
    }

    /// Raises the soft descriptor limit so every connection slot has a descriptor (systemd's default
    /// soft limit is 1,024): otherwise accept fails with EMFILE while the listening socket stays
    /// readable. Returns the number of connections the limit allows.
    static func fitDescriptorLimit(to connections: Int) -> Int {
        let spare = 32  // listening socket, signalfd, state directories, stdio, a user file being read
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return connections }
        let wanted = rlim_t(connections + spare)
        if limit.rlim_cur < wanted {
            var raised = limit
            raised.rlim_cur = min(wanted, limit.rlim_max)
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return max(1, min(connections, Int(limit.rlim_cur) - spare))
    }

    static func monotonicNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Creates the socket, world-connectable because every request is authorised by SO_PEERCRED.
    /// A socket file left by a crashed daemon is replaced; one that still answers is not.
    static func bindListeningSocket(path: String) throws -> Int32 {
        var address = sockaddr_un()
        var length = socklen_t(0)
        guard mfa_unix_address(path, &address, &length) == 0 else {
            throw ServerError("socket path \(path) is too long for a Unix socket")
        }
        let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !parent.isEmpty { mkdir(parent, 0o755) }

        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw ServerError("\(path) exists and is not a socket; remove it or set `socket` to another path")
            }
            let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let inUse = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, length) == 0 }
            }
            close(probe)
            if inUse { throw ServerError("another mfagated is already listening on \(path)") }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ServerError.system("creating socket", path) }
        let oldMask = umask(0o111)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        let bindErrno = errno
        umask(oldMask)
        guard bound == 0 else { close(fd); throw ServerError.system("binding", path, bindErrno) }
        guard listen(fd, 128) == 0 else { close(fd); throw ServerError.system("listening on", path) }
        return fd
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
            if let watchdogPingInterval, now >= nextWatchdogPing {
                ServiceManager.notify("WATCHDOG=1")
                nextWatchdogPing = now + watchdogPingInterval
            }
            var fds = pollSet
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0))
            if !draining { fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)) }
            let syncFD = authority.store.journalSyncFD ?? -1
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
            if let renewal = authority.store.journalRenewalDelay, !authority.store.journalSyncPending {
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
            if !authority.store.journalSyncPending
                && (!awaitingSync.isEmpty || authority.store.repliesWaitForJournal || authority.store.journalRenewalDelay == 0) {
                startJournalSync()
            }
            expireConnections(now: Server.monotonicNow())
        }
        // Workers still waiting on the database stay blocked on the lock, which the loop keeps.
        for connection in Array(connections.values) { drop(connection, evenWithWorker: true) }
        do {
            try authority.store.closeJournal()
        } catch {
            logger.error("could not close the replay journal cleanly (after a power cut the next start refuses the codes of the last second): \(error)")
        }
        close(listenFD)
        if ownsSocketFile { unlink(socketPath) }
        logger.notice("stopped")
    }

    func handleSignals() {
        while true {
            let signal = mfa_signalfd_read(signalFD)
            if signal < 0 { return }
            switch signal {
            case SIGHUP:
                ServiceManager.notify("RELOADING=1\nMONOTONIC_USEC=\(Server.monotonicNow() * 1000)")
                if let config = reloadConfig?() {
                    authority.config = config
                    logger.notice("configuration reloaded", metadata: ["mode": "\(config.mode)"])
                }
                ServiceManager.notify("READY=1\nSTATUS=serving on \(socketPath), mode \(authority.config.mode)")
            default:
                if !draining {
                    ServiceManager.notify("STOPPING=1\nSTATUS=stopping: letting \(connections.count) connection(s) finish")
                    logger.notice("stopping: letting \(connections.count) connection(s) finish")
                    draining = true
                    drainDeadline = Server.monotonicNow() + limits.drainTimeout * 1000
                    // Connections that have not started a login have nothing to finish.
                    for connection in Array(connections.values) where !connection.withWorker {
                        if case .awaitingRequest = connection.state, connection.splitter.buffer.isEmpty { drop(connection) }
                    }
                }
            }
        }
    }

    func acceptConnections() {
        while true {
            let fd = mfa_accept_nonblocking(listenFD)
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE { refuseWithSpareDescriptor() }
                return
            }
            guard let peer = Peer.of(socket: fd) else {
                refuse(fd)
                continue
            }
            let (admitted, owner) = admission.accept(peerUID: peer.uid)
            guard admitted else {
                refuse(fd)
                continue
            }
            let connection = Connection(fd: fd, peer: peer, deadline: Server.monotonicNow() + limits.requestTimeout * 1000)
            connection.owner = owner
            connections[fd] = connection
        }
    }

    static let busyReason = "mfagated is busy: too many logins at once for this user, account or host"

    /// Answers a connection over a cap with BUSY and closes it: the module then fails closed
    /// whatever its failmode (a connection closed without an answer would be "daemon down").
    /// The frame is small and the socket's buffer empty, so the send does not block.
    func refuse(_ fd: Int32) {
        if let frame = try? FrameCodec.encode(DaemonMessage.verdict(.busy, reason: Server.busyReason)) {
            _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        }
        close(fd)
        noteRefusal()
    }

    /// Out of descriptors: frees the spare one to accept the next connection and answer it BUSY.
    func refuseWithSpareDescriptor() {
        guard spareFD >= 0 else { return }
        close(spareFD)
        let fd = mfa_accept_nonblocking(listenFD)
        if fd >= 0 { refuse(fd) }
        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    /// One log line a second at most: a flood must not become a flood of log lines.
    func noteRefusal() {
        refusedSinceLog += 1
        let now = Server.monotonicNow()
        if now - lastRefusalLog >= 1000, authority.mayLog(.connectionsRefused) {
            logger.warning("connections refused: too many at once for one user, account or the host (or no peer credentials)",
                           metadata: ["refused": "\(refusedSinceLog)"])
            refusedSinceLog = 0
            lastRefusalLog = now
        }
    }

    /// Charges a root peer's login to the local user behind it (the real uid the module reports)
    /// or to its account; over that owner's cap the login is answered BUSY at once. A non-root
    /// peer was charged at accept; the rhost it sends is its own say-so and counts for nothing
    /// (no per-address failures, blocks or trusted networks): only a root peer (sshd) knows it.
    func admitLogin(_ request: LoginBegin, on connection: Connection) -> LoginBegin? {
        guard connection.peer.isRoot else {
            var local = request
            local.rhost = ""
            return local
        }
        guard connection.owner == nil else { return request }
        let owner = Admission.owner(ofLoginFor: request.user, reportedRealUID: request.realUID)
        guard admission.admits(owner) else {
            noteRefusal()
            finish(.verdict(.busy, reason: Server.busyReason), on: connection)
            return nil
        }
        admission.take(owner)
        connection.owner = owner
        return request
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

    /// Gives connections waiting for a delivery their next step once the command has ended.
    func resumeDeliveries() {
        for (token, outcome) in authority.notifier.takeFinishedDeliveries() {
            let (step, session) = authority.deliveryEnded(token: token, outcome: outcome)
            let waiting = connections.values.first {
                if case .awaitingDelivery(let t) = $0.state { return t == token }
                return false
            }
            if let step, let waiting {
                apply(step, on: waiting)
            } else if waiting == nil, let session {
                authority.cancelled(session)
            }
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
        if authority.store.repliesWaitForJournal {
            connection.awaitsJournal = true
            awaitingSync.append(connection)
            return
        }
        flush(connection)
    }

    /// Sends replies whose journal records are now on disk.
    func release(_ waiting: [Connection]) {
        for connection in waiting where connections[connection.fd] === connection {
            connection.awaitsJournal = false
            flush(connection)
        }
    }

    /// Flushes the replay journal: every half flush bound (it renews the journal's lease, see
    /// JournalMarker; a TOTP SUCCESS inside the lease leaves without waiting for the disk), and once
    /// for every reply waiting on it (a record outside the lease: group commit at the end of a poll
    /// round, when no flush is running), then sends those replies. If the flush fails, the replies
    /// (a SUCCESS among them, perhaps) are never sent: the connections are closed, and the shims
    /// fail closed.
    ///
    /// When other connections are open, the flush runs on the journal's flush thread, and the loop
    /// goes on serving them (first rounds, refusals, the next logins' records) while the disk works:
    /// with eight logins at once the daemon otherwise sat in fdatasync while every client waited
    /// on it (a fifth of the machine idle). The waiting replies leave when poll reports the flush's
    /// end; records appended meanwhile wait for the next flush, which starts in the round that
    /// collects this one. When every open connection waits for this flush, nobody else needs the
    /// daemon: it flushes inline, without the thread hop (one login at a time pays nothing extra).
    func startJournalSync() {
        let store = authority.store
        let waiting = awaitingSync
        awaitingSync.removeAll()
        do {
            if waiting.isEmpty || connections.count > waiting.count, try store.startJournalSync() {
                awaitingBackgroundSync = waiting
                return
            }
            try store.syncJournal()
        } catch {
            journalFlushFailed(error, refusing: waiting)
            return
        }
        journalFlushFailing = false
        release(waiting)
    }

    /// Logs a failed flush (a renewal with no reply waiting only once until a flush succeeds again,
    /// not twice a second) and closes the connections whose replies waited for it.
    func journalFlushFailed(_ error: any Error, refusing waiting: [Connection]) {
        if !waiting.isEmpty {
            logger.critical("could not record used codes, refusing the logins that used them: \(error)")
        } else if !journalFlushFailing {
            logger.critical("could not flush the replay journal; TOTP logins wait for the disk until it works again: \(error)")
        }
        journalFlushFailing = true
        for connection in waiting { drop(connection) }
    }

    /// Sends the replies of a background flush that has ended (or closes them if it failed).
    func collectJournalSync() {
        let store = authority.store
        // The journal may have collected the flush itself, early, while rolling over.
        guard store.journalSyncPending, backgroundSyncEnded || store.journalSyncFD == nil else { return }
        backgroundSyncEnded = false
        let waiting = awaitingBackgroundSync
        awaitingBackgroundSync.removeAll()
        do {
            try store.finishJournalSync()
            journalFlushFailing = false
            release(waiting)
        } catch {
            journalFlushFailed(error, refusing: waiting)
        }
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
