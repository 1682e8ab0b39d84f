// SPDX-License-Identifier: Apache-2.0
/// `remember` (google-authenticator's `grace_period`): after a right code, the same user from the
/// same remote host through the same PAM service is not asked again for a while. Pure rules, time
/// passed in; the entries live in the user's record (so the fleet key's MAC covers them in fleet mode).
public struct RememberedLogin: Sendable, Equatable {
    public var service: String
    public var rhost: String
    /// Unix time of the right code that made it.
    public var created: Int64

    public init(service: String, rhost: String, created: Int64) {
        self.service = service
        self.rhost = rhost
        self.created = created
    }

    /// At most this many per user: the oldest goes first.
    public static let maximumPerUser = 16
    /// Longest service or rhost kept (PAM_RHOST is a host name or address).
    public static let maximumFieldLength = 255

    /// A service or rhost that can be an entry: 1 to 255 printable ASCII bytes without a space, so
    /// the user file's `remember CREATED SERVICE RHOST` line reads back as written. Anything else is
    /// never remembered (the user is asked each time).
    public static func isStorable(_ field: String) -> Bool {
        let bytes = field.utf8
        return !bytes.isEmpty && bytes.count <= maximumFieldLength && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// True while the entry covers a login at `now`: created ≤ now < created + lifetime. A clock set
    /// back before `created` ends it, as does one past the lifetime.
    public func isValid(at now: Int64, lifetime: Int64) -> Bool {
        guard lifetime > 0, created <= now else { return false }
        let (end, overflow) = created.addingReportingOverflow(lifetime)
        return overflow || now < end
    }
}

public enum RememberPolicy {
    /// Whether a login from `rhost` may be remembered at all: `remember` is on, the login has a
    /// remote host (console, su and sudo logins have none and are never remembered), and the host
    /// is not listed in `never_remember` (by name, or an address inside a listed network).
    public static func mayRemember(_ config: DaemonConfig, service: String, rhost: String) -> Bool {
        guard config.remember > 0, !rhost.isEmpty, RememberedLogin.isStorable(rhost), RememberedLogin.isStorable(service) else {
            return false
        }
        return !isNeverRemembered(config, rhost: rhost)
    }

    public static func isNeverRemembered(_ config: DaemonConfig, rhost: String) -> Bool {
        if config.neverRememberHosts.contains(where: { $0.lowercased() == rhost.lowercased() }) { return true }
        if let address = IPNetwork.parseAddress(rhost), config.neverRememberNetworks.contains(where: { $0.contains(address) }) {
            return true
        }
        return false
    }

    /// The entry that lets this login in without a code, if any (the newest that matches).
    public static func match(_ entries: [RememberedLogin], _ config: DaemonConfig, service: String, rhost: String,
                             now: Int64) -> RememberedLogin? {
        guard mayRemember(config, service: service, rhost: rhost) else { return nil }
        return entries.filter { $0.service == service && $0.rhost == rhost && $0.isValid(at: now, lifetime: config.remember) }
            .max { $0.created < $1.created }
    }

    /// The entries that would let a login in at `now`, newest first (`mfagate status`): exactly
    /// those `match` can return for their own service and rhost. None when `remember` is off.
    public static func live(_ entries: [RememberedLogin], _ config: DaemonConfig, now: Int64) -> [RememberedLogin] {
        entries.filter { match([$0], config, service: $0.service, rhost: $0.rhost, now: now) != nil }
            .sorted { $0.created > $1.created }
    }

    /// The time from which the entry no longer covers a login (created + `remember`, at most Int64.max).
    public static func end(of entry: RememberedLogin, _ config: DaemonConfig) -> Int64 {
        let (end, overflow) = entry.created.addingReportingOverflow(config.remember)
        return overflow ? Int64.max : end
    }

    /// The entries after a right code at `now`. A login that may be remembered adds or renews its
    /// entry, and then expired ones (and ones from a clock set back) are dropped and at most
    /// `maximumPerUser` of the newest stay. Any other login leaves the entries as they are (so it
    /// writes nothing; `match` skips what no longer applies). A recovery-code login ends them all
    /// (the caller's rule, not this one's).
    public static func afterRightCode(_ entries: [RememberedLogin], _ config: DaemonConfig, service: String, rhost: String,
                                      now: Int64) -> [RememberedLogin] {
        guard mayRemember(config, service: service, rhost: rhost) else { return entries }
        var kept = entries.filter { $0.isValid(at: now, lifetime: config.remember) && !($0.service == service && $0.rhost == rhost) }
        kept.append(RememberedLogin(service: service, rhost: rhost, created: now))
        kept.sort { $0.created < $1.created }
        if kept.count > RememberedLogin.maximumPerUser { kept.removeFirst(kept.count - RememberedLogin.maximumPerUser) }
        return kept
    }
}
