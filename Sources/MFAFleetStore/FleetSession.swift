// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import MFACore
import MFAStore

/// What one request of the fleet store keeps while it runs (PostgresStore.session): its database
/// connection, the versions and keys of the rows it read (a `save` is a compare-and-swap against
/// them), whether the database failed in it, its deadline, and the users it served from the
/// offline cache. Each worker thread has its own, so two requests in flight never share a
/// connection or a version read; two requests of one user are then two compare-and-swaps, as on
/// two hosts (docs/fleet.md, "Several requests at once").
final class FleetSession {
    var connection: DatabaseConnection?
    var failedInRequest = false
    /// Monotonic ms by which the current request's database work must be done (nil: no request).
    var requestDeadline: Int64?
    /// Versions this request read, by user (0: read as absent), for compare-and-swap saves.
    var versionsRead: [String: Int64] = [:]
    /// The key each row read in this request was sealed under: a write seals under the same key.
    var keysRead: [String: String] = [:]
    var servedOffline: [String: OfflineEntry] = [:]
    /// Failure records this request has read (by "kind key"; nil inside: none stored), so that a
    /// login asks the database once per request, not at each look (the user's record comes with
    /// the row, PostgresStore.readRow). Changes go to the database by compare-and-swap as before.
    var failuresRead: [String: FailureRecord?] = [:]
    /// The same for first sightings (nil inside: none stored).
    var firstSeenRead: [String: Int64?] = [:]
    /// A user's row read with their failure record (nil inside: no row), kept for the load that
    /// follows in the same request; taken by it, dropped by a write.
    var rowsRead: [String: PostgresStore.Row?] = [:]
}

/// The current session's fields, under the names the store's code has always used.
extension PostgresStore {
    var connection: DatabaseConnection? {
        get { session.connection }
        set { session.connection = newValue }
    }
    var failedInRequest: Bool {
        get { session.failedInRequest }
        set { session.failedInRequest = newValue }
    }
    var requestDeadline: Int64? {
        get { session.requestDeadline }
        set { session.requestDeadline = newValue }
    }
    var versionsRead: [String: Int64] {
        get { session.versionsRead }
        _modify { yield &session.versionsRead }
    }
    var keysRead: [String: String] {
        get { session.keysRead }
        _modify { yield &session.keysRead }
    }
    var servedOffline: [String: OfflineEntry] {
        get { session.servedOffline }
        _modify { yield &session.servedOffline }
    }
    var failuresRead: [String: FailureRecord?] {
        get { session.failuresRead }
        _modify { yield &session.failuresRead }
    }
    var firstSeenRead: [String: Int64?] {
        get { session.firstSeenRead }
        _modify { yield &session.firstSeenRead }
    }
    var rowsRead: [String: Row?] {
        get { session.rowsRead }
        _modify { yield &session.rowsRead }
    }
}

/// Sessions and the daemon's lock (Server+Workers.swift): the FactorStore side of worker threads.
extension PostgresStore {
    public var concurrentRequests: Int { sessions.count - 1 }

    public func useSession(_ slot: Int) {
        session = sessions[min(max(0, slot), sessions.count - 1)]
    }

    public func releaseDuringWaits(_ gate: any StoreWaitGate) {
        waitGate = gate
    }

    /// What a new connection of the current session does around each wait on the network: leaves
    /// the daemon's lock, waits, enters it again and makes its own session current again (another
    /// request's may have been current meanwhile).
    func waitHook() -> ((() -> Int32) -> Int32)? {
        guard let gate = waitGate else { return nil }
        let mine = session
        return { [unowned self] wait in
            gate.leave()
            let result = wait()
            let saved = errno
            gate.enter()
            self.session = mine
            errno = saved
            return result
        }
    }
}
