// SPDX-License-Identifier: Apache-2.0
import MFACore

/// What the daemon needs from wherever enrollments live: the per-host files (`FileStore`,
/// `store = files`) or the fleet database (`PostgresStore` in MFAFleetStore, `store = postgresql`).
/// A store is used by one thread at a time: the daemon calls it only while holding its one lock
/// (a fleet store releases the lock around its network waits and keeps each request's state in
/// that request's session, `useSession`).
public protocol FactorStore: AnyObject {
    /// The user's record, or nil if the user is not enrolled. A fleet store remembers the version
    /// it read in the request's session, so that `save` in the same request is a compare-and-swap
    /// against it.
    func load(_ user: UserName) throws(StoreError) -> UserRecord?
    /// Records it (a used step or code included) so that it is durable before the reply leaves:
    /// at once, or by the group commit of the store's ReplyDurability, which the server waits
    /// for. Throws `.conflict` when another daemon changed the user since this request's `load`
    /// (a compare-and-swap: the caller reloads and checks the code again).
    func save(_ record: UserRecord) throws(StoreError)
    func delete(_ user: UserName) throws(StoreError)
    func listUsers() throws(StoreError) -> [UserName]
    /// Called before each request: forgets what the previous request loaded.
    func forgetLastCheck()
    /// Where the wrong-code counts, lockouts and first sightings live (the daemon's Bookkeeper
    /// applies the same rules to either). `report`: one sentence for the admin about a book file
    /// that could not be read whole (the daemon still starts).
    func openBooks(now: Int64, failureWindow: Int64, report: (String) -> Void) throws(StoreError) -> StoreBooks
    /// True when the backend (the fleet database) failed or was known to be down during the current
    /// request: a login must then end the way the PAM module reads as "daemon unavailable"
    /// (closed without a verdict, so `failmode` decides), never with a verdict built on missing facts.
    var backendFailedInRequest: Bool { get }
    /// Worker threads and sessions (defaults below; PostgresStore overrides them).
    var concurrentRequests: Int { get }
    func useSession(_ slot: Int)
    func releaseDuringWaits(_ gate: any StoreWaitGate)
}

extension FileStore: FactorStore {
    public var backendFailedInRequest: Bool { false }

    /// This host's books, in files of the state directory.
    public func openBooks(now: Int64, failureWindow: Int64, report: (String) -> Void) throws(StoreError) -> StoreBooks {
        .local(lockouts: try LockoutLedger(store: self, now: now, window: failureWindow, report: report),
               firstSeen: try FirstSeenLedger(store: self, report: report))
    }
}

/// The books a store keeps: this host's files, or a ledger every host shares.
public enum StoreBooks {
    case local(lockouts: LockoutLedger, firstSeen: FirstSeenLedger)
    case shared(any SharedLedger)
}

/// Which counter a failure record belongs to.
public enum LedgerKind: String, Sendable {
    case user, rhost
}

/// Wrong-code counts, lockouts and first sightings kept where every host sees them (the fleet
/// database), each change applied atomically there.
public protocol SharedLedger: AnyObject {
    func failureRecord(_ kind: LedgerKind, _ key: String) throws(StoreError) -> FailureRecord?
    /// Applies `change` to the stored record (an empty one if none) atomically fleet-wide and
    /// returns what `change` returned for the version that was stored.
    func updateFailureRecord(_ kind: LedgerKind, _ key: String,
                             _ change: (inout FailureRecord) -> Bool) throws(StoreError) -> Bool
    /// Removes records that neither lock nor count anything at `now` (see FailureRecord.isStale).
    func pruneFailureRecords(now: Int64, window: Int64) throws(StoreError)
    /// Removes the record; true if there was one.
    func removeFailureRecord(_ kind: LedgerKind, _ key: String) throws(StoreError) -> Bool
    func firstSeen(_ user: String) throws(StoreError) -> Int64?
    /// Records `time` unless a time is stored already; returns the stored time.
    func noteFirstSeen(_ user: String, at time: Int64) throws(StoreError) -> Int64
    func setFirstSeen(_ user: String, _ time: Int64) throws(StoreError)
}

/// What the daemon releases while a store waits on the network (its one lock, Server+Workers.swift):
/// a store whose requests wait on a database calls `leave` before each wait and `enter` after it.
public protocol StoreWaitGate: AnyObject, Sendable {
    func leave()
    func enter()
}

/// Requests that may wait on a network (the fleet database) run on worker threads, one per backend
/// session, so that one slow statement does not hold every login of the host (Server+Workers.swift).
/// A store that only touches the local disk keeps the defaults: one request at a time, on the poll
/// loop's thread.
extension FactorStore {
    /// Requests that may wait on the store at once (worker threads); 1: none, the loop serves them.
    public var concurrentRequests: Int { 1 }
    /// Makes session `slot` (0: the poll loop's, 1...concurrentRequests: the workers') the one the
    /// next calls use: what a request loaded, its versions and its deadline stay with its session.
    public func useSession(_ slot: Int) {}
    /// From now on, `gate` is left while the store waits on the network and entered again after.
    public func releaseDuringWaits(_ gate: any StoreWaitGate) {}
}

