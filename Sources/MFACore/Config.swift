/// The daemon's configuration (`/etc/mfagate/mfagate.conf`). Defaults live here and only here.
public struct DaemonConfig: Sendable, Equatable {
    public var mode: MFAMode = .optional
    public var stateDirectory: String = "/var/lib/mfagate"
    public var socketPath: String = "/run/mfagate/mfagated.sock"
    /// Steps accepted either side of the current one (±30 s at the standard period).
    public var window: Int = 1

    public init() {}
}

/// A config error, reported as `FILE:LINE: message` so an admin can jump straight to it.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String
    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }
}

/// Parses `key = value` lines; `#` starts a comment line; blank lines are skipped. Unknown keys,
/// repeated keys and bad values are errors: a typo in a security setting must not pass silently.
public enum ConfigParser {
    public static let maximumSize = 1 << 20

    public static func parse(_ text: String, file: String) throws(ConfigError) -> DaemonConfig {
        var config = DaemonConfig()
        var seen: [String: Int] = [:]
        if text.utf8.count > maximumSize {
            throw ConfigError(file: file, line: 0, message: "the file is larger than 1 MiB")
        }
        var lineNumber = 0
        // Split on the byte, not the Character: Swift reads CR LF as one Character, so a file saved
        // with CR LF line ends would otherwise be one long line (a setting after a comment line
        // silently ignored). Found by Tests/fuzz/ConfigFuzz.swift.
        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if rawLine.contains(0) {
                throw ConfigError(file: file, line: lineNumber, message: "the line contains a NUL byte")
            }
            let line = trim(Substring(rawLine))
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigError(file: file, line: lineNumber, message: "expected `key = value`, found \"\(line)\"")
            }
            let key = trim(line[..<eq])
            let value = trim(line[line.index(after: eq)...])
            if key.isEmpty {
                throw ConfigError(file: file, line: lineNumber, message: "missing key before '='")
            }
            if let first = seen[key] {
                throw ConfigError(file: file, line: lineNumber, message: "`\(key)` is already set on line \(first)")
            }
            seen[key] = lineNumber
            do {
                try apply(key: key, value: value, to: &config)
            } catch {
                throw ConfigError(file: file, line: lineNumber, message: error.message)
            }
        }
        return config
    }

    struct ValueError: Error { var message: String }

    static func apply(key: String, value: String, to config: inout DaemonConfig) throws(ValueError) {
        switch key {
        case "mode":
            guard let mode = MFAMode(rawValue: value) else {
                throw ValueError(message: "`mode` must be one of required, optional, off (found \"\(value)\")")
            }
            config.mode = mode
        case "state_dir":
            config.stateDirectory = try absolutePath(key, value)
        case "socket":
            config.socketPath = try absolutePath(key, value)
            if config.socketPath.utf8.count > 107 {
                throw ValueError(message: "`socket` is longer than a Unix socket path may be (107 bytes)")
            }
        case "window":
            guard let steps = Int(value), (0...10).contains(steps) else {
                throw ValueError(message: "`window` must be a whole number of steps from 0 to 10 (found \"\(value)\")")
            }
            config.window = steps
        default:
            throw ValueError(message: "unknown key `\(key)` (known keys: mode, state_dir, socket, window)")
        }
    }

    static func absolutePath(_ key: String, _ value: String) throws(ValueError) -> String {
        guard value.hasPrefix("/") else {
            throw ValueError(message: "`\(key)` must be an absolute path (found \"\(value)\")")
        }
        return value
    }

    static func trim(_ s: Substring) -> String {
        var view = s[...]
        while let f = view.first, f == " " || f == "\t" || f == "\r" { view = view.dropFirst() }
        while let l = view.last, l == " " || l == "\t" || l == "\r" { view = view.dropLast() }
        return String(view)
    }
}
