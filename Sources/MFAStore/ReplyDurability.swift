// SPDX-License-Identifier: Apache-2.0
/// How a reply waits until what its request recorded is durable ("a used step or code is on disk
/// before SUCCESS leaves"), kept apart from what a login asks of a store (FactorStore): the server
/// is handed one at construction and never asks the store how durability works.
///
/// The file store provides it with its replay journal (group commit: `save` appends the record,
/// the server flushes once per poll round or on the flush thread and holds the replies until
/// then; a lease lets TOTP replies leave before the flush, docs/robustness.md). A store that
/// commits every write before `save` returns (the fleet database) uses `CommittedOnWrite`.
public protocol ReplyDurability: AnyObject {
    /// From now on `save` leaves its record to the server's group commit instead of flushing it.
    var defersJournalSync: Bool { get set }
    /// Flushes what `save` left, here and now.
    func syncJournal() throws(StoreError)
    var hasUnsyncedJournal: Bool { get }
    /// Starts the flush on the flush thread: true if it runs in the background and the replies it
    /// covers wait for `finishJournalSync`, false if it was done here.
    func startJournalSync() throws(StoreError) -> Bool
    var journalSyncPending: Bool { get }
    /// Readable when the background flush has ended; nil when none runs.
    var journalSyncFD: Int32? { get }
    func finishJournalSync() throws(StoreError)
    /// True when this round's replies must wait for a flush (a record outside the lease).
    var repliesWaitForJournal: Bool { get }
    /// Milliseconds until a flush is due to renew the lease; nil: none needed.
    var journalRenewalDelay: Int64? { get }
    /// A clean stop: everything flushed and marked closed cleanly.
    func closeJournal() throws(StoreError)
}

extension FileStore: ReplyDurability {}

/// Every write is committed before `save` returns (the fleet database): no reply ever waits, there
/// is nothing to flush, renew or collect. `onClose` runs at a clean stop (the fleet store flushes
/// its high-water marks there).
public final class CommittedOnWrite: ReplyDurability {
    let onClose: () -> Void
    public init(onClose: @escaping () -> Void = {}) { self.onClose = onClose }
    public var defersJournalSync = false
    public func syncJournal() throws(StoreError) {}
    public var hasUnsyncedJournal: Bool { false }
    public func startJournalSync() throws(StoreError) -> Bool { false }
    public var journalSyncPending: Bool { false }
    public var journalSyncFD: Int32? { nil }
    public func finishJournalSync() throws(StoreError) {}
    public var repliesWaitForJournal: Bool { false }
    public var journalRenewalDelay: Int64? { nil }
    public func closeJournal() throws(StoreError) { onClose() }
}
