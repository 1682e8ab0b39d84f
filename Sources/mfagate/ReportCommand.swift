// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import CMFASys
import MFACore
import MFAProtocol

extension MFAGate {
    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Summarise what mode = audit saw: who a switch to required would refuse or make enroll (root).",
            discussion: """
                Under mode = audit nobody is asked for a code and every login passes the module (PAM_IGNORE), \
                but the daemon records what the policy would have done. This asks the daemon for those records \
                and prints, per outcome, the users, the rule that decided, and through which services and from \
                which addresses they came; then the counts per service and per address. \
                --json: from, to, mode, logins, skipped_lines, omitted_rows, problem, would_refuse, would_enroll, \
                users (user, decision, rule, logins, last, services, rhosts), services and rhosts (counts per decision).
                """)

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: ArgumentHelp("Only the records of the last 12h, 7d, 2w… (default: every record kept).", valueName: "duration"))
        var since: String?

        @Flag(name: .long, help: "Print one JSON object (see the discussion).")
        var json = false

        func validate() throws {
            if let since, AuditRecord.parseSince(since) == nil {
                throw ValidationError("--since must be a duration like 12h, 7d or 2w (found \"\(since)\")")
            }
        }

        func run() throws {
            let seconds = since.flatMap(AuditRecord.parseSince) ?? 0
            let reply = try perform(.report(ReportRequest(sinceSeconds: seconds)), with: global)
            guard case .reported(let report) = reply else { throw unexpected(reply) }
            if !report.problem.isEmpty { mfa_write_stderr("mfagate: warning: \(report.problem)\n") }
            print(json ? AuditSummary(report).json : AuditSummary(report).text, terminator: "")
        }
    }
}

/// The report's rows seen per user and outcome, per service and per address.
struct AuditSummary {
    struct UserLine {
        var user, decision, rule: String
        var logins: Int
        var last: Int64
        var services: [String] = []
        var rhosts: [String] = []
    }
    let report: ReportReply
    var users: [UserLine] = []
    var services: [(String, [String: Int])] = []
    var rhosts: [(String, [String: Int])] = []

    init(_ report: ReportReply) {
        self.report = report
        var index: [String: Int] = [:]
        var byService: [String: [String: Int]] = [:], byRhost: [String: [String: Int]] = [:]
        for row in report.rows {
            let key = "\(row.user)\u{0}\(row.decision)\u{0}\(row.rule)"
            if index[key] == nil {
                index[key] = users.count
                users.append(UserLine(user: row.user, decision: row.decision, rule: row.rule, logins: 0, last: 0))
            }
            let i = index[key]!
            users[i].logins += Int(row.count)
            users[i].last = max(users[i].last, row.last)
            if !users[i].services.contains(row.service) { users[i].services.append(row.service) }
            let rhost = row.rhost.isEmpty ? "local" : row.rhost
            if !users[i].rhosts.contains(rhost) { users[i].rhosts.append(rhost) }
            byService[row.service, default: [:]][row.decision, default: 0] += Int(row.count)
            byRhost[rhost, default: [:]][row.decision, default: 0] += Int(row.count)
        }
        services = byService.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        rhosts = byRhost.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    static let headings: [(String, String)] = [
        ("refuse", "Would be refused"), ("unavailable", "Would fail (account database or user file unusable)"),
        ("locked", "Would be locked out"), ("enroll", "Would have to enroll at login"), ("grace", "Would get the grace period"),
        ("code", "Would be asked for a code"), ("ignore", "Would not be asked (exempt, trusted, other service)"),
    ]

    func users(_ decision: String) -> [String] {
        var names: [String] = []
        for line in users where line.decision == decision && !names.contains(line.user) { names.append(line.user) }
        return names
    }

    func counts(_ table: [String: Int]) -> String {
        AuditRecord.decisions.compactMap { d in table[d].map { "\(d) \($0)" } }.joined(separator: ", ")
    }

    var text: String {
        let window = report.from > 0 ? "from \(UTCTime.format(report.from)) " : ""
        var out = "Audit records \(window)to \(UTCTime.format(report.to)): \(report.logins) login(s); mode is now \(report.mode).\n"
        if report.mode != MFAMode.audit.rawValue { out += "Note: the daemon is not in mode = audit, so no new records are made.\n" }
        for (decision, heading) in Self.headings {
            let lines = users.filter { $0.decision == decision }
            guard !lines.isEmpty else { continue }
            out += "\n\(heading) (\(users(decision).count) user(s)):\n"
            for l in lines {
                out += "  \(l.user)  \(l.logins) login(s), last \(UTCTime.format(l.last)); services: \(l.services.joined(separator: " ")); "
                    + "from: \(l.rhosts.joined(separator: " "))\n      rule: \(l.rule)\n"
            }
        }
        if !services.isEmpty {
            out += "\nPer service:\n" + services.map { "  \($0.0): \(counts($0.1))\n" }.joined()
            out += "\nPer address:\n" + rhosts.map { "  \($0.0): \(counts($0.1))\n" }.joined()
        }
        if report.skippedLines > 0 { out += "\n\(report.skippedLines) unreadable record line(s) were skipped.\n" }
        if report.omittedRows > 0 { out += "\n\(report.omittedRows) more group(s) did not fit; narrow the window with --since.\n" }
        return out
    }

    var json: String {
        func table(_ rows: [(String, [String: Int])], _ name: String) -> JSONValue {
            .array(rows.map { row in .object([(name, .string(row.0))] + AuditRecord.decisions.compactMap { d in row.1[d].map { (d, .int($0)) } }) })
        }
        let userObjects: [JSONValue] = users.map { l in
            .object([("user", .string(l.user)), ("decision", .string(l.decision)), ("rule", .string(l.rule)),
                     ("logins", .int(l.logins)), ("last", .int(Int(l.last))),
                     ("services", .array(l.services.map { .string($0) })), ("rhosts", .array(l.rhosts.map { .string($0) }))])
        }
        return JSONValue.object([
            ("from", .int(Int(report.from))), ("to", .int(Int(report.to))), ("mode", .string(report.mode)),
            ("logins", .int(Int(report.logins))), ("skipped_lines", .int(Int(report.skippedLines))),
            ("omitted_rows", .int(Int(report.omittedRows))), ("problem", .string(report.problem)),
            ("would_refuse", .array(users("refuse").map { .string($0) })),
            ("would_enroll", .array(users("enroll").map { .string($0) })),
            ("users", .array(userObjects)), ("services", table(services, "service")), ("rhosts", table(rhosts, "rhost")),
        ]).text + "\n"
    }
}
