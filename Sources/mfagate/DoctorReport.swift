// SPDX-License-Identifier: Apache-2.0
import MFACore

/// How `mfagate doctor` shows its findings: text for the admin, or one JSON object for scripts.
struct DoctorReport {
    var ways: [DoctorWay]
    var services: [StackDiagnosis]
    /// Findings of the command itself (e.g. no mfagate.conf).
    var notes: [DoctorFinding] = []

    var allFindings: [DoctorFinding] {
        var seen: [DoctorFinding] = []
        for f in services.flatMap(\.findings) + ways.flatMap(\.findings) + notes where !seen.contains(f) { seen.append(f) }
        return seen
    }

    var problemCount: Int { allFindings.filter { $0.kind == .problem }.count }

    static func label(_ status: DoctorWay.Status) -> String {
        switch status {
        case .mfa: return "MFA"
        case .noMFA: return "NO MFA"
        case .notOffered: return "not offered"
        }
    }

    var text: String {
        var out = ""
        for s in services {
            out += "PAM service \(s.service): \(s.summary)\n"
            if let stack = s.stack {
                let ran = Set(PAMWalk.usualPath(stack).map(\.number))
                for e in stack.entries {
                    let mark = PAMWalk.isMFAgate(e) ? ">" : ran.contains(e.number) ? " " : "-"
                    out += "  \(mark) \(e.number). \(e.control.text) \(([e.module] + e.arguments).joined(separator: " "))   (\(e.place))\n"
                }
            }
        }
        out += "Ways in:\n"
        for w in ways { out += "  \(w.way): \(Self.label(w.status)) (\(w.detail))\n" }
        let findings = allFindings
        if findings.isEmpty {
            out += "No problems found.\n"
        } else {
            out += "Findings:\n"
            for f in findings {
                out += "  \(f.kind == .problem ? "PROBLEM" : "note"): \(f.text)\n"
                out += "    change: \(f.fix)\n"
            }
            let problems = problemCount
            out += problems == 0 ? "No problems found (notes only).\n" : "\(problems) problem(s) found.\n"
        }
        return out
    }

    static func json(_ f: DoctorFinding) -> JSONValue {
        .object([("kind", .string(f.kind.rawValue)), ("code", .string(f.code)), ("text", .string(f.text)), ("fix", .string(f.fix))])
    }

    var json: JSONValue {
        .object([
            ("ways", .array(ways.map { w in
                .object([("way", .string(w.way)), ("status", .string(w.status.rawValue)), ("detail", .string(w.detail)),
                         ("findings", .array(w.findings.map(Self.json)))])
            })),
            ("services", .array(services.map { s in
                .object([
                    ("service", .string(s.service)),
                    ("module", s.module.map { m in
                        .object([("control", .string(m.control.text)), ("file", .string(m.file)), ("line", .int(m.line)),
                                 ("position", s.position.map { .int($0) } ?? .null), ("modules_run", .int(s.modulesRun))])
                    } ?? .null),
                    ("stack", .array((s.stack?.entries ?? []).map { e in
                        .object([("number", .int(e.number)), ("control", .string(e.control.text)), ("module", .string(e.module)),
                                 ("arguments", .array(e.arguments.map { .string($0) })), ("file", .string(e.file)), ("line", .int(e.line))])
                    })),
                    ("findings", .array(s.findings.map(Self.json))),
                ])
            })),
            ("notes", .array(notes.map(Self.json))),
            ("problems", .int(problemCount)),
        ])
    }
}
