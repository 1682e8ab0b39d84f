// SPDX-License-Identifier: Apache-2.0
/// How many codes the daemon sends by email or SMS (issue 14, finding 7): per real sender (the
/// account of a login, the uid of a CLI verb) across every address and user name, and for the
/// whole host, each within a sliding hour. Without it an unenrolled local user could have codes
/// sent to any address or number, three per name, and SMS pumping bills the admin. Pure: time
/// passed in (seconds).
public struct SendCaps: Sendable {
    public enum Verdict: Equatable, Sendable {
        case allowed
        /// This sender used up `max_codes_per_sender`; the next send frees up at `nextAt`.
        case senderLimit(nextAt: Int64)
        /// The host used up `max_codes_per_hour`.
        case hostLimit(nextAt: Int64)
    }

    public static let window: Int64 = 3600
    /// Senders remembered at most (each with at most `perSender` times); the oldest go first.
    public static let maximumSenders = 10_000

    public var perSender: Int
    public var perHour: Int
    var bySender: [String: [Int64]] = [:]
    var all: [Int64] = []

    public init(perSender: Int, perHour: Int) {
        self.perSender = perSender
        self.perHour = perHour
    }

    /// Whether one more code may go out now. `sender` nil: root at the command line, which counts
    /// only against the host-wide cap (root can run sendmail itself anyway).
    public func check(sender: String?, now: Int64) -> Verdict {
        let host = all.filter { now - $0 < Self.window && $0 <= now }
        if host.count >= perHour { return .hostLimit(nextAt: (host.min() ?? now) + Self.window) }
        if let sender {
            let mine = (bySender[sender] ?? []).filter { now - $0 < Self.window && $0 <= now }
            if mine.count >= perSender { return .senderLimit(nextAt: (mine.min() ?? now) + Self.window) }
        }
        return .allowed
    }

    /// Counts a code that is being sent (the caller checked first).
    public mutating func record(sender: String?, now: Int64) {
        all = all.filter { now - $0 < Self.window } + [now]
        if all.count > perHour { all.removeFirst(all.count - perHour) }
        guard let sender else { return }
        var mine = (bySender[sender] ?? []).filter { now - $0 < Self.window } + [now]
        if mine.count > perSender { mine.removeFirst(mine.count - perSender) }
        bySender[sender] = mine
        if bySender.count > Self.maximumSenders {
            bySender = bySender.filter { $0.value.contains { now - $0 < Self.window } }
            BoundedBook.evictOldest(&bySender, limit: BoundedBook.evictionTarget(Self.maximumSenders)) { $0.max() ?? 0 }
        }
    }

    public var senderCount: Int { bySender.count }
}
