// SPDX-License-Identifier: Apache-2.0
/// `mfagate report` (docs/protocol.md, REPORT 0x28 and REPORTED 0xA8): root asks the daemon for a
/// summary of the `mode = audit` records; the CLI never opens the state directory. The daemon
/// sends the records grouped by user, decision, rule, service and rhost, the refusals first, as
/// many groups as fit in one frame (`omittedRows` counts the rest). The PAM shim never sends or
/// reads these.

public struct ReportRequest: Sendable, Equatable {
    public var version: UInt8
    /// Records of the last this-many seconds, by the daemon's clock; 0: every record kept.
    public var sinceSeconds: Int64
    public init(version: UInt8 = WireProtocol.version, sinceSeconds: Int64 = 0) {
        self.version = version
        self.sinceSeconds = sinceSeconds
    }
}

/// Logins of one user that got the same decision by the same rule through one service from one rhost.
public struct ReportRow: Sendable, Equatable {
    public var user: String
    public var decision: String
    public var rule: String
    public var service: String
    public var rhost: String
    public var count: UInt32
    /// Unix time of the latest of these logins.
    public var last: Int64
    public init(user: String, decision: String, rule: String, service: String, rhost: String, count: UInt32, last: Int64) {
        self.user = user
        self.decision = decision
        self.rule = rule
        self.service = service
        self.rhost = rhost
        self.count = count
        self.last = last
    }

    /// Bytes this row takes in a REPORTED frame.
    public var encodedSize: Int {
        [user, decision, rule, service, rhost].reduce(12) { $0 + 2 + $1.utf8.count }
    }
}

public struct ReportReply: Sendable, Equatable {
    /// The window asked for (Unix times; `from` 0: everything kept) and the daemon's mode now.
    public var from: Int64
    public var to: Int64
    public var mode: String
    /// Records in the window, lines of the files that could not be read, groups left out to fit the frame.
    public var logins: UInt32
    public var skippedLines: UInt32
    public var omittedRows: UInt32
    /// A sentence for the admin when a file could not be read at all; empty if none.
    public var problem: String
    public var rows: [ReportRow]
    public init(from: Int64, to: Int64, mode: String, logins: UInt32, skippedLines: UInt32, omittedRows: UInt32,
                problem: String = "", rows: [ReportRow]) {
        self.from = from
        self.to = to
        self.mode = mode
        self.logins = logins
        self.skippedLines = skippedLines
        self.omittedRows = omittedRows
        self.problem = problem
        self.rows = rows
    }
    /// Room for rows in one frame after the fixed fields and a problem sentence.
    public static let rowBudget = WireProtocol.maximumPayload - 2048
}

extension Writer {
    mutating func report(_ r: ReportRequest) {
        u8(Tag.report.rawValue); u8(r.version); u64(UInt64(bitPattern: r.sinceSeconds))
    }
    mutating func reported(_ r: ReportReply) throws(FrameError) {
        guard r.rows.count <= 0xFFFF else { throw .badValue("too many report rows") }
        u8(Tag.reported.rawValue); u64(UInt64(bitPattern: r.from)); u64(UInt64(bitPattern: r.to)); try str(r.mode)
        u32(r.logins); u32(r.skippedLines); u32(r.omittedRows); try str(r.problem)
        u16(UInt16(r.rows.count))
        for row in r.rows {
            try str(row.user); try str(row.decision); try str(row.rule); try str(row.service); try str(row.rhost)
            u32(row.count); u64(UInt64(bitPattern: row.last))
        }
    }
}

extension Reader {
    mutating func report() throws(FrameError) -> ReportRequest {
        let version = try u8()
        let since = Int64(bitPattern: try u64())
        guard since >= 0 else { throw .badValue("negative report window") }
        return ReportRequest(version: version, sinceSeconds: since)
    }
    mutating func reported() throws(FrameError) -> ReportReply {
        let from = Int64(bitPattern: try u64()), to = Int64(bitPattern: try u64())
        let mode = try str()
        let logins = try u32(), skipped = try u32(), omitted = try u32()
        let problem = try str()
        let count = Int(try u16())
        var rows: [ReportRow] = []
        for _ in 0..<count {
            let user = try str(), decision = try str(), rule = try str(), service = try str(), rhost = try str()
            let n = try u32()
            rows.append(ReportRow(user: user, decision: decision, rule: rule, service: service, rhost: rhost,
                                  count: n, last: Int64(bitPattern: try u64())))
        }
        return ReportReply(from: from, to: to, mode: mode, logins: logins, skippedLines: skipped, omittedRows: omitted,
                           problem: problem, rows: rows)
    }
}
