// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import Logging
import CMFASys
import MFAProtocol

/// Who gets a connection: accepting, peer credentials, the slots of Admission.swift, BUSY refusals.
extension Server {
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
}
