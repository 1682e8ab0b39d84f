// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Why the store refused to start or to read or write a file. Each says what to fix, and where.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    case unsafeDirectory(path: String, reason: String)
    case unsafeFile(path: String, reason: String)
    case damagedFile(path: String, detail: String)
    case inUse(path: String)
    case system(path: String, operation: String, errno: Int32)
    /// Fleet store: the database is unreachable, timed out or refused (the detail says which).
    case unavailable(detail: String)
    /// Fleet store: another daemon changed the user since this request read it.
    case conflict(user: String)
    /// Fleet store: the user's row is older than this host has seen, or missing without a tombstone
    /// (docs/fleet.md): tampering, not an outage, so the login fails closed whatever the failmode.
    /// The store has logged it (one line naming the user).
    case refusedRow(user: String, detail: String)

    public var description: String {
        switch self {
        case .unsafeDirectory(let path, let reason):
            return "refusing state directory \(path): \(reason)"
        case .unsafeFile(let path, let reason):
            return "refusing user file \(path): \(reason)"
        case .damagedFile(let path, let detail):
            return "cannot read user file \(path): \(detail); restore it from backup or re-enroll the user"
        case .inUse(let path):
            return "state directory \(path) is locked by another running mfagated"
        case .system(let path, let operation, let code):
            return "\(operation) \(path) failed: \(String(cString: strerror(code)))"
        case .unavailable(let detail):
            return detail
        case .conflict(let user):
            return "\(user) was changed by another host at the same moment; try again"
        case .refusedRow(_, let detail):
            return detail
        }
    }
}
