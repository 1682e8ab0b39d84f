// SPDX-License-Identifier: Apache-2.0
import MFAProtocol

/// One client's connection, as the poll loop keeps it: its peer (SO_PEERCRED), the slot it is
/// charged to (Admission.swift), where its login stands, its partial frame and its unsent reply.
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
