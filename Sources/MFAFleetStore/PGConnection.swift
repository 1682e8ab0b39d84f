// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFAPostgres
import CMFASys
import MFACore
import MFAStore

/// Why a database call failed. `connectionLost` and `timedOut` mean the connection is gone (the
/// store closes it and opens its circuit breaker); `statement` is an error the server reported
/// for one statement on a healthy connection (e.g. a missing table).
enum DatabaseError: Error, CustomStringConvertible {
    case connect(String)
    case timedOut(String)
    case connectionLost(String)
    case statement(sqlState: String, message: String)
    /// The database works but this host must not use it (schema too new, another fleet key).
    case refused(String)

    var description: String {
        switch self {
        case .connect(let m): return "cannot connect: \(m)"
        case .timedOut(let what): return "no answer within the timeout (\(what))"
        case .connectionLost(let m): return "connection lost: \(m)"
        case .statement(let state, let m): return "statement failed (SQLSTATE \(state)): \(m)"
        case .refused(let m): return m
        }
    }

    var connectionIsGone: Bool {
        if case .statement = self { return false }
        return true
    }
}

/// A statement parameter: text, or raw bytes sent in binary form (bytea).
enum DatabaseValue {
    case text(String)
    case bytes([UInt8])
    case null
}

/// The rows a statement returned (text format; bytea as `\x` hex) and the rows it changed.
struct DatabaseResult {
    var rows: [[String?]] = []
    var affected = 0
}

/// One libpq connection driven only through libpq's asynchronous API (PQconnectStartParams /
/// PQconnectPoll, PQsendQueryParams / PQsendPrepare / PQsendQueryPrepared / PQconsumeInput) and
/// `poll` with a deadline, so no call can block the daemon's single thread beyond `timeout`, however the server or network misbehaves.
/// A timed-out statement is not cancelled with PQcancel (which connects anew, blocking); the
/// connection is closed instead, which ends the statement on the server.
final class DatabaseConnection {
    private var conn: OpaquePointer?
    let timeoutMilliseconds: Int64
    /// When set (monotonic ms), no statement may run past it: the store sets it to the start of a
    /// request plus the timeout, so a request's database work is bounded in total, not per statement.
    var deadline: Int64?
    /// Runs each wait on the socket (a `poll`): the store passes one that releases the daemon's
    /// lock meanwhile, so other requests go on while this one waits on the database.
    let aroundWait: ((() -> Int32) -> Int32)?

    static func monotonicMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Connects within `timeoutMilliseconds`. `conninfo`: a URI or `key=value` string.
    init(conninfo: String, password: String?, timeoutMilliseconds: Int64, deadline overall: Int64? = nil,
         aroundWait: ((() -> Int32) -> Int32)? = nil) throws(DatabaseError) {
        self.timeoutMilliseconds = timeoutMilliseconds
        self.aroundWait = aroundWait
        let deadline = min(DatabaseConnection.monotonicMilliseconds() + timeoutMilliseconds, overall ?? .max)
        var keys = ["dbname", "connect_timeout", "application_name", "client_encoding"]
        var values = [conninfo, String(max(2, (timeoutMilliseconds + 999) / 1000)), "mfagated", "UTF8"]
        if let password { keys.append("password"); values.append(password) }
        let started: OpaquePointer? = DatabaseConnection.withCStrings(keys) { k in
            DatabaseConnection.withCStrings(values) { v in PQconnectStartParams(k, v, 1) }
        }
        guard let started else { throw .connect("out of memory") }
        conn = started
        // libpq prints server notices (e.g. "relation already exists, skipping") to stderr by
        // default; the daemon logs what matters itself.
        PQsetNoticeProcessor(started, { _, _ in }, nil)
        if PQstatus(started) == CONNECTION_BAD {
            let message = DatabaseConnection.message(started)
            close()
            throw .connect(message)
        }
        var state = PGRES_POLLING_WRITING
        while true {
            if state == PGRES_POLLING_OK { break }
            if state == PGRES_POLLING_FAILED {
                let message = DatabaseConnection.message(started)
                close()
                throw .connect(message)
            }
            let events = state == PGRES_POLLING_READING ? Int16(POLLIN) : Int16(POLLOUT)
            do {
                try wait(for: events, until: deadline, what: "connecting")
            } catch {
                close()
                throw error
            }
            state = PQconnectPoll(started)
        }
        if PQsetnonblocking(started, 1) != 0 {
            let message = DatabaseConnection.message(started)
            close()
            throw .connect(message)
        }
    }

    deinit { close() }

    func close() {
        if let conn { PQfinish(conn) }
        conn = nil
    }

    static func message(_ conn: OpaquePointer?) -> String {
        guard let conn, let text = PQerrorMessage(conn) else { return "unknown error" }
        let s = String(cString: text)
        return s.split(whereSeparator: { $0 == "\n" }).map(String.init).joined(separator: "; ")
    }

    static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        defer {
            for case let p? in pointers {
                mfa_wipe_c(p)
                free(p)
            }
        }
        pointers.append(nil)
        return pointers.withUnsafeBufferPointer { buffer in
            // never empty (the nil terminator is in it); an empty buffer would be a bug: no strings
            guard let base = buffer.baseAddress else {
                var terminator: UnsafePointer<CChar>? = nil
                return body(&terminator)
            }
            return base.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { body($0) }
        }
    }

    /// Waits until the socket is ready for `events` or the deadline passes.
    private func wait(for events: Int16, until deadline: Int64, what: String) throws(DatabaseError) {
        guard let conn else { throw .connectionLost("closed") }
        while true {
            let fd = PQsocket(conn)
            guard fd >= 0 else { throw .connectionLost(DatabaseConnection.message(conn)) }
            let left = deadline - DatabaseConnection.monotonicMilliseconds()
            if left <= 0 { throw .timedOut(what) }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let timeout = Int32(clamping: left)
            let n = aroundWait.map { around in around { poll(&p, 1, timeout) } } ?? poll(&p, 1, timeout)
            if n < 0 {
                if errno == EINTR { continue }
                throw .connectionLost(String(cString: strerror(errno)))
            }
            if n > 0 { return }
        }
    }

    /// False when the server has closed this idle connection (a restart, an admin's
    /// pg_terminate_backend, an idle timeout): it then sent its farewell and closed the socket, which
    /// poll shows at once. Checked before each use, so nothing is sent on a dead connection and no
    /// statement has to be re-run after an unknown outcome.
    func isAlive() -> Bool {
        guard let conn, PQstatus(conn) == CONNECTION_OK else { return false }
        let fd = PQsocket(conn)
        guard fd >= 0 else { return false }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return true }
        if PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK { return false }
        while PQisBusy(conn) == 0, let stray = PQgetResult(conn) { PQclear(stray) }
        return PQstatus(conn) == CONNECTION_OK && p.revents & Int16(POLLHUP | POLLERR) == 0
    }

    /// Runs one statement with parameters ($1, $2, ...) within the timeout. `prepared`: the
    /// statement is parsed and planned once per connection (a named prepared statement, made on
    /// its first use) instead of at every call; for the statements of every login, which are
    /// fixed texts. The name comes from the text (`mfagate_` and 16 hex digits of its SHA-256), so
    /// that one name means one text on any server connection, even behind a pooler that moves
    /// clients between them. When the server refuses prepared statements (a pooler without
    /// support: 26000 or 42P05; a table changed under one: 0A000) the statement runs unprepared,
    /// and this connection prepares no more.
    func run(_ sql: String, _ parameters: [DatabaseValue] = [], prepared: Bool = false) throws(DatabaseError) -> DatabaseResult {
        guard let conn, PQstatus(conn) == CONNECTION_OK else { throw .connectionLost("not connected") }
        let deadline = min(DatabaseConnection.monotonicMilliseconds() + timeoutMilliseconds, self.deadline ?? .max)
        guard prepared, preparing else { return try execute(conn, sql, nil, parameters, deadline) }
        let name = DatabaseConnection.statementName(sql)
        do throws(DatabaseError) {
            if !statementsPrepared.contains(name) {
                guard PQsendPrepare(conn, name, sql, Int32(parameters.count), nil) == 1 else {
                    throw .connectionLost(DatabaseConnection.message(conn))
                }
                do throws(DatabaseError) {
                    _ = try results(conn, deadline)
                } catch {
                    // 42P05: a statement of that name, hence that text, is there already.
                    guard case .statement(let state, _) = error, state == "42P05" else { throw error }
                }
                statementsPrepared.insert(name)
            }
            return try execute(conn, sql, name, parameters, deadline)
        } catch {
            guard case .statement(let state, _) = error, DatabaseConnection.preparingRefused.contains(state) else { throw error }
            preparing = false
            return try execute(conn, sql, nil, parameters, deadline)
        }
    }

    /// The names of the statements prepared on this connection; false once the server refused one.
    private var statementsPrepared: Set<String> = []
    private var preparing = true
    static let preparingRefused: Set<String> = ["0A000", "26000", "42P05"]

    static func statementName(_ sql: String) -> String {
        let digest = Array(sql.utf8).withUnsafeBytes { Crypto.sha256($0) }
        return "mfagate_" + UserFileFormat.hex(digest.prefix(8))
    }

    /// Sends one statement (the prepared statement `name`, or `sql` parsed anew) and reads its result.
    private func execute(_ conn: OpaquePointer, _ sql: String, _ name: String?, _ parameters: [DatabaseValue],
                         _ deadline: Int64) throws(DatabaseError) -> DatabaseResult {
        // Parameters are copied by libpq into its output buffer before PQsend* returns.
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        for p in parameters {
            switch p {
            case .text(let s):
                buffers.append(strdup(s)); lengths.append(0); formats.append(0)
            case .bytes(let b):
                let m = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, b.count))
                b.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { UnsafeMutableRawPointer(m).copyMemory(from: base, byteCount: b.count) }
                }
                buffers.append(m); lengths.append(Int32(b.count)); formats.append(1)
            case .null:
                buffers.append(nil); lengths.append(0); formats.append(0)
            }
        }
        let count = Int32(parameters.count)
        let sent: Int32 = buffers.withUnsafeBufferPointer { values in
            guard let base = values.baseAddress, !parameters.isEmpty else {
                if let name { return PQsendQueryPrepared(conn, name, 0, nil, nil, nil, 0) }
                return PQsendQueryParams(conn, sql, 0, nil, nil, nil, nil, 0)
            }
            return base.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: values.count) { v in
                if let name { return PQsendQueryPrepared(conn, name, count, v, lengths, formats, 0) }
                return PQsendQueryParams(conn, sql, count, nil, v, lengths, formats, 0)
            }
        }
        for (i, b) in buffers.enumerated() {
            if let b {
                if formats[i] == 1 { mfa_wipe_bytes(b, Int(lengths[i])) } else { mfa_wipe_c(b) }
                if formats[i] == 1 { b.deallocate() } else { free(b) }
            }
        }
        guard sent == 1 else { throw .connectionLost(DatabaseConnection.message(conn)) }
        return try results(conn, deadline)
    }

    /// Flushes what was sent and reads every result of it: the rows (text form) and the count of
    /// rows changed, or the first error the server reported.
    private func results(_ conn: OpaquePointer, _ deadline: Int64) throws(DatabaseError) -> DatabaseResult {
        while true {
            let f = PQflush(conn)
            if f == 0 { break }
            if f < 0 { throw .connectionLost(DatabaseConnection.message(conn)) }
            try wait(for: Int16(POLLOUT | POLLIN), until: deadline, what: "sending a statement")
            if PQconsumeInput(conn) == 0 { throw .connectionLost(DatabaseConnection.message(conn)) }
        }
        var result = DatabaseResult()
        var failure: DatabaseError? = nil
        while true {
            while PQisBusy(conn) == 1 {
                try wait(for: Int16(POLLIN), until: deadline, what: "waiting for a statement's result")
                if PQconsumeInput(conn) == 0 { throw .connectionLost(DatabaseConnection.message(conn)) }
            }
            guard let res = PQgetResult(conn) else { break }
            defer { PQclear(res) }
            let status = PQresultStatus(res)
            if status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK {
                let rows = Int(PQntuples(res)), columns = Int(PQnfields(res))
                for r in 0..<rows {
                    var row: [String?] = []
                    for c in 0..<columns {
                        if PQgetisnull(res, Int32(r), Int32(c)) == 1 { row.append(nil) } else {
                            row.append(String(cString: PQgetvalue(res, Int32(r), Int32(c))))
                        }
                    }
                    result.rows.append(row)
                }
                if let tuples = PQcmdTuples(res) { result.affected = Int(String(cString: tuples)) ?? 0 }
            } else if failure == nil {
                let state = PQresultErrorField(res, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? "?"
                let message = PQresultErrorMessage(res).map { String(cString: $0) } ?? "unknown error"
                failure = .statement(sqlState: state, message: message.split(separator: "\n").first.map(String.init) ?? message)
            }
        }
        if PQstatus(conn) != CONNECTION_OK { throw .connectionLost(DatabaseConnection.message(conn)) }
        if let failure { throw failure }
        return result
    }

    /// A bytea column's text form (`\x` then hex) as bytes.
    static func bytea(_ text: String) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count >= 2, u[0] == UInt8(ascii: "\\"), u[1] == UInt8(ascii: "x"), u.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity((u.count - 2) / 2)
        var i = 2
        while i < u.count {
            guard let hi = nibble(u[i]), let lo = nibble(u[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// Overwrites a C string (a password on its way to libpq) before it is freed.
func mfa_wipe_c(_ p: UnsafeMutablePointer<CChar>) {
    mfa_wipe_bytes(p, strlen(p))
}

func mfa_wipe_bytes(_ p: UnsafeMutablePointer<CChar>, _ n: Int) {
    mfa_wipe(p, n)
}
