// SPDX-License-Identifier: Apache-2.0
/// The config as text: each key's value in the form the file would take (`mfagated --check-config
/// --print`, and the "default: key = value" of explanations).
extension ConfigParser {
    static func formatDuration(_ seconds: Int64) -> String {
        if seconds == 0 { return "0" }
        for (unit, factor) in [("w", Int64(604_800)), ("d", 86400), ("h", 3600), ("m", 60)] where seconds % factor == 0 {
            return "\(seconds / factor)\(unit)"
        }
        return "\(seconds)s"
    }

    /// The value of `key` in the form the file would take, for `--print` and explanations.
    public static func defaultText(_ key: String, _ c: DaemonConfig) -> String {
        switch key {
        case "mode": return c.mode.rawValue
        case "state_dir": return c.stateDirectory
        case "socket": return c.socketPath
        case "window": return "\(c.window)"
        case "require_users": return c.requireUsers.joined(separator: " ")
        case "exempt_users": return c.exemptUsers.joined(separator: " ")
        case "require_groups": return c.requireGroups.joined(separator: " ")
        case "exempt_groups": return c.exemptGroups.joined(separator: " ")
        case "services": return c.services.joined(separator: " ")
        case "trusted_networks": return c.trustedNetworks.map(\.description).joined(separator: " ")
        case "trust_local": return c.trustLocal ? "yes" : "no"
        case "trusted_ssh_keys": return c.trustedSSHKeys.text
        case "grace_period": return formatDuration(c.gracePeriod)
        case "remember": return formatDuration(c.remember)
        case "never_remember": return (c.neverRememberHosts + c.neverRememberNetworks.map(\.description)).joined(separator: " ")
        case "max_failures": return "\(c.maxFailures)"
        case "failure_window": return formatDuration(c.failureWindow)
        case "lockout": return formatDuration(c.lockout)
        case "max_failures_per_rhost": return "\(c.maxFailuresPerRhost)"
        case "prompt_timeout": return formatDuration(c.promptTimeout)
        case "enroll_at_login": return c.enrollAtLoginNeedsInvite ? "invite" : c.enrollAtLogin ? "yes" : "no"
        case "issuer": return c.issuer ?? ""
        case "notify_command": return c.notifyCommand ?? ""
        case "store": return c.store.rawValue
        case "database_url": return c.databaseURL ?? ""
        case "database_password_file": return c.databasePasswordFile ?? ""
        case "fleet_key_file": return c.fleetKeyFile
        case "fleet_new_key_file": return c.fleetNewKeyFile ?? ""
        case "database_insecure": return c.databaseInsecure ? "yes" : "no"
        case "database_timeout": return formatDuration(c.databaseTimeout)
        case "database_retry": return formatDuration(c.databaseRetry)
        case "database_connections": return String(c.databaseConnections)
        case "fleet_offline": return c.fleetOffline.rawValue
        case "fleet_offline_max_age": return formatDuration(c.fleetOfflineMaxAge)
        case "methods": return c.methods.map(\.rawValue).joined(separator: " ")
        case "email_command": return c.emailCommand.joined(separator: " ")
        case "email_from": return c.emailFrom ?? ""
        case "email_address_pattern": return c.emailAddressPattern ?? ""
        case "sms_command": return c.smsCommand?.joined(separator: " ") ?? ""
        case "max_codes_per_sender": return "\(c.maxCodesPerSender)"
        case "max_codes_per_hour": return "\(c.maxCodesPerHour)"
        case "sms_allowed_prefixes": return c.smsAllowedPrefixes.joined(separator: " ")
        default: return PromptTexts.keys.contains(key) ? c.prompts.text(key) : ""
        }
    }

    /// The effective configuration, every key with defaults filled in (`mfagated --check-config --print`).
    public static func render(_ c: DaemonConfig) -> String {
        keys.map { key in
            let origin = c.lines[key].map { "line \($0)" } ?? "default"
            return "\(key) = \(defaultText(key, c))".padding(to: 48) + "# \(origin)"
        }.joined(separator: "\n") + "\n"
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
