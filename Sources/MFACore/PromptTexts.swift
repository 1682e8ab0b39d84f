// SPDX-License-Identifier: Apache-2.0
/// The texts the daemon shows in the login conversation that an admin may word themselves
/// (issue 19, part 4): `code_prompt`, `code_hint`, `enroll_intro`, `grace_notice`.
///
/// They reach every terminal that logs in, so a value must be printable UTF-8 text: no control
/// character (C0, DEL, C1: an ESC or CSI would let the config drive the user's terminal), no
/// format character (bidirectional overrides that reorder what the user reads, zero-width
/// characters), no line or paragraph separator, nothing unassigned or private. Length is capped
/// in bytes, because the frame and the PAM conversation count bytes. An error never echoes the
/// value (it may hold the very escape sequence that is refused).
public struct PromptTexts: Sendable, Equatable {
    public static let keys = ["code_prompt", "code_hint", "enroll_intro", "grace_notice"]
    public static let defaultCodePrompt = "Verification code:"
    static let promptLimit = 128
    static let textLimit = 512

    /// The code prompt, without the trailing space (the config trims values; `codePromptShown` adds one).
    public var codePrompt: String = PromptTexts.defaultCodePrompt
    /// Info text shown above the code prompt (also when locked out, so both look alike); nil: none.
    public var codeHint: String? = nil
    /// The first sentence of the enrollment screen at login, `%u` the user's name; nil: the built-in one.
    public var enrollIntro: String? = nil
    /// The grace-period notice, `%u` the user's name and `%d` the deadline; nil: the built-in one.
    public var graceNotice: String? = nil

    public init() {}

    /// The prompt as sent: the text and one space, unless it already ends in whitespace.
    public var codePromptShown: String {
        codePrompt.last.map { $0 == " " } == true ? codePrompt : codePrompt + " "
    }

    /// `%u` (and `%d`) filled in; other `%` signs are left as they are.
    public static func fill(_ text: String, user: String, deadline: String = "") -> String {
        var out = ""
        var iterator = text.makeIterator()
        while let c = iterator.next() {
            guard c == "%" else { out.append(c); continue }
            switch iterator.next() {
            case "u": out += user
            case "d": out += deadline
            case let other?: out.append("%"); out.append(other)
            case nil: out.append("%")
            }
        }
        return out
    }

    func text(_ key: String) -> String {
        switch key {
        case "code_prompt": return codePrompt
        case "code_hint": return codeHint ?? ""
        case "enroll_intro": return enrollIntro ?? ""
        case "grace_notice": return graceNotice ?? ""
        default: return ""
        }
    }

    mutating func apply(key: String, value: String) throws(ConfigParser.ValueError) {
        let limit = key == "code_prompt" ? Self.promptLimit : Self.textLimit
        if let problem = Self.problem(value, limit: limit) {
            throw ConfigParser.ValueError(message: "`\(key)` must be 1 to \(limit) bytes of printable UTF-8 text: \(problem)")
        }
        switch key {
        case "code_prompt": codePrompt = value
        case "code_hint": codeHint = value
        case "enroll_intro": enrollIntro = value
        case "grace_notice": graceNotice = value
        default: throw ConfigParser.ValueError(message: "unknown key `\(key)`")
        }
    }

    /// Why `value` may not be shown at a login prompt, or nil if it may.
    public static func problem(_ value: String, limit: Int) -> String? {
        if value.isEmpty { return "it is empty (remove the line for the built-in text)" }
        if value.utf8.count > limit { return "it is \(value.utf8.count) bytes long" }
        for (index, scalar) in value.unicodeScalars.enumerated() {
            if let kind = refusedKind(scalar) {
                let hex = String(scalar.value, radix: 16, uppercase: true)
                return "character \(index + 1) is \(kind) U+\(String(repeating: "0", count: max(0, 4 - hex.count)))\(hex)"
            }
        }
        return nil
    }

    static func refusedKind(_ scalar: Unicode.Scalar) -> String? {
        switch scalar.properties.generalCategory {
        case .control: return "a control character"
        case .format: return "a format character (e.g. a bidirectional override)"
        case .lineSeparator, .paragraphSeparator: return "a line separator"
        case .privateUse, .unassigned, .surrogate: return "not a printable character"
        default: return nil
        }
    }
}
