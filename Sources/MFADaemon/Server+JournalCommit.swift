// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Group commit of the file store's replay journal: replies that wait for its flush, and the flush
/// thread's side (ReplayJournal.startBackgroundSync).
extension Server {
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
        let store = durability
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
        let store = durability
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
}
