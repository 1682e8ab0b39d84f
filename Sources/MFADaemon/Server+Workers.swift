// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASys
import MFAProtocol
import MFAStore

/// The daemon's one lock. Whoever runs daemon code holds it: the poll loop always, except while it
/// sits in `poll`; a worker while it serves a request, except while its store waits on the
/// network (the store leaves and re-enters it around each wait: StoreWaitGate). So every
/// in-memory state of the daemon (connections, admission, login sessions, lockout books, rate
/// limiters, the store's shared parts) is touched by one thread at a time, as when the daemon was
/// one thread, and only the waits on the database overlap.
final class DaemonLock: StoreWaitGate, @unchecked Sendable {
    // @unchecked: a pthread mutex is made for use from several threads; the pointer never changes.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    func enter() { pthread_mutex_lock(mutex) }
    func leave() { pthread_mutex_unlock(mutex) }
}

/// Whole requests waiting for a worker (`database_connections` threads, each with its own store
/// session and database connection), and the descriptor by which a worker wakes the poll loop
/// when it has answered one. A connection whose request is with a worker is not read, polled or
/// expired by the loop until the worker is done (`Connection.withWorker`).
final class RequestWorkers: @unchecked Sendable {
    // @unchecked: `jobs` is guarded by `mutex`/`ready`; the Connection objects in the jobs are
    // only touched while holding the DaemonLock (the loop hands them over, a worker takes them).
    struct Job {
        let connection: Connection
        let message: ClientMessage
    }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let ready = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [Job] = []
    /// Readable when a worker has finished a request (an eventfd in the loop's poll set).
    let wakeFD: Int32
    let count: Int

    init?(count: Int) {
        wakeFD = mfa_wakeup_fd()
        guard wakeFD >= 0 else { return nil }
        self.count = count
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(ready, nil)
    }

    func submit(_ job: Job) {
        pthread_mutex_lock(mutex)
        jobs.append(job)
        pthread_cond_signal(ready)
        pthread_mutex_unlock(mutex)
    }

    /// Waits (holding no daemon lock) until a request is there, and takes it.
    func take() -> Job {
        pthread_mutex_lock(mutex)
        while jobs.isEmpty { pthread_cond_wait(ready, mutex) }
        let job = jobs.removeFirst()
        pthread_mutex_unlock(mutex)
        return job
    }
}

extension Server {
    /// Starts the workers when the store serves several requests at once (`store = postgresql`
    /// with `database_connections` > 1); the file store's requests stay on the loop's thread.
    /// Called with the lock held, from `run`, after the signals were blocked (the threads inherit
    /// the mask, so SIGTERM and SIGHUP still reach only the signalfd).
    func startWorkers() {
        let count = authority.store.concurrentRequests
        guard count > 1, let pool = RequestWorkers(count: count) else { return }
        authority.store.releaseDuringWaits(lock)
        var started = 0
        for slot in 1...count {
            if DetachedThread.start({ [unowned self] in self.workerLoop(pool, slot: slot) }) { started += 1 }
        }
        guard started > 0 else {
            logger.error("could not start worker threads for the fleet database; its requests are served one at a time")
            return
        }
        workers = pool
    }

    /// One worker: takes a whole request, serves it with its own store session under the lock
    /// (released by the store while it waits on the database), then wakes the loop, which polls
    /// the connection again (its reply, if any, is already sent or queued).
    func workerLoop(_ pool: RequestWorkers, slot: Int) {
        while true {
            let job = pool.take()
            lock.enter()
            authority.store.useSession(slot)
            let connection = job.connection
            authority.store.forgetLastCheck()
            handle(job.message, on: connection)
            connection.withWorker = false
            if connection.dropAfterWorker { drop(connection) }
            lock.leave()
            mfa_wakeup_signal(pool.wakeFD)
        }
    }

    /// Hands the request to a worker; true if it did (the caller stops reading the connection).
    func handOver(_ message: ClientMessage, on connection: Connection) -> Bool {
        guard let workers else { return false }
        connection.withWorker = true
        workers.submit(RequestWorkers.Job(connection: connection, message: message))
        return true
    }
}
