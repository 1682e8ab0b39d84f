// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFAPostgres
import CMFASys
import Logging
import MFACore
import MFAStore

/// Where the fleet database is and how long to wait for it (from mfagate.conf).
public struct FleetSettings: Sendable {
    public var conninfo: String
    public var passwordFile: String?
    public var keyFile: String
    /// The second key held during a rotation (`fleet_new_key_file`), nil otherwise.
    public var newKeyFile: String?
    /// `database_insecure = yes`: the admin accepts a link that is neither a local socket nor
    /// verified TLS (FleetLink).
    public var insecure: Bool = false
    /// Bound on any one connect or statement.
    public var timeoutMilliseconds: Int64
    /// Time between reconnection attempts while the database is down (the circuit breaker).
    public var retryMilliseconds: Int64
    /// Written into each row it changes (`updated_by`), for an admin reading the table.
    public var hostName: String
    /// `fleet_offline` and `fleet_offline_max_age` (seconds): see PostgresStore+Offline.
    public var offline: FleetOffline = .refuse
    public var offlineMaxAge: Int64 = 7 * 86400
    /// `database_connections`: worker threads, each with its own connection (Server+Workers.swift).
    public var connections: Int = 4

    public init(conninfo: String, passwordFile: String?, keyFile: String, timeoutMilliseconds: Int64,
                retryMilliseconds: Int64, hostName: String) {
        self.conninfo = conninfo
        self.passwordFile = passwordFile
        self.keyFile = keyFile
        self.timeoutMilliseconds = timeoutMilliseconds
        self.retryMilliseconds = retryMilliseconds
        self.hostName = hostName
    }

    public init(_ config: DaemonConfig, hostName: String) {
        self.init(conninfo: config.databaseURL ?? "", passwordFile: config.databasePasswordFile, keyFile: config.fleetKeyFile,
                  timeoutMilliseconds: config.databaseTimeout * 1000, retryMilliseconds: config.databaseRetry * 1000,
                  hostName: hostName)
        newKeyFile = config.fleetNewKeyFile
        insecure = config.databaseInsecure
        offline = config.fleetOffline
        offlineMaxAge = config.fleetOfflineMaxAge
        connections = config.databaseConnections
    }
}

/// The fleet store (`store = postgresql`): every enrollment, used time step, recovery code,
/// failure count and first sighting lives in one PostgreSQL database shared by the fleet, so each
/// guarantee of the file store holds across hosts, enforced by the database (docs/fleet.md):
///
/// - every user row has a `version`; a save is `UPDATE ... WHERE version = <the version read>`, so
///   of two hosts accepting the same code at once exactly one write lands, and the other reloads
///   and checks the code again (Authority.answer), finding it used;
/// - failure records are updated the same way, so counts and lockouts are shared;
/// - secrets never reach the database in clear: each record is sealed (FleetCipher) under the key
///   that only the hosts hold;
/// - the database cannot switch MFA off or bring used codes back (PostgresStore+Rows): versions are
///   sealed into the rows, each host refuses rows older than its high-water marks (FleetMarks) and
///   missing rows of users it has seen, removals are sealed tombstones, and a network link must be
///   verified TLS (FleetLink).
///
/// One connection per session (`database_connections` worker threads, each serving whole requests
/// with its own session, and one for the poll loop), each opened lazily and re-opened after a
/// failure; one circuit breaker for all, retrying at most every `retryMilliseconds`; one log line
/// when the database goes away and one when it is back.
public final class PostgresStore: FactorStore, SharedLedger {
    public static let schemaVersion = 2
    let settings: FleetSettings
    let keys: FleetKeyring
    /// The key id the database says new rows are sealed under (`mfagate_meta.key_id`).
    var sealingKeyID = ""
    let password: String?
    let logger: Logger
    /// The session of the request being served (FleetSession): the daemon's lock holder's.
    var session: FleetSession
    /// One session per worker thread, and slot 0 for the poll loop (`useSession`).
    var sessions: [FleetSession]
    /// Left around every wait on the database (the daemon's lock), nil: nothing to release.
    var waitGate: (any StoreWaitGate)?
    /// Monotonic ms since the database has been failing; nil while it works (or was never tried).
    var downSince: Int64?
    var lastFailure = ""
    var nextAttempt: Int64 = 0
    /// Some session has connected since the start (later sessions connect without a log line).
    var connectedOnce = false
    /// The highest row version seen per user (FleetMarks), and where it is kept (nil: not kept).
    var marks = FleetMarks()
    var marksFile: FleetMarksFile?
    var marksFull = false
    /// `fleet_offline = cache` (PostgresStore+Offline): the host's copies of its users' records,
    /// the entries served from it in this request, and the wrong-code counts kept meanwhile.
    var offlineCache: FleetOfflineCache?
    var offlineAnnounced = false
    var localFailures: [String: FailureRecord] = [:]
    var pushingOffline = false
    var cacheWritten: [String: (version: Int64, readAt: Int64)] = [:]
    var offlineCacheFull = false
    /// The daemon's clock in seconds (the cache's ages); the daemon passes its own.
    public var clock: () -> Int64 = { PostgresStore.wallMilliseconds() / 1000 }

    /// Reads the fleet key and password file (refusing files others can read) but does not
    /// connect: the daemon starts, and follows `failmode`, even while the database is down.
    /// `secretOwner`: the uid besides root that may own the key and password files (the daemon's).
    /// `marksFile`: where this host keeps its high-water marks (the state directory); a file that
    /// cannot be read is logged and the daemon starts without marks.
    public init(settings: FleetSettings, logger: Logger, secretOwner: uid_t = geteuid(),
                marksFile: FleetMarksFile? = nil) throws(FleetError) {
        self.settings = settings
        self.logger = logger
        let loop = FleetSession()
        session = loop
        sessions = [loop] + (0..<max(1, settings.connections)).map { _ in FleetSession() }
        var loadError = [CChar](repeating: 0, count: 256)
        if mfa_libpq_load(&loadError, loadError.count) != 0 {
            throw .library(String(decoding: loadError.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        if let why = try FleetLink.insecurity(of: settings.conninfo) {
            guard settings.insecure else {
                throw .insecureLink("database_url \(why); use sslmode=verify-full (with sslrootcert) so that nobody on the path can read or change the fleet's rows, or write `database_insecure = yes` to accept it")
            }
            logger.warning("database_url \(why): accepted because database_insecure = yes; whoever is on the path to the database can read and change what the hosts believe about enrollments",
                           metadata: ["fleet": "insecure"])
        }
        func readKey(_ path: String) throws(FleetError) -> FleetCipher {
            var keyBytes = try SecretFile.read(path, what: "fleet key", owner: secretOwner)
            defer { mfa_wipe(&keyBytes, keyBytes.count) }
            return FleetCipher(key: try FleetCipher.parseKey(keyBytes, path: path))
        }
        let primary = try readKey(settings.keyFile)
        let extra = try settings.newKeyFile.map { (path: String) throws(FleetError) in try readKey(path) }
        if let extra, extra.keyID == primary.keyID {
            throw .badKey(path: settings.newKeyFile ?? "", reason: "it is the same key as fleet_key_file \(settings.keyFile); make a new one with: openssl rand -hex 32")
        }
        keys = FleetKeyring(primary: primary, extra: extra)
        sealingKeyID = primary.keyID
        if let file = settings.passwordFile {
            var bytes = try SecretFile.read(file, what: "database password file", owner: secretOwner)
            defer { mfa_wipe(&bytes, bytes.count) }
            var text = bytes[...]
            while let last = text.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { text = text.dropLast() }
            password = String(decoding: text, as: UTF8.self)
        } else {
            password = nil
        }
        if let marksFile {
            attachMarks(marksFile)
            if settings.offline == .cache {
                attachOfflineCache(stateDirectory: marksFile.directory)
            } else {
                warnOfUnpushedUses(stateDirectory: marksFile.directory)
            }
        }
    }

    // MARK: connection and circuit breaker

    var now: Int64 { DatabaseConnection.monotonicMilliseconds() }

    /// Runs `body` on a live connection. While the database is down (and until the next retry is
    /// due) it fails at once, without waiting: logins then end quickly per the module's failmode.
    func withDatabase<T>(_ body: (DatabaseConnection) throws(DatabaseError) -> T) throws(StoreError) -> T {
        if let open = connection, !open.isAlive() {
            // Closed by the server while idle (e.g. it restarted): open a new one now, without
            // waiting for the retry period, since nothing has failed yet.
            open.close()
            connection = nil
            nextAttempt = 0
            logger.notice("fleet database closed the idle connection; reconnecting", metadata: ["fleet": "reconnect"])
        }
        if connection == nil {
            if downSince != nil && now < nextAttempt {
                failedInRequest = true
                throw .unavailable(detail: "the fleet database is unreachable (\(lastFailure)); retrying every \(settings.retryMilliseconds / 1000) s")
            }
            do {
                let fresh = try DatabaseConnection(conninfo: settings.conninfo, password: password,
                                                   timeoutMilliseconds: settings.timeoutMilliseconds, deadline: requestDeadline,
                                                   aroundWait: waitHook())
                fresh.deadline = requestDeadline
                try prepareSchema(fresh)
                connection = fresh
            } catch {
                markDown(error.description)
                throw .unavailable(detail: "the fleet database is unreachable (\(error))")
            }
            // Uses made offline are pushed before anything else is read (PostgresStore+Offline).
            let pushed = pushOfflineUses()
            guard connection != nil else { throw .unavailable(detail: "the fleet database failed again (\(lastFailure))") }
            markUp(pushed: pushed)
        }
        guard let live = connection else { throw .unavailable(detail: "the fleet database failed again (\(lastFailure))") }
        do {
            live.deadline = requestDeadline
            return try body(live)
        } catch {
            if error.connectionIsGone {
                connection?.close()
                connection = nil
                markDown(error.description)
            } else {
                failedInRequest = true
                logger.error("fleet database: \(error)")
            }
            throw .unavailable(detail: "the fleet database failed (\(error))")
        }
    }

    func markDown(_ reason: String) {
        failedInRequest = true
        lastFailure = reason
        nextAttempt = now + settings.retryMilliseconds
        if downSince == nil {
            downSince = now
            offlineAnnounced = false
            let meanwhile = offlineCache == nil ? "logins follow the PAM module's failmode until it is back"
                : "logins of users this host has read within fleet_offline_max_age (\(settings.offlineMaxAge / 86400 > 0 ? "\(settings.offlineMaxAge / 86400) d" : "\(settings.offlineMaxAge) s")) are checked against its offline cache, the others follow the PAM module's failmode"
            logger.error("fleet database unreachable: \(reason); \(meanwhile) (retrying every \(settings.retryMilliseconds / 1000) s)",
                         metadata: ["fleet": "down"])
        }
    }

    func markUp(pushed: Int? = nil) {
        // Another session connecting while the database works says nothing new.
        if downSince == nil && connectedOnce && (pushed ?? 0) == 0 { return }
        connectedOnce = true
        localFailures.removeAll()
        let uses = pushed.map { "; offline uses of \($0) user\($0 == 1 ? "" : "s") pushed" } ?? ""
        if let since = downSince {
            logger.notice("fleet database reachable again after \((now - since + 500) / 1000) s\(uses)", metadata: ["fleet": "up"])
        } else if pushed ?? 0 > 0 {
            logger.notice("fleet database connected\(uses)", metadata: ["fleet": "up"])
        } else {
            logger.notice("fleet database connected", metadata: ["fleet": "up"])
        }
        downSince = nil
    }

    /// Tries to connect now (at start, and for `migrate-store`); false if the database is down.
    @discardableResult
    public func connectNow() -> Bool {
        nextAttempt = 0
        do { _ = try withDatabase { (_: DatabaseConnection) throws(DatabaseError) in () } } catch { return false }
        return true
    }

    public var isDown: Bool { downSince != nil }

    // MARK: FactorStore

    public func forgetLastCheck() {
        versionsRead.removeAll(keepingCapacity: true)
        keysRead.removeAll(keepingCapacity: true)
        failedInRequest = false
        servedOffline.removeAll(keepingCapacity: true)
        failuresRead.removeAll(keepingCapacity: true)
        firstSeenRead.removeAll(keepingCapacity: true)
        rowsRead.removeAll(keepingCapacity: true)
        // Every request gets `database_timeout` for all its statements together (a login makes
        // about eight): a slow database cannot add up to more than the PAM module waits.
        requestDeadline = now + settings.timeoutMilliseconds
    }

    public var backendFailedInRequest: Bool { failedInRequest }
    /// Shared by every host: each change applied atomically in the database.
    public func openBooks(now: Int64, failureWindow: Int64, report: (String) -> Void) throws(StoreError) -> StoreBooks {
        .shared(self)
    }
    /// Every write is committed before it returns: no reply waits (CommittedOnWrite); at a clean
    /// stop the high-water marks appended since the last flush are flushed.
    public var durability: CommittedOnWrite {
        CommittedOnWrite { [marksFile] in marksFile?.flushNow() }
    }

    // MARK: SharedLedger

    public func failureRecord(_ kind: LedgerKind, _ key: String) throws(StoreError) -> FailureRecord? {
        let memo = kind.rawValue + " " + key
        return try offlineLedger({ () throws(StoreError) in
            if let read = failuresRead[memo] { return read }
            if kind == .user {
                // The user's row brings this record with it (readRow), and the login loads the row
                // next: one round trip for both, the row kept for loadRow (rowsRead).
                rowsRead[key] = .some(try readRow(key))
                if let read = failuresRead[memo] { return read }
            }
            let record = try readFailureRecord(kind, key)?.record
            failuresRead[memo] = .some(record)
            return record
        }, else: { localFailures[memo] })
    }

    func readFailureRecord(_ kind: LedgerKind, _ key: String) throws(StoreError) -> (record: FailureRecord, version: Int64)? {
        let result = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
            try db.run("SELECT version, locked_until, failures FROM mfagate_failures WHERE kind = $1 AND key = $2",
                       [.text(kind.rawValue), .text(key)], prepared: true)
        }
        guard let row = result.rows.first, let v = row[0].flatMap({ Int64($0) }) else { return nil }
        var record = FailureRecord()
        record.lockedUntil = row[1].flatMap { Int64($0) }
        record.failures = (row[2] ?? "").split(separator: ",").compactMap { Int64($0) }
        return (record, v)
    }

    public func updateFailureRecord(_ kind: LedgerKind, _ key: String,
                                    _ change: (inout FailureRecord) -> Bool) throws(StoreError) -> Bool {
        try offlineLedger({ () throws(StoreError) in try updateSharedFailureRecord(kind, key, change) },
                          else: { updateLocalFailureRecord(kind, key, change) })
    }

    func updateSharedFailureRecord(_ kind: LedgerKind, _ key: String,
                                   _ change: (inout FailureRecord) -> Bool) throws(StoreError) -> Bool {
        failuresRead[kind.rawValue + " " + key] = nil
        for _ in 0..<8 {
            let current = try readFailureRecord(kind, key)
            var record = current?.record ?? FailureRecord()
            let answer = change(&record)
            let until = record.lockedUntil.map { DatabaseValue.text(String($0)) }
            let failures = DatabaseValue.text(record.failures.map(String.init).joined(separator: ","))
            let result = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
                if let current {
                    return try db.run("""
                        UPDATE mfagate_failures SET version = version + 1, locked_until = $4::bigint, failures = $5
                        WHERE kind = $1 AND key = $2 AND version = $3
                        """, [.text(kind.rawValue), .text(key), .text(String(current.version)), until ?? .null, failures],
                        prepared: true)
                }
                return try db.run("""
                    INSERT INTO mfagate_failures (kind, key, version, locked_until, failures) VALUES ($1, $2, 1, $3::bigint, $4)
                    ON CONFLICT (kind, key) DO NOTHING
                    """, [.text(kind.rawValue), .text(key), until ?? .null, failures], prepared: true)
            }
            if result.affected == 1 { return answer }
        }
        failedInRequest = true
        throw .conflict(user: key)
    }

    public func pruneFailureRecords(now: Int64, window: Int64) throws(StoreError) {
        if offlineCache != nil { localFailures = localFailures.filter { !$0.value.isStale(at: now, window: window) } }
        try offlineLedger({ () throws(StoreError) in
            _ = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
                try db.run("""
                    DELETE FROM mfagate_failures WHERE coalesce(locked_until, 0) <= $1::bigint
                    AND NOT EXISTS (SELECT 1 FROM unnest(string_to_array(nullif(failures, ''), ',')::bigint[]) AS f WHERE f > $1::bigint - $2::bigint)
                    """, [.text(String(now)), .text(String(window))])
            }
        }, else: {})
    }

    public func removeFailureRecord(_ kind: LedgerKind, _ key: String) throws(StoreError) -> Bool {
        let local = localFailures.removeValue(forKey: kind.rawValue + " " + key) != nil
        failuresRead[kind.rawValue + " " + key] = nil
        let shared = try offlineLedger({ () throws(StoreError) in
            try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
                try db.run("DELETE FROM mfagate_failures WHERE kind = $1 AND key = $2", [.text(kind.rawValue), .text(key)])
            }.affected > 0
        }, else: { false })
        return local || shared
    }

    public func firstSeen(_ user: String) throws(StoreError) -> Int64? {
        // Read for every login; offline, only enrolled users are served (grace does not apply).
        try offlineLedger({ () throws(StoreError) in
            if let read = firstSeenRead[user] { return read }  // came with the row (readRow)
            return try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
                try db.run("SELECT first_seen FROM mfagate_first_seen WHERE name = $1", [.text(user)], prepared: true)
            }.rows.first?[0].flatMap { Int64($0) }
        }, else: { nil })
    }

    public func noteFirstSeen(_ user: String, at time: Int64) throws(StoreError) -> Int64 {
        firstSeenRead[user] = nil
        let result = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
            try db.run("""
                INSERT INTO mfagate_first_seen (name, first_seen) VALUES ($1, $2)
                ON CONFLICT (name) DO UPDATE SET first_seen = mfagate_first_seen.first_seen RETURNING first_seen
                """, [.text(user), .text(String(time))], prepared: true)
        }
        return result.rows.first?[0].flatMap { Int64($0) } ?? time
    }

    public func setFirstSeen(_ user: String, _ time: Int64) throws(StoreError) {
        firstSeenRead[user] = nil
        _ = try withDatabase { (db: DatabaseConnection) throws(DatabaseError) in
            try db.run("""
                INSERT INTO mfagate_first_seen (name, first_seen) VALUES ($1, $2)
                ON CONFLICT (name) DO UPDATE SET first_seen = EXCLUDED.first_seen
                """, [.text(user), .text(String(time))])
        }
    }
}
