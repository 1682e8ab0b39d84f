// SPDX-License-Identifier: Apache-2.0
import MFACore
import MFAProtocol
import MFAStore

/// `mfagate report` (root): the `mode = audit` records of a window, grouped by user, decision,
/// rule, service and rhost. The refusals come first (what a switch to `required` would stop), then
/// lockouts, enrollments, grace, codes, and the logins that would need none; as many groups as fit
/// in one frame are sent, the rest counted. The CLI prints the summary (mfagate/ReportCommand.swift).
extension AdminVerbs {
    public func report(_ request: ReportRequest, peer: Peer) -> DaemonMessage {
        guard peer.isRoot else {
            return shared.refuse(.notAllowed, "only root may read the audit report", peer: peer, action: "report")
        }
        let now = environment.now()
        let from = request.sinceSeconds > 0 ? max(0, now - request.sinceSeconds) : 0
        let (records, skipped, problems) = shared.audit.read(since: from)
        if skipped > 0 {
            logger.warning("audit records: \(skipped) unreadable line(s) skipped (a torn write or damage)")
        }
        let (rows, omitted) = Self.group(records, budget: ReportReply.rowBudget)
        return .reported(ReportReply(from: from, to: now, mode: config.mode.rawValue, logins: UInt32(clamping: records.count),
                                     skippedLines: UInt32(clamping: skipped), omittedRows: UInt32(clamping: omitted),
                                     problem: problems.joined(separator: "; "), rows: rows))
    }

    /// The records grouped, most telling first, cut to `budget` encoded bytes; and how many groups were cut.
    static func group(_ records: [AuditRecord], budget: Int) -> (rows: [ReportRow], omitted: Int) {
        struct Key: Hashable { var user, decision, rule, service, rhost: String }
        var rows: [Key: ReportRow] = [:]
        for r in records {
            let key = Key(user: r.user, decision: r.decision, rule: r.rule, service: r.service, rhost: r.rhost)
            if var row = rows[key] {
                row.count &+= 1
                row.last = max(row.last, r.time)
                rows[key] = row
            } else {
                rows[key] = ReportRow(user: r.user, decision: r.decision, rule: r.rule, service: r.service, rhost: r.rhost,
                                      count: 1, last: r.time)
            }
        }
        let rank = Dictionary(uniqueKeysWithValues: AuditRecord.decisions.enumerated().map { ($1, $0) })
        let sorted = rows.values.sorted {
            let a = rank[$0.decision] ?? 99, b = rank[$1.decision] ?? 99
            if a != b { return a < b }
            if $0.count != $1.count { return $0.count > $1.count }
            return ($0.user, $0.service, $0.rhost, $0.rule) < ($1.user, $1.service, $1.rhost, $1.rule)
        }
        var kept: [ReportRow] = []
        var used = 0
        for row in sorted {
            if used + row.encodedSize > budget || kept.count == 0xFFFF { break }
            used += row.encodedSize
            kept.append(row)
        }
        return (kept, sorted.count - kept.count)
    }
}
