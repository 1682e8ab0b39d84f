// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAStore

/// `fleet_offline = cache` (docs/fleet.md, "When the database is away"). The login path does not
/// know where a record came from: `load` returns the database's row while the database answers,
/// and this host's sealed copy (FleetOfflineCache) while it is unreachable, if the copy
///
/// - exists (the user was read or written here; others follow the failmode),
/// - was read from the database within `fleet_offline_max_age`,
/// - is not older than this host's high-water mark of the user (FleetMarks: no rollback through
///   the cache), and a tombstone or a missing row read from the database removes it.
///
/// A login served from the copy saves into it (`p-USER`, flushed before SUCCESS), so a used time
/// step or recovery code is refused again on this host. When the database answers again, those
/// uses are pushed with migrate-store's merge (FleetMigration: later step and counter win, a
/// recovery code used on either side stays used), by compare-and-swap, before anything else is
/// read: at the reconnection for every user, and again at a user's next load if that failed.
/// Wrong codes are counted and locked out per host, in memory, while the database is away.
extension PostgresStore {
    var isUnreachable: Bool { connection == nil && downSince != nil }

    func attachOfflineCache(stateDirectory: String) {
        let cache = FleetOfflineCache(stateDirectory: stateDirectory)
        if let problem = cache.prepare() {
            logger.error("\(problem); fleet_offline = cache is off on this host until it is fixed and the daemon restarted (logins follow the failmode while the database is away)",
                         metadata: ["fleet": "cache"])
            return
        }
        offlineCache = cache
    }

    /// `fleet_offline = refuse` with uses left from a time with `cache`: they are not pushed (the
    /// cache is off), so the admin is told how to push them.
    func warnOfUnpushedUses(stateDirectory: String) {
        let cache = FleetOfflineCache(stateDirectory: stateDirectory)
        guard cache.prepare(create: false) == nil, !cache.pending.isEmpty else { return }
        logger.error("\(cache.directory) holds offline uses of \(cache.pending.count) user(s) not pushed to the fleet database; set fleet_offline = cache until this host has reached the database once, or their used codes may be used again elsewhere",
                     metadata: ["fleet": "cache"])
    }

    // MARK: FactorStore

    public func load(_ user: UserName) throws(StoreError) -> UserRecord? {
        guard let cache = offlineCache else { return try loadRow(user) }
        if let entry = servedOffline[user.value] { return entry.record }  // the whole request stays offline
        let failedBefore = failedInRequest
        let record: UserRecord?
        do {
            record = try loadRow(user)
        } catch .unavailable(let detail) {
            guard isUnreachable else { throw .unavailable(detail: detail) }
            return try loadOffline(user, cache, failedBefore: failedBefore, detail: detail)
        }
        guard let record else {
            if cache.pending.contains(user.value) {
                logger.warning("offline uses of \(user) not pushed: the user was disabled or reset in the fleet database meanwhile",
                               metadata: ["fleet": "cache", "user": "\(user)"])
            }
            cache.remove(user.value)
            return nil
        }
        var current = record
        if cache.pending.contains(user.value) {
            guard let pushed = try pushOfflineUses(of: user, onto: record, cache) else {
                cache.remove(user.value)
                return nil
            }
            current = pushed
        }
        remember(user.value, current, cache)
        return current
    }

    public func save(_ record: UserRecord) throws(StoreError) {
        guard let cache = offlineCache else { return try saveRow(record) }
        let name = record.user.value
        if let entry = servedOffline[name] { return try saveOffline(record, entry, cache) }
        try saveRow(record)
        remember(name, record, cache)
    }

    public func delete(_ user: UserName) throws(StoreError) {
        try deleteRow(user)
        offlineCache?.remove(user.value)
    }

    // MARK: serving from the cache

    func loadOffline(_ user: UserName, _ cache: FleetOfflineCache, failedBefore: Bool, detail: String) throws(StoreError) -> UserRecord? {
        let name = user.value
        let unavailable = StoreError.unavailable(detail: detail)
        let (found, problem) = cache.read(name, keys: keys)
        if let problem {
            logger.error("\(problem); \(name) is not served from the offline cache (the login follows the failmode)",
                         metadata: ["fleet": "cache", "user": "\(name)"])
        }
        guard let entry = found else { throw unavailable }
        let age = clock() - entry.readAt
        guard age <= settings.offlineMaxAge else {
            logger.notice("the offline copy of \(name) was read from the fleet database \(age) s ago, longer than fleet_offline_max_age: not used (the login follows the failmode)",
                          metadata: ["fleet": "cache", "user": "\(name)"])
            throw unavailable
        }
        if let mark = marks[name], entry.version < mark {
            logger.error("the offline copy of \(name) is version \(entry.version), older than version \(mark) this host has seen: not used (the login follows the failmode)",
                         metadata: ["fleet": "cache", "user": "\(name)"])
            throw unavailable
        }
        failedInRequest = failedBefore
        servedOffline[name] = entry
        if !offlineAnnounced {
            offlineAnnounced = true
            logger.notice("serving logins from this host's offline cache while the fleet database is away (fleet_offline = cache); codes used meanwhile are pushed when it is back",
                          metadata: ["fleet": "offline"])
        }
        return entry.record
    }

    /// Records an offline use durably before the login may succeed; if it cannot, the login
    /// follows the failmode (a use that is not recorded could be replayed).
    func saveOffline(_ record: UserRecord, _ entry: OfflineEntry, _ cache: FleetOfflineCache) throws(StoreError) {
        guard PostgresStore.onlyReplayStateChanged(from: entry.record, to: record) else {
            // A new secret, new recovery codes, a new method: the push could not merge it (it
            // would be dropped as another enrollment), so it waits for the database.
            failedInRequest = true
            throw .unavailable(detail: "the fleet database is unreachable; changing \(record.user)'s enrollment needs it (only logins are served from the offline cache)")
        }
        var updated = entry
        updated.record = record
        updated.pending = true
        do {
            try cache.write(record.user.value, updated, cipher: keys.primary, durable: true)
        } catch {
            failedInRequest = true
            logger.error("\(error); the use cannot be recorded on this host, so the login follows the failmode",
                         metadata: ["fleet": "cache", "user": "\(record.user)"])
            throw .unavailable(detail: "\(error)")
        }
        servedOffline[record.user.value] = updated
    }

    /// Keeps the record just read or written as the user's offline copy (not flushed: a copy lost
    /// in a crash is older than the mark, or missing, and is then not used). Rewritten only when
    /// the row changed or a minute has passed.
    func remember(_ name: String, _ record: UserRecord, _ cache: FleetOfflineCache) {
        guard let version = versionsRead[name] else { return }
        let time = clock()
        if let last = cacheWritten[name], last.version == version, time - last.readAt < 60, !cache.pending.contains(name) { return }
        do {
            if try cache.write(name, OfflineEntry(version: version, readAt: time, pending: false, record: record),
                               cipher: keys.primary, durable: false) {
                if cacheWritten.count < FleetOfflineCache.maximumUsers { cacheWritten[name] = (version, time) }
            } else if !offlineCacheFull {
                offlineCacheFull = true
                logger.error("\(cache.directory) holds \(FleetOfflineCache.maximumUsers) users; new users are not cached on this host")
            }
        } catch {
            logger.error("\(error); the offline copy of \(name) is not updated", metadata: ["fleet": "cache", "user": "\(name)"])
        }
    }

    /// Whether `new` differs from `old` only by what a login changes: the used step, counter,
    /// last success, learnt drift, and recovery codes used up (never added).
    static func onlyReplayStateChanged(from old: UserRecord, to new: UserRecord) -> Bool {
        var probe = new
        probe.lastUsedStep = old.lastUsedStep
        probe.lastSuccess = old.lastSuccess
        probe.counter = old.counter
        probe.drift = old.drift
        probe.recoveryCodes = old.recoveryCodes
        return probe == old && new.recoveryCodes.allSatisfy { old.recoveryCodes.contains($0) }
    }

    // MARK: pushing offline uses

    /// Merges the user's offline uses into `remote` and writes the result by compare-and-swap
    /// (re-reading on a conflict). nil: the user was removed meanwhile.
    func pushOfflineUses(of user: UserName, onto remote: UserRecord, _ cache: FleetOfflineCache) throws(StoreError) -> UserRecord? {
        let name = user.value
        let (entry, problem) = cache.read(name, keys: keys)
        guard let local = entry?.record, entry?.pending == true else {
            if let problem {
                logger.error("\(problem); the offline uses it held cannot be pushed", metadata: ["fleet": "cache", "user": "\(name)"])
            }
            cache.remove(name)
            return remote
        }
        var remote = remote
        for _ in 0..<4 {
            guard remote.method == local.method, remote.parameters == local.parameters,
                  Crypto.constantTimeEqual(remote.secret, local.secret) else {
                logger.warning("offline uses of \(name) not pushed: the user was enrolled anew in the fleet database meanwhile",
                               metadata: ["fleet": "cache", "user": "\(name)"])
                return remote
            }
            let merged = PostgresStore.sameRecord(remote, local) ? PostgresStore.merged(remote, local)
                : PostgresStore.mergedReplayState(remote, local)
            if merged == remote { return remote }
            do {
                try saveRow(merged)
                return merged
            } catch .conflict {
                guard let again = try loadRow(user) else { return nil }
                remote = again
            }
        }
        throw .conflict(user: name)
    }

    /// At the reconnection: pushes every user's offline uses before the request goes on. Returns
    /// how many users had some (nil: no cache). What this request had read is kept: a save of a
    /// user pushed here then conflicts and is checked again against the pushed row.
    func pushOfflineUses() -> Int? {
        guard let cache = offlineCache, !pushingOffline else { return nil }
        pushingOffline = true
        let saved = (versionsRead, keysRead, failedInRequest, requestDeadline)
        defer {
            (versionsRead, keysRead, failedInRequest, requestDeadline) = saved
            pushingOffline = false
        }
        var pushed = 0
        for name in cache.pending.sorted() {
            guard connection != nil, let user = try? UserName(validating: name) else { continue }
            requestDeadline = now + settings.timeoutMilliseconds
            do {
                if let remote = try loadRow(user), let result = try pushOfflineUses(of: user, onto: remote, cache) {
                    remember(name, result, cache)
                } else {
                    cache.remove(name)
                }
                pushed += 1
            } catch {
                logger.error("offline uses of \(name) not pushed yet (\(error)); they are pushed before its next login on this host",
                             metadata: ["fleet": "cache", "user": "\(name)"])
            }
        }
        return pushed
    }

    // MARK: the ledger while offline

    /// A ledger operation on the database; when it is unreachable and the cache is on, on this
    /// host's memory instead (the login may then be served from the cache).
    func offlineLedger<T>(_ online: () throws(StoreError) -> T, else local: () -> T) throws(StoreError) -> T {
        guard offlineCache != nil else { return try online() }
        let failedBefore = failedInRequest
        do {
            return try online()
        } catch {
            guard isUnreachable else { throw error }
            failedInRequest = failedBefore
            return local()
        }
    }

    func updateLocalFailureRecord(_ kind: LedgerKind, _ key: String, _ change: (inout FailureRecord) -> Bool) -> Bool {
        let id = kind.rawValue + " " + key
        var record = localFailures[id] ?? FailureRecord()
        let answer = change(&record)
        if localFailures[id] != nil || localFailures.count < 10_000 { localFailures[id] = record }
        return answer
    }
}
