// SPDX-License-Identifier: Apache-2.0
/// The auth stack of a PAM service, read the way Linux-PAM reads /etc/pam.d (pam.conf(5)): one
/// `type control module arguments` line each, `\` continues a line, `#` starts a comment, `-type`
/// skips a missing module, `@include FILE` and `include`/`substack` pull other files in. Pure: the
/// caller passes a function that returns a file's text (nil: no such file). Used by `mfagate doctor`.

/// What a module's answer makes the stack do (pam.conf(5), "actions").
public enum PAMAction: Equatable, Sendable {
    case ignore, ok, done, bad, die, reset
    case jump(Int)
}

/// The module answers the walk distinguishes; every other PAM return counts as `failure`.
public enum PAMOutcome: String, CaseIterable, Sendable {
    case success, ignore, failure
}

/// A control field: a keyword or `[value=action ...]`.
public struct PAMControl: Equatable, Sendable {
    public var text: String
    var actions: [String: PAMAction]
    var defaultAction: PAMAction

    public static func parse(_ text: String) -> PAMControl? {
        // Linux-PAM compares the keywords without regard to case.
        switch text.lowercased() {
        case "required": return PAMControl(text: text, actions: ["success": .ok, "new_authtok_reqd": .ok, "ignore": .ignore], defaultAction: .bad)
        case "requisite": return PAMControl(text: text, actions: ["success": .ok, "new_authtok_reqd": .ok, "ignore": .ignore], defaultAction: .die)
        case "sufficient": return PAMControl(text: text, actions: ["success": .done, "new_authtok_reqd": .done], defaultAction: .ignore)
        case "optional": return PAMControl(text: text, actions: ["success": .ok, "new_authtok_reqd": .ok], defaultAction: .ignore)
        default: break
        }
        guard text.hasPrefix("["), text.hasSuffix("]") else { return nil }
        var actions: [String: PAMAction] = [:]
        // Linux-PAM's default for a value a bracket control does not name is `bad`.
        var defaultAction: PAMAction = .bad
        for pair in text.dropFirst().dropLast().split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let action = Self.action(parts[1]) else { return nil }
            if parts[0] == "default" { defaultAction = action } else { actions[parts[0]] = action }
        }
        return PAMControl(text: text, actions: actions, defaultAction: defaultAction)
    }

    static func action(_ word: String) -> PAMAction? {
        switch word {
        case "ignore": return .ignore
        case "ok": return .ok
        case "done": return .done
        case "bad": return .bad
        case "die": return .die
        case "reset": return .reset
        default:
            // Linux-PAM takes any positive count; past the end of the stack is the end.
            guard let n = Int(word), n > 0 else { return nil }
            return .jump(min(n, 1 << 20))
        }
    }

    /// The action for an outcome: `failure` stands for PAM_AUTH_ERR (the usual wrong-password answer).
    public func action(for outcome: PAMOutcome) -> PAMAction {
        let key: String
        switch outcome {
        case .success: key = "success"
        case .ignore: key = "ignore"
        case .failure: key = "auth_err"
        }
        return actions[key] ?? defaultAction
    }
}

/// One `auth` line of the expanded stack.
public struct PAMEntry: Equatable, Sendable {
    /// Its place among the stack's module lines (1-based, in file order after expansion).
    public var number: Int
    public var control: PAMControl
    /// The module as written (`pam_unix.so`, `/lib/security/pam_mfagate.so`).
    public var module: String
    public var arguments: [String]
    public var file: String
    public var line: Int
    /// `-auth`: skipped silently when the module is missing.
    public var optionalModule: Bool
    /// The line is inside the blocks that pam-auth-update(8) writes (Debian's common-* files):
    /// the next `pam-auth-update --force` rewrites them from the installed profiles.
    public var insidePamAuthUpdateBlocks = false

    /// `pam_unix` for `pam_unix.so` or `/usr/lib/x86_64-linux-gnu/security/pam_unix.so`.
    public var moduleName: String {
        var name = module.split(separator: "/").last.map(String.init) ?? module
        if name.hasSuffix(".so") { name.removeLast(3) }
        return name
    }

    public var place: String { "\(file):\(line)" }
}

/// A stack: module lines and substacks (whose `done`, `die` and jumps stay inside them).
public indirect enum PAMItem: Equatable, Sendable {
    case module(PAMEntry)
    case substack(file: String, line: Int, [PAMItem])

    public var entries: [PAMEntry] {
        switch self {
        case .module(let e): return [e]
        case .substack(_, _, let items): return items.flatMap(\.entries)
        }
    }
}

/// A line of a service file PAM would refuse or that points nowhere: `mfagate doctor` says so.
public struct PAMStackProblem: Equatable, Sendable {
    public var place: String
    public var text: String
}

public struct PAMStack: Equatable, Sendable {
    public var service: String
    public var items: [PAMItem]
    public var problems: [PAMStackProblem]

    public var entries: [PAMEntry] { items.flatMap(\.entries) }

    /// Reads the `auth` stack of `service` from `directory` (e.g. /etc/pam.d); `read(path)` returns a
    /// file's text or nil. nil: the service has no file (PAM would then use `other`).
    public static func read(service: String, directory: String, read: @escaping (String) -> String?) -> PAMStack? {
        var builder = Builder(directory: directory, read: read)
        let path = directory + "/" + service
        guard let text = read(path) else { return nil }
        let items = builder.items(text, file: path, depth: 0)
        return PAMStack(service: service, items: items, problems: builder.problems)
    }

    struct Builder {
        let directory: String
        let read: (String) -> String?
        var problems: [PAMStackProblem] = []
        var count = 0

        mutating func path(_ name: String) -> String { name.hasPrefix("/") ? name : directory + "/" + name }

        mutating func items(_ text: String, file: String, depth: Int) -> [PAMItem] {
            var out: [PAMItem] = []
            let blocks = PAMStack.pamAuthUpdateBlocks(text)
            for (lineNumber, fields) in PAMStack.logicalLines(text) {
                let place = "\(file):\(lineNumber)"
                if fields[0] == "@include" {
                    guard fields.count == 2 else { problems.append(PAMStackProblem(place: place, text: "@include needs one file name")); continue }
                    out += included(fields[1], at: place, depth: depth)
                    continue
                }
                var type = fields[0]
                let dash = type.hasPrefix("-")
                if dash { type.removeFirst() }
                guard type.lowercased() == "auth" else { continue }
                guard fields.count >= 3 else { problems.append(PAMStackProblem(place: place, text: "an auth line needs a control and a module")); continue }
                let control = fields[1].lowercased()
                if control == "include" || control == "substack" {
                    let inner = included(fields[2], at: place, depth: depth)
                    if control == "include" { out += inner } else { out.append(.substack(file: file, line: lineNumber, inner)) }
                    continue
                }
                guard let parsed = PAMControl.parse(fields[1]) else {
                    problems.append(PAMStackProblem(place: place, text: "PAM does not know the control \(fields[1])"))
                    continue
                }
                count += 1
                out.append(.module(PAMEntry(number: count, control: parsed, module: fields[2], arguments: Array(fields.dropFirst(3)),
                                            file: file, line: lineNumber, optionalModule: dash,
                                            insidePamAuthUpdateBlocks: blocks?.contains(lineNumber) ?? false)))
            }
            return out
        }

        /// Files read so far: a file that includes itself several times would otherwise grow
        /// exponentially within the depth limit.
        var filesRead = 0

        mutating func included(_ name: String, at place: String, depth: Int) -> [PAMItem] {
            guard depth < 16 else {
                problems.append(PAMStackProblem(place: place, text: "includes nested more than 16 deep (a loop?)"))
                return []
            }
            filesRead += 1
            guard filesRead <= 1000 else {
                if filesRead == 1001 { problems.append(PAMStackProblem(place: place, text: "more than 1000 includes (a loop?)")) }
                return []
            }
            let target = path(name)
            guard let text = read(target) else {
                problems.append(PAMStackProblem(place: place, text: "includes \(target), which does not exist: PAM fails every login of this service"))
                return []
            }
            return items(text, file: target, depth: depth + 1)
        }
    }

    /// The lines between pam-auth-update's first block marker and its end marker, in a file it manages.
    static func pamAuthUpdateBlocks(_ text: String) -> ClosedRange<Int>? {
        guard text.contains("managed by pam-auth-update") else { return nil }
        var first: Int?, last: Int?
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if first == nil && line.contains("# here are the per-package modules") { first = index + 1 }
            if line.contains("# end of pam-auth-update config") { last = index + 1 }
        }
        guard let first, let last, first < last else { return nil }
        return first...last
    }

    /// Fields of each logical line, with the number of its first physical line. Brackets keep
    /// spaces (`[success=1 default=ignore]`); `#` ends a line outside brackets.
    static func logicalLines(_ text: String) -> [(Int, [String])] {
        var out: [(Int, [String])] = []
        var pending = ""
        var start = 0
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if pending.isEmpty { start = index + 1 }
            var line = String(raw)
            if line.hasSuffix("\\") {
                line.removeLast()
                pending += line + " "
                continue
            }
            pending += line
            let fields = split(pending)
            pending = ""
            if !fields.isEmpty { out.append((start, fields)) }
        }
        if !pending.isEmpty, case let fields = split(pending), !fields.isEmpty { out.append((start, fields)) }
        return out
    }

    static func split(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var depth = 0
        for ch in line {
            if ch == "#" && depth == 0 { break }
            if (ch == " " || ch == "\t" || ch == "\r") && depth == 0 {
                if !current.isEmpty { fields.append(current); current = "" }
                continue
            }
            if ch == "[" { depth += 1 } else if ch == "]" && depth > 0 { depth -= 1 }
            current.append(ch)
        }
        if !current.isEmpty { fields.append(current) }
        return fields
    }
}
