// SPDX-License-Identifier: Apache-2.0
/// The daemon's configuration (`/etc/mfagate/mfagate.conf`). Defaults live here and only here.
public struct DaemonConfig: Sendable, Equatable {
    /// Where the daemon reads its configuration (`mfagated --config`, `mfagate migrate-store --config`).
    public static let defaultPath = "/etc/mfagate/mfagate.conf"
    /// Where the daemon listens and the CLI connects; the PAM module's MFG_DEFAULT_SOCKET
    /// (mfg_frame.h) must be the same (ProtocolConformanceTests checks it).
    public static let defaultSocketPath = "/run/mfagate/mfagated.sock"
    /// The file it was read from ("" for built-in defaults), for explanations such as "config line 4".
    public var file: String = ""
    public var mode: MFAMode = .optional
    public var stateDirectory: String = "/var/lib/mfagate"
    public var socketPath: String = DaemonConfig.defaultSocketPath
    /// Steps accepted either side of the (drift-corrected) current one (±30 s at the standard period).
    public var window: Int = 1
    /// Users and groups that always need a code, or never do (see Policy for the precedence).
    public var requireUsers: [String] = []
    public var exemptUsers: [String] = []
    public var requireGroups: [String] = []
    public var exemptGroups: [String] = []
    /// PAM services that need MFA; empty means every service.
    public var services: [String] = []
    /// Remote addresses (literal IPs in PAM_RHOST) that skip MFA.
    public var trustedNetworks: [IPNetwork] = []
    /// Whether a login with no PAM_RHOST (console, su, sudo) skips MFA.
    public var trustLocal: Bool = false
    /// SSH keys whose use earlier in the connection skips the code (TrustedSSHKeys.swift); empty: off.
    public var trustedSSHKeys = TrustedSSHKeys()
    /// Under `required`, how long after the daemon first saw an unenrolled user they may still log
    /// in without a code. 0: no grace.
    public var gracePeriod: Int64 = 0
    /// `remember`: seconds a right code from a remote host spares the same user, service and host
    /// the next codes (RememberedLogin.swift). 0: off.
    public var remember: Int64 = 0
    /// `never_remember`: remote hosts (names as PAM_RHOST gives them, or addresses and networks)
    /// whose logins are never remembered.
    public var neverRememberHosts: [String] = []
    public var neverRememberNetworks: [IPNetwork] = []
    /// Wrong codes within `failureWindow` seconds that lock the user for `lockout` seconds.
    public var maxFailures: Int = 5
    public var failureWindow: Int64 = 15 * 60
    public var lockout: Int64 = 15 * 60
    /// Wrong codes from one remote address within `failureWindow` that block that address (for
    /// `lockout` seconds) before it can lock out many users.
    public var maxFailuresPerRhost: Int = 20
    /// Seconds a login may wait at a prompt for the user's answer (sshd's LoginGraceTime is 120 s):
    /// a connection held at the prompt holds one of the daemon's slots.
    public var promptTimeout: Int64 = 120
    /// Unenrolled users are offered enrollment (QR code in the prompt) at login.
    public var enrollAtLogin: Bool = true
    /// `enroll_at_login = invite`: the enrollment screen comes only after a one-time invite code
    /// that root made with `mfagate invite` (enrollAtLogin is then true as well).
    public var enrollAtLoginNeedsInvite: Bool = false
    /// The name authenticator apps show; nil: the host name.
    public var issuer: String? = nil
    /// Run by the daemon with an event name and a user name after every enrollment change; nil: none.
    public var notifyCommand: String? = nil
    /// Where enrollments live: this host's state directory, or the fleet's PostgreSQL database (docs/fleet.md).
    public var store: StoreBackend = .files
    /// `store = postgresql`: a libpq connection URI or `key=value` string, without the password.
    public var databaseURL: String? = nil
    /// A file (root- or daemon-only) holding the database password; nil: none (peer or certificate auth).
    public var databasePasswordFile: String? = nil
    /// The AES-256 key that seals secrets in the database; the same on every host of the fleet.
    public var fleetKeyFile: String = "/etc/mfagate/fleet.key"
    /// During a key rotation only: the new fleet key, held next to `fleetKeyFile` (docs/fleet.md).
    public var fleetNewKeyFile: String? = nil
    /// The admin accepts a database link that is neither a local socket nor verified TLS.
    public var databaseInsecure = false
    /// Seconds any one database connect or statement may take before the database counts as down.
    public var databaseTimeout: Int64 = 2
    /// Seconds between reconnection attempts while the database is down.
    public var databaseRetry: Int64 = 5
    /// Fleet requests served at once, each on a worker thread with its own database connection
    /// (docs/fleet.md, "Several requests at once").
    public var databaseConnections = 4
    /// `store = postgresql`: whether logins go on from this host's offline cache while the database
    /// is unreachable (docs/fleet.md, "When the database is away"), and for how long after the
    /// user's record was last read from it (seconds).
    public var fleetOffline: FleetOffline = .refuse
    public var fleetOfflineMaxAge: Int64 = 7 * 86400
    /// Login methods users may add and use (issue 10, Delivery.swift); TOTP/HOTP is always one.
    public var methods: [LoginMethod] = [.totp]
    /// Program and arguments that get an email on stdin (recipient in the `To:` header).
    public var emailCommand: [String] = ["/usr/sbin/sendmail", "-t", "-oi"]
    /// `From:` of the mails; nil: none, the MTA fills in the daemon's user.
    public var emailFrom: String? = nil
    /// The default address of `mfagate method add email` without an address (`%u@example.org`).
    public var emailAddressPattern: String? = nil
    /// Program and arguments that get a text message on stdin and the number in `MFAGATE_SMS_TO`.
    public var smsCommand: [String]? = nil
    /// Codes sent by email or SMS per hour for one sender (a login's account, a command's uid),
    /// across every address and name (issue 14; SendCaps.swift).
    public var maxCodesPerSender: Int = 10
    /// Codes sent by email or SMS per hour by the whole host.
    public var maxCodesPerHour: Int = 200
    /// E.164 prefixes (`+49`, `+1`) texts may go to; empty: any number (a toll-fraud risk).
    public var smsAllowedPrefixes: [String] = []
    /// The texts the daemon shows at login (`code_prompt`, `code_hint`, `enroll_intro`, `grace_notice`; PromptTexts.swift).
    public var prompts = PromptTexts()
    /// Line of the file that set each key (absent: the default), so decisions can name their rule.
    public var lines: [String: Int] = [:]
    /// The text of each key as written, for explanations.
    public var texts: [String: String] = [:]

    public init() {}

    /// "config line 4: exempt_groups = ops", or "default: mode = optional".
    public func rule(_ key: String) -> String {
        if let line = lines[key], let text = texts[key] { return "config line \(line): \(key) = \(text)" }
        return "default: \(key) = \(ConfigParser.defaultText(key, self))"
    }
}

/// A config error, reported as `FILE:LINE: message` so an admin can jump straight to it. The parser
/// reports every error of a file at once (as OpenDoas does): the first here, the rest in `more`.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String
    /// The file's further errors, in line order; each line of `description` is one error.
    public var more: [ConfigError] = []
    public var description: String { ([self] + more).map(\.single).joined(separator: "\n") }
    /// Every error, the first included.
    public var all: [ConfigError] { [ConfigError(file: file, line: line, message: message)] + more }
    var single: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// One error holding all of `errors` (sorted by line), or nil when there are none.
    static func combined(_ errors: [ConfigError]) -> ConfigError? {
        let sorted = errors.enumerated().sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }.map(\.element)
        guard var first = sorted.first else { return nil }
        first.more = Array(sorted.dropFirst())
        return first
    }
}

/// Parses `key = value` lines; `#` starts a comment line; blank lines are skipped. Unknown keys,
/// repeated keys and bad values are errors: a typo in a security setting must not pass silently.
public enum ConfigParser {
    public static let maximumSize = 1 << 20
    public static let keys = ["mode", "state_dir", "socket", "window", "require_users", "exempt_users",
                              "require_groups", "exempt_groups", "services", "trusted_networks", "trust_local",
                              "trusted_ssh_keys",
                              "grace_period", "remember", "never_remember", "max_failures", "failure_window", "lockout", "max_failures_per_rhost",
                              "prompt_timeout", "enroll_at_login", "issuer", "notify_command",
                              "store", "database_url", "database_password_file", "fleet_key_file", "database_timeout",
                              "database_retry", "fleet_new_key_file", "database_insecure", "fleet_offline", "fleet_offline_max_age",
                              "database_connections",
                              "methods", "email_command", "email_from", "email_address_pattern", "sms_command",
                              "max_codes_per_sender", "max_codes_per_hour", "sms_allowed_prefixes"] + PromptTexts.keys

    /// Parses the file's bytes as read. A line that is not valid UTF-8 is refused with its number,
    /// never repaired to U+FFFD: a name in `require_users` must not silently become another one.
    public static func parse(bytes: [UInt8], file: String) throws(ConfigError) -> DaemonConfig {
        if bytes.count > maximumSize {
            throw ConfigError(file: file, line: 0, message: "the file is larger than 1 MiB")
        }
        // A line that is not UTF-8 is an error of its own; the other lines are still read, so every
        // error of the file is reported at once.
        var errors: [ConfigError] = []
        var lines: [String] = []
        for (index, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if let text = String(validating: line, as: UTF8.self) {
                lines.append(text)
            } else {
                lines.append("")
                errors.append(ConfigError(file: file, line: index + 1, message: "the line is not valid UTF-8; save the file as UTF-8"))
            }
        }
        let (config, found) = parseCollecting(lines.joined(separator: "\n"), file: file, checkingConflicts: true)
        if let error = ConfigError.combined(errors + found) { throw error }
        return config
    }

    /// `checkingConflicts: false` skips the rules between keys (e.g. `store = postgresql` needs
    /// `database_url`): for reading one line on its own, as the config fuzzer does.
    public static func parse(_ text: String, file: String, checkingConflicts: Bool = true) throws(ConfigError) -> DaemonConfig {
        let (config, errors) = parseCollecting(text, file: file, checkingConflicts: checkingConflicts)
        if let error = ConfigError.combined(errors) { throw error }
        return config
    }

    /// Reads every line, collecting each error instead of stopping at the first.
    static func parseCollecting(_ text: String, file: String, checkingConflicts: Bool) -> (DaemonConfig, [ConfigError]) {
        var config = DaemonConfig()
        config.file = file
        if text.utf8.count > maximumSize {
            return (config, [ConfigError(file: file, line: 0, message: "the file is larger than 1 MiB")])
        }
        var errors: [ConfigError] = []
        func fail(_ line: Int, _ message: String) { errors.append(ConfigError(file: file, line: line, message: message)) }
        var lineNumber = 0
        // Split on the byte, not the Character: Swift reads CR LF as one Character, so a file saved
        // with CR LF line ends would otherwise be one long line (a setting after a comment line
        // silently ignored). Found by Tests/fuzz/ConfigFuzz.swift.
        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if rawLine.contains(0) { fail(lineNumber, "the line contains a NUL byte"); continue }
            let line = trim(Substring(rawLine))
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                fail(lineNumber, "expected `key = value`, found \"\(line)\""); continue
            }
            let key = trim(line[..<eq])
            let value = trim(line[line.index(after: eq)...])
            if key.isEmpty { fail(lineNumber, "missing key before '='"); continue }
            if let first = config.lines[key] { fail(lineNumber, "`\(key)` is already set on line \(first)"); continue }
            do {
                try apply(key: key, value: value, to: &config)
            } catch {
                fail(lineNumber, error.message)
                // Counts as set, so a second line with the key is still a repeat.
                config.lines[key] = lineNumber
                continue
            }
            config.lines[key] = lineNumber
            config.texts[key] = value
        }
        if checkingConflicts { errors += conflicts(config) }
        return (config, errors)
    }

    struct ValueError: Error { var message: String }

    static func apply(key: String, value: String, to config: inout DaemonConfig) throws(ValueError) {
        switch key {
        case "mode":
            guard let mode = MFAMode(rawValue: value) else {
                throw ValueError(message: "`mode` must be one of required, optional, audit, off (found \"\(value)\")")
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
            config.window = try number(key, value, in: 0...10, what: "a whole number of steps")
        case "require_users": config.requireUsers = try names(key, value)
        case "exempt_users": config.exemptUsers = try names(key, value)
        case "require_groups": config.requireGroups = try names(key, value)
        case "exempt_groups": config.exemptGroups = try names(key, value)
        case "services": config.services = try names(key, value)
        case "trusted_networks":
            config.trustedNetworks = []
            for word in words(value) {
                guard let network = IPNetwork(parsing: word) else {
                    throw ValueError(message: "`trusted_networks`: \"\(word)\" is not an address or network like 10.0.0.0/8 or fd00::/8 (host names are never trusted)")
                }
                config.trustedNetworks.append(network)
            }
        case "trust_local":
            switch value {
            case "yes": config.trustLocal = true
            case "no": config.trustLocal = false
            default: throw ValueError(message: "`trust_local` must be yes or no (found \"\(value)\")")
            }
        case "trusted_ssh_keys": try applyTrustedSSHKeys(value, to: &config)
        case "grace_period": config.gracePeriod = try duration(key, value)
        case "remember": config.remember = try duration(key, value)
        case "never_remember":
            config.neverRememberHosts = []
            config.neverRememberNetworks = []
            for word in words(value) {
                if let network = IPNetwork(parsing: word) {
                    config.neverRememberNetworks.append(network)
                } else if RememberedLogin.isStorable(word), !word.contains("/") {
                    config.neverRememberHosts.append(word)
                } else {
                    throw ValueError(message: "`never_remember`: \"\(word)\" is not a host name, an address or a network like 10.0.0.0/8")
                }
            }
        case "failure_window": config.failureWindow = try duration(key, value, allowZero: false)
        case "lockout": config.lockout = try duration(key, value)
        case "max_failures": config.maxFailures = try number(key, value, in: 0...1000, what: "a count (0 turns lockout off)")
        case "max_failures_per_rhost":
            config.maxFailuresPerRhost = try number(key, value, in: 0...100_000, what: "a count (0 turns the per-address limit off)")
        case "prompt_timeout":
            config.promptTimeout = try duration(key, value, allowZero: false)
            if config.promptTimeout > 3600 {
                throw ValueError(message: "`prompt_timeout` must be at most 1h (found \"\(value)\")")
            }
        case "enroll_at_login":
            switch value {
            case "yes": config.enrollAtLogin = true; config.enrollAtLoginNeedsInvite = false
            case "no": config.enrollAtLogin = false; config.enrollAtLoginNeedsInvite = false
            case "invite": config.enrollAtLogin = true; config.enrollAtLoginNeedsInvite = true
            default: throw ValueError(message: "`enroll_at_login` must be yes, no or invite (found \"\(value)\")")
            }
        case "issuer":
            guard !value.isEmpty, value.utf8.count <= 64, !value.contains(":"),
                  value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
                throw ValueError(message: "`issuer` must be 1 to 64 printable characters without ':' (found \"\(value)\")")
            }
            config.issuer = value
        case "notify_command":
            config.notifyCommand = try absolutePath(key, value)
        case "store":
            guard let backend = StoreBackend(rawValue: value) else {
                throw ValueError(message: "`store` must be files or postgresql (found \"\(value)\")")
            }
            config.store = backend
        case "database_url":
            guard !value.isEmpty, !containsPassword(value) else {
                throw ValueError(message: "`database_url` must be a libpq URI or connection string without the password (put it in `database_password_file`)")
            }
            config.databaseURL = value
        case "database_password_file": config.databasePasswordFile = try absolutePath(key, value)
        case "fleet_key_file": config.fleetKeyFile = try absolutePath(key, value)
        case "fleet_new_key_file": config.fleetNewKeyFile = try absolutePath(key, value)
        case "database_insecure":
            switch value {
            case "yes": config.databaseInsecure = true
            case "no": config.databaseInsecure = false
            default: throw ValueError(message: "`database_insecure` must be yes or no (found \"\(value)\")")
            }
        case "database_timeout":
            config.databaseTimeout = try duration(key, value, allowZero: false)
            if config.databaseTimeout > 60 { throw ValueError(message: "`database_timeout` must be at most 60s (the PAM module waits 10 s by default)") }
        case "database_retry":
            config.databaseRetry = try duration(key, value, allowZero: false)
        case "database_connections":
            guard let n = Int(value), (1...64).contains(n) else {
                throw ValueError(message: "`database_connections` must be a number from 1 to 64 (found \"\(value)\")")
            }
            config.databaseConnections = n
        case "fleet_offline":
            guard let mode = FleetOffline(rawValue: value) else {
                throw ValueError(message: "`fleet_offline` must be refuse or cache (found \"\(value)\")")
            }
            config.fleetOffline = mode
        case "fleet_offline_max_age":
            config.fleetOfflineMaxAge = try duration(key, value, allowZero: false)
        case "methods", "email_command", "email_from", "email_address_pattern", "sms_command",
             "max_codes_per_sender", "max_codes_per_hour", "sms_allowed_prefixes":
            try applyDelivery(key: key, value: value, to: &config)
        case _ where PromptTexts.keys.contains(key):
            try config.prompts.apply(key: key, value: value)
        default:
            throw ValueError(message: "unknown key `\(key)` (known keys: \(keys.joined(separator: ", ")))")
        }
    }

    /// Contradictions a single line cannot show, every one of them.
    static func conflicts(_ config: DaemonConfig) -> [ConfigError] {
        var errors: [ConfigError] = []
        func clash(_ a: [String], _ aKey: String, _ b: [String], _ bKey: String, what: String) {
            if let both = a.first(where: { b.contains($0) }) {
                let line = max(config.lines[aKey] ?? 0, config.lines[bKey] ?? 0)
                errors.append(ConfigError(file: config.file, line: line,
                                          message: "\(what) \"\(both)\" is listed in both `\(aKey)` (line \(config.lines[aKey] ?? 0)) and `\(bKey)` (line \(config.lines[bKey] ?? 0)); keep one"))
            }
        }
        clash(config.requireUsers, "require_users", config.exemptUsers, "exempt_users", what: "user")
        clash(config.requireGroups, "require_groups", config.exemptGroups, "exempt_groups", what: "group")
        if config.store == .postgresql && config.databaseURL == nil {
            errors.append(ConfigError(file: config.file, line: config.lines["store"] ?? 0,
                                      message: "`store = postgresql` needs `database_url` (a libpq URI such as postgresql://mfagate@db.example/mfagate)"))
        }
        if let fresh = config.fleetNewKeyFile, fresh == config.fleetKeyFile {
            errors.append(ConfigError(file: config.file, line: config.lines["fleet_new_key_file"] ?? 0,
                                      message: "`fleet_new_key_file` names the same file as `fleet_key_file`; during a rotation it names the new key"))
        }
        if let delivery = deliveryConflict(config) { errors.append(delivery) }
        return errors
    }
}

/// `fleet_offline`: what a fleet host does for logins while the database is unreachable.
public enum FleetOffline: String, Sendable {
    /// Every login follows the PAM module's failmode (the default).
    case refuse
    /// Users this host has seen log in against its sealed copy of their record (FleetOfflineCache).
    case cache
}

/// `store =`: where the daemon keeps enrollments.
public enum StoreBackend: String, Sendable {
    /// Per-user files in `state_dir` (the default).
    case files
    /// The fleet's PostgreSQL database (docs/fleet.md), shared by every host that names it.
    case postgresql
}
