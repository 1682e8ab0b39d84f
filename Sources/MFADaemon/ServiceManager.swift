// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import CMFASystemd

/// What the daemon tells and asks systemd (sd-daemon(3)): the inherited listening socket, readiness,
/// stopping, reloading and watchdog pings. Every call is a no-op when no service manager runs us
/// (no LISTEN_FDS, no NOTIFY_SOCKET), so the same binary works standalone.
public enum ServiceManager {
    /// The listening socket passed by socket activation, or nil if the daemon should create its own.
    /// Throws if systemd passed something the daemon cannot serve on.
    public static func inheritedListeningSocket() throws(ServerError) -> Int32? {
        let fd = mfa_sd_listening_socket()
        switch fd {
        case -1: return nil
        case -2: throw ServerError("systemd passed more than one socket; mfagated.socket must have exactly one ListenStream=")
        case ..<0: throw ServerError("the socket systemd passed is not a listening Unix stream socket; use ListenStream=/path in mfagated.socket")
        default: return fd
        }
    }

    /// The path a Unix socket is bound to, for log lines; nil if it has none.
    public static func boundPath(of fd: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 110)
        guard mfa_sd_socket_path(fd, &buffer, buffer.count) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sends a state line such as "READY=1"; returns false only if telling systemd failed.
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        mfa_sd_notify(state) >= 0
    }

    /// Milliseconds between watchdog pings (half the interval systemd asked for), or nil if none.
    public static func watchdogPingInterval() -> Int64? {
        let usec = mfa_sd_watchdog_usec()
        guard usec > 0 else { return nil }
        return max(1, Int64(clamping: usec / 2000))
    }
}
