// SPDX-License-Identifier: Apache-2.0
/// One login seen under `mode = audit` (issue 19, part 5): what the policy would have done, the
/// rule that decided, for whom, through which service, from where, when. No secret can be in it:
/// nobody is asked for anything in audit mode, and a typed name that led to no account is
/// recorded as "-" (it may be a password typed into the login field).
///
/// One line per record in `STATE/audit` (MFAStore/AuditLog.swift writes it):
/// `v1 TAB time TAB user TAB service TAB rhost TAB decision TAB rule TAB reason`. Every field is
/// escaped (`escaped`) so a line holds no tab, line break or terminal control, and capped at
/// `fieldLimit` bytes; `parse` refuses anything else, so a torn or damaged line is skipped.
public struct AuditRecord: Sendable, Equatable {
    /// The decision words of `LoginDecision.word`; the report lists them in this order.
    public static let decisions = ["refuse", "unavailable", "locked", "enroll", "grace", "code", "ignore"]
    public static let fieldLimit = 200

    public var time: Int64
    public var user: String
    public var service: String
    public var rhost: String
    public var decision: String
    public var rule: String
    public var reason: String

    public init(time: Int64, user: String, service: String, rhost: String, decision: String, rule: String, reason: String) {
        self.time = time
        self.user = user
        self.service = service
        self.rhost = rhost
        self.decision = decision
        self.rule = rule
        self.reason = reason
    }

    /// The record for a policy outcome.
    public init(time: Int64, user: String, service: String, rhost: String, outcome: PolicyOutcome) {
        let reason: String
        switch outcome.decision {
        case .askForCode: reason = "enrolled"
        case .offerEnrollment(let mandatory): reason = mandatory ? "not enrolled, enrollment at login required" : "not enrolled, enrollment at login offered"
        case .ignore(let why), .deny(let why): reason = why
        case .grace(let until): reason = "not enrolled, grace period until \(UTCTime.format(until))"
        case .locked(let until, let why): reason = "\(why), until \(UTCTime.format(until))"
        }
        self.init(time: time, user: user, service: service, rhost: rhost, decision: outcome.decision.word,
                  rule: outcome.rule, reason: reason)
    }

    public var line: String {
        (["v1", String(time)] + [user, service, rhost, decision, rule, reason].map(Self.escaped)).joined(separator: "\t")
    }

    /// The record of one line, or nil for anything that is not exactly what `line` writes.
    public static func parse<S: StringProtocol>(_ line: S) -> AuditRecord? {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count == 8, fields[0] == "v1", let time = Int64(fields[1]), time >= 0,
              decisions.contains(String(fields[5])) else { return nil }
        for field in fields.dropFirst(2) {
            // What `escaped` never writes: a control or format character, an over-long field.
            guard field.utf8.count <= fieldLimit * 10, field.unicodeScalars.allSatisfy({ PromptTexts.refusedKind($0) == nil }) else { return nil }
        }
        return AuditRecord(time: time, user: String(fields[2]), service: String(fields[3]), rhost: String(fields[4]),
                           decision: String(fields[5]), rule: String(fields[6]), reason: String(fields[7]))
    }

    /// `text` capped at `fieldLimit` bytes of the original, with a backslash and every character
    /// that may not reach a terminal (PromptTexts.refusedKind: controls, format characters…)
    /// written as `\u{XXXX}`. What a client sent (service, rhost) is shown, never obeyed.
    public static func escaped(_ text: String) -> String {
        var out = ""
        var used = 0
        for scalar in text.unicodeScalars {
            used += String(scalar).utf8.count
            if used > fieldLimit { out += "…"; break }
            if scalar == "\\" || PromptTexts.refusedKind(scalar) != nil {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `--since` of `mfagate report`: a duration like 12h, 7d, 2w (or 0: everything kept).
    public static func parseSince(_ text: String) -> Int64? {
        do { return try ConfigParser.duration("since", text) } catch { return nil }
    }
}
